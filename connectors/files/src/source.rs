//! The files source: each declared table is registered with a DataFusion
//! session on first use, and a segment's `table:` or `query:` runs there.
//! Results stream batch by batch (`execute_stream`), so memory stays bounded
//! by the batch size and the readers' buffers, not by the segment's size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use audex_core::{
    Error, ErrorClass, Result, SegmentQuery, SegmentSource, SegmentStream, SourceItem,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::options::ReadOptions;
use datafusion::execution::SessionState;
use datafusion::object_store::{ObjectMeta, ObjectStore};
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SQLOptions, SessionConfig,
    SessionContext,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use url::Url;

use crate::config::Format;
use crate::error::{describe, query_error};
use crate::listing;

/// Rows a CSV or NDJSON table's column types are inferred from.
const INFER_ROWS: usize = 10_000;
/// Rows per Arrow batch handed downstream.
const BATCH_ROWS: usize = 8192;
const BOM: char = '\u{feff}';
/// A table with at most this many files has them named by `check`.
const FEW_FILES: usize = 3;

/// A table with its path resolved against the config's folder.
#[derive(Clone, Debug)]
pub struct ResolvedTable {
    pub name: String,
    /// The path as written in the config, for messages.
    pub configured: String,
    /// Absolute file, folder or glob.
    pub location: PathBuf,
    /// The config file's folder, absolute: a relative glob starts here, and
    /// `check` shows files relative to it.
    pub base_dir: PathBuf,
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
    /// The files each registered table reads.
    files: BTreeMap<String, Vec<PathBuf>>,
    failed: BTreeMap<String, TableFailure>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("files", &self.files)
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
                let mut files = BTreeMap::new();
                let mut failed = BTreeMap::new();
                for table in &self.tables {
                    match register(&ctx, table).await {
                        Ok(read) => {
                            files.insert(table.name.clone(), read);
                        }
                        Err(f) => {
                            tracing::debug!(table = %table.name, error = %f.message, "table not registered");
                            failed.insert(table.name.clone(), f);
                        }
                    }
                }
                Session { ctx, files, failed }
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
                let tables: Vec<String> = self
                    .tables
                    .iter()
                    .map(|t| {
                        let files = session.files.get(&t.name).map_or(&[][..], Vec::as_slice);
                        format!("{} ({})", t.name, files_read(&t.base_dir, files))
                    })
                    .collect();
                Ok(format!(
                    "{n} table{} readable: {}",
                    if n == 1 { "" } else { "s" },
                    tables.join(", ")
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

    async fn stream(&self, query: &SegmentQuery) -> Result<SegmentStream> {
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
                cast_batch(&batch, &target).map(SourceItem::Rows)
            } else {
                Ok(SourceItem::Rows(batch))
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

/// The files a table reads, for `check`'s one line: named (relative to the
/// config's folder) when there are few, else the count and the first and
/// last.
fn files_read(base: &Path, files: &[PathBuf]) -> String {
    let show = |f: &PathBuf| f.strip_prefix(base).unwrap_or(f).display().to_string();
    match files {
        [] => "no files".to_string(),
        [one] => format!("1 file: {}", show(one)),
        few if few.len() <= FEW_FILES => {
            let names: Vec<String> = few.iter().map(show).collect();
            format!("{} files: {}", few.len(), names.join(", "))
        }
        [first, .., last] => format!("{} files: {} … {}", files.len(), show(first), show(last)),
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

/// Register one table: list its files, infer one schema over all of them,
/// and hand DataFusion exactly that list (never a folder or a glob to list
/// again its own way). Returns the files.
async fn register(
    ctx: &SessionContext,
    table: &ResolvedTable,
) -> std::result::Result<Vec<PathBuf>, TableFailure> {
    let name = &table.name;
    let shown = table.location.display().to_string();
    let owned = table.clone();
    let listing = tokio::task::spawn_blocking(move || listing::list(&owned))
        .await
        .map_err(|e| {
            failure(
                ErrorClass::Internal,
                format!("table `{name}`: listing its files stopped: {e}"),
                None,
            )
        })?
        .map_err(|e| {
            failure(
                ErrorClass::Config,
                format!("table `{name}`: {}", e.message),
                Some(e.hint),
            )
        })?;
    let format = listing.format;
    let urls = listing
        .files
        .iter()
        .map(|f| file_url(f))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|m| failure(ErrorClass::Config, format!("table `{name}`: {m}"), None))?;
    let options = listing_options(ctx, table, format);
    let unreadable = |(file, e): SchemaFailure| {
        // Each file reads alone, but together they do not agree.
        let disagree = file.is_none() && listing.files.len() > 1;
        let what = match file {
            Some(f) => f.display().to_string(),
            None if disagree => format!("the {} files of {shown}", listing.files.len()),
            None => shown.clone(),
        };
        failure(
            ErrorClass::Config,
            format!(
                "table `{name}`: cannot read {what} as {format}: {}",
                describe(&e)
            ),
            Some(match format {
                _ if disagree => "the files of a table must have the same columns and types",
                Format::Parquet => "the file is not a readable Parquet file",
                Format::Csv => "the file must be UTF-8 CSV with a header row",
                Format::Ndjson => "the file must hold one JSON object per line",
            }),
        )
    };
    let state = ctx.state();
    let (store, objects) = objects(&state, &listing.files, &urls)
        .await
        .map_err(unreadable)?;
    if format == Format::Csv {
        csv_headers_agree(ctx, &state, table, &store, &objects).await?;
    }
    let schema = infer_schema(&state, &options, &store, &objects)
        .await
        .map_err(unreadable)?;
    if schema.fields().is_empty() {
        return Err(failure(
            ErrorClass::Config,
            format!("table `{name}`: no columns found in {shown} (empty file)"),
            Some("a CSV file needs a header row"),
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
    let cannot_register = |e: DataFusionError| {
        failure(
            ErrorClass::Config,
            format!("table `{name}`: cannot register {shown}: {}", describe(&e)),
            None,
        )
    };
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let provider = ListingTable::try_new(config)
        .map_err(cannot_register)?
        .with_cache(ctx.runtime_env().cache_manager.get_file_statistic_cache());
    ctx.register_table(name.as_str(), Arc::new(provider))
        .map_err(cannot_register)?;
    tracing::debug!(table = %name, files = ?listing.files, "table registered");
    Ok(listing.files)
}

/// A `file://` URL naming one file, for DataFusion; never a pattern, whatever
/// characters the file's name holds.
fn file_url(path: &Path) -> std::result::Result<ListingTableUrl, String> {
    let url = Url::from_file_path(path)
        .map_err(|()| format!("cannot make a file URL of {}", path.display()))?;
    // Resolve `..` as DataFusion does for the paths it parses itself.
    let url = Url::parse(url.as_str())
        .map_err(|e| format!("cannot make a file URL of {}: {e}", path.display()))?;
    ListingTableUrl::try_new(url, None)
        .map_err(|e| format!("cannot read {}: {}", path.display(), describe(&e)))
}

/// How DataFusion reads the table's files. The file extension filter is
/// off: [`listing::list`] has chosen the files.
fn listing_options(ctx: &SessionContext, table: &ResolvedTable, format: Format) -> ListingOptions {
    let config = ctx.copied_config();
    let table_options = ctx.copied_table_options();
    match format {
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
    .with_file_extension(String::new())
}

/// A failure while reading the files' schemas: the file at fault when one
/// is, and DataFusion's error.
type SchemaFailure = (Option<PathBuf>, DataFusionError);

/// The files as DataFusion's object store sees them, each with its path.
/// Empty files are left out: they hold no schema (DataFusion skips them the
/// same way when it infers one).
async fn objects<'f>(
    state: &SessionState,
    files: &'f [PathBuf],
    urls: &[ListingTableUrl],
) -> std::result::Result<(Arc<dyn ObjectStore>, Vec<(&'f PathBuf, ObjectMeta)>), SchemaFailure> {
    let first = urls.first().ok_or_else(|| {
        (
            None,
            DataFusionError::Plan("the table has no files".to_string()),
        )
    })?;
    let store = state
        .runtime_env()
        .object_store(first)
        .map_err(|e| (None, e))?;
    let mut objects = Vec::with_capacity(urls.len());
    for (file, url) in files.iter().zip(urls) {
        let found: Vec<ObjectMeta> = url
            .list_all_files(state, store.as_ref(), "")
            .await
            .map_err(|e| (Some(file.clone()), e))?
            .try_collect()
            .await
            .map_err(|e| (Some(file.clone()), e))?;
        if found.is_empty() {
            // Listed a moment ago, gone now: say so rather than read less.
            return Err((
                Some(file.clone()),
                DataFusionError::Plan("the file was removed while the table was read".into()),
            ));
        }
        objects.extend(found.into_iter().map(|o| (file, o)));
    }
    objects.retain(|(_, o)| o.size > 0);
    Ok((store, objects))
}

/// One schema over every file (CSV and NDJSON types from the first
/// [`INFER_ROWS`] rows across them, Parquet footers merged). On failure, the
/// file that cannot be read alone, if one cannot.
async fn infer_schema(
    state: &SessionState,
    options: &ListingOptions,
    store: &Arc<dyn ObjectStore>,
    objects: &[(&PathBuf, ObjectMeta)],
) -> std::result::Result<SchemaRef, SchemaFailure> {
    let metas: Vec<ObjectMeta> = objects.iter().map(|(_, o)| o.clone()).collect();
    match options.format.infer_schema(state, store, &metas).await {
        Ok(schema) => Ok(schema),
        Err(e) => {
            for (file, meta) in objects {
                let alone = options
                    .format
                    .infer_schema(state, store, std::slice::from_ref(meta))
                    .await;
                if let Err(own) = alone {
                    return Err((Some((*file).clone()), own));
                }
            }
            Err((None, e))
        }
    }
}

/// CSV columns are read by position, so every file of a CSV table must have
/// the first file's header: a file with other columns, or the same in
/// another order, would put its values under the wrong names. (Parquet and
/// NDJSON are read by column name.) Reads each file's header only.
async fn csv_headers_agree(
    ctx: &SessionContext,
    state: &SessionState,
    table: &ResolvedTable,
    store: &Arc<dyn ObjectStore>,
    objects: &[(&PathBuf, ObjectMeta)],
) -> std::result::Result<(), TableFailure> {
    if objects.len() < 2 {
        return Ok(());
    }
    let name = &table.name;
    // No rows: the header alone.
    let mut read = CsvReadOptions::new()
        .has_header(true)
        .newlines_in_values(true)
        .truncated_rows(true)
        .schema_infer_max_records(0);
    if let Some(d) = table.delimiter {
        read = read.delimiter(d);
    }
    let header_of = read.to_listing_options(&ctx.copied_config(), ctx.copied_table_options());
    let mut first: Option<(&PathBuf, Vec<String>)> = None;
    for (file, meta) in objects {
        let schema = header_of
            .format
            .infer_schema(state, store, std::slice::from_ref(meta))
            .await
            .map_err(|e| {
                failure(
                    ErrorClass::Config,
                    format!(
                        "table `{name}`: cannot read the header of {}: {}",
                        file.display(),
                        describe(&e)
                    ),
                    Some("the file must be UTF-8 CSV with a header row"),
                )
            })?;
        let columns: Vec<String> = strip_bom(schema)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        match &first {
            None => first = Some((file, columns)),
            Some((first_file, expected)) if *expected != columns => {
                return Err(failure(
                    ErrorClass::Config,
                    format!(
                        "table `{name}`: {} has the columns ({}), but {} has ({})",
                        file.display(),
                        columns.join(", "),
                        first_file.display(),
                        expected.join(", ")
                    ),
                    Some("the CSV files of a table must have the same header (columns are read by position)"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
