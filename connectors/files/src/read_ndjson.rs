//! NDJSON files read line by line: each line must be one JSON object in
//! UTF-8, with no NUL and no string over the size cap, whose values fit the
//! table's column types. A line that fails is set aside with its number
//! and reason; the others are decoded by Arrow's JSON decoder a batch at a
//! time (and, when a batch fails, line by line to find the lines at fault).
//!
//! Column types are inferred as DataFusion infers them (Arrow's JSON
//! inference over the first [`INFER_ROWS`] readable lines).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use audex_core::{unreadable, UnreadableRow, KEEP_VALUE_BYTES};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use datafusion::error::DataFusionError;
use serde_json::{Map, Value};

use crate::read_csv::{NotReadable, BATCH_ROWS, INFER_ROWS};
use crate::rows::{file_error, FileReader, FileToRead, Out};

const BUFFER: usize = 1 << 20;
const NDJSON_HINT: &str = "the file must hold one JSON object per line";

/// A line that is not a readable object: code, reason, and the column at
/// fault when there is one.
struct BadLine {
    code: &'static str,
    reason: String,
    column: Option<String>,
    /// The line's readable values, when it is an object.
    values: Vec<(String, String)>,
}

impl BadLine {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        BadLine {
            code,
            reason: reason.into(),
            column: None,
            values: Vec::new(),
        }
    }
}

/// Parse and check one line.
fn check_line(line: &[u8], max_value_bytes: usize) -> Result<Map<String, Value>, BadLine> {
    if std::str::from_utf8(line).is_err() {
        return Err(BadLine::new(
            unreadable::INVALID_UTF8,
            "the line is not valid UTF-8",
        ));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        BadLine::new(
            unreadable::MALFORMED,
            format!("the line is not well-formed JSON: {e}"),
        )
    })?;
    let Value::Object(object) = value else {
        return Err(BadLine::new(
            unreadable::MALFORMED,
            "the line is JSON but not an object",
        ));
    };
    for (key, v) in &object {
        if let Some(code) = bad_strings(v, max_value_bytes) {
            let reason = match code {
                c if c == unreadable::NUL_BYTE => format!("`{key}` holds a NUL character"),
                _ => {
                    format!("`{key}` holds a value over {max_value_bytes} bytes (max_value_bytes)")
                }
            };
            return Err(BadLine {
                code,
                reason,
                column: Some(key.clone()),
                values: values(&object),
            });
        }
    }
    Ok(object)
}

/// A string (or key) under `v` that is too long or holds a NUL.
fn bad_strings(v: &Value, max: usize) -> Option<&'static str> {
    let text = |s: &str| {
        if s.len() > max {
            Some(unreadable::VALUE_TOO_LARGE)
        } else if s.contains('\0') {
            Some(unreadable::NUL_BYTE)
        } else {
            None
        }
    };
    match v {
        Value::String(s) => text(s),
        Value::Array(items) => items.iter().find_map(|i| bad_strings(i, max)),
        Value::Object(o) => o
            .iter()
            .find_map(|(k, i)| text(k).or_else(|| bad_strings(i, max))),
        _ => None,
    }
}

/// The top-level scalar values of an object, as text.
fn values(object: &Map<String, Value>) -> Vec<(String, String)> {
    object
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            (text.len() <= KEEP_VALUE_BYTES).then(|| (k.clone(), text))
        })
        .collect()
}

/// Lines of a file, with their 1-based numbers; blank lines skipped.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    number: u64,
}

impl Lines {
    fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Lines {
            reader: BufReader::with_capacity(BUFFER, File::open(path)?),
            buf: Vec::new(),
            number: 0,
        })
    }

    /// The next non-blank line and its number.
    fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        loop {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.number += 1;
            let line = self.buf.trim_ascii();
            if !line.is_empty() {
                let start = self.buf.len() - self.buf.trim_ascii_start().len();
                let len = line.len();
                return Ok(Some((self.number, &self.buf[start..start + len])));
            }
        }
    }
}

/// The table's columns and types from the first readable lines of its
/// files.
pub(crate) fn infer(files: &[PathBuf], max_value_bytes: usize) -> Result<SchemaRef, NotReadable> {
    let mut sample: Vec<Value> = Vec::new();
    let mut first_bad: Option<(PathBuf, u64, String)> = None;
    let not = |path: &Path, message: String| NotReadable {
        file: Some(path.to_path_buf()),
        message,
        hint: NDJSON_HINT,
    };
    'files: for path in files {
        let mut lines = Lines::open(path).map_err(|e| not(path, format!("cannot open it: {e}")))?;
        while let Some((n, line)) = lines
            .next_line()
            .map_err(|e| not(path, format!("cannot read it: {e}")))?
        {
            match check_line(line, max_value_bytes) {
                Ok(object) => sample.push(Value::Object(object)),
                Err(bad) => {
                    if first_bad.is_none() {
                        first_bad = Some((path.clone(), n, bad.reason));
                    }
                }
            }
            if sample.len() >= INFER_ROWS {
                break 'files;
            }
        }
    }
    if sample.is_empty() {
        if let Some((file, line, reason)) = first_bad {
            return Err(not(
                &file,
                format!("no line could be read (line {line}: {reason})"),
            ));
        }
        return Ok(Arc::new(Schema::empty()));
    }
    let schema =
        infer_json_schema_from_iterator(sample.iter().map(Ok)).map_err(|e| NotReadable {
            file: None,
            message: e.to_string(),
            hint: NDJSON_HINT,
        })?;
    Ok(Arc::new(schema))
}

