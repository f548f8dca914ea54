//! Logging (tracing): `RUST_LOG` filter, `LOG_FORMAT=json` for JSON lines, pretty otherwise.
//! Logs go to stderr; stdout is for command results.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber once; later calls are no-ops (tests call it repeatedly).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr)).try_init()
    };
    // An error only means a subscriber is already installed.
    let _ = result;
}
