//! Settings every audience destination shares, flattened into each
//! destination plugin's config (`#[serde(flatten)] pub export: ExportSettings`):
//! who may export, how, how much, and when; and the exports
//! (`#[serde(flatten)] pub exports: Exports<T>`), whose target `T` the
//! plugin defines (Marketo: a list id; Mailchimp: a tag).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::record::ListId;

/// How a list follows its segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The list mirrors the segment: new members are added and members who
    /// left the segment are removed.
    #[default]
    Mirror,
    /// Members are only ever added; leavers stay in the list.
    Append,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Mirror => "mirror",
            Mode::Append => "append",
        })
    }
}

/// What makes a scheduled time run a destination's exports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOn {
    /// Every scheduled time runs the exports.
    #[default]
    Schedule,
    /// A scheduled time runs the exports only when their sources changed
    /// since the last export that succeeded: for files, a file added,
    /// removed or modified; for PostgreSQL, another value from the source's
    /// `refresh_marker` query. A source that cannot tell runs every time.
    SourceChange,
}

impl RunOn {
    fn is_schedule(&self) -> bool {
        *self == RunOn::Schedule
    }
}

/// The person recorded as the exporter of every run (an email or a name).
/// Masked in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ExportUser(pub String);

impl fmt::Debug for ExportUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportUser(..)")
    }
}

/// One segment exported to one target (a list, a tag: the destination
/// says which).
// `T` is the destination's own way of naming a target (Marketo: `list_id`;
// Mailchimp: `tag` or `tag_id`), flattened beside `segment` and `mode`;
// what it leaves out falls back to the destination-level fields of the
// same type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
// serde cannot deny unknown fields next to `flatten`; the schema does (the
// loader checks it before parsing).
#[schemars(deny_unknown_fields)]
pub struct ExportEntry<T> {
    /// Name of a segment declared under `segments`.
    pub segment: String,
    /// Overrides the destination's `mode` for this export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(flatten)]
    pub target: T,
}

/// What an export fills in the destination, as the plugin resolved it from
/// its config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportTarget {
    /// The membership set the export fills, as the plugin names it in its
    /// calls and core keys it in the state store (Marketo: the list id;
    /// Mailchimp: the tag). Opaque to core.
    pub list: ListId,
    /// How reports name it: a JSON object of the target's config fields,
    /// e.g. `{"list_id": 1001}` or `{"tag": "VIP"}`.
    pub label: serde_json::Map<String, serde_json::Value>,
    /// How people read it, e.g. `list 1001` or `tag "VIP"`.
    pub display: String,
}

impl ExportTarget {
    /// A target keyed by `list`, reported as `label` and shown as `display`.
    pub fn new(
        list: ListId,
        label: serde_json::Map<String, serde_json::Value>,
        display: impl Into<String>,
    ) -> Self {
        ExportTarget {
            list,
            label,
            display: display.into(),
        }
    }
}

impl fmt::Display for ExportTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// A destination's way of naming the target of an export, flattened into
/// each export and into the destination's block (the default).
pub trait TargetConfig {
    /// The target of an export that names `self`, taking what it leaves
    /// out from `default` (the destination-level fields). `None` when
    /// neither names a target.
    fn resolve(&self, default: &Self) -> Option<ExportTarget>;

    /// The error for an export whose target is named nowhere; its path is
    /// relative to the export (e.g. `list_id`).
    fn missing() -> ConfigError;
}

/// An export with its target and mode resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportSpec {
    /// Its place under `exports` in the config.
    pub position: usize,
    pub segment: String,
    pub target: ExportTarget,
    pub mode: Mode,
}

impl ExportSpec {
    /// The membership set the export fills (its target's key).
    pub fn list(&self) -> &ListId {
        &self.target.list
    }
}

/// The exports of a destination, flattened into its block: the default
/// target (destination-level fields) and the `exports` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Exports<T> {
    /// The target every export fills unless it names its own.
    #[serde(flatten)]
    pub default: T,
    /// The segments to export, each to a target.
    pub exports: Vec<ExportEntry<T>>,
}

