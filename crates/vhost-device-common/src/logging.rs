//! Logging set-up shared by the daemons.

/// The log target of `--trace` lines (one per guest request).
pub const TRACE: &str = "vhost_device_trace";

/// Initialises `env_logger`. `RUST_LOG` is honoured; without it the level is `info`, which
/// shows startup facts (sockets bound, devices found, connections) and errors, and never
/// one line per request. The `--trace` target is always enabled at info: nothing is
/// logged to it unless `--trace` was given.
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    // A second initialisation (tests) is harmless: the first logger stays.
    let _ = env_logger::Builder::from_env(env)
        .filter_module(TRACE, log::LevelFilter::Info)
        .format_timestamp_millis()
        .try_init();
}
