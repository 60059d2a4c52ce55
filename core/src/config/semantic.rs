//! Pure checks that need more than one block at a time, or more than a
//! schema can say: names that refer to other blocks, cron expressions, time
//! zones, exports that would fight over one list.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde_json::Value;

use crate::error::ConfigError;
use crate::settings::{ExportSettings, ExportSpec, Mode, RunOn};

/// Parse a schedule: a standard 5-field cron expression (minute hour
/// day-of-month month day-of-week). The one parser `validate` and
/// `audex schedule` share, so what validates is what runs.
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "a schedule has 5 fields (minute hour day-of-month month day-of-week), this one has {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("not a valid cron expression: {e}"))
}

/// Parse an IANA time zone name such as `Europe/Paris` or `UTC`.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    chrono_tz::Tz::from_str(name).map_err(|_| "not a known IANA time zone".to_string())
}

/// Segments name existing sources; exports name existing segments. Works
/// on the raw document, so it runs even where other blocks have errors.
pub(super) fn cross_references(doc: &Value) -> Vec<ConfigError> {
    let names = |key: &str| -> BTreeSet<String> {
        doc.get(key)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let sources = names("sources");
    let segments = names("segments");
    let mut errors = Vec::new();
    for (name, block) in doc
        .get("segments")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(source) = block.get("source").and_then(Value::as_str) {
            if !source.is_empty() && !sources.contains(source) {
                errors.push(
                    ConfigError::new(
                        format!("segments.{name}.source"),
                        format!("no source named `{source}`"),
                    )
                    .with_hint(declared("sources", &sources)),
                );
            }
        }
    }
    for (name, block) in doc
        .get("destinations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let exports = block.get("exports").and_then(Value::as_array);
        for (i, export) in exports.into_iter().flatten().enumerate() {
            if let Some(segment) = export.get("segment").and_then(Value::as_str) {
                if !segment.is_empty() && !segments.contains(segment) {
                    errors.push(
                        ConfigError::new(
                            format!("destinations.{name}.exports.{i}.segment"),
                            format!("no segment named `{segment}`"),
                        )
                        .with_hint(declared("segments", &segments)),
                    );
                }
            }
        }
    }
    errors
}

fn declared(what: &str, names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        format!("no {what} are declared")
    } else {
        let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("declared {what}: {}", list.join(", "))
    }
}

