//! `audex`: export customer segments to marketing destinations.
//!
//! The binary is thin: parse arguments, load the config, call into
//! audex-core and the plugins, print, and map the outcome to an exit code.

// Link every plugin crate so its `inventory::submit!` registration is kept.
use audex_files as _;
use audex_mailchimp as _;
use audex_marketo as _;
use audex_postgres as _;

mod cli;
mod commands;
mod display;
mod exit;

use clap::Parser;

/// mimalloc rather than the system allocator: a 1M-profile export makes tens
/// of millions of small allocations (records, request bodies, index keys),
/// and glibc's malloc spent about a third of the run's CPU on them, with
/// fragmentation on top (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    commands::init_logging(args.verbose);
    let code = commands::dispatch(args);
    std::process::ExitCode::from(code as u8)
}
