//! Planning one export: stream the segment, map, dedupe, enforce
//! `max_profiles`, and diff against the state store (or, with `--reconcile`,
//! against the list as the destination reports it). Nothing is written to
//! the destination or to the member state here.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::index::{flag, Inserted, SegmentIndex, MAX_ROWS};
use super::rejects::{RejectLine, RejectsFile, DUPLICATE_KEY};
use super::unreadable::UnreadableTally;
use super::{RunEvent, RunObserver, TargetExport};
use crate::destination::{Destination, Limits};
use crate::error::{Error, ErrorClass, Result};
use crate::identity::KeyRule;
use crate::mapping::FieldMapping;
use crate::record::{FieldValue, Member, MemberId, RecordKey};
use crate::settings::Mode;
use crate::source::{SourceItem, UnreadableRow};
use crate::state::{FieldsHash, MemberRow, StateStore};

/// What one export must do, in compact form.
#[derive(Debug)]
pub(crate) struct SegmentPlan {
    pub index: SegmentIndex,
    /// Rows the source returned.
    pub read: u64,
    /// Rows refused before sending (mapping, duplicates).
    pub rejected: u64,
    pub truncated_values: u64,
    /// Entries to upsert, in row order.
    pub to_upsert: Vec<u32>,
    /// Entries whose record is up to date but which are not in the list yet,
    /// with their id from the state store.
    pub to_add_known: Vec<(u32, MemberId)>,
    /// Members to remove: leavers (mirror mode), and strays with reconcile.
    pub to_remove: Vec<Member>,
    /// Members the list held before this run: confirmed in the state store,
    /// or as read back with reconcile.
    pub list_members: u64,
    /// With reconcile: the list's members as read back, for the state store.
    pub remote_members: Option<Vec<MemberRow>>,
    /// Calls spent while planning (reading the list back).
    pub calls: u64,
    /// Mirror mode: members not removed because a row with their key could
    /// not be read.
    pub held: u64,
    /// Records whose fields differ from those an earlier export of this run
    /// holds for the same key; the earlier export's fields stand.
    pub conflicts: u64,
    /// Rows whose key the destination refused for good on an earlier run
    /// (rejected without a call; flagged in the index).
    pub suppressed: u64,
}

impl SegmentPlan {
    /// Records to send that audex never sent to the destination before.
    pub(crate) fn new_records(&self) -> u64 {
        self.to_upsert
            .iter()
            .filter(|&&i| !self.index.entry(i).has(flag::HAS_RECORD))
            .count() as u64
    }

    pub(crate) fn to_add_count(&self) -> u64 {
        self.index
            .entries()
            .iter()
            .filter(|e| e.has(flag::NEEDS_ADD))
            .count() as u64
    }

    /// Calls the plan needs if every record is accepted: the floor.
    pub(crate) fn estimated_calls(&self, limits: &Limits) -> u64 {
        limits.estimate_calls(
            self.to_upsert.len() as u64,
            self.to_add_count(),
            self.to_remove.len() as u64,
        )
    }
}

/// Inputs of planning that do not change between exports of one run.
pub(crate) struct PlanContext<'a> {
    pub destination_name: &'a str,
    pub destination: &'a dyn Destination,
    /// The destination's rule for keys (the mapping's): held rows' keys
    /// and keys read back are normalised by it.
    pub key_rule: &'a dyn KeyRule,
    pub store: &'a StateStore,
    pub max_profiles: u64,
    pub full: bool,
    pub reconcile: bool,
    pub cancel: &'a CancellationToken,
    pub observer: Option<&'a dyn RunObserver>,
    /// With more than one export to the destination: the records an
    /// earlier export of this run holds, with the hash of its fields. The
    /// earliest export owns a record's fields for the run: a later export
    /// never upserts such a record again (it only sees to list membership),
    /// so two segments that disagree about one person's fields do not
    /// overwrite each other back and forth on every run.
    pub claimed: Option<&'a HashMap<String, FieldsHash>>,
    /// Whether this is a dry run (the state store holds no record an earlier
    /// export of the run would have written).
    pub dry_run: bool,
}

