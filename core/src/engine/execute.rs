//! Executing a plan: upserts, list adds and removals in batches, as many in
//! flight as the destination allows, so its rate limiter (not the latency of
//! one call) sets the pace. Each completed call is checkpointed in the state
//! store in one transaction before its rows count as done.
//!
//! Order: upserts first, each add batch as soon as enough upserted (or
//! already known) members wait for one, removals last; where the
//! destination takes adds and removes in one call, each add call carries
//! removals too, and only the removals left over wait for the end. Batch
//! sizes are the destination's, per operation. Records upserted once serve
//! every list of the destination: a later export finds them unchanged in
//! the state store and only adds them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::index::flag;
use super::plan::SegmentPlan;
use super::rejects::{RejectLine, RejectsFile};
use super::{CallKind, RunEvent, RunObserver};
use crate::destination::{Destination, Limits};
use crate::error::{Error, ErrorClass, Reaction, Result};
use crate::record::{
    ListId, Member, MemberId, MemberOutcome, RecordKey, RecordOutcome, Records, Refusal, Rejection,
};
use crate::state::{Checkpoint, MemberRow, StateStore, StoredRecord, Suppression};

/// After this many whole-call failures in a row (each already retried by
/// the destination), the destination is taken to be down and the run stops.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

/// A call that failed with a retryable class (see [`Reaction::Retry`]) is
/// made again after each of these pauses; the destination has usually
/// retried within the call already, so the engine waits longer.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(20)];

/// The reject code of rows whose whole call the destination refused.
pub const CALL_REJECTED: &str = "call_rejected";

/// A per-call lookup by key: foldhash, as in the planning index.
type ByKey<'a, T> = std::collections::HashMap<&'a str, &'a T, foldhash::fast::RandomState>;

/// The error for records of a call the destination answered without an
/// outcome, or asked to send again later: not a success. Their rows count
/// as failed and the next run sends them again.
fn unfinished(missing: usize, later: Option<(usize, &Rejection)>, total: usize) -> Option<Error> {
    let mut parts = Vec::new();
    if missing > 0 {
        parts.push(format!(
            "returned no outcome for {missing} of the {total} records of a call"
        ));
    }
    if let Some((n, r)) = later {
        parts.push(format!(
            "asked to send {n} of the {total} records of a call again later ({}: {})",
            r.code, r.message
        ));
    }
    (!parts.is_empty()).then(|| {
        Error::new(
            ErrorClass::Transient,
            format!("the destination {}", parts.join(", and ")),
        )
    })
}

/// Per-record tally of a call's outcomes the run cannot count as done.
#[derive(Default)]
struct Unfinished {
    missing: usize,
    later: usize,
    /// The first "retry later" refusal, for the message.
    first_later: Option<Rejection>,
}

impl Unfinished {
    fn later(&mut self, r: &Rejection) {
        self.later += 1;
        if self.first_later.is_none() {
            self.first_later = Some(r.clone());
        }
    }

    fn error(&self, total: usize) -> Option<Error> {
        unfinished(
            self.missing,
            self.first_later.as_ref().map(|r| (self.later, r)),
            total,
        )
    }
}

async fn backoff(attempt: usize) {
    if let Some(delay) = attempt.checked_sub(1).and_then(|i| RETRY_DELAYS.get(i)) {
        tokio::time::sleep(*delay).await;
    }
}

/// Why execution stopped before the plan was done.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Daily quota or call budget spent.
    Paused(Error),
    /// A fatal error (auth, state store, repeated failures).
    Failed(Error),
    /// The cancellation token fired.
    Interrupted,
}

#[derive(Debug, Default)]
pub(crate) struct ExecOutcome {
    pub calls: u64,
    pub added: u64,
    pub removed: u64,
    pub stop: Option<Stop>,
    /// Calls that failed as a whole without stopping the run.
    pub failed_calls: u64,
    /// Calls made again after a retryable failure.
    pub retried_calls: u64,
    pub last_error: Option<Error>,
}

pub(crate) struct Executor<'a> {
    pub destination_name: &'a str,
    pub segment: &'a str,
    pub list: &'a ListId,
    pub destination: Arc<dyn Destination>,
    pub store: &'a StateStore,
    pub limits: &'a Limits,
    pub concurrency: usize,
    pub cancel: &'a CancellationToken,
    pub observer: Option<&'a dyn RunObserver>,
    pub rejects: &'a mut RejectsFile,
}

type Call = Pin<Box<dyn Future<Output = Done> + Send>>;

/// A finished call: which attempt it was (0 the first) and its work.
struct Done {
    attempt: usize,
    work: Work,
}