impl<T: TargetConfig> Exports<T> {
    /// Each export with its target and mode resolved (`mode` is the
    /// destination's). An export with no target is left out here and
    /// reported by [`Exports::validate`].
    pub fn specs(&self, mode: Mode) -> Vec<ExportSpec> {
        self.exports
            .iter()
            .enumerate()
            .filter_map(|(position, e)| {
                Some(ExportSpec {
                    position,
                    segment: e.segment.clone(),
                    target: e.target.resolve(&self.default)?,
                    mode: e.mode.unwrap_or(mode),
                })
            })
            .collect()
    }

    /// Exports that name no target, with paths relative to the
    /// destination's block.
    pub fn validate(&self) -> Vec<ConfigError> {
        self.exports
            .iter()
            .enumerate()
            .filter(|(_, e)| e.target.resolve(&self.default).is_none())
            .map(|(i, _)| {
                let e = T::missing();
                let path = if e.path.is_empty() {
                    format!("exports.{i}")
                } else {
                    format!("exports.{i}.{}", e.path)
                };
                ConfigError { path, ..e }
            })
            .collect()
    }
}

pub const DEFAULT_MAX_PROFILES: u64 = 1_000_000;

/// A mirror export's brake on mass removal. Rejected and unreadable rows
/// leave the segment, so a broken or truncated source would empty its list;
/// an export that would remove more than `max_removal_share` of the list's
/// members, when at least `min_removals` would go, sends nothing and fails
/// the run instead (`audex run --allow-mass-removal` lets it through once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorGuard {
    /// Largest share of a list's members (0 to 1) one export may remove.
    /// `1` turns the guard off.
    #[serde(default = "default_max_removal_share")]
    #[schemars(range(min = 0, max = 1))]
    pub max_removal_share: f64,
    /// The guard applies only when at least this many members would go.
    #[serde(default = "default_min_removals")]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub min_removals: u64,
}

pub const DEFAULT_MAX_REMOVAL_SHARE: f64 = 0.5;
pub const DEFAULT_MIN_REMOVALS: u64 = 100;

fn default_max_removal_share() -> f64 {
    DEFAULT_MAX_REMOVAL_SHARE
}

fn default_min_removals() -> u64 {
    DEFAULT_MIN_REMOVALS
}

impl Default for MirrorGuard {
    fn default() -> Self {
        MirrorGuard {
            max_removal_share: DEFAULT_MAX_REMOVAL_SHARE,
            min_removals: DEFAULT_MIN_REMOVALS,
        }
    }
}

impl MirrorGuard {
    fn is_default(&self) -> bool {
        *self == MirrorGuard::default()
    }

    /// Whether removing `removals` of a list's `members` is more than the
    /// guard allows.
    pub fn trips(&self, removals: u64, members: u64) -> bool {
        removals > 0
            && removals >= self.min_removals
            && (removals as f64) > self.max_removal_share * (members as f64)
    }
}

fn default_max_profiles() -> u64 {
    DEFAULT_MAX_PROFILES
}

/// Settings shared by every audience destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExportSettings {
    /// A name for people: shown in `audex check`, run reports and history.
    pub display_name: String,
    /// You agree that exported profiles leave your compliance boundary and are
    /// processed under the destination's own terms. Must be `true` to run.
    pub data_privacy_consent: bool,
    /// Who is responsible for these exports; recorded with every run.
    pub export_user: ExportUser,
    /// Destination field -> profile column. The destination's lookup field
    /// (Marketo: `email`) is required.
    pub mapping: BTreeMap<String, String>,
    /// `mirror` adds new members and removes leavers; `append` only adds.
    #[serde(default)]
    pub mode: Mode,
    /// Largest segment an export may send; a larger one is an error before
    /// anything is written, never a silent truncation.
    #[serde(default = "default_max_profiles")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub max_profiles: u64,
    /// Cron expression (5 fields: minute hour day-of-month month day-of-week)
    /// for `audex schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `schedule` (default): every scheduled time exports. `source_change`:
    /// a scheduled time exports only if the segments' sources changed since
    /// the last export (the schedule is how often audex looks).
    #[serde(default, skip_serializing_if = "RunOn::is_schedule")]
    pub run_on: RunOn,
    /// The brake on mass removal in mirror mode: an export that would remove
    /// more than `max_removal_share` of its list sends nothing and fails.
    #[serde(default, skip_serializing_if = "MirrorGuard::is_default")]
    pub mirror_guard: MirrorGuard,
}

