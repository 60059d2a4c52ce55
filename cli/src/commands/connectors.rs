//! `audex connectors`: the registered sources and destinations.

use audex_core::registry;

use crate::cli::Output;
use crate::exit;

pub fn run(output: Output) -> i32 {
    let plugins = registry::all();
    match output {
        Output::Json => match serde_json::to_string_pretty(&plugins) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("audex: cannot encode the connector list: {e}");
                return exit::FAILED;
            }
        },
        Output::Text => {
            let width = plugins.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in &plugins {
                println!(
                    "{:<11}  {:<width$}  {}",
                    p.kind.to_string(),
                    p.name,
                    p.description
                );
            }
        }
    }
    exit::OK
}
