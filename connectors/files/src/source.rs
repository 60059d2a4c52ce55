//! The files source: each declared table is registered with a DataFusion
//! session on first use, and a segment's `table:` or `query:` runs there.
//! Results stream batch by batch (`execute_stream`), so memory stays bounded
//! by the batch size and the readers' buffers, not by the segment's size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use audex_core::{Error, ErrorClass, RecordBatchStream, Result, SegmentQuery, SegmentSource};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::execution::options::ReadOptions;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SQLOptions, SessionConfig,
    SessionContext,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::config::{has_glob, Format};
use crate::error::{describe, query_error};

/// Rows a CSV or NDJSON table's column types are inferred from.
const INFER_ROWS: usize = 10_000;
/// Rows per Arrow batch handed downstream.
const BATCH_ROWS: usize = 8192;
const BOM: char = '\u{feff}';

/// A table with its path resolved against the config's folder.
#[derive(Clone, Debug)]
pub struct ResolvedTable {
    pub name: String,
    /// The path as written in the config, for messages.
    pub configured: String,
    /// Absolute file, folder or glob.
    pub location: PathBuf,
    pub format: Option<Format>,
    pub delimiter: Option<u8>,
    /// Columns read as Utf8 whatever their inferred type.
    pub text_columns: Vec<String>,
}

/// Why a table could not be registered; kept to answer later queries.
#[derive(Clone, Debug)]
struct TableFailure {
    class: ErrorClass,
    message: String,
    hint: Option<String>,
}

impl TableFailure {
    fn to_error(&self) -> Error {
        let e = Error::new(self.class, self.message.clone());
        match &self.hint {
            Some(h) => e.with_hint(h.clone()),
            None => e,
        }
    }
}

struct Session {
    ctx: SessionContext,
    failed: BTreeMap<String, TableFailure>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Segments over local files, run by DataFusion.
#[derive(Debug)]
pub struct FilesSource {
    tables: Vec<ResolvedTable>,
    session: OnceCell<Session>,
}

impl FilesSource {
    pub fn new(tables: Vec<ResolvedTable>) -> Self {
        FilesSource {
            tables,
            session: OnceCell::new(),
        }
    }

    /// The declared table names, sorted.
    pub fn table_names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }

    async fn session(&self) -> &Session {
        self.session
            .get_or_init(|| async {
                let ctx = SessionContext::new_with_config(session_config());
                let mut failed = BTreeMap::new();
                for table in &self.tables {
                    if let Err(f) = register(&ctx, table).await {
                        tracing::debug!(table = %table.name, error = %f.message, "table not registered");
                        failed.insert(table.name.clone(), f);
                    }
                }
                Session { ctx, failed }
            })
            .await
    }

    async fn dataframe(&self, query: &SegmentQuery) -> Result<DataFrame> {
        let session = self.session().await;
        match query {
            SegmentQuery::Table(name) => {
                if let Some(f) = session.failed.get(name) {
                    return Err(f.to_error());
                }
                if !self.tables.iter().any(|t| &t.name == name) {
                    return Err(
                        Error::new(ErrorClass::Config, format!("unknown table `{name}`"))
                            .with_hint(format!(
                                "the source declares: {}",
                                self.table_names().join(", ")
                            )),
                    );
                }
                session
                    .ctx
                    .table(name.as_str())
                    .await
                    .map_err(|e| query_error(&format!("table `{name}`"), e))
            }
            SegmentQuery::Sql(sql) => {
                // A segment reads; it never creates tables or writes files.
                let options = SQLOptions::new()
                    .with_allow_ddl(false)
                    .with_allow_dml(false)
                    .with_allow_statements(false);
                match session.ctx.sql_with_options(sql, options).await {
                    Ok(df) => Ok(df),
                    Err(e) => {
                        // A table that failed to load shows up as "table not
                        // found"; its own error says why.
                        let text = describe(&e);
                        if let Some(f) = session
                            .failed
                            .iter()
                            .find(|(name, _)| text.contains(name.as_str()))
                            .map(|(_, f)| f)
                        {
                            return Err(f.to_error());
                        }
                        Err(query_error("segment query", e))
                    }
                }
            }
        }
    }
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_batch_size(BATCH_ROWS)
        .with_information_schema(false);
    // Downstream code (the mapping) expects plain Utf8 strings.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    config
}

