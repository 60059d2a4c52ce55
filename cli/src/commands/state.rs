//! `audex state purge`: forget what a destination holds; `audex state
//! suppressions` / `unsuppress`: the people it refused for good.

use std::collections::BTreeMap;
use std::path::Path;

use audex_core::config::Config;
use audex_core::state::StateStore;
use audex_core::BuildContext;

use crate::cli::StateCommand;
use crate::exit;

pub fn run(cmd: &StateCommand) -> i32 {
    match cmd {
        StateCommand::Purge {
            config,
            destination,
            yes,
        } => {
            if !yes {
                eprintln!(
                    "audex: this deletes every record and list member stored for destination `{destination}` \
                     (the next run sends everything again); rerun with --yes to confirm"
                );
                return exit::USAGE;
            }
            let config = match super::load_config(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !config.state_path.exists() {
                println!("nothing stored for destination {destination}");
                return exit::OK;
            }
            let store = match StateStore::open(&config.state_path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("audex: {e}");
                    return exit::FAILED;
                }
            };
            match store.purge_destination(destination) {
                Ok(c) if c.records == 0 && c.members == 0 && c.suppressions == 0 => {
                    println!("nothing stored for destination {destination}");
                    exit::OK
                }
                Ok(c) => {
                    println!(
                        "purged destination {destination}: {} records, {} list members, {} suppressions (run history kept)",
                        c.records, c.members, c.suppressions
                    );
                    exit::OK
                }
                Err(e) => {
                    eprintln!("audex: {e}");
                    exit::FAILED
                }
            }
        }
        StateCommand::Suppressions {
            config,
            destination,
            export,
        } => match open(config, destination) {
            Ok((_, store)) => suppressions(&store, destination, export.as_deref()),
            Err(code) => code,
        },
        StateCommand::Unsuppress {
            config,
            destination,
            keys,
            all,
        } => match open(config, destination) {
            Ok((config, store)) => unsuppress(&config, &store, destination, keys, *all),
            Err(code) => code,
        },
    }
}

/// The config and its state store, for a destination it declares.
fn open(config: &crate::cli::ConfigArg, destination: &str) -> Result<(Config, StateStore), i32> {
    let config = super::load_config(config)?;
    if !config.destinations.contains_key(destination) {
        eprintln!("audex: no destination `{destination}` in the config");
        return Err(exit::USAGE);
    }
    match StateStore::open(&config.state_path) {
        Ok(store) => Ok((config, store)),
        Err(e) => {
            eprintln!("audex: {e}");
            Err(exit::FAILED)
        }
    }
}

fn suppressions(store: &StateStore, destination: &str, export: Option<&Path>) -> i32 {
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    let listed = store.for_each_suppression(destination, |key, code, message, since| {
        *by_code.entry(code.to_string()).or_default() += 1;
        if export.is_some() {
            rows.push([key, code, message, since].map(String::from));
        }
    });
    let total = match listed {
        Ok(n) => n,
        Err(e) => {
            eprintln!("audex: {e}");
            return exit::FAILED;
        }
    };
    println!("destination {destination}: {total} refused for good, never sent again");
    for (code, n) in &by_code {
        println!("  {code}: {n}");
    }
    if let Some(path) = export {
        rows.sort();
        let written = csv::Writer::from_path(path).and_then(|mut w| {
            w.write_record(["key", "code", "message", "since"])?;
            for row in &rows {
                w.write_record(row)?;
            }
            w.flush().map_err(csv::Error::from)
        });
        if let Err(e) = written {
            eprintln!("audex: cannot write {}: {e}", path.display());
            return exit::FAILED;
        }
        println!("written to {}", path.display());
    }
    exit::OK
}

fn unsuppress(
    config: &Config,
    store: &StateStore,
    destination: &str,
    keys: &[String],
    all: bool,
) -> i32 {
    let keys: Option<Vec<String>> = if all {
        None
    } else {
        // The keys as the destination normalises lookup values.
        let rule = match config.destinations.get(destination).map(|d| {
            d.build(&BuildContext {
                base_dir: config.base_dir.clone(),
            })
        }) {
            Some(Ok(d)) => d.key_rule(),
            Some(Err(e)) => {
                eprintln!("audex: {e}");
                return exit::CONFIG;
            }
            None => return exit::USAGE,
        };
        let mut normalised = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            match rule.normalise(key) {
                Ok(k) => normalised.push(k),
                Err(p) => {
                    eprintln!("audex: --key number {}: {}", i + 1, p.message);
                    return exit::USAGE;
                }
            }
        }
        Some(normalised)
    };
    match store.forget_suppressions(destination, keys.as_deref()) {
        Ok(n) => {
            println!(
                "destination {destination}: {n} suppression{} lifted; the next run sends {} again",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it" } else { "them" }
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("audex: {e}");
            exit::FAILED
        }
    }
}
