//! Command-line arguments. Each verb's help carries an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "audex",
    version,
    about = "Export customer segments to marketing destinations (Marketo static lists first)",
    long_about = None,
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file [default: ./audex.yaml, or $AUDEX_CONFIG]
    #[arg(short, long, env = "AUDEX_CONFIG", default_value = "audex.yaml")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered sources and destinations.
    #[command(after_help = "Example:\n  audex connectors --output json")]
    Connectors {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the JSON Schema of the whole config, or of one connector's block.
    #[command(after_help = "Examples:\n  audex schema\n  audex schema marketo")]
    Schema {
        /// A connector name from `audex connectors`.
        connector: Option<String>,
    },
    /// Validate the config and report every error at once (no network).
    #[command(
        after_help = "Examples:\n  audex validate -c examples/quickstart/audex.yaml\n  audex validate --output json\n\nExit codes: 0 valid, 78 configuration errors (one per line: path (line N): message (hint: ...))."
    )]
    Validate {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Test the connection of each destination: auth, lists, fields, consent.
    #[command(after_help = "Example:\n  audex check -c audex.yaml --destination marketo_prod")]
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this destination.
        #[arg(long)]
        destination: Option<String>,
    },
    /// Show each segment with its source, columns and row count.
    #[command(after_help = "Example:\n  audex segments -c audex.yaml")]
    Segments {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Export now.
    #[command(
        after_help = "Examples:\n  audex run -c audex.yaml\n  audex run --destination marketo_prod --segment high_value --dry-run\n  audex run --reconcile --output json\n  audex run --allow-mass-removal\n  audex run --wait\n\nExit codes: 0 done, 1 failed (also when a mirror export would remove more of its list than mirror_guard allows: nothing is sent), 75 paused on the daily quota or call budget (run again to resume) or refused because another process holds the destination's lock (use --wait), 78 config error, 130 stopped by a signal (run again to resume)."
    )]
    Run(RunArgs),
    /// Run history, or one run with `runs show ID`.
    #[command(
        after_help = "Examples:\n  audex runs --limit 5\n  audex runs show 12 --output json"
    )]
    Runs(RunsArgs),
    /// Run exports on their cron schedules until stopped.
    #[command(
        after_help = "Examples:\n  audex schedule -c audex.yaml\n  audex schedule --once     # from cron, a systemd timer or a Kubernetes CronJob\n\nSIGTERM/SIGINT: the runs going finish their calls in flight, checkpoint and are recorded as interrupted; exit 0. A second signal exits at once (130).\nExit codes of --once: the worst of its runs: 0 done (or skipped, or interrupted by a signal), 1 failed, 75 paused, 78 config error."
    )]
    Schedule(ScheduleArgs),
    /// Manage the stored state.
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this destination.
    #[arg(long)]
    pub destination: Option<String>,
    /// Only this segment.
    #[arg(long)]
    pub segment: Option<String>,
    /// Compute the plan and the calls it would spend; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore the stored state and upsert everything again.
    #[arg(long)]
    pub full: bool,
    /// Read the list's real members and remove those not in the segment.
    #[arg(long)]
    pub reconcile: bool,
    /// Let a mirror export remove more of its list than its `mirror_guard`
    /// allows (this run only).
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// When another process is running the destination, wait for it to
    /// finish instead of exiting with 75.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(subcommand)]
    pub show: Option<RunsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run in detail.
    Show {
        /// The run id from `audex runs`.
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run every export that is due now (judged from the run history), then
    /// exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Delete a destination's stored state (records, members and
    /// suppressions; the run history stays).
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        /// The destination whose state to delete.
        #[arg(long)]
        destination: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// The people a destination refused for good (an unsubscribe, a bounce,
    /// a deleted contact): audex never sends them to it again.
    Suppressions {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        destination: String,
        /// Write them, with their reason and since when, to this CSV file
        /// (it names people: keep it as you keep the rejects files).
        #[arg(long, value_name = "FILE")]
        export: Option<std::path::PathBuf>,
    },
    /// Lift suppressions, so the next run sends those people again (for
    /// when the destination accepts them again, e.g. they re-subscribed).
    Unsuppress {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        destination: String,
        /// The lookup value (an email) to lift; repeat for more.
        #[arg(long = "key", value_name = "KEY", required_unless_present = "all")]
        keys: Vec<String>,
        /// Lift every suppression of the destination.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
}
