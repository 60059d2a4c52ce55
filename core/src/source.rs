//! The source trait: where segments of profiles come from.

use std::fmt;
use std::pin::Pin;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::{Stream, StreamExt};

use crate::error::Result;

/// A segment's rows as a source reads them. Bounded in memory: a source
/// yields batches as it reads them and never holds a whole segment.
pub type SegmentStream = Pin<Box<dyn Stream<Item = Result<SourceItem>> + Send>>;

/// The largest value (in bytes) a source passes on, unless its config says
/// otherwise: a row holding a larger one is [`UnreadableRow`], code
/// [`unreadable::VALUE_TOO_LARGE`].
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 1 << 20;

/// What a segment's stream yields.
#[derive(Debug)]
pub enum SourceItem {
    /// Rows the segment selected, in the source's order.
    Rows(RecordBatch),
    /// A row of a table the segment reads that could not be read (bad
    /// encoding, a broken line, a value that does not fit its column). It
    /// never reached the segment's query; the engine reports it and, in
    /// mirror mode, keeps its member in the list.
    Unreadable(UnreadableRow),
}

/// Values of an unreadable row longer than this are not kept: no lookup key
/// is that long.
pub const KEEP_VALUE_BYTES: usize = 1024;

/// The text values of row `row` of a batch's `columns` (in `schema`'s
/// order), by column name, as [`UnreadableRow::with_values`] wants them:
/// for a source that built a batch before finding a row it must set aside.
/// Columns that are not text, missing values and values over
/// [`KEEP_VALUE_BYTES`] are left out.
pub fn text_values(
    schema: &arrow_schema::Schema,
    columns: &[arrow_array::ArrayRef],
    row: usize,
) -> Vec<(String, String)> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    schema
        .fields()
        .iter()
        .zip(columns)
        .filter_map(|(field, col)| {
            let col = col.as_string_opt::<i32>()?;
            (row < col.len() && col.is_valid(row) && col.value(row).len() <= KEEP_VALUE_BYTES)
                .then(|| (field.name().clone(), col.value(row).to_string()))
        })
        .collect()
}

impl SourceItem {
    /// The batch, for callers that only want rows.
    pub fn into_rows(self) -> Option<RecordBatch> {
        match self {
            SourceItem::Rows(b) => Some(b),
            SourceItem::Unreadable(_) => None,
        }
    }
}

/// Codes of [`UnreadableRow`]s, as the rejects file shows them.
pub mod unreadable {
    /// A value is not valid UTF-8.
    pub const INVALID_UTF8: &str = "invalid_utf8";
    /// A value holds a NUL character.
    pub const NUL_BYTE: &str = "nul_byte";
    /// A value is longer than the source's `max_value_bytes`.
    pub const VALUE_TOO_LARGE: &str = "value_too_large";
    /// A line has more or fewer fields than the table's header.
    pub const COLUMN_COUNT: &str = "column_count";
    /// A value cannot be read as its column's type.
    pub const UNCASTABLE: &str = "uncastable";
    /// A line is not well-formed in the table's format (broken JSON, not an
    /// object).
    pub const MALFORMED: &str = "malformed";
}

/// A row a source set aside, and where it is. Its readable values (by
/// column name) let the engine find the row's lookup key. `Debug` shows no
/// value: they may be email addresses.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableRow {
    /// The table as the source's config names it (for a database query
    /// with no table of its own: `query`).
    pub table: String,
    /// The file, as the config's folder sees it; `None` for a database.
    pub file: Option<String>,
    /// 1-based: the line a text file's row starts on, or the row's position
    /// in a Parquet file or a query's result.
    pub line: Option<u64>,
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// One of [`unreadable`]'s codes.
    pub code: &'static str,
    /// Why, for a person: names the column and the expected type, never
    /// echoes a whole row.
    pub reason: String,
    /// The row's values that could be read, by column name.
    pub values: Vec<(String, String)>,
}

