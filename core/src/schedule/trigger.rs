//! `run_on: source_change`: a scheduled time exports only when the
//! destination's sources changed since its last successful export.
//!
//! The fingerprint of a destination covers each of its exports: segment,
//! list, mode, source name, query, and the source's own
//! [`SegmentSource::fingerprint`](crate::SegmentSource::fingerprint). So a
//! changed query or list in the config counts as a change too. A source that
//! cannot tell (no fingerprint) makes the destination export every time.

use std::collections::BTreeMap;

use crate::engine::Target;
use crate::error::Result;
use crate::source::fingerprint_digest;

/// The fingerprint of `target`'s sources now, or `None` when one of them
/// cannot tell. Asks each source once, through the sources the run itself
/// will read.
pub async fn sources_fingerprint(target: &Target) -> Result<Option<String>> {
    let mut by_source: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut parts = Vec::new();
    for export in &target.exports {
        let source = export.source_name.as_str();
        if !by_source.contains_key(source) {
            by_source.insert(source, export.source.fingerprint().await?);
        }
        let Some(Some(fingerprint)) = by_source.get(source) else {
            return Ok(None);
        };
        let spec = &export.spec;
        parts.push(format!(
            "{}\t{}\t{}\t{source}\t{:?}\t{fingerprint}",
            spec.segment,
            spec.list().0,
            spec.mode,
            export.query
        ));
    }
    Ok(Some(fingerprint_digest(parts)))
}
