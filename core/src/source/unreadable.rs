//! Rows a source could not read: the codes, the row as the engine receives
//! it, and [`RowFaults`] for sources that find bad values while building a
//! batch.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;

use crate::error::{Error, Result};

// The codes of unreadable rows, as the rejects file shows them.

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
    /// One of the codes of this module.
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

/// One bad value found in a row of a batch: its column, a code of this
/// module and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFault {
    pub column: usize,
    pub code: &'static str,
    pub reason: String,
}

/// The first bad value of each row of a batch a source is building, for
/// sources that convert a batch's values column by column (an Arrow cast,
/// a page of database rows) and find bad ones on the way: mark them, then
/// [`RowFaults::split`] the batch into the rows that go on and the rows set
/// aside.
#[derive(Clone, Debug)]
pub struct RowFaults(Vec<Option<RowFault>>);

impl RowFaults {
    /// No fault yet in a batch of `rows` rows.
    pub fn new(rows: usize) -> Self {
        RowFaults(vec![None; rows])
    }

    /// Mark `row`; a row keeps the first fault marked (the reason is made
    /// only then).
    pub fn mark(
        &mut self,
        row: usize,
        column: usize,
        code: &'static str,
        reason: impl FnOnce() -> String,
    ) {
        if let Some(slot @ None) = self.0.get_mut(row) {
            *slot = Some(RowFault {
                column,
                code,
                reason: reason(),
            });
        }
    }

    /// Whether `row` has a fault.
    pub fn has(&self, row: usize) -> bool {
        self.0.get(row).is_some_and(Option::is_some)
    }

    /// The batch of `schema` from `columns` less the marked rows, and for
    /// each marked row the [`UnreadableRow`] `row_at(r)` starts (table,
    /// file, line), completed with its column, code, reason and the text
    /// values of `values_from` (the columns before conversion, when the
    /// converted ones lost the bad value; else `columns` again).
    pub fn split(
        self,
        schema: &SchemaRef,
        columns: Vec<ArrayRef>,
        values_from: &[ArrayRef],
        row_at: impl Fn(usize) -> UnreadableRow,
    ) -> Result<(RecordBatch, Vec<UnreadableRow>)> {
        let err = |e: arrow_schema::ArrowError| Error::internal(format!("setting rows aside: {e}"));
        if self.0.iter().all(Option::is_none) {
            let batch = RecordBatch::try_new(Arc::clone(schema), columns).map_err(err)?;
            return Ok((batch, Vec::new()));
        }
        let mut set_aside = Vec::new();
        for (r, fault) in self.0.iter().enumerate() {
            let Some(f) = fault else { continue };
            let mut row = row_at(r).with_values(text_values(schema, values_from, r));
            row.code = f.code;
            row.reason = f.reason.clone();
            row.column = Some(schema.field(f.column).name().clone());
            set_aside.push(row);
        }
        let keep: BooleanArray = self.0.iter().map(|f| Some(f.is_none())).collect();
        let columns = columns
            .iter()
            .map(|c| arrow_select::filter::filter(c, &keep))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        let batch = RecordBatch::try_new(Arc::clone(schema), columns).map_err(err)?;
        Ok((batch, set_aside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    #[test]
    fn split_keeps_the_good_rows_and_describes_the_bad() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a@x.com", "b@x.com", "c@x.com"])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ];
        let mut faults = RowFaults::new(3);
        faults.mark(1, 1, UNCASTABLE, || "not a number".into());
        faults.mark(1, 0, NUL_BYTE, || unreachable!("the first fault stands"));
        faults.mark(7, 0, NUL_BYTE, String::new);
        assert!(faults.has(1) && !faults.has(0) && !faults.has(7));
        let (batch, bad) = faults
            .split(&schema, columns.clone(), &columns, |r| {
                UnreadableRow::new("t", MALFORMED, "").at_line(r as u64 + 10)
            })
            .expect("split");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(
            (
                bad[0].line,
                bad[0].code,
                bad[0].column.as_deref(),
                bad[0].reason.as_str()
            ),
            (Some(11), UNCASTABLE, Some("n"), "not a number")
        );
        assert_eq!(bad[0].value("email"), Some("b@x.com"));
        let (batch, bad) = RowFaults::new(3)
            .split(&schema, columns.clone(), &columns, |_| {
                UnreadableRow::new("t", MALFORMED, "")
            })
            .expect("split");
        assert_eq!((batch.num_rows(), bad.len()), (3, 0));
    }

    #[test]
    fn text_values_keep_short_text_only() {
        use std::sync::Arc;
        let schema = arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("email", arrow_schema::DataType::Utf8, true),
            arrow_schema::Field::new("n", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("note", arrow_schema::DataType::Utf8, true),
        ]);
        let long = "x".repeat(KEEP_VALUE_BYTES + 1);
        let columns: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(arrow_array::StringArray::from(vec![Some("a@x.com"), None])),
            Arc::new(arrow_array::Int64Array::from(vec![1, 2])),
            Arc::new(arrow_array::StringArray::from(vec![long.as_str(), "short"])),
        ];
        assert_eq!(
            text_values(&schema, &columns, 0),
            vec![("email".to_string(), "a@x.com".to_string())]
        );
        assert_eq!(
            text_values(&schema, &columns, 1),
            vec![("note".to_string(), "short".to_string())]
        );
        assert!(text_values(&schema, &columns, 5).is_empty());
    }

    #[test]
    fn unreadable_rows_hide_their_values() {
        let row = UnreadableRow::new("profiles", NUL_BYTE, "why")
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
}