#[async_trait]
impl SegmentSource for FilesSource {
    async fn check(&self) -> Result<String> {
        let session = self.session().await;
        match session.failed.values().next() {
            None => {
                let n = self.tables.len();
                Ok(format!(
                    "{n} table{} readable: {}",
                    if n == 1 { "" } else { "s" },
                    self.table_names().join(", ")
                ))
            }
            Some(first) if session.failed.len() == 1 => Err(first.to_error()),
            Some(first) => {
                let names: Vec<_> = session.failed.keys().map(String::as_str).collect();
                let e = first.to_error();
                Err(Error::new(
                    first.class,
                    format!(
                        "{} tables cannot be read ({}); first: {}",
                        names.len(),
                        names.join(", "),
                        e.message()
                    ),
                ))
            }
        }
    }

    async fn schema(&self, query: &SegmentQuery) -> Result<SchemaRef> {
        let df = self.dataframe(query).await?;
        Ok(plain_schema(df.schema().inner()))
    }

    async fn stream(&self, query: &SegmentQuery) -> Result<RecordBatchStream> {
        let df = self.dataframe(query).await?;
        let label = label(query);
        let target = plain_schema(df.schema().inner());
        let needs_cast = target.as_ref() != df.schema().inner().as_ref();
        let stream = df
            .execute_stream()
            .await
            .map_err(|e| query_error(&label, e))?;
        let stream = stream.map(move |batch| {
            let batch = batch.map_err(|e| query_error(&label, e))?;
            if needs_cast {
                cast_batch(&batch, &target)
            } else {
                Ok(batch)
            }
        });
        Ok(Box::pin(stream))
    }

    async fn fingerprint(&self) -> Result<Option<String>> {
        let tables = self.tables.clone();
        tokio::task::spawn_blocking(move || crate::fingerprint::fingerprint(&tables))
            .await
            .map(Some)
            .map_err(|e| Error::internal(format!("cannot list the source's files: {e}")))
    }

    async fn count(&self, query: &SegmentQuery) -> Result<u64> {
        let df = self.dataframe(query).await?;
        // DataFusion answers from Parquet footers where it can.
        df.count()
            .await
            .map(|n| n as u64)
            .map_err(|e| query_error(&label(query), e))
    }
}

fn label(query: &SegmentQuery) -> String {
    match query {
        SegmentQuery::Table(t) => format!("table `{t}`"),
        SegmentQuery::Sql(_) => "segment query".to_string(),
    }
}

