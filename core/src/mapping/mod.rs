//! The field mapping: a source's Arrow rows into destination [`Record`]s, and
//! bad rows into [`RowReject`]s with a reason.
//!
//! Pure logic, no IO. [`Mapper`] checks the mapping against the segment's
//! schema and the destination's fields once, before any write, then maps
//! batch after batch.

use std::fmt;

use arrow_array::RecordBatch;

use crate::record::Record;

mod column;
mod mapper;
mod value;

#[cfg(test)]
mod tests;

pub use mapper::Mapper;

/// Reject code: a value cannot be converted to its field's type.
pub const INVALID_VALUE: &str = "invalid_value";
/// Reject code: a mapped column is absent from a batch (the source changed
/// its columns mid-stream).
pub const MISSING_COLUMN: &str = "missing_column";

/// Turns a segment's rows into destination records. [`Mapper`] is the
/// built-in implementation; a plugin may supply its own.
pub trait FieldMapping: Send + Sync + fmt::Debug {
    /// The destination fields every record carries, lookup field first,
    /// in a stable order: the order of each [`Record`]'s values.
    fn fields(&self) -> &[String];

    /// Map one batch; rows are numbered from `first_row` (the 0-based
    /// position of the batch's first row in the segment). Every row ends up
    /// exactly once in either `records` or `rejects`.
    fn map_batch(&self, batch: &RecordBatch, first_row: u64) -> MappedBatch;
}

/// The outcome of mapping one batch.
#[derive(Debug, Default)]
pub struct MappedBatch {
    /// Each good row with its position in the segment, in input order.
    pub records: Vec<(u64, Record)>,
    /// Each bad row with its reason, in input order.
    pub rejects: Vec<RowReject>,
    /// Text values cut to their field's maximum length, in mapped rows.
    pub truncated_values: u64,
}

/// A row the mapping refused, and why.
#[derive(Clone, PartialEq, Eq)]
pub struct RowReject {
    /// 0-based position of the row in the segment.
    pub row: u64,
    /// The raw lookup value as given (untrimmed), when there was one. It is
    /// the user's own data, meant for the rejects file only: `Debug` hides it.
    pub key: Option<String>,
    /// The source column whose value was refused, when one was.
    pub column: Option<String>,
    /// A stable code: `missing_key`, `key_too_long`, the key rule's own
    /// (`invalid_email`), `invalid_value`, `missing_column`.
    pub code: String,
    /// Why, for a person. Never contains the value itself.
    pub message: String,
}

impl fmt::Debug for RowReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowReject")
            .field("row", &self.row)
            .field("key", &self.key.as_ref().map(|_| ".."))
            .field("column", &self.column)
            .field("code", &self.code)
            .field("message", &self.message)
            .finish()
    }
}
