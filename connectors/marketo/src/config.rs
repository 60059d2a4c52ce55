//! The Marketo destination's configuration block.

use audex_core::{
    ConfigError, DailyReset, ExportSettings, ExportTarget, Exports, ListId, Secret, TargetConfig,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Marketo's documented instance limits: 100 calls per 20 s, 10 in flight.
pub const MARKETO_CALLS_PER_WINDOW: u32 = 100;
pub const MARKETO_WINDOW_SECS: f64 = 20.0;
pub const MARKETO_MAX_CONCURRENCY: usize = 10;
/// Most subscriptions' daily quota.
pub const MARKETO_DAILY_QUOTA: u64 = 50_000;

/// The daily quota resets at "12:00 AM CST". Whether that follows daylight
/// saving time is not documented, so the stricter reading holds: midnight at
/// UTC-6 all year (01:00 CDT in summer), never earlier than either reading.
/// The client's limiter, the scheduler (through
/// `DestinationConfig::daily_quota_reset`) and the simulator count the day
/// the same way.
pub const MARKETO_QUOTA_RESET_EAST_SECS: i32 = -6 * 3600;

/// Marketo's daily quota reset, as core's [`DailyReset`].
pub fn quota_reset() -> Option<DailyReset> {
    DailyReset::midnight_at_offset(MARKETO_QUOTA_RESET_EAST_SECS)
}

/// Export segments to Marketo static lists.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
// serde cannot deny unknown fields next to `flatten`, so only the schema
// does: the loader's schema stage rejects a mistyped key before parsing.
#[schemars(title = "Marketo destination", deny_unknown_fields)]
pub struct MarketoConfig {
    /// Always `marketo`.
    #[serde(rename = "type")]
    pub kind: MarketoType,
    /// The REST API endpoint from Admin > Web Services, e.g.
    /// `123-ABC-456.mktorest.com` or `https://123-ABC-456.mktorest.com/rest`.
    /// Must be https, except for loopback hosts (the simulator).
    #[schemars(length(min = 1))]
    pub endpoint: String,
    /// Client ID of the LaunchPoint custom service.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Client secret of the LaunchPoint custom service. Use `${VAR}`.
    pub client_secret: Secret,
    /// The Marketo field that identifies a lead; its mapped column is the
    /// member key. Only `email` is supported.
    #[serde(default = "default_lookup_field")]
    pub lookup_field: String,
    /// Marketo's limits, or less to leave room for other integrations.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(flatten)]
    pub export: ExportSettings,
    /// The default list (`list_id`) and the exports, each to a list.
    #[serde(flatten)]
    pub exports: Exports<MarketoTarget>,
}

/// Where a Marketo export goes: a static list, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MarketoTarget {
    /// The static list to fill (a positive integer, from the list's URL in
    /// Marketo). On the destination: the list of every export that names
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<ListId>,
}

impl TargetConfig for MarketoTarget {
    fn resolve(&self, default: &Self) -> Option<ExportTarget> {
        let id = self.list_id.as_ref().or(default.list_id.as_ref())?;
        let shown = match crate::list_id(id) {
            Some(n) => serde_json::Value::from(n),
            None => serde_json::Value::from(id.0.clone()),
        };
        Some(ExportTarget::new(
            id.clone(),
            serde_json::Map::from_iter([("list_id".to_string(), shown)]),
            format!("list {}", id.0.trim()),
        ))
    }

    fn missing() -> ConfigError {
        ConfigError::new("list_id", "no list to export to")
            .with_hint("set list_id on the export or on the destination")
    }
}

/// The `type` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarketoType {
    Marketo,
}

fn default_lookup_field() -> String {
    "email".to_string()
}

/// Limits shared by every export to this Marketo instance in the process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Calls allowed per window (Marketo: 100).
    #[serde(default = "default_calls")]
    #[schemars(range(min = 1, max = 100_000))]
    pub calls: u32,
    /// Window length in seconds (Marketo: 20). Settable so benchmarks can run
    /// against a time-scaled simulator.
    #[serde(default = "default_window_secs")]
    #[schemars(range(min = 0.001, max = 86_400))]
    pub window_secs: f64,
    /// Calls in flight at once (Marketo: 10).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 1_000))]
    pub max_concurrency: usize,
    /// Calls this process may spend per day (Marketo's quota resets at
    /// midnight US Central time). Reaching it pauses the run (exit 75).
    #[serde(default = "default_budget")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub daily_call_budget: u64,
}

fn default_calls() -> u32 {
    MARKETO_CALLS_PER_WINDOW
}
fn default_window_secs() -> f64 {
    MARKETO_WINDOW_SECS
}
fn default_concurrency() -> usize {
    MARKETO_MAX_CONCURRENCY
}
fn default_budget() -> u64 {
    MARKETO_DAILY_QUOTA
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            calls: default_calls(),
            window_secs: default_window_secs(),
            max_concurrency: default_concurrency(),
            daily_call_budget: default_budget(),
        }
    }
}

impl MarketoConfig {
    /// Pure checks beyond the schema, paths relative to this block.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = self.export.validate();
        errors.extend(self.exports.validate());
        if let Err(e) = crate::endpoint::Endpoint::parse(&self.endpoint) {
            errors.push(ConfigError::new("endpoint", e));
        }
        if self.lookup_field != "email" {
            errors.push(
                ConfigError::new(
                    "lookup_field",
                    format!("unsupported lookup field {:?}", self.lookup_field),
                )
                .with_hint("only `email` is supported"),
            );
        }
        if !self.export.mapping.contains_key(&self.lookup_field) {
            errors.push(
                ConfigError::new(
                    format!("mapping.{}", self.lookup_field),
                    "the lookup field must be mapped to a profile column",
                )
                .with_hint("add e.g. `email: email` under mapping"),
            );
        }
        let list_ids = self
            .exports
            .default
            .list_id
            .iter()
            .map(|l| ("list_id".to_string(), l))
            .chain(
                self.exports
                    .exports
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| {
                        e.target
                            .list_id
                            .as_ref()
                            .map(|l| (format!("exports.{i}.list_id"), l))
                    }),
            );
        for (path, id) in list_ids {
            if crate::list_id(id).is_none() {
                errors.push(ConfigError::new(
                    path,
                    format!(
                        "{:?} is not a Marketo static list id (a positive integer)",
                        id.0
                    ),
                ));
            }
        }
        // The schema states these ranges too; a value that reached here
        // another way (a library caller's config) is still refused, so
        // nothing built from it can overflow.
        let rl = &self.rate_limit;
        if !(0.001..=86_400.0).contains(&rl.window_secs) {
            errors.push(ConfigError::new(
                "rate_limit.window_secs",
                "must be between 0.001 and 86400 seconds",
            ));
        }
        if !(1..=100_000).contains(&rl.calls) {
            errors.push(ConfigError::new(
                "rate_limit.calls",
                "must be between 1 and 100000",
            ));
        }
        if !(1..=1_000).contains(&rl.max_concurrency) {
            errors.push(ConfigError::new(
                "rate_limit.max_concurrency",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=1_000_000_000).contains(&rl.daily_call_budget) {
            errors.push(ConfigError::new(
                "rate_limit.daily_call_budget",
                "must be between 1 and 1000000000",
            ));
        }
        errors
    }
}
