//! The source trait: where segments of profiles come from.

use std::fmt;
use std::pin::Pin;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::{Stream, StreamExt};

use crate::error::Result;

pub mod unreadable;

pub use unreadable::{text_values, RowFault, RowFaults, UnreadableRow, KEEP_VALUE_BYTES};

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

impl SourceItem {
    /// The batch, for callers that only want rows.
    pub fn into_rows(self) -> Option<RecordBatch> {
        match self {
            SourceItem::Rows(b) => Some(b),
            SourceItem::Unreadable(_) => None,
        }
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
    fn digests_keep_part_boundaries() {
        let a = super::fingerprint_digest(["ab", "c"]);
        assert_eq!(a, super::fingerprint_digest(["ab", "c"]));
        assert_ne!(a, super::fingerprint_digest(["a", "bc"]));
        assert_eq!(a.len(), 64);
    }
}
