//! The files source's configuration block.
//!
//! A table is written either as a bare path (`profiles: data/profiles.csv`,
//! format from the extension) or as a map with `path` and `format`. The two
//! forms are told apart by a hand-written `Deserialize`, so a mistake inside
//! the long form reports the offending key instead of serde's "data did not
//! match any variant of untagged enum".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use audex_core::ConfigError;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Segments from local CSV, Parquet and NDJSON files, queried with SQL.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Files source")]
pub struct FilesConfig {
    /// Always `files`.
    #[serde(rename = "type")]
    pub kind: FilesType,
    /// The tables segments can select from, by name. A value is a path (a
    /// file, a folder of partitions, or a glob such as `data/*.parquet`),
    /// relative to the config file, or a map with `path` and `format`. The
    /// name is what `table:` and the SQL of a `query:` refer to.
    #[schemars(length(min = 1))]
    pub tables: BTreeMap<String, TableSpec>,
    /// The largest value, in bytes, a row may hold: a CSV field or an
    /// NDJSON string longer than this sets its row aside as unreadable
    /// (reported with its file and line) instead of reaching a segment.
    /// Default 1 MiB.
    #[serde(default = "default_max_value_bytes")]
    #[schemars(range(min = 1, max = 1_073_741_824))]
    pub max_value_bytes: u64,
}

fn default_max_value_bytes() -> u64 {
    audex_core::DEFAULT_MAX_VALUE_BYTES
}

/// The `type` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilesType {
    Files,
}

/// File formats the source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Newline-delimited JSON: one object per line.
    #[serde(alias = "json")]
    Ndjson,
}

impl Format {
    /// The format a file name's extension implies, if any.
    pub fn from_extension(path: &str) -> Option<Format> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "json" | "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Ndjson => "ndjson",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One table: where its files are and how to read them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableDetail {
    /// A file, a folder of partitions, or a glob (`data/part-*.csv`),
    /// relative to the config file.
    #[schemars(length(min = 1))]
    pub path: String,
    /// `csv`, `parquet` or `ndjson`. Default: from the file extension (for a
    /// folder: from the files in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// CSV only: the field separator, one ASCII character. Default `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// CSV only: columns read as text whatever their values look like.
    /// Types are otherwise inferred from the first 10,000 rows, and a later
    /// value that does not fit (`n/a` in a number column) fails the read;
    /// read as text, each value is converted by the mapping and a bad one
    /// rejects only its row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_columns: Vec<String>,
}

/// A table as written in the config: a bare path or a [`TableDetail`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TableSpec(pub TableDetail);

impl TableSpec {
    pub fn path(&self) -> &str {
        &self.0.path
    }
}

impl<'de> Deserialize<'de> for TableSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = TableSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path, or a map with `path` and optionally `format`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TableSpec, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("the path is empty"));
                }
                Ok(TableSpec(TableDetail {
                    path: v.to_string(),
                    format: None,
                    delimiter: None,
                    text_columns: Vec::new(),
                }))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TableSpec, A::Error> {
                TableDetail::deserialize(de::value::MapAccessDeserializer::new(map)).map(TableSpec)
            }
        }

        d.deserialize_any(SpecVisitor)
    }
}

impl JsonSchema for TableSpec {
    fn schema_name() -> Cow<'static, str> {
        "FilesTable".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let detail = generator.subschema_for::<TableDetail>();
        json_schema!({
            "oneOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "description": "Path of a file, folder or glob; the format comes from the extension (.csv, .parquet, .json/.ndjson).",
                },
                detail,
            ]
        })
    }
}

/// Whether `name` can be used unquoted in SQL. DataFusion folds unquoted
/// identifiers to lower case, so `Profiles` would not be found by
/// `SELECT * FROM Profiles`.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(crate) fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

