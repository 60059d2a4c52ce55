//! One module per verb. Each returns an exit code from [`crate::exit`].

pub mod check;
pub mod connectors;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod schema;
pub mod segments;
pub mod signals;
pub mod state;
pub mod validate;

use std::path::Path;

use audex_core::config::Config;

use crate::cli::{Cli, Command, ConfigArg};
use crate::exit;

/// Load and validate the config, or print every error (one per line, with
/// path, line and hint) and return the exit code (78 for config errors).
/// For every verb that needs a config.
pub fn load_config(arg: &ConfigArg) -> Result<Config, i32> {
    Config::load(&arg.config).map_err(|e| {
        print_config_errors(&arg.config, &e);
        exit::for_error(&e)
    })
}

/// Print a load error: each config error on its own line on stderr, then a
/// summary naming the file.
pub fn print_config_errors(file: &Path, e: &audex_core::Error) {
    for c in e.config_errors() {
        eprintln!("{c}");
    }
    let hint = e
        .hint()
        .map(|h| format!(" (hint: {h})"))
        .unwrap_or_default();
    eprintln!("audex: {} in {}{hint}", e.message(), file.display());
}

/// The async runtime of the verbs that do I/O; `Err(exit code)` once the
/// reason is printed.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("audex: cannot start the async runtime: {e}");
            crate::exit::FAILED
        })
}

/// The config's state store; `Err(exit code)` once the reason is printed.
pub(crate) fn open_state(
    config: &audex_core::config::Config,
) -> Result<std::sync::Arc<audex_core::state::StateStore>, i32> {
    audex_core::state::StateStore::open(&config.state_path)
        .map(std::sync::Arc::new)
        .map_err(|e| {
            eprintln!("audex: {e}");
            crate::exit::FAILED
        })
}

pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: logs redirected to a file or a journal stay
    // plain text.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Check {
            config,
            destination,
        } => check::run(&config.config, destination.as_deref()),
        Command::Connectors { output } => connectors::run(output),
        Command::Schema { connector } => schema::run(connector.as_deref()),
        Command::Validate { config, output } => validate::run(&config, output),
        Command::Segments { config, output } => segments::run(&config, output),
        Command::Run(args) => run::run(&args),
        Command::Runs(args) => runs::run(&args),
        Command::State(cmd) => state::run(&cmd),
        Command::Schedule(args) => schedule::run(&args),
    }
}