/// Plan one export. `Ok(None)` when cancelled.
pub(crate) async fn plan_segment(
    cx: &PlanContext<'_>,
    export: &TargetExport,
    mapper: &dyn FieldMapping,
    lookup_column: &str,
    rejects: &mut RejectsFile,
    tally: &mut UnreadableTally,
) -> Result<Option<SegmentPlan>> {
    let segment = export.spec.segment.as_str();
    let lookup_field = cx.destination.lookup_field().to_string();
    let lookup_at = mapper.fields().iter().position(|f| *f == lookup_field);
    let mut plan = SegmentPlan {
        index: SegmentIndex::new(mapper.fields()),
        read: 0,
        rejected: 0,
        truncated_values: 0,
        to_upsert: Vec::new(),
        to_add_known: Vec::new(),
        to_remove: Vec::new(),
        list_members: 0,
        remote_members: None,
        calls: 0,
        held: 0,
        conflicts: 0,
        suppressed: 0,
    };
    let list = export.spec.list().0.as_str();
    let mirror = export.spec.mode == Mode::Mirror;
    // Keys of rows the source could not read: in mirror mode their members
    // stay in the list for this run.
    let mut held: HashSet<String> = HashSet::new();

    // Row numbers are kept as u32 in the index; no real segment reaches
    // that, and max_profiles stops far sooner.
    let limit = cx.max_profiles.min(MAX_ROWS);
    let mut stream = export.source.stream(&export.query).await?;
    while let Some(item) = stream.next().await {
        if cx.cancel.is_cancelled() {
            return Ok(None);
        }
        let batch = match item? {
            SourceItem::Rows(batch) => batch,
            SourceItem::Unreadable(row) => {
                let key = row.value(lookup_column);
                if tally.note(&export.source_name, &row) {
                    write_unreadable(rejects, segment, lookup_column, &row)?;
                }
                if mirror {
                    if let Some(k) = key.and_then(|k| cx.key_rule.normalise(k).ok()) {
                        held.insert(k);
                    }
                }
                continue;
            }
        };
        let first_row = plan.read;
        plan.read += batch.num_rows() as u64;
        if plan.read > limit {
            // Read on, counting only, to say how large the segment is: the
            // query runs once.
            let mut size = plan.read;
            while let Some(batch) = stream.next().await {
                if cx.cancel.is_cancelled() {
                    return Ok(None);
                }
                if let SourceItem::Rows(batch) = batch? {
                    size += batch.num_rows() as u64;
                }
            }
            return Err(too_large(segment, size, limit));
        }
        let mapped = mapper.map_batch(&batch, first_row);
        plan.truncated_values += mapped.truncated_values;
        for r in &mapped.rejects {
            plan.rejected += 1;
            rejects.write(RejectLine {
                segment,
                row: Some(r.row),
                key: r.key.as_deref(),
                column: r.column.as_deref(),
                code: &r.code,
                message: &r.message,
                place: None,
            })?;
        }
        for (row, record) in &mapped.records {
            if let Inserted::Duplicate(first) = plan.index.insert(*row, record) {
                plan.rejected += 1;
                let first_row = plan.index.entry(first).row();
                let raw = match lookup_at.and_then(|at| record.values.get(at)) {
                    Some(FieldValue::Text(s)) => Some(s.as_str()),
                    _ => None,
                };
                let message = format!(
                    "the same {lookup_field} as row {} (the first row wins)",
                    first_row + 1
                );
                rejects.write(RejectLine {
                    segment,
                    row: Some(*row),
                    key: raw,
                    column: Some(lookup_column),
                    code: DUPLICATE_KEY,
                    message: &message,
                    place: None,
                })?;
            }
        }
        if let Some(o) = cx.observer {
            o.event(&RunEvent::RowsRead {
                segment,
                rows: plan.read,
            });
        }
    }
    drop(stream);
    tracing::debug!(
        segment,
        rows = plan.read,
        valid = plan.index.len(),
        held = held.len(),
        memory_bytes = plan.index.heap_bytes(),
        "segment read"
    );

    // Keys the destination refused for good are never sent to it again:
    // each is a rejected row, with the destination's reason.
    {
        let index = &plan.index;
        let mut found: Vec<(u32, String, String)> = Vec::new();
        cx.store
            .for_each_suppression(cx.destination_name, |key, code, message, since| {
                if let Some(i) = index.find(key) {
                    found.push((
                        i,
                        code.to_string(),
                        format!(
                            "{message} (refused for good on {since}; audex does not send it again)"
                        ),
                    ));
                }
            })?;
        for (i, code, message) in found {
            plan.index.entry_mut(i).flags |= flag::REJECTED;
            plan.suppressed += 1;
            rejects.write(RejectLine {
                segment,
                row: Some(plan.index.entry(i).row()),
                key: Some(plan.index.key(i)),
                column: None,
                code: &code,
                message: &message,
                place: None,
            })?;
        }
    }

    // Which keys the list holds: what the destination reports (reconcile),
    // or what it confirmed to us before.
    if cx.reconcile {
        let mut remote = Vec::new();
        let mut pages = cx.destination.read_members(export.spec.list());
        while let Some(page) = pages.next().await {
            plan.calls += 1;
            remote.extend(page?);
            if cx.cancel.is_cancelled() {
                return Ok(None);
            }
        }
        drop(pages);
        plan.list_members = remote.len() as u64;
        // Members the destination reports without our key: one pass over
        // the stored records finds them all.
        let unnamed: std::collections::HashSet<String> = remote
            .iter()
            .filter(|m| m.key.is_none())
            .map(|m| m.id.0.clone())
            .collect();
        let mut known = cx
            .store
            .keys_for_member_ids(cx.destination_name, &unnamed)?;
        // A list other tools fill too: only the members audex added are
        // its to remove.
        let ours: Option<HashSet<String>> = if cx.destination.capabilities().owns_lists {
            None
        } else {
            let mut ours = HashSet::new();
            cx.store
                .for_each_member(cx.destination_name, list, |key, _| {
                    ours.insert(key.to_string());
                })?;
            Some(ours)
        };
        let mut confirmed = Vec::new();
        let mut foreign = 0u64;
        for m in remote {
            let key = match m.key {
                Some(k) => Some(k.as_str().to_string()),
                None => known.remove(&m.id.0),
            };
            let found = key
                .as_deref()
                .and_then(|k| find_key(&plan.index, cx.key_rule, k));
            if let Some(i) = found {
                plan.index.entry_mut(i).flags |= flag::IN_LIST;
                confirmed.push(MemberRow {
                    key: plan.index.key(i).to_string(),
                    member_id: m.id.0,
                });
                continue;
            }
            // Not in the segment: a leaver or a stray, unless its row
            // could not be read.
            if key.as_deref().is_some_and(|k| held.contains(k)) {
                plan.held += 1;
                if let Some(k) = key {
                    confirmed.push(MemberRow {
                        key: k,
                        member_id: m.id.0,
                    });
                }
                continue;
            }
            if let Some(ours) = &ours {
                if !key.as_deref().is_some_and(|k| ours.contains(k)) {
                    foreign += 1;
                    continue;
                }
            }
            let key = match key {
                Some(k) => {
                    confirmed.push(MemberRow {
                        key: k.clone(),
                        member_id: m.id.0.clone(),
                    });
                    k
                }
                // Unknown to us and unnamed by the destination: the id
                // alone identifies it.
                None => format!("id:{}", m.id.0),
            };
            if mirror {
                plan.to_remove.push(Member {
                    key: RecordKey::new(key),
                    id: m.id,
                });
            }
        }
        if foreign > 0 {
            tracing::info!(
                segment,
                members = foreign,
                "left in the list: members audex did not add (the destination says other tools fill its lists)"
            );
        }
        plan.remote_members = Some(confirmed);
    } else {
        let index = &mut plan.index;
        let to_remove = &mut plan.to_remove;
        let members = &mut plan.list_members;
        let kept = &mut plan.held;
        cx.store
            .for_each_member(cx.destination_name, list, |key, id| {
                *members += 1;
                match index.find(key) {
                    Some(i) => index.entry_mut(i).flags |= flag::IN_LIST,
                    None if mirror && held.contains(key) => *kept += 1,
                    None if mirror => to_remove.push(Member {
                        key: RecordKey::new(key),
                        id: MemberId(id.to_string()),
                    }),
                    None => {}
                }
            })?;
    }

    // Which records changed since they were last sent. A record an earlier
    // export of this run holds is never sent again by this one.
    {
        let full = cx.full;
        let claimed = cx.claimed;
        let index = &mut plan.index;
        let to_add_known = &mut plan.to_add_known;
        let conflicts = &mut plan.conflicts;
        cx.store
            .for_each_record(cx.destination_name, |key, id, hash| {
                let Some(i) = index.find(key) else { return };
                let e = index.entry_mut(i);
                if e.has(flag::REJECTED) {
                    return;
                }
                e.flags |= flag::HAS_RECORD;
                let earlier = claimed.and_then(|c| c.get(key));
                if let Some(earlier) = earlier {
                    if *earlier != e.hash {
                        *conflicts += 1;
                    }
                }
                if earlier.is_none() && (full || e.hash != *hash) {
                    e.flags |= flag::NEEDS_UPSERT;
                } else if full || !e.has(flag::IN_LIST) {
                    to_add_known.push((i, MemberId(id.to_string())));
                }
            })?;
    }
    for e in plan.index.entries_mut() {
        if e.has(flag::REJECTED) {
            continue;
        }
        if !e.has(flag::HAS_RECORD) {
            e.flags |= flag::NEEDS_UPSERT;
        }
        if cx.full || !e.has(flag::IN_LIST) {
            e.flags |= flag::NEEDS_ADD;
        }
    }
    // A destination whose members join without a record first: nothing to
    // upsert, and a member's id is its key.
    if !cx.destination.capabilities().records_must_exist {
        for i in 0..plan.index.len() as u32 {
            let e = plan.index.entry_mut(i);
            let waiting =
                e.has(flag::NEEDS_ADD) && (!e.has(flag::HAS_RECORD) || e.has(flag::NEEDS_UPSERT));
            e.flags &= !flag::NEEDS_UPSERT;
            if waiting {
                let id = MemberId(plan.index.key(i).to_string());
                plan.to_add_known.push((i, id));
            }
        }
    }
    // A dry run wrote no records for the earlier exports: what they hold
    // counts as sent.
    if let (Some(claimed), true) = (cx.claimed, cx.dry_run) {
        for i in 0..plan.index.len() as u32 {
            let e = plan.index.entry(i);
            if e.has(flag::HAS_RECORD) || !e.has(flag::NEEDS_UPSERT) {
                continue;
            }
            if let Some(earlier) = claimed.get(plan.index.key(i)) {
                if *earlier != e.hash {
                    plan.conflicts += 1;
                }
                plan.index.entry_mut(i).flags &= !flag::NEEDS_UPSERT;
            }
        }
    }
    plan.to_upsert = (0..plan.index.len() as u32)
        .filter(|&i| plan.index.entry(i).has(flag::NEEDS_UPSERT))
        .collect();
    Ok(Some(plan))
}

