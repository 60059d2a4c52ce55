//! DataFusion errors turned into audex errors with a class and a hint.

use audex_core::{Error, ErrorClass};
use datafusion::error::DataFusionError;

/// What went wrong while planning or running a segment's query.
pub(crate) fn query_error(segment: &str, e: DataFusionError) -> Error {
    let root = e.find_root();
    let (class, hint) = match root {
        DataFusionError::SQL(..) => (
            ErrorClass::Config,
            Some("check the SQL syntax of the segment's query"),
        ),
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => (
            ErrorClass::Config,
            Some("table names are the keys under `tables:`; `audex segments` lists the columns"),
        ),
        DataFusionError::NotImplemented(_) | DataFusionError::Configuration(_) => {
            (ErrorClass::Config, None)
        }
        DataFusionError::ArrowError(..) | DataFusionError::ParquetError(_) => (
            ErrorClass::Config,
            Some("a value in the file does not match the column type inferred from its first 10,000 rows; for a CSV table, list the column under `text_columns` to read it as text and reject bad values row by row"),
        ),
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => {
            (ErrorClass::Transient, None)
        }
        DataFusionError::ResourcesExhausted(_) => (ErrorClass::Internal, None),
        _ => (ErrorClass::Internal, None),
    };
    let err = Error::new(class, format!("{segment}: {}", describe(&e)));
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// DataFusion's message without its nested prefixes repeated.
pub(crate) fn describe(e: &DataFusionError) -> String {
    let text = e.find_root().to_string();
    text.trim().to_string()
}