/// Reads the files of an NDJSON table.
#[derive(Debug)]
pub(crate) struct NdjsonReader;

impl FileReader for NdjsonReader {
    fn read(&self, file: &FileToRead, out: &Out) -> Result<(), DataFusionError> {
        let mut lines = Lines::open(&file.path).map_err(|e| file_error(file, e))?;
        let mut chunk = Chunk::default();
        while let Some((n, line)) = lines.next_line().map_err(|e| file_error(file, e))? {
            match check_line(line, file.max_value_bytes) {
                Ok(_) => chunk.push(n, line),
                Err(bad) => {
                    let mut row = UnreadableRow::new(&file.table, bad.code, bad.reason)
                        .in_file(&file.shown)
                        .at_line(n)
                        .with_values(bad.values);
                    if let Some(c) = bad.column {
                        row = row.column(c);
                    }
                    if !out.set_aside(row) {
                        return Ok(());
                    }
                }
            }
            if chunk.lines.len() >= BATCH_ROWS && !chunk.flush(file, out)? {
                return Ok(());
            }
        }
        chunk.flush(file, out)?;
        Ok(())
    }
}

/// A checked line: its number and where it is in the chunk's bytes.
struct Line {
    number: u64,
    start: usize,
    end: usize,
}

/// Checked lines waiting to be decoded.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<Line>,
}

impl Chunk {
    fn push(&mut self, n: u64, line: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.lines.push(Line {
            number: n,
            start,
            end: self.bytes.len(),
        });
        self.bytes.push(b'\n');
    }

    /// Decode the chunk and send it; lines Arrow cannot decode as the
    /// table's types are set aside. `false` when the query no longer wants
    /// rows.
    fn flush(&mut self, file: &FileToRead, out: &Out) -> Result<bool, DataFusionError> {
        if self.lines.is_empty() {
            return Ok(true);
        }
        let bytes = std::mem::take(&mut self.bytes);
        let lines = std::mem::take(&mut self.lines);
        if let Ok(Some(batch)) = decode(&file.schema, &bytes) {
            return Ok(out.batch(batch));
        }
        // Some line does not fit: decode each alone.
        let mut good = Vec::with_capacity(lines.len());
        for Line {
            number: n,
            start,
            end,
        } in lines
        {
            let line = &bytes[start..end];
            match decode(&file.schema, line) {
                Ok(Some(batch)) => good.push(batch),
                Ok(None) => {}
                Err(e) => {
                    let row = UnreadableRow::new(
                        &file.table,
                        unreadable::UNCASTABLE,
                        format!(
                            "a value does not fit its column's type (inferred from the table's first {INFER_ROWS} lines): {e}"
                        ),
                    )
                    .in_file(&file.shown)
                    .at_line(n)
                    // Parsed again only here: a line that decodes needs
                    // none of its values as text.
                    .with_values(
                        serde_json::from_slice::<Map<String, Value>>(line)
                            .map(|o| values(&o))
                            .unwrap_or_default(),
                    );
                    if !out.set_aside(row) {
                        return Ok(false);
                    }
                }
            }
        }
        let batch = concat_batches(&file.schema, &good).map_err(|e| file_error(file, e))?;
        Ok(out.batch(batch))
    }
}

fn decode(
    schema: &SchemaRef,
    bytes: &[u8],
) -> Result<Option<RecordBatch>, datafusion::arrow::error::ArrowError> {
    // A number or boolean in a text column is read as its text.
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_coerce_primitive(true)
        .with_batch_size(BATCH_ROWS.max(1) + 1)
        .build_decoder()?;
    let mut rest = bytes;
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    decoder.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked_before_decoding() {
        assert!(check_line(br#"{"email":"a@x.com"}"#, 100).is_ok());
        let code = |line: &[u8]| check_line(line, 10).err().map(|b| b.code);
        assert_eq!(code(b"{\"a\": \"\xff\"}"), Some(unreadable::INVALID_UTF8));
        assert_eq!(code(br#"{"a": 1"#), Some(unreadable::MALFORMED));
        assert_eq!(code(br#"[1, 2]"#), Some(unreadable::MALFORMED));
        assert_eq!(code(br#"{"a": "x\u0000y"}"#), Some(unreadable::NUL_BYTE));
        assert_eq!(
            code(br#"{"a": {"b": ["0123456789x"]}}"#),
            Some(unreadable::VALUE_TOO_LARGE)
        );
    }
}
