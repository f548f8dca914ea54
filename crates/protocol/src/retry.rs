//! Whether the DA pipeline's errors may go away if tried again
//! ([`Retryable`](orchestrator_utils::Retryable), the workspace's one answer to that question):
//! what failed while reading the node's state may work later, a diff that does not encode,
//! compress or fit in the blobs will not.

use orchestrator_utils::Retryable;

use crate::compression::{encode::EncodeError, squash::SquashError, PipelineError, StateReadError};

/// A state read goes to the node, which may answer later.
impl Retryable for StateReadError {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Squashing reads the state before the range from the node.
impl Retryable for SquashError {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Node reads (squash, aliases, nonces) may work later; a diff that does not encode, compress
/// or fit in the blobs will not.
impl Retryable for PipelineError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Squash(_) | Self::Stateful(_) | Self::Encode(EncodeError::State(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compression::stateless::CompressionError, transform::TransformError};

    #[test]
    fn node_reads_are_retryable_the_rest_is_not() {
        let read = StateReadError("node down".into());
        assert!(read.is_retryable());
        assert!(PipelineError::from(EncodeError::State(read.clone())).is_retryable());
        assert!(PipelineError::from(SquashError::State { block: 1, source: read.clone() })
            .is_retryable());
        assert!(SquashError::State { block: 1, source: read }.is_retryable());
        assert!(
            !PipelineError::from(EncodeError::ReaderLength { expected: 1, got: 2 }).is_retryable()
        );
        assert!(!PipelineError::from(CompressionError::DataTooLong(5)).is_retryable());
        assert!(!PipelineError::from(TransformError::BlobSize(3)).is_retryable());
    }
}
