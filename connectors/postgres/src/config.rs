//! The PostgreSQL source's configuration block.

use std::str::FromStr;

use audex_core::{ConfigError, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_postgres::config::Host;

use crate::tls::{split_tls_options, TlsOptions};

/// Rows fetched from the server-side cursor per round trip.
pub const DEFAULT_FETCH_ROWS: usize = 8192;

/// Segments from PostgreSQL tables or queries, run in the database and
/// streamed with a server-side cursor.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "PostgreSQL source")]
pub struct PostgresConfig {
    /// Always `postgres`.
    #[serde(rename = "type")]
    pub kind: PostgresType,
    /// Connection URL, e.g. `postgres://audex@db.internal:5432/crm`, or
    /// key=value form (`host=... dbname=...`). Holds the password: write
    /// `${DATABASE_URL}`. TLS follows libpq's `sslmode` (`disable`,
    /// `prefer` (default), `require`, `verify-ca`, `verify-full`) and
    /// `sslrootcert` (a PEM file relative to the config file, or `system`).
    pub url: Secret,
    /// Schema that unqualified table names resolve in (the session's
    /// `search_path`). Default: the server's (usually `public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Rows fetched per round trip from the server-side cursor; bounds the
    /// memory a segment needs. Default 8192.
    #[serde(default = "default_fetch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub fetch_rows: usize,
    /// The largest text or jsonb value, in bytes, a row may hold: a row
    /// with a longer one is set aside as unreadable (reported with its row
    /// number) instead of reaching a segment. Default 1 MiB.
    #[serde(default = "default_max_value_bytes")]
    #[schemars(range(min = 1, max = 1_073_741_824))]
    pub max_value_bytes: u64,
    /// For `run_on: source_change`: a query whose first row changes when
    /// the data is refreshed, e.g. `SELECT max(updated_at) FROM profiles`
    /// or `SELECT last_load_id FROM etl_runs ORDER BY id DESC LIMIT 1`. Run
    /// read-only at each scheduled time. Without it the source cannot tell
    /// a change, and every scheduled time exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_marker: Option<String>,
}

/// The `type` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostgresType {
    Postgres,
}

fn default_fetch_rows() -> usize {
    DEFAULT_FETCH_ROWS
}

fn default_max_value_bytes() -> u64 {
    audex_core::DEFAULT_MAX_VALUE_BYTES
}

/// Where a connection goes, for messages: host and port, never the user's
/// password.
pub(crate) fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .map(|d| format!(" database {d:?}"))
        .unwrap_or_default();
    format!("{host}:{port}{db}")
}

/// Parse the URL without echoing it: the parser's message names the
/// problem, and the URL (which may hold a password) is never repeated. The
/// TLS options (libpq's, which the driver only partly knows) come apart;
/// the returned config's `ssl_mode` is set from them.
pub(crate) fn parse_url(url: &Secret) -> Result<(tokio_postgres::Config, TlsOptions), String> {
    let (rest, tls) = split_tls_options(url.expose())?;
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| format!("not a valid PostgreSQL connection URL ({e})"))?;
    config.ssl_mode(tls.mode.driver_mode());
    Ok((config, tls))
}

pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PostgresConfig {
    /// Pure checks beyond the schema, paths relative to this block.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        match parse_url(&self.url) {
            Ok((cfg, _)) => {
                if cfg.get_hosts().is_empty() {
                    errors.push(
                        ConfigError::new("url", "the URL names no host")
                            .with_hint("e.g. postgres://user@host:5432/dbname"),
                    );
                }
            }
            Err(m) => errors.push(
                ConfigError::new("url", m)
                    .with_hint("e.g. postgres://user:${PGPASSWORD}@host:5432/dbname"),
            ),
        }
        if let Some(schema) = &self.schema {
            if !is_plain_identifier(schema) {
                errors.push(
                    ConfigError::new("schema", format!("{schema:?} is not a plain schema name"))
                        .with_hint("letters, digits and underscores"),
                );
            }
        }
        if self.fetch_rows == 0 {
            errors.push(ConfigError::new("fetch_rows", "must be at least 1"));
        }
        if self
            .refresh_marker
            .as_deref()
            .is_some_and(|q| q.trim().is_empty())
        {
            errors.push(
                ConfigError::new("refresh_marker", "must be a query")
                    .with_hint("e.g. SELECT max(updated_at) FROM profiles"),
            );
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> PostgresConfig {
        PostgresConfig {
            kind: PostgresType::Postgres,
            url: Secret::new(url),
            schema: None,
            fetch_rows: DEFAULT_FETCH_ROWS,
            max_value_bytes: audex_core::DEFAULT_MAX_VALUE_BYTES,
            refresh_marker: None,
        }
    }

    #[test]
    fn good_url_passes() {
        assert!(cfg("postgres://u:pw@db.example.com:5433/crm")
            .check()
            .is_empty());
        assert!(cfg("host=localhost dbname=crm").check().is_empty());
    }

    #[test]
    fn bad_url_never_echoes_the_password() {
        let errs = cfg("postgres://u:hunter2@db:notaport/crm").check();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "url");
        assert!(!errs[0].to_string().contains("hunter2"), "{}", errs[0]);
    }

    #[test]
    fn tls_modes_are_libpqs() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let url = format!("postgres://u:pw@db/crm?sslmode={mode}&sslrootcert=ca.pem");
            assert!(cfg(&url).check().is_empty(), "{mode}");
        }
        let errs = cfg("postgres://u:hunter2@db/crm?sslmode=verify").check();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "url");
        assert!(errs[0].message.contains("verify-full"), "{}", errs[0]);
        assert!(!errs[0].to_string().contains("hunter2"));
    }

    #[test]
    fn schema_must_be_plain() {
        let mut c = cfg("postgres://u@db/crm");
        c.schema = Some("crm; drop table x".to_string());
        assert_eq!(c.check()[0].path, "schema");
    }

    #[test]
    fn target_names_host_and_port_only() {
        let (c, _) =
            parse_url(&Secret::new("postgres://u:pw@db.example.com:6543/crm")).expect("valid");
        let t = describe_target(&c);
        assert_eq!(t, "db.example.com:6543 database \"crm\"");
    }
}
