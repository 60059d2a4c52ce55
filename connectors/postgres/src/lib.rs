//! audex-postgres: segments from PostgreSQL tables or queries, run in the
//! database and streamed through a server-side cursor as Arrow batches.
//!
//! TLS follows libpq's `sslmode` and `sslrootcert` (see [`tls`] and
//! docs/connectors/postgres.md).

pub mod arrow;
pub mod config;
pub mod source;
pub mod tls;

use std::sync::Arc;

use audex_core::registry::{deserialize_block, SourcePlugin};
use audex_core::{BuildContext, ConfigError, SegmentSource, SourceConfig};

pub use config::PostgresConfig;
pub use source::PostgresSource;

impl SourceConfig for PostgresConfig {
    fn validate(&self) -> Vec<ConfigError> {
        self.check()
    }

    fn build(&self, ctx: &BuildContext) -> audex_core::Result<Arc<dyn SegmentSource>> {
        Ok(Arc::new(PostgresSource::new(self, &ctx.base_dir)))
    }
}

fn schema() -> schemars::Schema {
    schemars::schema_for!(PostgresConfig)
}

fn parse(value: serde_json::Value) -> Result<Box<dyn SourceConfig>, Vec<ConfigError>> {
    let cfg: PostgresConfig = deserialize_block(value)?;
    Ok(Box::new(cfg))
}

pub const EXAMPLE: &str = r#"type: postgres
url: ${DATABASE_URL}          # postgres://user:password@host:5432/dbname
schema: crm                   # optional: where unqualified table names resolve
"#;

audex_core::inventory::submit! {
    SourcePlugin {
        name: "postgres",
        description: "PostgreSQL tables or queries, run in the database and streamed with a cursor",
        schema,
        example: EXAMPLE,
        parse,
    }
}