/// What to do with a finished call.
enum Next {
    /// Make it again (a retryable failure with attempts left).
    Again(Call),
    /// Record its outcome.
    Record(Done),
}

enum Work {
    Upsert {
        batch: Vec<u32>,
        result: Result<Vec<RecordOutcome>>,
    },
    /// Adds, and removals with them where the destination takes both in
    /// one call.
    Change {
        adds: Vec<(u32, MemberId)>,
        removes: Vec<Member>,
        result: Result<Vec<MemberOutcome>>,
    },
    Remove {
        batch: Vec<Member>,
        result: Result<Vec<MemberOutcome>>,
    },
}

impl Executor<'_> {
    pub(crate) async fn run(&mut self, plan: &mut SegmentPlan) -> ExecOutcome {
        let mut out = ExecOutcome::default();
        let (upsert_batch, add_batch, remove_batch) = (
            self.limits.upsert_batch.max(1),
            self.limits.add_batch.max(1),
            self.limits.remove_batch.max(1),
        );
        let together = self.limits.adds_with_removes;
        let mut upserts = std::mem::take(&mut plan.to_upsert).into_iter();
        let mut add_queue: Vec<(u32, MemberId)> = std::mem::take(&mut plan.to_add_known);
        let mut removes = std::mem::take(&mut plan.to_remove).into_iter();
        let mut in_flight: FuturesUnordered<Call> = FuturesUnordered::new();
        let (mut upserts_in_flight, mut adds_in_flight) = (0usize, 0usize);
        let mut upserts_left = !upserts.as_slice().is_empty();
        let mut consecutive_failures = 0u32;
        let mut stopping = false;

        loop {
            // An observer may cancel while a completion is handled; look
            // before scheduling more.
            if !stopping && self.cancel.is_cancelled() {
                stopping = true;
                out.stop.get_or_insert(Stop::Interrupted);
            }
            while !stopping && in_flight.len() < self.concurrency {
                let upserts_done = !upserts_left && upserts_in_flight == 0;
                if add_queue.len() >= add_batch || (upserts_done && !add_queue.is_empty()) {
                    let n = add_queue.len().min(add_batch);
                    let adds: Vec<(u32, MemberId)> = add_queue.drain(..n).collect();
                    let removes: Vec<Member> = if together {
                        removes.by_ref().take(remove_batch).collect()
                    } else {
                        Vec::new()
                    };
                    in_flight.push(self.change_call(plan, adds, removes, 0));
                    adds_in_flight += 1;
                } else if upserts_left {
                    let items: Vec<u32> = upserts.by_ref().take(upsert_batch).collect();
                    upserts_left = !upserts.as_slice().is_empty();
                    if items.is_empty() {
                        continue;
                    }
                    in_flight.push(self.upsert_call(plan, items, 0));
                    upserts_in_flight += 1;
                } else if upserts_done && adds_in_flight == 0 && !removes.as_slice().is_empty() {
                    let items: Vec<Member> = removes.by_ref().take(remove_batch).collect();
                    in_flight.push(self.remove_call(items, 0));
                } else {
                    break;
                }
                out.calls += 1;
            }
            if in_flight.is_empty() {
                break;
            }
            let done = tokio::select! {
                biased;
                done = in_flight.next() => done,
                _ = self.cancel.cancelled(), if !stopping => {
                    tracing::info!(segment = self.segment, in_flight = in_flight.len(),
                        "interrupted: finishing the calls in flight");
                    stopping = true;
                    out.stop.get_or_insert(Stop::Interrupted);
                    continue;
                }
            };
            let Some(done) = done else { break };
            let done = match self.again(plan, done, stopping) {
                Next::Again(call) => {
                    in_flight.push(call);
                    out.calls += 1;
                    out.retried_calls += 1;
                    continue;
                }
                Next::Record(done) => done,
            };
            let (kind, records, call_error) = match done.work {
                Work::Upsert { batch, result } => {
                    upserts_in_flight -= 1;
                    let n = batch.len();
                    let r = self.on_upsert(plan, batch, result, &mut add_queue);
                    (CallKind::Upsert, n, r)
                }
                Work::Change {
                    adds,
                    removes,
                    result,
                } => {
                    adds_in_flight -= 1;
                    let n = adds.len() + removes.len();
                    let r = self.on_change(plan, &adds, &removes, result, &mut out);
                    (CallKind::Add, n, r)
                }
                Work::Remove { batch, result } => {
                    let n = batch.len();
                    let r = self.on_remove(batch, result, &mut out);
                    (CallKind::Remove, n, r)
                }
            };
            if let Some(o) = self.observer {
                o.event(&RunEvent::CallFinished {
                    segment: self.segment,
                    kind,
                    records,
                    ok: call_error.is_none(),
                });
            }
            match call_error {
                None => consecutive_failures = 0,
                Some(e) => {
                    let stop = match e.class().reaction() {
                        Reaction::Pause => Some(Stop::Paused(e)),
                        Reaction::Fail => Some(Stop::Failed(e)),
                        // Its rows are in the rejects file; the destination
                        // answered, so this is not an outage.
                        Reaction::Reject => {
                            tracing::warn!(segment = self.segment, kind = kind.as_str(),
                                error = %e, "the destination refused a whole call; its rows are rejected");
                            None
                        }
                        _ => {
                            consecutive_failures += 1;
                            out.failed_calls += 1;
                            tracing::warn!(segment = self.segment, kind = kind.as_str(),
                                class = %e.class(), error = %e, "a call failed after retries");
                            if consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
                                Some(Stop::Failed(Error::new(
                                    e.class(),
                                    format!("{MAX_CONSECUTIVE_FAILURES} calls in a row failed; last: {}", e.message()),
                                )))
                            } else {
                                out.last_error = Some(e);
                                None
                            }
                        }
                    };
                    if let Some(stop) = stop {
                        if !stopping {
                            tracing::warn!(
                                segment = self.segment,
                                "stopping: finishing the calls in flight"
                            );
                        }
                        stopping = true;
                        // The first reason to stop is the one reported, but a
                        // spent quota outranks an interruption.
                        match (&out.stop, &stop) {
                            (None, _) | (Some(Stop::Interrupted), _) => out.stop = Some(stop),
                            _ => {}
                        }
                    }
                }
            }
        }
        out
    }

    /// A call to make again, when `done` failed with a retryable class and
    /// attempts are left; otherwise `done` back, to be recorded.
    fn again(&self, plan: &SegmentPlan, done: Done, stopping: bool) -> Next {
        let error = match &done.work {
            Work::Upsert { result: Err(e), .. }
            | Work::Change { result: Err(e), .. }
            | Work::Remove { result: Err(e), .. } => e,
            _ => return Next::Record(done),
        };
        if stopping
            || error.class().reaction() != Reaction::Retry
            || done.attempt >= RETRY_DELAYS.len()
        {
            return Next::Record(done);
        }
        let attempt = done.attempt + 1;
        tracing::warn!(segment = self.segment, class = %error.class(), error = %error, attempt,
            "a call failed; making it again after a pause");
        Next::Again(match done.work {
            Work::Upsert { batch, .. } => self.upsert_call(plan, batch, attempt),
            Work::Change { adds, removes, .. } => self.change_call(plan, adds, removes, attempt),
            Work::Remove { batch, .. } => self.remove_call(batch, attempt),
        })
    }

    fn upsert_call(&self, plan: &SegmentPlan, batch: Vec<u32>, attempt: usize) -> Call {
        let records = Records::new(
            Arc::clone(plan.index.fields()),
            batch.iter().map(|&i| plan.index.record(i)).collect(),
        );
        let dest = Arc::clone(&self.destination);
        Box::pin(async move {
            backoff(attempt).await;
            let result = dest.upsert(&records).await;
            Done {
                attempt,
                work: Work::Upsert { batch, result },
            }
        })
    }

    fn change_call(
        &self,
        plan: &SegmentPlan,
        adds: Vec<(u32, MemberId)>,
        removes: Vec<Member>,
        attempt: usize,
    ) -> Call {
        let members: Vec<Member> = adds
            .iter()
            .map(|(i, id)| Member {
                key: RecordKey::new(plan.index.key(*i)),
                id: id.clone(),
            })
            .collect();
        let dest = Arc::clone(&self.destination);
        let list = self.list.clone();
        Box::pin(async move {
            backoff(attempt).await;
            let result = if removes.is_empty() {
                dest.add_members(&list, &members).await
            } else {
                dest.change_members(&list, &members, &removes).await
            };
            Done {
                attempt,
                work: Work::Change {
                    adds,
                    removes,
                    result,
                },
            }
        })
    }

    fn remove_call(&self, batch: Vec<Member>, attempt: usize) -> Call {
        let dest = Arc::clone(&self.destination);
        let list = self.list.clone();
        Box::pin(async move {
            backoff(attempt).await;
            let result = dest.remove_members(&list, &batch).await;
            Done {
                attempt,
                work: Work::Remove { batch, result },
            }
        })
    }

    /// Write entry `i`'s row to the rejects file with `code` and `message`.
    fn reject(&mut self, plan: &SegmentPlan, i: u32, code: &str, message: &str) -> Result<()> {
        self.rejects.write(RejectLine {
            segment: self.segment,
            row: Some(plan.index.entry(i).row()),
            key: Some(plan.index.key(i)),
            column: None,
            code,
            message,
            place: None,
        })
    }

    /// Mark the rows of a call that ended in `e`: refused rows are rejected
    /// with its reason, rows of a call that reached the destination failed,
    /// and rows of a call refused for the quota (nothing sent) stay pending.
    fn call_failed(&mut self, plan: &mut SegmentPlan, rows: &[u32], e: &Error) -> Option<Error> {
        match e.class().reaction() {
            Reaction::Pause => {}
            Reaction::Reject => {
                for &i in rows {
                    plan.index.entry_mut(i).flags |= flag::REJECTED;
                    if let Err(w) = self.reject(plan, i, CALL_REJECTED, e.message()) {
                        return Some(w);
                    }
                }
            }
            _ => {
                for &i in rows {
                    plan.index.entry_mut(i).flags |= flag::FAILED;
                }
            }
        }
        None
    }

    /// Record an upsert's outcomes; returns the error of a failed call.
    fn on_upsert(
        &mut self,
        plan: &mut SegmentPlan,
        batch: Vec<u32>,
        result: Result<Vec<RecordOutcome>>,
        add_queue: &mut Vec<(u32, MemberId)>,
    ) -> Option<Error> {
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => return Some(self.call_failed(plan, &batch, &e).unwrap_or(e)),
        };
        let by_key: ByKey<'_, RecordOutcome> =
            outcomes.iter().map(|o| (o.key.as_str(), o)).collect();
        let mut cp = Checkpoint::default();
        let mut confirmed = Vec::new();
        let mut unfinished = Unfinished::default();
        for &i in &batch {
            let key = plan.index.key(i);
            match by_key.get(key).map(|o| &o.result) {
                Some(Ok(id)) => {
                    cp.save_records.push(StoredRecord {
                        key: key.to_string(),
                        member_id: id.0.clone(),
                        hash: plan.index.entry(i).hash,
                    });
                    confirmed.push((i, id.clone()));
                }
                Some(Err(rejection)) => {
                    if let Err(e) = self.refused(plan, i, rejection, &mut cp, &mut unfinished) {
                        return Some(e);
                    }
                }
                None => {
                    unfinished.missing += 1;
                    plan.index.entry_mut(i).flags |= flag::FAILED;
                }
            }
        }
        if let Err(e) = self
            .store
            .checkpoint(self.destination_name, &self.list.0, &cp)
        {
            for (i, _) in &confirmed {
                plan.index.entry_mut(*i).flags |= flag::FAILED;
            }
            return Some(e);
        }
        for (i, id) in confirmed {
            let e = plan.index.entry_mut(i);
            e.flags |= flag::UPSERTED;
            if e.has(flag::NEEDS_ADD) {
                add_queue.push((i, id));
            }
        }
        unfinished.error(batch.len())
    }

    /// Entry `i`'s record or membership refused: rejected with its reason
    /// (and, refused for good, kept as a suppression in `cp`), or, to be
    /// tried later, failed.
    fn refused(
        &mut self,
        plan: &mut SegmentPlan,
        i: u32,
        rejection: &Rejection,
        cp: &mut Checkpoint,
        unfinished: &mut Unfinished,
    ) -> Result<()> {
        match rejection.refusal {
            Refusal::RetryLater => {
                plan.index.entry_mut(i).flags |= flag::FAILED;
                unfinished.later(rejection);
                Ok(())
            }
            refusal => {
                if refusal == Refusal::ForGood {
                    cp.suppress.push(Suppression {
                        key: plan.index.key(i).to_string(),
                        code: rejection.code.clone(),
                        message: rejection.message.clone(),
                    });
                }
                plan.index.entry_mut(i).flags |= flag::REJECTED;
                self.reject(plan, i, &rejection.code, &rejection.message)
            }
        }
    }

    /// Record an add call's outcomes (with the removals it carried); returns
    /// the error of a failed call.
    fn on_change(
        &mut self,
        plan: &mut SegmentPlan,
        adds: &[(u32, MemberId)],
        removes: &[Member],
        result: Result<Vec<MemberOutcome>>,
        out: &mut ExecOutcome,
    ) -> Option<Error> {
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => {
                let rows: Vec<u32> = adds.iter().map(|(i, _)| *i).collect();
                if let Some(w) = self.call_failed(plan, &rows, &e) {
                    return Some(w);
                }
                if let Some(w) = self.removals_failed(removes, &e) {
                    return Some(w);
                }
                return Some(e);
            }
        };
        let by_key: ByKey<'_, MemberOutcome> =
            outcomes.iter().map(|o| (o.key.as_str(), o)).collect();
        let mut cp = Checkpoint::default();
        let mut confirmed = Vec::new();
        let mut unfinished = Unfinished::default();
        for (i, id) in adds {
            let key = plan.index.key(*i);
            match by_key.get(key).map(|o| &o.result) {
                Some(Ok(())) => {
                    cp.add_members.push(MemberRow {
                        key: key.to_string(),
                        member_id: id.0.clone(),
                    });
                    confirmed.push(*i);
                }
                Some(Err(rejection)) if rejection.refusal == Refusal::Invalid => {
                    // The record may be gone from the destination (deleted by
                    // hand): forget it so the next run upserts it again.
                    cp.forget_records.push(key.to_string());
                    plan.index.entry_mut(*i).flags |= flag::FAILED;
                    if let Err(e) = self.reject(plan, *i, &rejection.code, &rejection.message) {
                        return Some(e);
                    }
                }
                Some(Err(rejection)) => {
                    if let Err(e) = self.refused(plan, *i, rejection, &mut cp, &mut unfinished) {
                        return Some(e);
                    }
                }
                None => {
                    unfinished.missing += 1;
                    plan.index.entry_mut(*i).flags |= flag::FAILED;
                }
            }
        }
        let removed = match self.removals(removes, &by_key, &mut cp, &mut unfinished) {
            Ok(n) => n,
            Err(e) => return Some(e),
        };
        if let Err(e) = self
            .store
            .checkpoint(self.destination_name, &self.list.0, &cp)
        {
            for i in &confirmed {
                plan.index.entry_mut(*i).flags |= flag::FAILED;
            }
            return Some(e);
        }
        out.added += confirmed.len() as u64;
        out.removed += removed;
        for i in confirmed {
            plan.index.entry_mut(i).flags |= flag::ADDED;
        }
        unfinished.error(adds.len() + removes.len())
    }

    fn on_remove(
        &mut self,
        batch: Vec<Member>,
        result: Result<Vec<MemberOutcome>>,
        out: &mut ExecOutcome,
    ) -> Option<Error> {
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => return Some(self.removals_failed(&batch, &e).unwrap_or(e)),
        };
        let by_key: ByKey<'_, MemberOutcome> =
            outcomes.iter().map(|o| (o.key.as_str(), o)).collect();
        let mut cp = Checkpoint::default();
        let mut unfinished = Unfinished::default();
        let removed = match self.removals(&batch, &by_key, &mut cp, &mut unfinished) {
            Ok(n) => n,
            Err(e) => return Some(e),
        };
        if let Err(e) = self
            .store
            .checkpoint(self.destination_name, &self.list.0, &cp)
        {
            return Some(e);
        }
        out.removed += removed;
        unfinished.error(batch.len())
    }

    /// The outcomes of removals: confirmed ones go into `cp`; a refused one
    /// is reported and stays in the state store, so the next run removes it
    /// again. Returns how many were confirmed.
    fn removals(
        &mut self,
        batch: &[Member],
        by_key: &ByKey<'_, MemberOutcome>,
        cp: &mut Checkpoint,
        unfinished: &mut Unfinished,
    ) -> Result<u64> {
        let mut removed = 0;
        for m in batch {
            match by_key.get(m.key.as_str()).map(|o| &o.result) {
                Some(Ok(())) => {
                    cp.remove_members.push(m.key.as_str().to_string());
                    removed += 1;
                }
                Some(Err(rejection)) if rejection.refusal == Refusal::RetryLater => {
                    unfinished.later(rejection);
                }
                Some(Err(rejection)) => self.rejects.write(RejectLine {
                    segment: self.segment,
                    row: None,
                    key: Some(m.key.as_str()),
                    column: None,
                    code: &rejection.code,
                    message: &rejection.message,
                    place: None,
                })?,
                None => unfinished.missing += 1,
            }
        }
        Ok(removed)
    }

    /// Removals of a call that failed as a whole stay in the state store,
    /// so the next run removes them again; refused ones are reported.
    fn removals_failed(&mut self, batch: &[Member], e: &Error) -> Option<Error> {
        if e.class().reaction() != Reaction::Reject {
            return None;
        }
        for m in batch {
            if let Err(w) = self.rejects.write(RejectLine {
                segment: self.segment,
                row: None,
                key: Some(m.key.as_str()),
                column: None,
                code: CALL_REJECTED,
                message: e.message(),
                place: None,
            }) {
                return Some(w);
            }
        }
        None
    }
}