/// String-like columns as plain Utf8: views, large strings and dictionaries
/// are storage details the mapping should not need to know.
fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            }
            DataType::Dictionary(_, v)
                if matches!(
                    v.as_ref(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ) =>
            {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn cast_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(col, field)| {
            if col.data_type() == field.data_type() {
                Ok(col.clone())
            } else {
                cast(col, field.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(format!("converting strings to Utf8: {e}")))?;
    RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| Error::internal(format!("converting strings to Utf8: {e}")))
}

fn failure(class: ErrorClass, message: String, hint: Option<&str>) -> TableFailure {
    TableFailure {
        class,
        message,
        hint: hint.map(str::to_string),
    }
}

/// Register one table, finding its format and schema.
async fn register(
    ctx: &SessionContext,
    table: &ResolvedTable,
) -> std::result::Result<(), TableFailure> {
    let name = &table.name;
    let shown = table.location.display().to_string();
    let location = table.location.to_string_lossy().to_string();
    let (url, format, extension) = if has_glob(&table.configured) {
        let format = table
            .format
            .or_else(|| Format::from_extension(&location))
            .ok_or_else(|| {
                failure(
                    ErrorClass::Config,
                    format!("table `{name}`: cannot tell the format of {shown} from its extension"),
                    Some("add `format: csv|parquet|ndjson` to the table"),
                )
            })?;
        glob_has_matches(&location).map_err(|m| {
            failure(
                ErrorClass::Config,
                format!("table `{name}`: {m}"),
                Some("paths are relative to the config file's folder"),
            )
        })?;
        // The glob itself selects the files.
        (location.clone(), format, String::new())
    } else {
        let meta = tokio::fs::metadata(&table.location).await.map_err(|e| {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "file not found".to_string()
            } else {
                format!("cannot read: {e}")
            };
            failure(
                ErrorClass::Config,
                format!("table `{name}`: {what}: {shown}"),
                Some("paths are relative to the config file's folder"),
            )
        })?;
        if meta.is_dir() {
            let (format, extension) =
                folder_format(&table.location, table.format).map_err(|m| {
                    failure(
                        ErrorClass::Config,
                        format!("table `{name}`: {m}: {shown}"),
                        Some("add `format: csv|parquet|ndjson` to the table"),
                    )
                })?;
            (
                format!("{}/", location.trim_end_matches('/')),
                format,
                extension,
            )
        } else {
            let format = table
                .format
                .or_else(|| Format::from_extension(&location))
                .ok_or_else(|| {
                    failure(
                        ErrorClass::Config,
                        format!(
                            "table `{name}`: cannot tell the format of {shown} from its extension"
                        ),
                        Some("add `format: csv|parquet|ndjson` to the table"),
                    )
                })?;
            // A single named file is read whatever its extension.
            (location.clone(), format, String::new())
        }
    };

    let table_url = ListingTableUrl::parse(&url).map_err(|e| {
        failure(
            ErrorClass::Config,
            format!("table `{name}`: invalid path {shown}: {}", describe(&e)),
            None,
        )
    })?;
    let config = ctx.copied_config();
    let table_options = ctx.copied_table_options();
    let options: ListingOptions = match format {
        Format::Csv => {
            let mut read = CsvReadOptions::new()
                .has_header(true)
                // Quoted fields may hold line breaks: read each file whole
                // rather than split it at byte offsets that could fall
                // inside a quoted value.
                .newlines_in_values(true)
                // A row with fewer fields than the header (a common defect
                // of hand-edited exports) has its missing values null, so
                // the mapping rejects it with a reason or sends what it has
                // instead of failing the whole segment.
                .truncated_rows(true)
                .schema_infer_max_records(INFER_ROWS);
            if let Some(d) = table.delimiter {
                read = read.delimiter(d);
            }
            read.to_listing_options(&config, table_options)
        }
        Format::Parquet => ParquetReadOptions::new().to_listing_options(&config, table_options),
        Format::Ndjson => JsonReadOptions::default()
            .schema_infer_max_records(INFER_ROWS)
            .to_listing_options(&config, table_options),
    }
    .with_file_extension(extension);

    let state = ctx.state();
    let schema = options
        .infer_schema(&state, &table_url)
        .await
        .map_err(|e| {
            failure(
                ErrorClass::Config,
                format!(
                    "table `{name}`: cannot read {shown} as {format}: {}",
                    describe(&e)
                ),
                Some(match format {
                    Format::Parquet => "the file is not a readable Parquet file",
                    Format::Csv => "the file must be UTF-8 CSV with a header row",
                    Format::Ndjson => "the file must hold one JSON object per line",
                }),
            )
        })?;
    if schema.fields().is_empty() {
        return Err(failure(
            ErrorClass::Config,
            format!(
                "table `{name}`: no columns found in {shown} (empty file, or no files matched)"
            ),
            Some("check the path; a CSV file needs a header row"),
        ));
    }
    let text_columns: &[String] = if format == Format::Csv {
        &table.text_columns
    } else {
        &[]
    };
    let schema = as_text(strip_bom(schema), text_columns).map_err(|missing| {
        failure(
            ErrorClass::Config,
            format!(
                "table `{name}`: text_columns names `{missing}`, which is not a column of {shown}"
            ),
            Some("text_columns lists column names of the table's header"),
        )
    })?;
    ctx.register_listing_table(name.as_str(), url, options, Some(schema), None)
        .await
        .map_err(|e| {
            failure(
                ErrorClass::Config,
                format!("table `{name}`: cannot register {shown}: {}", describe(&e)),
                None,
            )
        })
}

/// The schema with `columns` turned into nullable Utf8; the first name that is
/// not a column is the error.
fn as_text(schema: SchemaRef, columns: &[String]) -> std::result::Result<SchemaRef, String> {
    if columns.is_empty() {
        return Ok(schema);
    }
    if let Some(missing) = columns.iter().find(|c| schema.field_with_name(c).is_err()) {
        return Err(missing.clone());
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if columns.iter().any(|c| c == f.name()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// A CSV exported by Excel starts with a UTF-8 byte order mark, which would
/// otherwise become part of the first column's name.
fn strip_bom(schema: SchemaRef) -> SchemaRef {
    let Some(first) = schema.fields().first() else {
        return schema;
    };
    if !first.name().starts_with(BOM) {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.as_ref().clone();
            if i == 0 {
                let name = f.name().trim_start_matches(BOM).to_string();
                f.with_name(name)
            } else {
                f
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The format of a folder of partitions, and the extension that selects its
/// data files (so `_SUCCESS` markers and the like are skipped).
fn folder_format(
    dir: &Path,
    explicit: Option<Format>,
) -> std::result::Result<(Format, String), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list the folder: {e}"))?;
    let mut seen: BTreeMap<&'static str, (Format, String)> = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if let Some(f) = Format::from_extension(&name) {
            let ext = Path::new(&name)
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            seen.entry(f.name()).or_insert((f, ext));
        }
    }
    match explicit {
        Some(f) => {
            let ext = seen
                .values()
                .find(|(g, _)| *g == f)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            Ok((f, ext))
        }
        None => {
            let mut formats = seen.into_values();
            match (formats.next(), formats.next()) {
                (Some(one), None) => Ok(one),
                (None, _) => Err("no .csv, .parquet or .json files in the folder".to_string()),
                (Some(_), Some(_)) => Err("the folder holds files of several formats".to_string()),
            }
        }
    }
}

/// Whether a glob matches at least one file, so "no files" is a clear error
/// rather than an empty table.
fn glob_has_matches(pattern: &str) -> std::result::Result<(), String> {
    // Find the folder before the first component holding a wildcard.
    let path = Path::new(pattern);
    let mut base = PathBuf::new();
    let mut rest = Vec::new();
    let mut in_glob = false;
    for c in path.components() {
        let s = c.as_os_str().to_string_lossy().to_string();
        if in_glob || has_glob(&s) {
            in_glob = true;
            rest.push(s);
        } else {
            base.push(c);
        }
    }
    if !base.is_dir() {
        return Err(format!("folder not found: {}", base.display()));
    }
    let any = walk_matches(&base, &rest);
    if any {
        Ok(())
    } else {
        Err(format!("no files match {pattern}"))
    }
}

fn walk_matches(dir: &Path, parts: &[String]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !wildcard_match(first, &name) {
            continue;
        }
        let p = entry.path();
        if rest.is_empty() {
            if p.is_file() {
                return true;
            }
        } else if p.is_dir() && walk_matches(&p, rest) {
            return true;
        }
    }
    false
}

/// `*` and `?` matching of one path component; `[...]` classes are treated
/// as matching any one character (good enough to tell "no files at all").
pub(crate) fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('[', rest)) => {
                let close = rest.iter().position(|c| *c == ']');
                match close {
                    Some(i) => !n.is_empty() && go(&rest[i + 1..], &n[1..]),
                    None => n.first() == Some(&'[') && go(rest, &n[1..]),
                }
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.csv", "a.csv"));
        assert!(wildcard_match("part-?.csv", "part-1.csv"));
        assert!(!wildcard_match("*.csv", "a.parquet"));
        assert!(wildcard_match("p[0-9].csv", "p3.csv"));
    }

    #[test]
    fn bom_is_stripped_from_the_first_column_only() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("\u{feff}id", DataType::Int64, true),
            Field::new("email", DataType::Utf8, true),
        ]));
        let fixed = strip_bom(schema);
        assert_eq!(fixed.field(0).name(), "id");
        assert_eq!(fixed.field(1).name(), "email");
    }

    #[test]
    fn views_become_utf8() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8View, true),
            Field::new("b", DataType::Int64, false),
        ]));
        let plain = plain_schema(&schema);
        assert_eq!(plain.field(0).data_type(), &DataType::Utf8);
        assert_eq!(plain.field(1).data_type(), &DataType::Int64);
    }
}