impl UnreadableRow {
    pub fn new(table: impl Into<String>, code: &'static str, reason: impl Into<String>) -> Self {
        UnreadableRow {
            table: table.into(),
            file: None,
            line: None,
            column: None,
            code,
            reason: reason.into(),
            values: Vec::new(),
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    pub fn with_values(mut self, values: Vec<(String, String)>) -> Self {
        self.values = values;
        self
    }

    /// The readable value of `column`, if the row has one.
    pub fn value(&self, column: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for UnreadableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnreadableRow")
            .field("table", &self.table)
            .field("file", &self.file)
            .field("line", &self.line)
            .field("column", &self.column)
            .field("code", &self.code)
            .field("values", &self.values.len())
            .finish_non_exhaustive()
    }
}

/// What a segment selects from its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentQuery {
    /// Every row of a table.
    Table(String),
    /// A SQL query, run by the source (DataFusion for files, the database
    /// itself for PostgreSQL).
    Sql(String),
}

/// A source of segments, built from its validated config.
#[async_trait]
pub trait SegmentSource: Send + Sync + fmt::Debug {
    /// The connection test behind `audex check`: confirm the source can be
    /// reached and read (files exist and parse, the database answers). `Ok`
    /// carries one line saying what was reached, for a person (no secrets):
    /// say what they would otherwise have to find out, such as whether a
    /// database connection is encrypted.
    async fn check(&self) -> Result<String>;

    /// The columns a segment yields, without reading its rows.
    async fn schema(&self, query: &SegmentQuery) -> Result<SchemaRef>;

    /// Stream the segment's rows. A row the source cannot read (bad
    /// encoding, a broken line, a value that does not fit its column's type
    /// or `max_value_bytes`) is yielded as [`SourceItem::Unreadable`] and
    /// the stream goes on; an `Err` ends the export (a file that is not the
    /// format at all, a lost connection).
    async fn stream(&self, query: &SegmentQuery) -> Result<SegmentStream>;

    /// A short text that changes when the source's data changes, for
    /// `run_on: source_change` (files: the files and their sizes and
    /// modification times; PostgreSQL: the value of its `refresh_marker`
    /// query). `None` (the default) means the source cannot tell, and
    /// every scheduled time exports.
    async fn fingerprint(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// The segment's row count. The default streams and counts; sources that
    /// can ask their engine for a count should.
    async fn count(&self, query: &SegmentQuery) -> Result<u64> {
        let mut stream = self.stream(query).await?;
        let mut n = 0u64;
        while let Some(item) = stream.next().await {
            if let SourceItem::Rows(batch) = item? {
                n += batch.num_rows() as u64;
            }
        }
        Ok(n)
    }
}

/// A stable digest (SHA-256, hex) of `parts`, for fingerprints: the parts
/// are length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn fingerprint_digest<S: AsRef<[u8]>>(parts: impl IntoIterator<Item = S>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        let p = p.as_ref();
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_values_keep_short_text_only() {
        use std::sync::Arc;
        let schema = arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("email", arrow_schema::DataType::Utf8, true),
            arrow_schema::Field::new("n", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("note", arrow_schema::DataType::Utf8, true),
        ]);
        let long = "x".repeat(super::KEEP_VALUE_BYTES + 1);
        let columns: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(arrow_array::StringArray::from(vec![Some("a@x.com"), None])),
            Arc::new(arrow_array::Int64Array::from(vec![1, 2])),
            Arc::new(arrow_array::StringArray::from(vec![long.as_str(), "short"])),
        ];
        assert_eq!(
            super::text_values(&schema, &columns, 0),
            vec![("email".to_string(), "a@x.com".to_string())]
        );
        assert_eq!(
            super::text_values(&schema, &columns, 1),
            vec![("note".to_string(), "short".to_string())]
        );
        assert!(super::text_values(&schema, &columns, 5).is_empty());
    }

    #[test]
    fn unreadable_rows_hide_their_values() {
        let row = super::UnreadableRow::new("profiles", super::unreadable::NUL_BYTE, "why")
            .in_file("data/p.csv")
            .at_line(7)
            .with_values(vec![("email".into(), "ann@example.com".into())]);
        assert_eq!(row.value("email"), Some("ann@example.com"));
        assert_eq!(row.value("name"), None);
        let shown = format!("{row:?}");
        assert!(!shown.contains("ann@"), "{shown}");
        assert!(
            shown.contains("data/p.csv") && shown.contains('7'),
            "{shown}"
        );
    }

    #[test]
    fn digests_keep_part_boundaries() {
        let a = super::fingerprint_digest(["ab", "c"]);
        assert_eq!(a, super::fingerprint_digest(["ab", "c"]));
        assert_ne!(a, super::fingerprint_digest(["a", "bc"]));
        assert_eq!(a.len(), 64);
    }
}
