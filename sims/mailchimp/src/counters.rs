//! What the simulator has seen: calls per operation, route and status,
//! problem titles, 429s, faults, per-record refusals, members carried, and
//! calls in flight.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::FaultKind;

/// A snapshot of what the simulator has seen. Also served at `GET /_sim/counters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Every `/3.0` call, refused ones included.
    pub total_calls: u64,
    /// Calls per operation (`put_member`, `batch_subscribe`, `batch_segment`,
    /// `get_segment_members`, …; `unknown` for unrouted paths).
    pub by_op: BTreeMap<String, u64>,
    /// Calls per method and path template, e.g. `POST /3.0/lists/{list_id}`.
    pub by_route: BTreeMap<String, u64>,
    /// Answers per HTTP status ("200", "400", "429", …).
    pub statuses: BTreeMap<String, u64>,
    /// Error answers per problem title ("API Key Invalid", "TooManyRequests", …).
    pub titles: BTreeMap<String, u64>,
    /// 429s from the concurrency limit or the window (faults not included).
    pub too_many_requests: u64,
    /// Faults injected, per kind (`http_429`, `slow`, `close_after`, …).
    pub faults: BTreeMap<String, u64>,
    /// Per-record refusals in batch answers and refused single writes, per
    /// kind (`compliance_state`, `forgotten_email`, `contact_exists`,
    /// `invalid_email`, `fake_email`, `merge_fields`, `duplicate`).
    pub record_errors: BTreeMap<String, u64>,
    /// Members carried, per operation.
    pub members: BTreeMap<String, u64>,
    /// Most calls in flight at once (refused ones included).
    pub max_in_flight: u64,
    /// Calls in flight now.
    pub in_flight: u64,
}

impl Counters {
    /// Calls of one operation.
    pub fn calls(&self, op: &str) -> u64 {
        self.by_op.get(op).copied().unwrap_or(0)
    }

    /// Answers with one HTTP status.
    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status.to_string()).copied().unwrap_or(0)
    }

    /// Injected faults of one kind.
    pub fn fault(&self, kind: FaultKind) -> u64 {
        self.faults.get(kind.name()).copied().unwrap_or(0)
    }

    /// Record refusals of one kind.
    pub fn record_error(&self, kind: &str) -> u64 {
        self.record_errors.get(kind).copied().unwrap_or(0)
    }
}
