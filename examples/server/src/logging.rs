//! Tracing set-up.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `level` (a tracing filter such as `info` or
/// `procuhelp=debug,info`), default `info`.
pub fn init(level: Option<&str>) {
    let filter =
        EnvFilter::try_new(level.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