impl FilesConfig {
    /// Pure checks beyond the schema, paths relative to this block.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.tables.is_empty() {
            errors.push(
                ConfigError::new("tables", "declare at least one table")
                    .with_hint("e.g. `profiles: data/profiles.csv`"),
            );
        }
        for (name, spec) in &self.tables {
            let at = format!("tables.{name}");
            if !is_plain_identifier(name) {
                errors.push(
                    ConfigError::new(
                        at.clone(),
                        format!("table name {name:?} is not a plain SQL identifier"),
                    )
                    .with_hint(
                        "use lower-case letters, digits and underscores, starting with a letter",
                    ),
                );
            }
            let detail = &spec.0;
            if detail.path.trim().is_empty() {
                errors.push(ConfigError::new(format!("{at}.path"), "the path is empty"));
                continue;
            }
            if let Some(d) = detail.delimiter {
                if !d.is_ascii() || d == '"' || d == '\n' || d == '\r' {
                    errors.push(ConfigError::new(
                        format!("{at}.delimiter"),
                        format!("{d:?} cannot be a CSV delimiter (one ASCII character other than a quote or line break)"),
                    ));
                }
                if detail.format.is_some_and(|f| f != Format::Csv) {
                    errors.push(ConfigError::new(
                        format!("{at}.delimiter"),
                        "delimiter applies to CSV tables only",
                    ));
                }
            }
            if !detail.text_columns.is_empty() && detail.format.is_some_and(|f| f != Format::Csv) {
                errors.push(ConfigError::new(
                    format!("{at}.text_columns"),
                    "text_columns applies to CSV tables only (Parquet and NDJSON carry their types)",
                ));
            }
            // A folder's format is found from its files when the source is
            // built; a file or glob with an unknown extension needs `format:`.
            let looks_like_folder =
                detail.path.ends_with('/') || Path::new(&detail.path).extension().is_none();
            if detail.format.is_none()
                && !looks_like_folder
                && Format::from_extension(&detail.path).is_none()
            {
                errors.push(
                    ConfigError::new(
                        at,
                        format!(
                            "cannot tell the format of {:?} from its extension",
                            detail.path
                        ),
                    )
                    .with_hint("write the table as `{path: ..., format: csv|parquet|ndjson}`"),
                );
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FilesConfig, Vec<ConfigError>> {
        let v: serde_json::Value = serde_json::from_str(yaml).expect("test input is JSON");
        audex_core::registry::deserialize_block(v)
    }

    #[test]
    fn short_and_long_forms() {
        let cfg = parse(
            r#"{"type":"files","tables":{"a":"data/a.csv","b":{"path":"data/b","format":"parquet"}}}"#,
        )
        .expect("valid");
        assert_eq!(cfg.tables["a"].0.path, "data/a.csv");
        assert_eq!(cfg.tables["a"].0.format, None);
        assert_eq!(cfg.tables["b"].0.format, Some(Format::Parquet));
        assert!(cfg.check().is_empty());
    }

    #[test]
    fn long_form_errors_name_the_key() {
        let errs = parse(r#"{"type":"files","tables":{"b":{"path":"x","fromat":"csv"}}}"#)
            .expect_err("unknown key");
        assert_eq!(errs[0].path, "tables.b.fromat");
        assert!(errs[0].message.contains("fromat"), "{}", errs[0].message);

        let errs = parse(r#"{"type":"files","tables":{"b":{"path":"x","format":"xlsx"}}}"#)
            .expect_err("unknown format");
        assert!(errs[0].path.starts_with("tables.b"), "{}", errs[0].path);
        assert!(errs[0].message.contains("xlsx"), "{}", errs[0].message);
        assert!(!errs[0].message.contains("untagged"));

        let errs = parse(r#"{"type":"files","tables":{"b":42}}"#).expect_err("number");
        assert!(
            errs[0].message.contains("a path, or a map"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn semantic_checks() {
        let cfg = parse(
            r#"{"type":"files","tables":{"Profiles":"p.csv","x":"x.txt","y":{"path":"y.parquet","format":"parquet","delimiter":";"}}}"#,
        )
        .expect("parses");
        let errs = cfg.check();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["tables.Profiles", "tables.x", "tables.y.delimiter"]);
        assert!(errs[1]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("format")));
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_extension("a/b.CSV"), Some(Format::Csv));
        assert_eq!(Format::from_extension("b.parquet"), Some(Format::Parquet));
        assert_eq!(Format::from_extension("b.json"), Some(Format::Ndjson));
        assert_eq!(
            Format::from_extension("data/*.ndjson"),
            Some(Format::Ndjson)
        );
        assert_eq!(Format::from_extension("b.xlsx"), None);
        assert_eq!(Format::from_extension("folder"), None);
    }

    #[test]
    fn schema_offers_both_forms() {
        let schema = schemars::schema_for!(FilesConfig);
        let text = serde_json::to_string(&schema).expect("serialisable");
        assert!(text.contains("oneOf"));
        assert!(text.contains("FilesTable"));
    }
}
