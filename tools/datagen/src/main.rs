//! `audex-datagen`: write deterministic example profiles as CSV and/or Parquet.

use std::path::PathBuf;
use std::process::ExitCode;

use audex_datagen::{write_csv, write_parquet, Options};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutFormat {
    Csv,
    Parquet,
}

/// Write N example customer profiles (same seed, same rows).
#[derive(Debug, Parser)]
#[command(
    name = "audex-datagen",
    version,
    after_help = "Example:\n  audex-datagen --rows 3000 --seed 42 --out examples/quickstart/data --format csv"
)]
struct Args {
    /// Number of profiles.
    #[arg(long, default_value_t = 3000)]
    rows: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of bad rows (invalid or empty email, over-long name).
    #[arg(long, default_value_t = 0.02)]
    bad_share: f64,
    /// Share of rows repeating an earlier email in another case or with spaces.
    #[arg(long, default_value_t = 0.01)]
    duplicate_share: f64,
    /// Output folder; files are named profiles.csv and profiles.parquet.
    #[arg(long)]
    out: PathBuf,
    /// Formats to write.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [OutFormat::Csv, OutFormat::Parquet])]
    format: Vec<OutFormat>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        rows: args.rows,
        seed: args.seed,
        bad_share: args.bad_share,
        duplicate_share: args.duplicate_share,
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("audex-datagen: cannot create {}: {e}", args.out.display());
        return ExitCode::from(1);
    }
    for format in &args.format {
        let (path, result) = match format {
            OutFormat::Csv => {
                let p = args.out.join("profiles.csv");
                let r = write_csv(&p, &options);
                (p, r)
            }
            OutFormat::Parquet => {
                let p = args.out.join("profiles.parquet");
                let r = write_parquet(&p, &options);
                (p, r)
            }
        };
        match result {
            Ok(s) => println!(
                "{}: {} rows ({} bad, {} duplicates, {} with lifetime_value > 1000)",
                path.display(),
                s.rows,
                s.bad,
                s.duplicates,
                s.high_value
            ),
            Err(e) => {
                eprintln!("audex-datagen: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
