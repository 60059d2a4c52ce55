//! `audex check`: the connection test of each destination (authenticate,
//! each export's list, each mapped field, consent), then of each source
//! those destinations' exports read (reached and readable; for a database,
//! whether the session is encrypted), one line per step.

use std::collections::BTreeSet;
use std::path::Path;

use audex_core::config::Config;
use audex_core::{BuildContext, CheckResult, ListId};

use crate::exit;

fn print_result(r: &CheckResult) {
    let status = if r.ok { "ok" } else { "FAILED" };
    println!("{status:<6}  {}  {}", r.name, r.detail);
}

fn print_config_error(e: &audex_core::Error) {
    eprintln!("audex: {}", e.message());
    for c in e.config_errors() {
        eprintln!("  {c}");
    }
    if let Some(h) = e.hint() {
        eprintln!("  hint: {h}");
    }
}

/// Run the checks; exit 0 only when every step of every destination and
/// source passed.
pub fn run(config: &Path, only: Option<&str>) -> i32 {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            print_config_error(&e);
            return exit::for_error(&e);
        }
    };
    if let Some(name) = only {
        if !cfg.destinations.contains_key(name) {
            let known: Vec<&str> = cfg.destinations.keys().map(String::as_str).collect();
            eprintln!(
                "audex: no destination named {name:?} in {}; known: {}",
                config.display(),
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            );
            return exit::USAGE;
        }
    }
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let ctx = BuildContext {
        base_dir: cfg.base_dir.clone(),
    };
    let mut all_ok = true;
    let mut first = true;
    // The sources the checked destinations read, each once, in order.
    let mut sources: Vec<&str> = Vec::new();
    for (name, dest_cfg) in &cfg.destinations {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if !first {
            println!();
        }
        first = false;
        let settings = dest_cfg.settings();
        let exports = dest_cfg.exports();
        for export in &exports {
            if let Some(segment) = cfg.segments.get(&export.segment) {
                if !sources.contains(&segment.source.as_str()) {
                    sources.push(&segment.source);
                }
            }
        }
        println!("destination {name} ({})", settings.display_name);
        let dest = match dest_cfg.build(&ctx) {
            Ok(d) => d,
            Err(e) => {
                print_result(&CheckResult::failed("build", e.to_string()));
                all_ok = false;
                continue;
            }
        };
        // Every target an export fills, each once, in config order.
        let mut seen = BTreeSet::new();
        let lists: Vec<ListId> = exports
            .iter()
            .map(|e| e.target.list.clone())
            .filter(|l| seen.insert(l.clone()))
            .collect();
        let fields: Vec<String> = settings.mapping.keys().cloned().collect();
        let mut results = runtime.block_on(dest.check(&lists, &fields));
        results.push(if settings.data_privacy_consent {
            CheckResult::ok(
                "consent",
                format!(
                    "data privacy consent given: profiles leave your compliance boundary for {} (destination {name})",
                    settings.display_name
                ),
            )
        } else {
            CheckResult::failed(
                "consent",
                "data privacy consent is not given; set data_privacy_consent: true once you agree",
            )
        });
        for r in &results {
            print_result(r);
            all_ok &= r.ok;
        }
    }
    for name in sources {
        let Some(source_cfg) = cfg.sources.get(name) else {
            continue; // validation guarantees it; nothing to check
        };
        println!();
        println!("source {name}");
        let result = match source_cfg.build(&ctx) {
            Ok(source) => match runtime.block_on(source.check()) {
                Ok(detail) => CheckResult::ok("connect", detail),
                // The error's Display: message, then `(hint: ...)`.
                Err(e) => CheckResult::failed("connect", e.to_string()),
            },
            Err(e) => CheckResult::failed("build", e.to_string()),
        };
        print_result(&result);
        all_ok &= result.ok;
    }
    if all_ok {
        exit::OK
    } else {
        exit::FAILED
    }
}
