//! State diff → blob felts: squash, stateful compression (aliases), stateless compression,
//! blob layout and the EIP-4844 evaluation transform.
