//! `audex`: export customer segments to marketing destinations.
//!
//! The binary is thin: parse arguments, load the config, call into
//! audex-core and the plugins, print, and map the outcome to an exit code.

// Link every plugin crate so its `inventory::submit!` registration is kept.
use audex_files as _;
use audex_marketo as _;
use audex_postgres as _;

mod cli;
mod commands;
mod exit;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    commands::init_logging(args.verbose);
    let code = commands::dispatch(args);
    std::process::ExitCode::from(code as u8)
}
