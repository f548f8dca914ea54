//! The `AlertClient` conformance suite.
