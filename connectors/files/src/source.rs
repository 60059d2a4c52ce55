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
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::options::ReadOptions;
use datafusion::execution::SessionState;
use datafusion::object_store::{ObjectMeta, ObjectStore};
use datafusion::physical_plan::execute_stream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{
    DataFrame, ParquetReadOptions, SQLOptions, SessionConfig, SessionContext,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use url::Url;

use crate::config::Format;
use crate::error::{describe, query_error};
use crate::listing;
use crate::read_csv::{CsvDialect, CsvReader, BATCH_ROWS};
use crate::read_ndjson::NdjsonReader;
use crate::read_parquet::ParquetReader;
use crate::rows::{FilePartition, FileReader, FileToRead, Sink};
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
    /// A row with a longer value is set aside as unreadable.
    pub max_value_bytes: usize,
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
        // The rows set aside while this query runs, handed to the file
        // readers through the query's task context.
        let sink = Arc::new(Sink::default());
        let task = df.task_ctx();
        let config = task.session_config().clone().with_extension(sink.clone());
        let task = Arc::new(task.with_session_config(config));
        let plan = df
            .create_physical_plan()
            .await
            .map_err(|e| query_error(&label, e))?;
        tracing::debug!(plan = %datafusion::physical_plan::displayable(plan.as_ref()).indent(true), "segment plan");
        let batches = execute_stream(plan, task).map_err(|e| query_error(&label, e))?;
        let state = Streaming {
            batches,
            sink: SinkGuard(sink),
            set_aside: std::collections::VecDeque::new(),
            batch: None,
            done: false,
        };
        let stream = futures::stream::unfold(state, move |mut st| {
            let label = label.clone();
            let target = target.clone();
            async move {
                loop {
                    if let Some(row) = st.set_aside.pop_front() {
                        return Some((Ok(SourceItem::Unreadable(row)), st));
                    }
                    if let Some(batch) = st.batch.take() {
                        let item = if needs_cast {
                            cast_batch(&batch, &target).map(SourceItem::Rows)
                        } else {
                            Ok(SourceItem::Rows(batch))
                        };
                        return Some((item, st));
                    }
                    if st.done {
                        return None;
                    }
                    tokio::select! {
                        biased;
                        () = st.sink.0.full.notified() => {
                            st.set_aside.extend(st.sink.0.take());
                        }
                        next = st.batches.next() => {
                            st.set_aside.extend(st.sink.0.take());
                            match next {
                                Some(Ok(batch)) if batch.num_rows() > 0 => st.batch = Some(batch),
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    st.done = true;
                                    return Some((Err(query_error(&label, e)), st));
                                }
                                None => st.done = true,
                            }
                        }
                    }
                }
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

/// A segment's query as it runs, with the rows its readers set aside.
struct Streaming {
    batches: datafusion::execution::SendableRecordBatchStream,
    sink: SinkGuard,
    set_aside: std::collections::VecDeque<audex_core::UnreadableRow>,
    /// A batch to yield after the rows set aside before it.
    batch: Option<RecordBatch>,
    done: bool,
}

/// Tells the readers when the segment's stream is gone, so none waits on
/// a full sink.
struct SinkGuard(Arc<Sink>);

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.0.close();
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
    if listing.format != Format::Parquet {
        return register_rows(ctx, table, listing).await;
    }
    let format = listing.format;
    let urls = listing
        .files
        .iter()
        .map(|f| file_url(f))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|m| failure(ErrorClass::Config, format!("table `{name}`: {m}"), None))?;
    let options = listing_options(ctx);
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
            Some(if disagree {
                "the files of a table must have the same columns and types"
            } else {
                "the file is not a readable Parquet file"
            }),
        )
    };
    let state = ctx.state();
    let (store, objects) = objects(&state, &listing.files, &urls)
        .await
        .map_err(unreadable)?;
    let schema = infer_schema(&state, &options, &store, &objects)
        .await
        .map_err(unreadable)?;
    if schema.fields().is_empty() {
        return Err(failure(
            ErrorClass::Config,
            format!("table `{name}`: no columns found in {shown} (empty file)"),
            None,
        ));
    }
    // Read as the segment's stream yields it: string views and
    // dictionaries become plain Utf8.
    let schema = plain_schema(&schema);
    let files: Vec<PathBuf> = objects.iter().map(|(f, _)| (*f).clone()).collect();
    register_partitions(ctx, table, &files, schema, Arc::new(ParquetReader))?;
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

/// How DataFusion reads a Parquet table's files. The file extension filter
/// is off: [`listing::list`] has chosen the files.
fn listing_options(ctx: &SessionContext) -> ListingOptions {
    ParquetReadOptions::new()
        .to_listing_options(&ctx.copied_config(), ctx.copied_table_options())
        .with_file_extension(String::new())
}

