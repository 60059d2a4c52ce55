//! One module per verb. Each returns an exit code from [`crate::exit`].

use crate::cli::{Cli, Command};
use crate::exit;

pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Connectors { .. }
        | Command::Schema { .. }
        | Command::Validate { .. }
        | Command::Check { .. }
        | Command::Segments { .. }
        | Command::Run(_)
        | Command::Runs(_)
        | Command::Schedule(_)
        | Command::State(_) => {
            eprintln!("audex: this command is not built yet");
            exit::FAILED
        }
    }
}
