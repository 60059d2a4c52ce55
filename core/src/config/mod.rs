//! The configuration document: loading (YAML, then `${VAR}` interpolation,
//! then `AUDEX_…` overrides, each layer applied by `load` on the parsed
//! value), validation in the order of docs/configuration.md, and the
//! validated model everything downstream uses.
//!
//! Validation is pure: no network, no file writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::registry::{DestinationConfig, SourceConfig};
use crate::source::SegmentQuery;

mod env;
mod interpolate;
mod load;
mod redact;
mod schema;
mod schema_check;
mod semantic;
mod yaml;

pub use env::{Environment, Override, OVERRIDABLE_ROOTS, OVERRIDE_PREFIX, OVERRIDE_SEPARATOR};
pub use schema::{document_schema, plugin_def_name, plugin_schema, NAME_PATTERN};
pub use semantic::{parse_schedule, parse_timezone};

/// Default location of the state store, relative to the config file.
pub const DEFAULT_STATE_PATH: &str = ".audex/state.db";

/// A segment: which source, and what to select from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentConfig {
    pub source: String,
    pub query: SegmentQuery,
}

/// A validated configuration. Every precondition the schema and the semantic
/// checks establish holds here; nothing downstream re-checks.
#[derive(Debug)]
pub struct Config {
    /// The config file's folder; relative paths resolve against it.
    pub base_dir: PathBuf,
    /// Path of the SQLite state store (resolved against `base_dir`).
    pub state_path: PathBuf,
    pub sources: BTreeMap<String, Box<dyn SourceConfig>>,
    pub segments: BTreeMap<String, SegmentConfig>,
    pub destinations: BTreeMap<String, Box<dyn DestinationConfig>>,
}

/// Parse YAML text as the loader does (strict, no interpolation): for a
/// plugin's example block, say.
pub fn parse_yaml(text: &str) -> std::result::Result<serde_json::Value, crate::ConfigError> {
    yaml::parse(text)
}

impl Config {
    /// Load and validate the config file in the process environment. Every
    /// problem found is returned at once in a [`crate::Error`] of class
    /// `Config` (see [`crate::Error::config_errors`]).
    pub fn load(path: &Path) -> Result<Config> {
        load::load_file(path, &Environment::process())
    }

    /// Load and validate a document given as text; `base_dir` anchors
    /// relative paths. Interpolation and overrides use the process
    /// environment.
    pub fn from_yaml_str(text: &str, base_dir: &Path) -> Result<Config> {
        load::load_str(text, base_dir, &Environment::process())
    }

    /// [`Config::load`] in an explicit environment.
    pub fn load_with(path: &Path, env: &Environment) -> Result<Config> {
        load::load_file(path, env)
    }

    /// [`Config::from_yaml_str`] in an explicit environment.
    pub fn from_yaml_str_with(text: &str, base_dir: &Path, env: &Environment) -> Result<Config> {
        load::load_str(text, base_dir, env)
    }
}