/// Register a CSV or NDJSON table: infer its columns from the first
/// readable rows of its files, then read each file row by row (see
/// [`crate::rows`]), one partition per file. Empty files are skipped.
async fn register_rows(
    ctx: &SessionContext,
    table: &ResolvedTable,
    listing: listing::Listing,
) -> std::result::Result<Vec<PathBuf>, TableFailure> {
    let name = &table.name;
    let shown = table.location.display().to_string();
    let format = listing.format;
    let dialect = CsvDialect {
        delimiter: table.delimiter.unwrap_or(b','),
    };
    let files = listing.files.clone();
    let max = table.max_value_bytes;
    let text_columns = table.text_columns.clone();
    let inferred = tokio::task::spawn_blocking(move || {
        let files: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| std::fs::metadata(f).map_or(true, |m| m.len() > 0))
            .collect();
        let schema = match format {
            Format::Csv => crate::read_csv::infer(&files, dialect, max, &text_columns),
            _ => crate::read_ndjson::infer(&files, max),
        };
        (files, schema)
    })
    .await
    .map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("table `{name}`: reading its columns stopped: {e}"),
            None,
        )
    })?;
    let (files, schema) = inferred;
    let schema = schema.map_err(|e| {
        let what = e
            .file
            .as_ref()
            .map_or_else(|| shown.clone(), |f| f.display().to_string());
        failure(
            ErrorClass::Config,
            format!(
                "table `{name}`: cannot read {what} as {format}: {}",
                e.message
            ),
            Some(e.hint),
        )
    })?;
    if schema.fields().is_empty() {
        return Err(failure(
            ErrorClass::Config,
            format!("table `{name}`: no columns found in {shown} (empty file)"),
            Some(match format {
                Format::Csv => "a CSV file needs a header row",
                _ => "an NDJSON file needs at least one object",
            }),
        ));
    }
    if let Some(missing) = table
        .text_columns
        .iter()
        .find(|c| schema.field_with_name(c).is_err())
    {
        return Err(failure(
            ErrorClass::Config,
            format!(
                "table `{name}`: text_columns names `{missing}`, which is not a column of {shown}"
            ),
            Some("text_columns lists column names of the table's header"),
        ));
    }
    match format {
        Format::Csv => {
            register_partitions(ctx, table, &files, schema, Arc::new(CsvReader { dialect }))?
        }
        _ => register_partitions(ctx, table, &files, schema, Arc::new(NdjsonReader))?,
    }
    Ok(listing.files)
}

/// Register `files` as a streaming table of `schema`, one partition per
/// file, each read by `reader`.
fn register_partitions<R: FileReader>(
    ctx: &SessionContext,
    table: &ResolvedTable,
    files: &[PathBuf],
    schema: SchemaRef,
    reader: Arc<R>,
) -> std::result::Result<(), TableFailure> {
    let name = &table.name;
    let partitions: Vec<Arc<dyn PartitionStream>> = files
        .iter()
        .map(|path| {
            Arc::new(FilePartition {
                file: FileToRead {
                    table: name.clone(),
                    path: path.clone(),
                    shown: path
                        .strip_prefix(&table.base_dir)
                        .unwrap_or(path)
                        .display()
                        .to_string(),
                    schema: schema.clone(),
                    max_value_bytes: table.max_value_bytes,
                },
                reader: reader.clone(),
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    let cannot_register = |e: DataFusionError| {
        failure(
            ErrorClass::Config,
            format!(
                "table `{name}`: cannot register {}: {}",
                table.location.display(),
                describe(&e)
            ),
            None,
        )
    };
    let provider = StreamingTable::try_new(schema, partitions).map_err(cannot_register)?;
    ctx.register_table(name.as_str(), Arc::new(provider))
        .map_err(cannot_register)?;
    tracing::debug!(table = %name, files = files.len(), "table registered");
    Ok(())
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

/// One schema over the files of a Parquet table: their footers merged.
/// Where files disagree on a column's type, the first file that has the
/// column declares it, and the others' values are cast row by row when
/// read (a value that does not cast sets its row aside). On failure, the
/// file that cannot be read.
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
            let mut each = Vec::with_capacity(objects.len());
            for (file, meta) in objects {
                let alone = options
                    .format
                    .infer_schema(state, store, std::slice::from_ref(meta))
                    .await
                    .map_err(|own| (Some((*file).clone()), own))?;
                each.push(alone);
            }
            first_declares(&each).ok_or((None, e))
        }
    }
}

/// The columns of `schemas` in order of first appearance, each with the
/// type of the first schema that has it. `None` when there is nothing.
fn first_declares(schemas: &[SchemaRef]) -> Option<SchemaRef> {
    let mut fields: Vec<Field> = Vec::new();
    for schema in schemas {
        for f in schema.fields() {
            if !fields.iter().any(|g| g.name() == f.name()) {
                fields.push(f.as_ref().clone().with_nullable(true));
            }
        }
    }
    (!fields.is_empty()).then(|| Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_file_declares_a_column_type() {
        let a = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let b = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("email", DataType::Utf8, true),
        ]));
        let merged = first_declares(&[a, b]).expect("merged");
        assert_eq!(merged.field(0).data_type(), &DataType::Int64);
        assert!(merged.field(0).is_nullable());
        assert_eq!(merged.field(1).name(), "email");
        assert_eq!(first_declares(&[]), None);
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
