//! `vhost-device-gpio`: serves GPIO chips to guests over vhost-user.

use std::process::ExitCode;

use clap::Parser;
use log::{error, info};
use vhost_device_common::listener::ListenerError;
use vhost_device_common::report::Chain;
use vhost_device_common::serve::ServeError;
use vhost_device_common::{capabilities, listener, logging, serve};
use vhost_device_gpio::args::{Args, Config, ConfigError};
use vhost_device_gpio::host::{HostSource, OpenError};

const NAME: &str = "vhost-device-gpio";

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error("invalid arguments")]
    Config(#[from] ConfigError),
    #[error("GPIO device unavailable")]
    Open(#[from] OpenError),
    #[error("cannot listen")]
    Listen(#[from] ListenerError),
    #[error("serving failed")]
    Serve(#[from] ServeError),
}

fn run(args: Args) -> Result<(), MainError> {
    let config = Config::try_from(args)?;
    // Every device is opened before any socket exists: a missing chip fails here.
    let sources = config
        .devices
        .iter()
        .map(|d| HostSource::open(*d))
        .collect::<Result<Vec<_>, _>>()?;
    let signals = serve::block_termination_signals()?;
    let sockets = listener::bind(&config.sockets)?;
    for (socket, source) in sockets.iter().zip(&sources) {
        info!("{}: {}", socket.describe(), source.describe());
    }
    serve::run(NAME, sockets, signals, move |index| {
        vhost_device_gpio::backend(&sources, index)
    })?;
    Ok(())
}

fn main() -> ExitCode {
    capabilities::exit_if_requested("gpio");
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message, without the usage block, on one line.
            let text = e.to_string();
            let message = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("{NAME}: {message} (try --help)");
            return ExitCode::from(2);
        }
    };
    logging::init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{}", Chain(&e));
            ExitCode::FAILURE
        }
    }
}
