//! CSV files read row by row with the `csv` crate, as bytes, so that each
//! row is checked on its own: the right number of fields, UTF-8, no NUL, no
//! value over the size cap, each value readable as its column's type. A
//! row that fails is set aside with its line and reason; the others become
//! Arrow batches.
//!
//! Column types are inferred as DataFusion infers them (Arrow's CSV
//! inference, over the first [`INFER_ROWS`] readable rows across the
//! table's files), so a table reads the same types as before; values are
//! then converted a batch at a time with Arrow's casts, and a value the
//! cast cannot read sets its row aside.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use audex_core::{unreadable, RowFaults, UnreadableRow, KEEP_VALUE_BYTES};
use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::csv::reader::Format as CsvFormat;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::error::DataFusionError;

use crate::rows::{file_error, FileReader, FileToRead, Out};

/// Rows a CSV table's column types are inferred from.
pub(crate) const INFER_ROWS: usize = 10_000;
/// Rows per Arrow batch.
pub(crate) const BATCH_ROWS: usize = 8192;
/// Read buffer per file.
const BUFFER: usize = 1 << 20;
const BOM: &str = "\u{feff}";

/// How a table's CSV files are split into fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CsvDialect {
    pub(crate) delimiter: u8,
}

impl CsvDialect {
    fn reader(self, file: File) -> csv::Reader<File> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .buffer_capacity(BUFFER)
            .from_reader(file)
    }
}

/// Why a table cannot be read at all (its files are not CSV of one shape).
#[derive(Debug)]
pub(crate) struct NotReadable {
    pub(crate) file: Option<PathBuf>,
    pub(crate) message: String,
    pub(crate) hint: &'static str,
}

impl NotReadable {
    fn new(file: &Path, message: impl Into<String>, hint: &'static str) -> Self {
        NotReadable {
            file: Some(file.to_path_buf()),
            message: message.into(),
            hint,
        }
    }
}

const CSV_HINT: &str = "the file must be UTF-8 CSV with a header row";

