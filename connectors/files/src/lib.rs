//! audex-files: segments from local CSV, Parquet and NDJSON files, queried
//! with Apache DataFusion SQL.
//!
//! `type: files` declares tables (name -> path); a segment is `table: NAME`
//! or `query: SQL` over those tables. See docs/connectors/files.md.

pub mod config;
mod error;
mod fingerprint;
mod listing;
mod read_csv;
mod read_ndjson;
mod read_parquet;
mod rows;
pub mod source;

use std::sync::Arc;

use audex_core::registry::{deserialize_block, SourcePlugin};
use audex_core::{BuildContext, ConfigError, SegmentSource, SourceConfig};

pub use config::{FilesConfig, Format, TableDetail, TableSpec};
pub use source::{FilesSource, ResolvedTable};

impl SourceConfig for FilesConfig {
    fn validate(&self) -> Vec<ConfigError> {
        self.check()
    }

    fn build(&self, ctx: &BuildContext) -> audex_core::Result<Arc<dyn SegmentSource>> {
        Ok(Arc::new(self.resolve(ctx)))
    }
}

impl FilesConfig {
    /// The source with every path resolved against the config's folder.
    /// Opens nothing: files are read on first use.
    pub fn resolve(&self, ctx: &BuildContext) -> FilesSource {
        // A config in the working directory has an empty folder.
        let base = if ctx.base_dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            ctx.base_dir.as_path()
        };
        let base_dir = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let tables = self
            .tables
            .iter()
            .map(|(name, spec)| {
                let joined = base_dir.join(spec.path());
                let location = std::path::absolute(&joined).unwrap_or(joined);
                ResolvedTable {
                    name: name.clone(),
                    configured: spec.path().to_string(),
                    location,
                    base_dir: base_dir.clone(),
                    format: spec.0.format,
                    delimiter: spec.0.delimiter.and_then(|c| u8::try_from(c).ok()),
                    text_columns: spec.0.text_columns.clone(),
                    max_value_bytes: usize::try_from(self.max_value_bytes).unwrap_or(usize::MAX),
                }
            })
            .collect();
        FilesSource::new(tables)
    }
}

fn schema() -> schemars::Schema {
    schemars::schema_for!(FilesConfig)
}

fn parse(value: serde_json::Value) -> Result<Box<dyn SourceConfig>, Vec<ConfigError>> {
    let cfg: FilesConfig = deserialize_block(value)?;
    Ok(Box::new(cfg))
}

pub const EXAMPLE: &str = r#"type: files
tables:
  profiles: data/profiles.csv          # format from the extension
  orders:                              # or spelled out
    path: data/orders/                 # a folder of partitions, or a glob
    format: parquet
"#;

audex_core::inventory::submit! {
    SourcePlugin {
        name: "files",
        description: "Local CSV, Parquet and NDJSON files, queried with SQL (Apache DataFusion)",
        schema,
        example: EXAMPLE,
        parse,
    }
}
