//! Reading a table's files row by row, so that a bad row is set aside and
//! the others go on.
//!
//! CSV and NDJSON tables are registered with DataFusion as streaming tables
//! of one partition per file ([`FilePartition`]); each partition reads its
//! file on a blocking thread and hands batches over a small channel. A row
//! the reader cannot read goes to the [`Sink`] of the segment's stream
//! instead (a DataFusion stream carries only batches), and
//! [`crate::source::FilesSource`]'s stream yields the sink's rows beside
//! the query's batches. Such a row never reaches the segment's query.
//!
//! The sink is bounded: a reader that has set aside [`HIGH_WATER`] rows
//! waits until the segment's stream has taken them, so a file of nothing
//! but bad rows cannot fill memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use audex_core::UnreadableRow;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use tokio::sync::{mpsc, Notify};

/// Rows the sink holds before a reader waits for them to be taken.
pub(crate) const HIGH_WATER: usize = 4096;
/// Batches a reader may have read ahead of the query.
const READ_AHEAD: usize = 1;
/// How often a waiting reader checks that its stream is still wanted.
const RECHECK: Duration = Duration::from_millis(100);

/// The rows set aside while one segment's stream runs, shared by every
/// partition that stream reads.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    rows: Mutex<Vec<UnreadableRow>>,
    /// Signalled when the stream took the rows.
    taken: Condvar,
    /// Signalled when the rows reach [`HIGH_WATER`].
    pub(crate) full: Notify,
    /// The stream is gone: readers stop waiting.
    closed: AtomicBool,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Vec<UnreadableRow>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Set `row` aside; waits while the sink is full. `false` when the
    /// stream is gone and the reader should stop.
    pub(crate) fn push(&self, row: UnreadableRow) -> bool {
        let mut rows = self.lock();
        rows.push(row);
        while rows.len() >= HIGH_WATER {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            self.full.notify_one();
            rows = self
                .taken
                .wait_timeout(rows, RECHECK)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        !self.closed.load(Ordering::Acquire)
    }

    /// Everything set aside so far.
    pub(crate) fn take(&self) -> Vec<UnreadableRow> {
        let rows = std::mem::take(&mut *self.lock());
        self.taken.notify_all();
        rows
    }

    /// The stream is gone.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.taken.notify_all();
    }
}

/// Where one file's reader sends what it reads.
pub(crate) struct Out {
    tx: mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    /// `None` when nobody collects unreadable rows (a count): they are
    /// skipped.
    sink: Option<Arc<Sink>>,
}

impl Out {
    /// Hand a batch on; `false` when the query no longer wants rows.
    pub(crate) fn batch(&self, batch: RecordBatch) -> bool {
        batch.num_rows() == 0 || self.tx.blocking_send(Ok(batch)).is_ok()
    }

    /// Set a row aside; `false` when the query no longer wants rows.
    pub(crate) fn set_aside(&self, row: UnreadableRow) -> bool {
        match &self.sink {
            Some(sink) => sink.push(row),
            None => !self.tx.is_closed(),
        }
    }
}

/// How a file is read.
pub(crate) trait FileReader: std::fmt::Debug + Send + Sync + 'static {
    /// Read `file` to the end, sending batches of `schema` and setting bad
    /// rows aside. `Err` for what stops the whole file (it cannot be
    /// opened, a read fails).
    fn read(&self, file: &FileToRead, out: &Out) -> Result<(), DataFusionError>;
}

/// One file of a table.
#[derive(Clone, Debug)]
pub(crate) struct FileToRead {
    pub(crate) table: String,
    pub(crate) path: PathBuf,
    /// The path as reports show it (relative to the config's folder).
    pub(crate) shown: String,
    pub(crate) schema: SchemaRef,
    pub(crate) max_value_bytes: usize,
}

/// A file as one partition of a streaming table.
#[derive(Debug)]
pub(crate) struct FilePartition<R> {
    pub(crate) file: FileToRead,
    pub(crate) reader: Arc<R>,
}

impl<R: FileReader> PartitionStream for FilePartition<R> {
    fn schema(&self) -> &SchemaRef {
        &self.file.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let out = Out {
            tx,
            sink: ctx.session_config().get_extension::<Sink>(),
        };
        let file = self.file.clone();
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = reader.read(&file, &out) {
                let _ = out.tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.file.schema.clone(),
            stream,
        ))
    }
}

/// The error that stops a file, naming it.
pub(crate) fn file_error(file: &FileToRead, what: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(
        audex_core::Error::new(
            audex_core::ErrorClass::Transient,
            format!("table `{}`: reading {}: {what}", file.table, file.shown),
        )
        .with_hint("check that the file is readable and was not changed while audex read it"),
    ))
}
