//! `run_on: source_change`: a scheduled time exports only when the
//! destination's sources changed since its last successful export.
//!
//! The fingerprint of a destination covers each of its exports: segment,
//! list, mode, source name, query, and the source's own
//! [`SegmentSource::fingerprint`](crate::SegmentSource::fingerprint). So a
//! changed query or list in the config counts as a change too. A source that
//! cannot tell (no fingerprint) makes the destination export every time.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::{ConfigError, Error, Result};
use crate::registry::BuildContext;
use crate::settings::RunOn;
use crate::source::fingerprint_digest;

/// Whether `destination` is set to `run_on: source_change`.
pub fn runs_on_source_change(config: &Config, destination: &str) -> bool {
    config
        .destinations
        .get(destination)
        .is_some_and(|d| d.settings().run_on == RunOn::SourceChange)
}

/// The fingerprint of `destination`'s sources now, or `None` when one of
/// them cannot tell. Builds the sources (no destination, no network beyond
/// what a source's fingerprint needs).
pub async fn sources_fingerprint(config: &Config, destination: &str) -> Result<Option<String>> {
    let dest = config.destinations.get(destination).ok_or_else(|| {
        Error::config(vec![ConfigError::new(
            "destinations",
            format!("no destination named `{destination}`"),
        )])
    })?;
    let ctx = BuildContext {
        base_dir: config.base_dir.clone(),
    };
    let mut by_source: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut parts = Vec::new();
    for spec in dest.settings().resolved_exports() {
        // The config loader checked these references.
        let Some(segment) = config.segments.get(&spec.segment) else {
            continue;
        };
        let source = segment.source.as_str();
        if !by_source.contains_key(source) {
            let Some(cfg) = config.sources.get(source) else {
                continue;
            };
            let fingerprint = cfg.build(&ctx)?.fingerprint().await?;
            by_source.insert(source, fingerprint);
        }
        let Some(Some(fingerprint)) = by_source.get(source) else {
            return Ok(None);
        };
        parts.push(format!(
            "{}\t{}\t{}\t{source}\t{:?}\t{fingerprint}",
            spec.segment, spec.list.0, spec.mode, segment.query
        ));
    }
    Ok(Some(fingerprint_digest(parts)))
}
