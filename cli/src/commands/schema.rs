//! `audex schema [CONNECTOR]`: the JSON Schema of the whole config, or of
//! one connector's block, as pretty JSON.

use audex_core::config::{document_schema, plugin_schema};
use audex_core::registry;

use crate::exit;

pub fn run(connector: Option<&str>) -> i32 {
    let schema = match connector {
        None => document_schema(),
        Some(name) => match plugin_schema(name) {
            Some((_, schema)) => schema,
            None => {
                let known: Vec<&str> = registry::all().iter().map(|p| p.name).collect();
                eprintln!(
                    "audex: no connector named `{name}`; known: {}",
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                return exit::USAGE;
            }
        },
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(json) => {
            println!("{json}");
            exit::OK
        }
        Err(e) => {
            eprintln!("audex: cannot encode the schema: {e}");
            exit::FAILED
        }
    }
}