/// Checks of the settings every destination shares that the plugin's own
/// `validate` does not make: schedule, time zone, and exports that collide.
/// Paths are relative to the destination's block.
pub(super) fn export_settings(
    settings: &ExportSettings,
    exports: &[ExportSpec],
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(expr) = &settings.schedule {
        if let Err(e) = parse_schedule(expr) {
            errors.push(
                ConfigError::new("schedule", e)
                    .with_hint("e.g. \"0 3 * * *\" runs at 03:00 every day"),
            );
        }
    }
    if let Some(tz) = &settings.timezone {
        if let Err(e) = parse_timezone(tz) {
            errors.push(
                ConfigError::new("timezone", format!("`{tz}` is {e}"))
                    .with_hint("use a name such as `UTC`, `Europe/Paris` or `America/Chicago`"),
            );
        }
        if settings.schedule.is_none() {
            errors.push(
                ConfigError::new("timezone", "a time zone without a schedule has no effect")
                    .with_hint("add `schedule`, or remove `timezone`"),
            );
        }
    }

    if settings.run_on == RunOn::SourceChange && settings.schedule.is_none() {
        errors.push(
            ConfigError::new(
                "run_on",
                "`run_on: source_change` needs a `schedule`: its times are when audex looks for changes",
            )
            .with_hint("e.g. schedule: \"*/15 * * * *\" looks every 15 minutes"),
        );
    }

    // One target, one owner: two mirrored segments in one list would each
    // remove the other's members on every run.
    let mut by_list: BTreeMap<&str, Vec<&ExportSpec>> = BTreeMap::new();
    for export in exports {
        by_list
            .entry(export.target.list.0.trim())
            .or_default()
            .push(export);
    }
    for users in by_list.values() {
        for (pos, e) in users.iter().enumerate() {
            let (i, segment, target) = (e.position, &e.segment, &e.target);
            let earlier = &users[..pos];
            if let Some(first) = earlier.iter().find(|f| f.segment == *segment) {
                errors.push(
                    ConfigError::new(
                        format!("exports.{i}"),
                        format!(
                            "segment `{segment}` is already exported to {target} (exports.{})",
                            first.position
                        ),
                    )
                    .with_hint("remove the duplicate export"),
                );
            } else if let Some(first) = earlier.iter().find(|f| {
                f.segment != *segment && (f.mode == Mode::Mirror || e.mode == Mode::Mirror)
            }) {
                errors.push(
                    ConfigError::new(
                        format!("exports.{i}"),
                        format!(
                            "{target} is filled by both `{}` (exports.{}) and `{segment}` in mirror mode: each run would remove the other's members",
                            first.segment, first.position
                        ),
                    )
                    .with_hint("give each segment its own target, or set `mode: append` on both exports"),
                );
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ListId;
    use crate::settings::{ExportTarget, ExportUser};
    use serde_json::json;

    #[test]
    fn schedules_are_five_field_cron() {
        assert!(parse_schedule("0 3 * * *").is_ok());
        assert!(parse_schedule("*/15 * * * MON-FRI").is_ok());
        assert!(parse_schedule("0 0 3 * * *").is_err(), "six fields");
        assert!(parse_schedule("0 3 * *").is_err());
        assert!(parse_schedule("61 3 * * *").is_err());
        assert!(parse_schedule("").is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_timezone("Europe/Paris").is_ok());
        assert!(parse_timezone("UTC").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn cross_references_name_the_missing_block() {
        let doc = json!({
            "sources": {"crm": {}},
            "segments": {"a": {"source": "crm"}, "b": {"source": "warehouse"}},
            "destinations": {"m": {"exports": [{"segment": "a"}, {"segment": "c"}]}},
        });
        let errs = cross_references(&doc);
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["segments.b.source", "destinations.m.exports.1.segment"]
        );
        assert_eq!(errs[0].hint.as_deref(), Some("declared sources: `crm`"));
        assert_eq!(errs[1].hint.as_deref(), Some("declared segments: `a`, `b`"));
    }

    fn settings() -> ExportSettings {
        ExportSettings {
            display_name: "d".into(),
            data_privacy_consent: true,
            export_user: ExportUser("u".into()),
            mapping: Default::default(),
            mode: Mode::Mirror,
            max_profiles: 10,
            schedule: None,
            timezone: None,
            run_on: RunOn::Schedule,
            mirror_guard: Default::default(),
        }
    }

    /// Exports of `(segment, list, mode)`, in order.
    fn specs(exports: &[(&str, &str, Mode)]) -> Vec<ExportSpec> {
        exports
            .iter()
            .enumerate()
            .map(|(position, (segment, list, mode))| ExportSpec {
                position,
                segment: segment.to_string(),
                target: ExportTarget::new(
                    ListId(list.to_string()),
                    Default::default(),
                    format!("list {list}"),
                ),
                mode: *mode,
            })
            .collect()
    }

    #[test]
    fn two_mirrored_segments_may_not_share_a_list() {
        use Mode::{Append, Mirror};
        let errs = export_settings(
            &settings(),
            &specs(&[("a", "1", Mirror), ("b", "1", Mirror)]),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "exports.1");
        assert!(
            errs[0].message.starts_with("list 1 is filled by both"),
            "{errs:?}"
        );

        let appended = specs(&[("a", "1", Append), ("b", "1", Append)]);
        assert!(export_settings(&settings(), &appended).is_empty());

        let separate = specs(&[("a", "1", Mirror), ("b", "2", Mirror)]);
        assert!(export_settings(&settings(), &separate).is_empty());
    }

    #[test]
    fn duplicate_exports_are_reported() {
        let s = specs(&[("a", "5", Mode::Mirror), ("a", "5", Mode::Append)]);
        let errs = export_settings(&settings(), &s);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("already exported to list 5"));
    }

    #[test]
    fn bad_schedule_and_zone_are_reported() {
        let mut s = settings();
        s.schedule = Some("every day".into());
        s.timezone = Some("Nowhere/Land".into());
        let paths: Vec<String> = export_settings(&s, &[])
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["schedule", "timezone"]);
    }

    #[test]
    fn source_change_needs_a_schedule() {
        let mut s = settings();
        s.run_on = RunOn::SourceChange;
        let errs = export_settings(&s, &[]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "run_on");
        s.schedule = Some("*/15 * * * *".into());
        assert!(export_settings(&s, &[]).is_empty());
    }
}