/// The table's columns and types from its files' headers and first rows.
/// Empty files are skipped; every other file must have the first one's
/// header. `text_columns` are read as text.
pub(crate) fn infer(
    files: &[PathBuf],
    dialect: CsvDialect,
    max_value_bytes: usize,
    text_columns: &[String],
) -> Result<SchemaRef, NotReadable> {
    let mut header: Option<(PathBuf, Vec<String>)> = None;
    let mut sample = csv::Writer::from_writer(Vec::new());
    let mut sampled = 0usize;
    // The first row set aside, when no row could be read.
    let mut first_bad: Option<(PathBuf, u64, String)> = None;
    for path in files {
        let file = File::open(path)
            .map_err(|e| NotReadable::new(path, format!("cannot open it: {e}"), CSV_HINT))?;
        let mut reader = dialect.reader(file);
        let mut record = csv::ByteRecord::new();
        let read = |reader: &mut csv::Reader<File>, record: &mut csv::ByteRecord| {
            reader
                .read_byte_record(record)
                .map_err(|e| NotReadable::new(path, format!("cannot read it: {e}"), CSV_HINT))
        };
        if !read(&mut reader, &mut record)? {
            continue; // empty: no header, no rows
        }
        let names = header_names(&record).map_err(|m| NotReadable::new(path, m, CSV_HINT))?;
        match &header {
            None => {
                check_names(&names, dialect).map_err(|(m, h)| NotReadable::new(path, m, h))?;
                sample
                    .write_record(&names)
                    .map_err(|e| NotReadable::new(path, e.to_string(), CSV_HINT))?;
                header = Some((path.clone(), names.clone()));
            }
            Some((first, expected)) if *expected != names => {
                return Err(NotReadable::new(
                    path,
                    format!(
                        "it has the columns ({}), but {} has ({})",
                        names.join(", "),
                        first.display(),
                        expected.join(", ")
                    ),
                    "the CSV files of a table must have the same header (columns are read by position)",
                ));
            }
            Some(_) => {}
        }
        let width = names.len();
        while sampled < INFER_ROWS && read(&mut reader, &mut record)? {
            match check_row(&record, width, max_value_bytes) {
                Ok(_) => {
                    sample
                        .write_byte_record(&record)
                        .map_err(|e| NotReadable::new(path, e.to_string(), CSV_HINT))?;
                    sampled += 1;
                }
                Err(bad) => {
                    if first_bad.is_none() {
                        let line = record.position().map_or(0, |p| p.line());
                        first_bad = Some((path.clone(), line, bad.reason(&names)));
                    }
                }
            }
        }
        if sampled >= INFER_ROWS {
            break;
        }
    }
    let Some((first_file, names)) = header else {
        return Ok(Arc::new(Schema::empty()));
    };
    if sampled == 0 {
        if let Some((file, line, reason)) = first_bad {
            return Err(NotReadable::new(
                &file,
                format!("no row could be read (line {line}: {reason})"),
                CSV_HINT,
            ));
        }
    }
    let bytes = sample
        .into_inner()
        .map_err(|e| NotReadable::new(&first_file, e.to_string(), CSV_HINT))?;
    let (inferred, _) = CsvFormat::default()
        .with_header(true)
        .infer_schema(Cursor::new(bytes), Some(INFER_ROWS))
        .map_err(|e| NotReadable::new(&first_file, e.to_string(), CSV_HINT))?;
    let fields: Vec<Field> = names
        .iter()
        .zip(inferred.fields())
        .map(|(name, f)| {
            let t = match f.data_type() {
                _ if text_columns.contains(name) => DataType::Utf8,
                DataType::Null => DataType::Utf8,
                t => t.clone(),
            };
            Field::new(name, t, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The header's column names: UTF-8, no NUL, the first without a byte
/// order mark.
fn header_names(record: &csv::ByteRecord) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let name = std::str::from_utf8(field)
            .map_err(|_| "its first line is not UTF-8 text: is it a CSV file?".to_string())?;
        if name.contains('\0') {
            return Err("its first line holds a NUL byte: is it a CSV file?".to_string());
        }
        let name = if i == 0 {
            name.trim_start_matches(BOM)
        } else {
            name
        };
        names.push(name.to_string());
    }
    Ok(names)
}

/// A header must name each column once, and a header of one column that
/// holds another usual delimiter is a file read with the wrong one.
fn check_names(names: &[String], dialect: CsvDialect) -> Result<(), (String, &'static str)> {
    if let [only] = names {
        let others = [b';', b'\t', b'|', b','];
        if let Some(d) = others
            .iter()
            .find(|&&d| d != dialect.delimiter && only.as_bytes().contains(&d))
        {
            let shown = if *d == b'\t' {
                "\\t".to_string()
            } else {
                (*d as char).to_string()
            };
            return Err((
                format!(
                    "its header is one column, {only:?}: the file seems to separate fields with `{shown}`"
                ),
                "set the table's `delimiter:` to the file's separator (`delimiter: \";\"`, or \"\\t\" for tabs)",
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n.as_str()) {
            return Err((
                format!("its header names the column {n:?} twice"),
                "each column of a CSV header needs its own name",
            ));
        }
    }
    Ok(())
}

/// Why a row cannot be read, before types.
enum BadRow {
    Width(usize, usize),
    Utf8(usize),
    Nul(usize),
    Large(usize, usize),
}

impl BadRow {
    fn code(&self) -> &'static str {
        match self {
            BadRow::Width(..) => unreadable::COLUMN_COUNT,
            BadRow::Utf8(_) => unreadable::INVALID_UTF8,
            BadRow::Nul(_) => unreadable::NUL_BYTE,
            BadRow::Large(..) => unreadable::VALUE_TOO_LARGE,
        }
    }

    fn column(&self) -> Option<usize> {
        match self {
            BadRow::Width(..) => None,
            BadRow::Utf8(c) | BadRow::Nul(c) | BadRow::Large(c, _) => Some(*c),
        }
    }

    fn reason(&self, names: &[String]) -> String {
        let name = |c: &usize| names.get(*c).map_or("?", String::as_str);
        match self {
            BadRow::Width(got, want) => format!(
                "the row has {got} field{}, the header {want}",
                if *got == 1 { "" } else { "s" }
            ),
            BadRow::Utf8(c) => format!("column `{}` is not valid UTF-8", name(c)),
            BadRow::Nul(c) => format!("column `{}` holds a NUL byte", name(c)),
            BadRow::Large(c, limit) => {
                format!(
                    "column `{}` holds a value over {limit} bytes (max_value_bytes)",
                    name(c)
                )
            }
        }
    }
}

/// Check a row's shape and bytes: the row's text (its fields, end to end)
/// when it passes, else its first fault by column. One UTF-8 check and one
/// NUL search cover the whole row; the field-by-field search runs only for
/// a row that fails.
fn check_row(
    record: &csv::ByteRecord,
    width: usize,
    max_value_bytes: usize,
) -> Result<&str, BadRow> {
    if record.len() != width {
        return Err(BadRow::Width(record.len(), width));
    }
    if let Ok(all) = std::str::from_utf8(record.as_slice()) {
        // A field is text when the whole row is and its ends fall on
        // character boundaries (bytes of one character split across two
        // fields are valid together, not apart).
        let fields_ok = (0..width).all(|i| {
            record.range(i).is_some_and(|r| {
                r.len() <= max_value_bytes
                    && all.is_char_boundary(r.start)
                    && all.is_char_boundary(r.end)
            })
        });
        if fields_ok && !all.as_bytes().contains(&0) {
            return Ok(all);
        }
    }
    Err(first_fault(record, max_value_bytes))
}

/// The first field at fault, by column.
fn first_fault(record: &csv::ByteRecord, max_value_bytes: usize) -> BadRow {
    for (c, field) in record.iter().enumerate() {
        if field.len() > max_value_bytes {
            return BadRow::Large(c, max_value_bytes);
        }
        if std::str::from_utf8(field).is_err() {
            return BadRow::Utf8(c);
        }
        if field.contains(&0) {
            return BadRow::Nul(c);
        }
    }
    BadRow::Utf8(0)
}

/// The values of a row that can be read, by column name.
fn readable_values(
    record: &csv::ByteRecord,
    names: &[String],
    max: usize,
) -> Vec<(String, String)> {
    names
        .iter()
        .zip(record.iter())
        .filter(|(_, f)| f.len() <= max.min(KEEP_VALUE_BYTES) && !f.contains(&0))
        .filter_map(|(n, f)| Some((n.clone(), std::str::from_utf8(f).ok()?.to_string())))
        .collect()
}

/// Reads the files of a CSV table.
#[derive(Debug)]
pub(crate) struct CsvReader {
    pub(crate) dialect: CsvDialect,
}

impl FileReader for CsvReader {
    fn read(&self, file: &FileToRead, out: &Out) -> Result<(), DataFusionError> {
        let f = File::open(&file.path).map_err(|e| file_error(file, e))?;
        let mut reader = self.dialect.reader(f);
        let mut record = csv::ByteRecord::new();
        let names: Vec<String> = file
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut batch = Pending::new(&file.schema);
        // The header was checked when the table was registered.
        if !reader
            .read_byte_record(&mut record)
            .map_err(|e| file_error(file, e))?
        {
            return Ok(());
        }
        loop {
            if !reader
                .read_byte_record(&mut record)
                .map_err(|e| file_error(file, e))?
            {
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            match check_row(&record, names.len(), file.max_value_bytes) {
                Ok(text) => batch.push(&record, text, line),
                Err(bad) => {
                    let mut row = UnreadableRow::new(&file.table, bad.code(), bad.reason(&names))
                        .in_file(&file.shown)
                        .at_line(line)
                        .with_values(readable_values(&record, &names, file.max_value_bytes));
                    if let Some(c) = bad.column().and_then(|c| names.get(c)) {
                        row = row.column(c);
                    }
                    if !out.set_aside(row) {
                        return Ok(());
                    }
                }
            }
            if batch.len() >= BATCH_ROWS && !batch.flush(file, out)? {
                return Ok(());
            }
        }
        batch.flush(file, out)?;
        Ok(())
    }
}

/// Rows read as text, waiting to become a batch.
struct Pending {
    schema: SchemaRef,
    columns: Vec<StringBuilder>,
    lines: Vec<u64>,
}

impl Pending {
    fn new(schema: &SchemaRef) -> Self {
        Pending {
            schema: schema.clone(),
            columns: schema
                .fields()
                .iter()
                .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16))
                .collect(),
            lines: Vec::with_capacity(BATCH_ROWS),
        }
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    /// Add a checked row: `text` is its fields end to end, each on
    /// character boundaries. An empty field is null.
    fn push(&mut self, record: &csv::ByteRecord, text: &str, line: u64) {
        for (i, builder) in self.columns.iter_mut().enumerate() {
            match record.range(i).and_then(|r| text.get(r)) {
                None | Some("") => builder.append_null(),
                Some(s) => builder.append_value(s),
            }
        }
        self.lines.push(line);
    }

    /// Convert the pending rows to their columns' types, set aside the rows
    /// with a value that does not convert, and send the rest. `false` when
    /// the query no longer wants rows.
    fn flush(&mut self, file: &FileToRead, out: &Out) -> Result<bool, DataFusionError> {
        if self.lines.is_empty() {
            return Ok(true);
        }
        let lines = std::mem::take(&mut self.lines);
        let text: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let safe = CastOptions {
            safe: true,
            format_options: FormatOptions::default(),
        };
        let mut typed = Vec::with_capacity(text.len());
        let mut faults = RowFaults::new(lines.len());
        for (c, (column, field)) in text.iter().zip(self.schema.fields()).enumerate() {
            if field.data_type() == &DataType::Utf8 {
                typed.push(column.clone());
                continue;
            }
            let cast = cast_with_options(column, field.data_type(), &safe)
                .map_err(|e| file_error(file, e))?;
            if cast.null_count() > column.null_count() {
                for r in 0..lines.len() {
                    if column.is_valid(r) && cast.is_null(r) {
                        faults.mark(r, c, unreadable::UNCASTABLE, || {
                            format!(
                                "column `{}` holds a value that is not {} (the type inferred from the table's first {INFER_ROWS} rows); list the column under text_columns to read it as text",
                                field.name(),
                                type_name(field.data_type())
                            )
                        });
                    }
                }
            }
            typed.push(cast);
        }
        let (batch, set_aside) = faults
            .split(&self.schema, typed, &text, |r| {
                UnreadableRow::new(&file.table, unreadable::UNCASTABLE, "")
                    .in_file(&file.shown)
                    .at_line(lines[r])
            })
            .map_err(|e| file_error(file, e))?;
        for row in set_aside {
            if !out.set_aside(row) {
                return Ok(false);
            }
        }
        Ok(out.batch(batch))
    }
}

/// A column type as a person reads it.
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int64 => "a whole number".to_string(),
        DataType::Float64 => "a number".to_string(),
        DataType::Boolean => "true or false".to_string(),
        DataType::Date32 => "a date (YYYY-MM-DD)".to_string(),
        DataType::Timestamp(..) => "a timestamp (YYYY-MM-DD HH:MM:SS)".to_string(),
        other => format!("of type {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&[u8]]) -> csv::ByteRecord {
        let mut r = csv::ByteRecord::new();
        for f in fields {
            r.push_field(f);
        }
        r
    }

    #[test]
    fn rows_are_checked_field_by_field() {
        assert_eq!(check_row(&record(&[b"a", b"b"]), 2, 10).ok(), Some("ab"));
        // One character's bytes split across two fields: invalid apart.
        assert!(matches!(
            check_row(&record(&[b"a\xc3", b"\xa9b"]), 2, 10),
            Err(BadRow::Utf8(0))
        ));
        // The first fault by column, whatever the kind.
        assert!(matches!(
            check_row(&record(&[b"a", b"0123456789x", b"\0"]), 3, 10),
            Err(BadRow::Large(1, 10))
        ));
        assert!(matches!(
            check_row(&record(&[b"a"]), 2, 10),
            Err(BadRow::Width(1, 2))
        ));
        assert!(matches!(
            check_row(&record(&[b"a", b"\xff"]), 2, 10),
            Err(BadRow::Utf8(1))
        ));
        assert!(matches!(
            check_row(&record(&[b"a\0", b"b"]), 2, 10),
            Err(BadRow::Nul(0))
        ));
        assert!(matches!(
            check_row(&record(&[b"a", b"0123456789x"]), 2, 10),
            Err(BadRow::Large(1, 10))
        ));
    }

    #[test]
    fn a_header_with_another_delimiter_is_named() {
        let semi = CsvDialect { delimiter: b',' };
        let (m, h) = check_names(&["id;email;name".into()], semi).expect_err("wrong delimiter");
        assert!(m.contains("`;`"), "{m}");
        assert!(h.contains("delimiter"), "{h}");
        assert!(check_names(&["email".into()], semi).is_ok());
        let (m, _) = check_names(&["a".into(), "a".into()], semi).expect_err("twice");
        assert!(m.contains("twice"), "{m}");
    }
}
