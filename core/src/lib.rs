//! audex-core: the traits plugins implement (sources, destinations), the
//! registry they submit to, the config model, the mapping, the run engine and
//! the state store.
//!
//! Invariant: nothing in this crate talks to the network. Plugins do.

pub mod config;
pub mod destination;
pub mod engine;
pub mod error;
pub mod identity;
pub mod mapping;
pub mod record;
pub mod registry;
pub mod schedule;
pub mod secret;
pub mod settings;
pub mod source;
pub mod state;

pub use destination::{
    Capabilities, CheckResult, DailyReset, Destination, FieldSpec, FieldType, Limits, RateWindow,
};
pub use error::{ConfigError, Error, ErrorClass, Reaction, Result};
pub use identity::{EmailKey, KeyProblem, KeyRule};
pub use record::{
    FieldValue, ListId, Member, MemberId, MemberOutcome, Record, RecordKey, RecordOutcome,
    RecordView, Records, Refusal, Rejection, RemoteMember,
};
pub use registry::{
    BuildContext, DestinationConfig, DestinationPlugin, PluginKind, SourceConfig, SourcePlugin,
};
pub use secret::Secret;
pub use settings::{
    ExportEntry, ExportSettings, ExportSpec, ExportTarget, ExportUser, Exports, MirrorGuard, Mode,
    RunOn, TargetConfig,
};
pub use source::{
    fingerprint_digest, text_values, unreadable, RowFaults, SegmentQuery, SegmentSource,
    SegmentStream, SourceItem, UnreadableRow, DEFAULT_MAX_VALUE_BYTES, KEEP_VALUE_BYTES,
};

// Re-exported so plugins register without naming the crate themselves.
pub use inventory;
