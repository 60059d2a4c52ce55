//! The plugin registry. Each plugin crate submits one descriptor with
//! `inventory::submit!`; the CLI links the crates (`use audex_marketo as _;`)
//! and everything that lists, validates or builds plugins reads from here.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::destination::{DailyReset, Destination};
use crate::error::{ConfigError, Result};
use crate::settings::{ExportSettings, ExportSpec};
use crate::source::SegmentSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    Source,
    Destination,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Source => "source",
            PluginKind::Destination => "destination",
        })
    }
}

/// What building a plugin may need from its surroundings.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    /// Folder of the config file: relative paths in a config resolve here.
    pub base_dir: PathBuf,
}

/// A parsed, schema-valid source config.
pub trait SourceConfig: Send + Sync + fmt::Debug {
    /// Pure checks beyond the schema (no files, no network). Paths relative
    /// to the source's block.
    fn validate(&self) -> Vec<ConfigError> {
        Vec::new()
    }

    /// Build the source. May open files or connections lazily.
    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn SegmentSource>>;
}

/// A parsed, schema-valid destination config.
pub trait DestinationConfig: Send + Sync + fmt::Debug {
    /// The settings every destination shares.
    fn settings(&self) -> &ExportSettings;

    /// The exports, each with its target resolved (in config order; an
    /// export without a target is left out and reported by `validate`).
    /// With [`crate::Exports`] flattened into the block, this is
    /// `self.exports.specs(self.export.mode)`.
    fn exports(&self) -> Vec<ExportSpec>;

    /// Pure checks beyond the schema (no files, no network). Paths relative
    /// to the destination's block. Implementations should include
    /// `self.settings().validate()` and the exports' `validate()`.
    fn validate(&self) -> Vec<ConfigError>;

    /// Build the destination. Makes no call yet.
    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Destination>>;

    /// When the destination's daily call quota starts over, if it has one:
    /// `audex schedule` resumes a run paused on the quota then. Without one
    /// (the default), a paused run resumes at its next scheduled time.
    fn daily_quota_reset(&self) -> Option<DailyReset> {
        None
    }
}

/// Parses the plugin's block (already checked against its schema).
pub type ParseFn<T> = fn(serde_json::Value) -> std::result::Result<Box<T>, Vec<ConfigError>>;

/// A source plugin's descriptor.
pub struct SourcePlugin {
    /// The `type:` that selects it.
    pub name: &'static str,
    /// One line for `audex connectors`.
    pub description: &'static str,
    /// JSON Schema of the plugin's config block (including `type`).
    pub schema: fn() -> schemars::Schema,
    /// An example block, in YAML.
    pub example: &'static str,
    pub parse: ParseFn<dyn SourceConfig>,
}

/// A destination plugin's descriptor.
pub struct DestinationPlugin {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> schemars::Schema,
    pub example: &'static str,
    pub parse: ParseFn<dyn DestinationConfig>,
}

inventory::collect!(SourcePlugin);
inventory::collect!(DestinationPlugin);

impl fmt::Debug for SourcePlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourcePlugin")
            .field("name", &self.name)
            .finish()
    }
}

impl fmt::Debug for DestinationPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationPlugin")
            .field("name", &self.name)
            .finish()
    }
}

/// Registered sources, sorted by name.
pub fn sources() -> Vec<&'static SourcePlugin> {
    let mut v: Vec<_> = inventory::iter::<SourcePlugin>.into_iter().collect();
    v.sort_by_key(|p| p.name);
    v
}

/// Registered destinations, sorted by name.
pub fn destinations() -> Vec<&'static DestinationPlugin> {
    let mut v: Vec<_> = inventory::iter::<DestinationPlugin>.into_iter().collect();
    v.sort_by_key(|p| p.name);
    v
}

pub fn source(name: &str) -> Option<&'static SourcePlugin> {
    inventory::iter::<SourcePlugin>
        .into_iter()
        .find(|p| p.name == name)
}

pub fn destination(name: &str) -> Option<&'static DestinationPlugin> {
    inventory::iter::<DestinationPlugin>
        .into_iter()
        .find(|p| p.name == name)
}

/// A summary row for `audex connectors`.
#[derive(Clone, Debug, Serialize)]
pub struct PluginInfo {
    pub name: &'static str,
    pub kind: PluginKind,
    pub description: &'static str,
}

/// Every registered plugin, sources first, each kind sorted by name.
pub fn all() -> Vec<PluginInfo> {
    let srcs = sources().into_iter().map(|p| PluginInfo {
        name: p.name,
        kind: PluginKind::Source,
        description: p.description,
    });
    let dests = destinations().into_iter().map(|p| PluginInfo {
        name: p.name,
        kind: PluginKind::Destination,
        description: p.description,
    });
    srcs.chain(dests).collect()
}

/// Typed deserialisation of a plugin block, with the path of the failing key.
/// For use in a plugin's `parse` function.
pub fn deserialize_block<T: DeserializeOwned>(
    value: serde_json::Value,
) -> std::result::Result<T, Vec<ConfigError>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![ConfigError::new(path, e.into_inner().to_string())]
    })
}
