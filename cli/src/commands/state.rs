//! `audex state purge`: forget what a destination holds.

use audex_core::state::StateStore;

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
    }
}
