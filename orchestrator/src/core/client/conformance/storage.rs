//! The `StorageClient` conformance suite.