/// One line of the rejects file for a row the source set aside.
fn write_unreadable(
    rejects: &mut RejectsFile,
    segment: &str,
    lookup_column: &str,
    row: &UnreadableRow,
) -> Result<()> {
    rejects.write(RejectLine {
        segment,
        row: None,
        key: row.value(lookup_column),
        column: row.column.as_deref(),
        code: row.code,
        message: &row.reason,
        place: Some((&row.table, row.file.as_deref(), row.line)),
    })
}

/// Look a key up as given, then as the mapping normalises lookup values
/// (the same rule), for destinations that report keys as stored.
fn find_key(index: &SegmentIndex, rule: &dyn KeyRule, key: &str) -> Option<u32> {
    index.find(key).or_else(|| {
        let norm = rule.normalise(key).ok()?;
        (norm != key).then(|| index.find(&norm)).flatten()
    })
}

/// The error for a segment of `size` rows, over `max_profiles`.
fn too_large(segment: &str, size: u64, max_profiles: u64) -> Error {
    Error::new(
        ErrorClass::Config,
        format!(
            "segment `{segment}` has {size} profiles, more than max_profiles ({max_profiles}); nothing of it was sent"
        ),
    )
    .with_hint("narrow the segment's query, or raise max_profiles if your contract allows it")
}
