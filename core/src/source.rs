//! The source trait: where segments of profiles come from.

use std::fmt;
use std::pin::Pin;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::{Stream, StreamExt};

use crate::error::Result;

/// A stream of record batches. Bounded in memory: a source yields batches as
/// it reads them and never holds a whole segment.
pub type RecordBatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

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

    /// Stream the segment's rows.
    async fn stream(&self, query: &SegmentQuery) -> Result<RecordBatchStream>;

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
        while let Some(batch) = stream.next().await {
            n += batch?.num_rows() as u64;
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
