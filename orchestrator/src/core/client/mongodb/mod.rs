//! MongoDB backend (in progress).
