//! `audex validate`: every config error at once, or a one-line summary.
//! Pure: no network, no file written.

use audex_core::config::Config;
use serde_json::json;

use crate::cli::{ConfigArg, Output};
use crate::commands::print_config_errors;
use crate::exit;

pub fn run(arg: &ConfigArg, output: Output) -> i32 {
    let result = Config::load(&arg.config);
    match (output, result) {
        (Output::Text, Ok(cfg)) => {
            println!(
                "ok: {} sources, {} segments, {} destinations",
                cfg.sources.len(),
                cfg.segments.len(),
                cfg.destinations.len()
            );
            exit::OK
        }
        (Output::Text, Err(e)) => {
            print_config_errors(&arg.config, &e);
            exit::for_error(&e)
        }
        (Output::Json, result) => {
            let (value, code) = match result {
                Ok(cfg) => (
                    json!({
                        "ok": true,
                        "file": arg.config.display().to_string(),
                        "sources": cfg.sources.len(),
                        "segments": cfg.segments.len(),
                        "destinations": cfg.destinations.len(),
                    }),
                    exit::OK,
                ),
                Err(e) => (
                    json!({
                        "ok": false,
                        "file": arg.config.display().to_string(),
                        "errors": e.config_errors(),
                    }),
                    exit::for_error(&e),
                ),
            };
            match serde_json::to_string_pretty(&value) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("audex: cannot encode the result: {e}");
                    return exit::FAILED;
                }
            }
            code
        }
    }
}
