//! Settings every audience destination shares, flattened into each
//! destination plugin's config (`#[serde(flatten)] pub export: ExportSettings`):
//! who may export, what goes where, how much, and when.

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

/// One segment exported to one list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportEntry {
    /// Name of a segment declared under `segments`.
    pub segment: String,
    /// The list to fill; defaults to the destination's `list_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<ListId>,
    /// Overrides the destination's `mode` for this export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// An export with its list and mode resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ExportSpec {
    pub segment: String,
    pub list: ListId,
    pub mode: Mode,
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
    /// The list every export fills unless it names its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<ListId>,
    /// `mirror` adds new members and removes leavers; `append` only adds.
    #[serde(default)]
    pub mode: Mode,
    /// The segments to export, each to a list.
    pub exports: Vec<ExportEntry>,
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
    /// Each export with its list and mode resolved. An export with no list
    /// (neither its own nor the destination's) is left out here and reported
    /// by [`ExportSettings::validate`].
    pub fn resolved_exports(&self) -> Vec<ExportSpec> {
        self.exports
            .iter()
            .filter_map(|e| {
                let list = e.list_id.clone().or_else(|| self.list_id.clone())?;
                Some(ExportSpec {
                    segment: e.segment.clone(),
                    list,
                    mode: e.mode.unwrap_or(self.mode),
                })
            })
            .collect()
    }

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
        for (i, e) in self.exports.iter().enumerate() {
            if e.list_id.is_none() && self.list_id.is_none() {
                errors.push(
                    ConfigError::new(format!("exports.{i}.list_id"), "no list to export to")
                        .with_hint("set list_id on the export or on the destination"),
                );
            }
        }
        errors
    }
}
