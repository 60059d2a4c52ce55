//! Parquet files read a batch at a time with the `parquet` crate's Arrow
//! reader, each value then checked on its own: a row whose value cannot be
//! cast to the table's column type, whose text or bytes are over the size
//! cap, or whose text holds a NUL is set aside with its row number (1-based
//! within the file). A file or row group the reader cannot decode fails the
//! export, naming the file: that is a broken file, not a bad row.

use std::fs::File;

use audex_core::{unreadable, RowFaults, UnreadableRow};
use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::FormatOptions;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::read_csv::BATCH_ROWS;
use crate::rows::{FileReader, FileToRead, Out};

/// Reads the files of a Parquet table.
#[derive(Debug)]
pub(crate) struct ParquetReader;

/// A file the Parquet reader cannot decode: not a bad row, a broken file.
fn corrupt(file: &FileToRead, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(
        audex_core::Error::new(
            audex_core::ErrorClass::Config,
            format!(
                "table `{}`: cannot read {} as parquet: {e}",
                file.table, file.shown
            ),
        )
        .with_hint("the file is damaged or not a Parquet file; write it again"),
    ))
}

impl FileReader for ParquetReader {
    fn read(&self, file: &FileToRead, out: &Out) -> Result<(), DataFusionError> {
        let f = File::open(&file.path).map_err(|e| crate::rows::file_error(file, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
            .map_err(|e| corrupt(file, e))?;
        let mut done = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(file, format!("{e} (after row {done})")))?;
            let n = batch.num_rows() as u64;
            if !conform(&batch, file, done, out)? {
                return Ok(());
            }
            done += n;
        }
        Ok(())
    }
}

/// Cast `batch` to the table's schema, set aside the rows with a value that
/// does not fit, and send the rest. `first` is the rows of the file before
/// this batch. `false` when the query no longer wants rows.
fn conform(
    batch: &RecordBatch,
    file: &FileToRead,
    first: u64,
    out: &Out,
) -> Result<bool, DataFusionError> {
    let n = batch.num_rows();
    let safe = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let mut faults = RowFaults::new(n);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(file.schema.fields().len());
    for (c, field) in file.schema.fields().iter().enumerate() {
        let Some(source) = batch.column_by_name(field.name()) else {
            // Not in this file: NULL in its rows.
            columns.push(new_null_array(field.data_type(), n));
            continue;
        };
        let column = if source.data_type() == field.data_type() {
            source.clone()
        } else {
            let cast = cast_with_options(source, field.data_type(), &safe)
                .map_err(|e| corrupt(file, format!("column `{}`: {e}", field.name())))?;
            if cast.null_count() > source.null_count() {
                for r in 0..n {
                    if source.is_valid(r) && cast.is_null(r) {
                        faults.mark(r, c, unreadable::UNCASTABLE, || {
                            format!(
                                "column `{}` holds a {} value that is not of the table's type {}",
                                field.name(),
                                source.data_type(),
                                field.data_type()
                            )
                        });
                    }
                }
            }
            cast
        };
        check_values(&column, c, field.name(), file.max_value_bytes, &mut faults);
        columns.push(column);
    }
    let (batch, set_aside) = faults
        .split(&file.schema, columns.clone(), &columns, |r| {
            UnreadableRow::new(&file.table, unreadable::UNCASTABLE, "")
                .in_file(&file.shown)
                .at_line(first + r as u64 + 1)
        })
        .map_err(|e| corrupt(file, e))?;
    for row in set_aside {
        if !out.set_aside(row) {
            return Ok(false);
        }
    }
    Ok(out.batch(batch))
}

/// Mark the rows whose text or bytes in `column` are over `max` bytes, or
/// whose text holds a NUL.
fn check_values(column: &ArrayRef, c: usize, name: &str, max: usize, faults: &mut RowFaults) {
    match column.data_type() {
        DataType::Utf8 => {
            for (r, v) in column.as_string::<i32>().iter().enumerate() {
                let Some(v) = v else { continue };
                if v.len() > max {
                    faults.mark(r, c, unreadable::VALUE_TOO_LARGE, || too_large(name, max));
                } else if v.contains('\0') {
                    faults.mark(r, c, unreadable::NUL_BYTE, || {
                        format!("column `{name}` holds a NUL byte")
                    });
                }
            }
        }
        DataType::Binary => {
            for (r, v) in column.as_binary::<i32>().iter().enumerate() {
                if v.is_some_and(|v| v.len() > max) {
                    faults.mark(r, c, unreadable::VALUE_TOO_LARGE, || too_large(name, max));
                }
            }
        }
        _ => {}
    }
}

fn too_large(name: &str, max: usize) -> String {
    format!("column `{name}` holds a value over {max} bytes (max_value_bytes)")
}