impl ExportSettings {
    /// Pure checks of the shared settings; paths are relative to the
    /// destination's block. Segment existence is checked by the config
    /// loader, which knows the segments.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !self.data_privacy_consent {
            errors.push(
                ConfigError::new(
                    "data_privacy_consent",
                    "data privacy consent is not given: exported profiles leave your compliance boundary",
                )
                .with_hint("set data_privacy_consent: true once you agree"),
            );
        }
        if self.display_name.trim().is_empty() {
            errors.push(ConfigError::new("display_name", "must not be empty"));
        }
        if !(1..=1_000_000_000).contains(&self.max_profiles) {
            errors.push(ConfigError::new(
                "max_profiles",
                "must be between 1 and 1000000000",
            ));
        }
        let share = self.mirror_guard.max_removal_share;
        if !(0.0..=1.0).contains(&share) {
            errors.push(ConfigError::new(
                "mirror_guard.max_removal_share",
                "must be a share between 0 and 1",
            ));
        }
        if self.mirror_guard.min_removals > 1_000_000_000 {
            errors.push(ConfigError::new(
                "mirror_guard.min_removals",
                "must be between 0 and 1000000000",
            ));
        }
        if self.export_user.0.trim().is_empty() {
            errors.push(ConfigError::new("export_user", "must not be empty"));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target named by `tag`, as a tag-based destination would.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    struct Tag {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    }

    impl TargetConfig for Tag {
        fn resolve(&self, default: &Self) -> Option<ExportTarget> {
            let tag = self.tag.as_ref().or(default.tag.as_ref())?;
            Some(ExportTarget::new(
                ListId(format!("tag:{tag}")),
                serde_json::Map::from_iter([("tag".to_string(), tag.clone().into())]),
                format!("tag {tag:?}"),
            ))
        }
        fn missing() -> ConfigError {
            ConfigError::new("tag", "no tag to export to")
        }
    }

    #[test]
    fn exports_resolve_their_target_from_the_destination_default() {
        let exports: Exports<Tag> = serde_json::from_value(serde_json::json!({
            "tag": "All",
            "exports": [
                {"segment": "a"},
                {"segment": "b", "tag": "VIP", "mode": "append"},
            ],
        }))
        .expect("parses");
        let specs = exports.specs(Mode::Mirror);
        let got: Vec<(usize, &str, &str, Mode)> = specs
            .iter()
            .map(|s| (s.position, s.segment.as_str(), s.list().0.as_str(), s.mode))
            .collect();
        assert_eq!(
            got,
            [
                (0, "a", "tag:All", Mode::Mirror),
                (1, "b", "tag:VIP", Mode::Append)
            ]
        );
        assert_eq!(specs[1].target.label["tag"], "VIP");
        assert_eq!(specs[1].target.to_string(), "tag \"VIP\"");
        assert!(exports.validate().is_empty());
    }

    #[test]
    fn an_export_without_a_target_is_left_out_and_reported() {
        let exports: Exports<Tag> = serde_json::from_value(serde_json::json!({
            "exports": [{"segment": "a", "tag": "VIP"}, {"segment": "b"}],
        }))
        .expect("parses");
        assert_eq!(exports.specs(Mode::Mirror).len(), 1);
        let errs = exports.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "exports.1.tag");
        assert_eq!(errs[0].message, "no tag to export to");
    }
}
