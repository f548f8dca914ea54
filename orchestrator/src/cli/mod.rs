//! Command-line interface: `setup`, `run` and the developer tools.

pub mod dev;
