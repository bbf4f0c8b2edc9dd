//! Logging set-up shared by the daemons.

/// Initialises `env_logger`. `RUST_LOG` is honoured; without it the level is `info`, which
/// shows startup facts (sockets bound, devices found, connections) and errors, and never
/// one line per request.
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    // A second initialisation (tests) is harmless: the first logger stays.
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}
