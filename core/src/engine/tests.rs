//! Engine tests with in-process fakes of a source and a destination. The
//! end-to-end tests (real HTTP to the Marketo simulator, the CLI) live in
//! the workspace's `tests/run.rs`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::stream::BoxStream;
use proptest::prelude::*;

use super::*;
use crate::destination::{Capabilities, CheckResult, FieldSpec, FieldType, Limits};
use crate::error::ErrorClass;
use crate::record::{
    FieldValue, ListId, Member, MemberId, MemberOutcome, RecordOutcome, Records, Rejection,
    RemoteMember,
};
use crate::settings::{ExportSettings, ExportSpec, ExportTarget, ExportUser, Mode};
use crate::source::{unreadable, SegmentStream, SourceItem, UnreadableRow};

// ---------------------------------------------------------------- fakes

/// One row of a segment: (email, first name).
type FakeRow = (Option<String>, Option<String>);

#[derive(Debug, Clone)]
struct FakeSource {
    rows: Arc<Mutex<Vec<FakeRow>>>,
    /// Rows the source cannot read, yielded before the readable ones.
    unreadable: Arc<Mutex<Vec<UnreadableRow>>>,
    batch_rows: usize,
    /// Queries run: streams and counts.
    queries: Arc<AtomicUsize>,
}

impl FakeSource {
    fn new(rows: Vec<(Option<String>, Option<String>)>) -> Self {
        FakeSource {
            rows: Arc::new(Mutex::new(rows)),
            unreadable: Arc::new(Mutex::new(Vec::new())),
            batch_rows: 7,
            queries: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn emails(emails: &[String]) -> Self {
        Self::new(Self::rows_of(emails))
    }
    /// A row per email, named after it.
    fn rows_of(emails: &[String]) -> Vec<FakeRow> {
        emails
            .iter()
            .map(|e| (Some(e.clone()), Some(format!("n-{e}"))))
            .collect()
    }
    /// The segment becomes these emails, each named after it.
    fn set_emails(&self, emails: &[String]) {
        self.set(Self::rows_of(emails));
    }
    fn streams(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
    fn set(&self, rows: Vec<(Option<String>, Option<String>)>) {
        *self.rows.lock().unwrap() = rows;
    }
    fn batches(&self) -> Vec<RecordBatch> {
        let rows = self.rows.lock().unwrap().clone();
        rows.chunks(self.batch_rows.max(1))
            .map(|chunk| {
                let email: ArrayRef = Arc::new(StringArray::from(
                    chunk.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
                ));
                let name: ArrayRef = Arc::new(StringArray::from(
                    chunk.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
                ));
                RecordBatch::try_from_iter([("email", email), ("first_name", name)]).unwrap()
            })
            .collect()
    }
}

fn schema() -> SchemaRef {
    FakeSource::new(vec![(None, None)]).batches()[0].schema()
}

#[async_trait]
impl SegmentSource for FakeSource {
    async fn check(&self) -> Result<String> {
        Ok("in memory".into())
    }
    async fn schema(&self, _: &SegmentQuery) -> Result<SchemaRef> {
        Ok(schema())
    }
    async fn stream(&self, _: &SegmentQuery) -> Result<SegmentStream> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let unreadable = self.unreadable.lock().unwrap().clone();
        let items: Vec<Result<SourceItem>> = unreadable
            .into_iter()
            .map(|r| Ok(SourceItem::Unreadable(r)))
            .chain(self.batches().into_iter().map(|b| Ok(SourceItem::Rows(b))))
            .collect();
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

#[derive(Debug, Default)]
struct Remote {
    next_id: u64,
    /// key -> (id, fields)
    leads: HashMap<String, (u64, BTreeMap<String, FieldValue>)>,
    /// list -> member ids (a lead id, or the key where members join
    /// without a record).
    lists: HashMap<String, BTreeSet<String>>,
    /// (kind, records) of every call, in order.
    calls: Vec<(&'static str, usize)>,
    /// Calls allowed before the quota is spent.
    quota: Option<u64>,
    /// Keys whose upsert is refused.
    refuse: HashSet<String>,
    /// Every upserted key with how many times it was created.
    created: HashMap<String, u32>,
    /// The next calls of a kind fail with these classes, in order.
    faults: std::collections::VecDeque<(&'static str, ErrorClass)>,
    /// Keys the destination answers no outcome for.
    omit: HashSet<String>,
    /// Keys refused for good (a compliance state), on upsert and add.
    for_good: HashSet<String>,
    /// Keys whose upsert the destination asks to send again later.
    later: HashSet<String>,
    /// Other tools add members to the lists too.
    sharing: bool,
    /// Say how many records are new, as a notice.
    notice: bool,
}

#[derive(Debug)]
struct FakeDest {
    remote: Mutex<Remote>,
    limits: Limits,
    /// Members join only after their record is upserted.
    records_first: bool,
    latency: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeDest {
    fn new(batch_size: usize, concurrency: usize) -> Arc<Self> {
        Self::slow(batch_size, concurrency, Duration::from_millis(5))
    }
    fn slow(batch_size: usize, concurrency: usize, latency: Duration) -> Arc<Self> {
        Self::shaped(
            Limits::new(batch_size).with_max_concurrency(concurrency),
            true,
            latency,
        )
    }
    /// A destination with these limits, that needs records first or not.
    fn shaped(limits: Limits, records_first: bool, latency: Duration) -> Arc<Self> {
        Arc::new(FakeDest {
            remote: Mutex::new(Remote::default()),
            limits,
            records_first,
            latency,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }
    fn list(&self, list: &str) -> BTreeSet<String> {
        let r = self.remote.lock().unwrap();
        let by_id: HashMap<String, &String> = r
            .leads
            .iter()
            .map(|(k, (id, _))| (id.to_string(), k))
            .collect();
        r.lists
            .get(list)
            .into_iter()
            .flatten()
            .map(|id| by_id.get(id).map_or_else(|| id.clone(), |k| (*k).clone()))
            .collect()
    }
    /// Sizes of the calls of `kind`, in order.
    fn call_sizes(&self, kind: &str) -> Vec<usize> {
        self.remote
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.0 == kind)
            .map(|c| c.1)
            .collect()
    }
    fn calls(&self, kind: &str) -> usize {
        self.remote
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.0 == kind)
            .count()
    }
    fn total_calls(&self) -> usize {
        self.remote.lock().unwrap().calls.len()
    }
    /// Enter a call: count it, spend quota, track concurrency, wait.
    async fn enter(&self, kind: &'static str, n: usize) -> Result<()> {
        {
            let mut r = self.remote.lock().unwrap();
            let most = match kind {
                "upsert" => self.limits.upsert_batch,
                "add" => self.limits.add_batch,
                "remove" => self.limits.remove_batch,
                _ => self.limits.add_batch + self.limits.remove_batch,
            };
            assert!(n <= most, "{kind} of {n}");
            r.calls.push((kind, n));
            if r.faults.front().is_some_and(|f| f.0 == kind) {
                let (_, class) = r.faults.pop_front().unwrap();
                return Err(Error::new(class, format!("injected {class} fault")));
            }
            if let Some(q) = r.quota.as_mut() {
                if *q == 0 {
                    return Err(Error::quota_exhausted("daily quota reached"));
                }
                *q -= 1;
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl Destination for FakeDest {
    fn limits(&self) -> Limits {
        self.limits.clone()
    }
    fn capabilities(&self) -> Capabilities {
        let c = if self.records_first {
            Capabilities::new()
        } else {
            Capabilities::new().without_records_first()
        };
        if self.remote.lock().unwrap().sharing {
            c.sharing_lists()
        } else {
            c
        }
    }
    fn lookup_field(&self) -> &str {
        "email"
    }
    async fn check(&self, _: &[ListId], _: &[String]) -> Vec<CheckResult> {
        Vec::new()
    }
    fn notices(&self, list: &ListId, new_records: u64) -> Vec<String> {
        if self.remote.lock().unwrap().notice {
            vec![format!("{new_records} records are new to list {}", list.0)]
        } else {
            Vec::new()
        }
    }
    async fn fields(&self) -> Result<Vec<FieldSpec>> {
        self.remote.lock().unwrap().calls.push(("fields", 0));
        let spec = |name: &str, data_type| FieldSpec {
            name: name.into(),
            data_type,
            max_length: Some(255),
            writable: true,
        };
        Ok(vec![
            spec("email", FieldType::Email),
            spec("firstName", FieldType::String),
        ])
    }
    async fn upsert(&self, records: &Records) -> Result<Vec<RecordOutcome>> {
        self.enter("upsert", records.len()).await?;
        let mut r = self.remote.lock().unwrap();
        let mut out = Vec::new();
        for rec in records.iter() {
            let key = rec.key().as_str().to_string();
            if r.omit.contains(&key) {
                continue;
            }
            let refused = if r.refuse.contains(&key) {
                Some(Rejection::new("1003", "Invalid value"))
            } else if r.for_good.contains(&key) {
                Some(Rejection::for_good("compliance", "the person unsubscribed"))
            } else if r.later.contains(&key) {
                Some(Rejection::retry_later(
                    "throttled",
                    "too many changes to this record",
                ))
            } else {
                None
            };
            if let Some(rejection) = refused {
                out.push(RecordOutcome {
                    key: rec.key().clone(),
                    result: Err(rejection),
                });
                continue;
            }
            let id = match r.leads.get(&key) {
                Some((id, _)) => *id,
                None => {
                    r.next_id += 1;
                    *r.created.entry(key.clone()).or_default() += 1;
                    r.next_id
                }
            };
            let fields = rec
                .fields()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            r.leads.insert(key, (id, fields));
            out.push(RecordOutcome {
                key: rec.key().clone(),
                result: Ok(MemberId(id.to_string())),
            });
        }
        Ok(out)
    }
    async fn add_members(&self, list: &ListId, members: &[Member]) -> Result<Vec<MemberOutcome>> {
        self.enter("add", members.len()).await?;
        Ok(self.apply(list, members, &[]))
    }
    async fn remove_members(
        &self,
        list: &ListId,
        members: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        self.enter("remove", members.len()).await?;
        Ok(self.apply(list, &[], members))
    }
    async fn change_members(
        &self,
        list: &ListId,
        adds: &[Member],
        removes: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        assert!(self.limits.adds_with_removes, "not declared");
        assert!(adds.len() <= self.limits.add_batch && removes.len() <= self.limits.remove_batch);
        self.enter("change", adds.len() + removes.len()).await?;
        Ok(self.apply(list, adds, removes))
    }
    fn read_members<'a>(&'a self, list: &'a ListId) -> BoxStream<'a, Result<Vec<RemoteMember>>> {
        let r = self.remote.lock().unwrap();
        let ids = r.lists.get(&list.0).cloned().unwrap_or_default();
        let by_id: HashMap<String, String> = r
            .leads
            .iter()
            .map(|(k, (id, _))| (id.to_string(), k.clone()))
            .collect();
        let members: Vec<RemoteMember> = ids
            .iter()
            .map(|id| RemoteMember {
                id: MemberId(id.to_string()),
                key: by_id
                    .get(id)
                    .cloned()
                    .or_else(|| (!self.records_first).then(|| id.clone()))
                    .map(RecordKey::new),
            })
            .collect();
        let pages: Vec<Result<Vec<RemoteMember>>> = members
            .chunks(self.limits.add_batch)
            .map(|c| Ok(c.to_vec()))
            .collect();
        drop(r);
        Box::pin(futures::stream::iter(pages))
    }
}

impl FakeDest {
    /// Add and remove members of `list`; one outcome per member.
    fn apply(&self, list: &ListId, adds: &[Member], removes: &[Member]) -> Vec<MemberOutcome> {
        let mut r = self.remote.lock().unwrap();
        let known: HashSet<String> = r.leads.values().map(|(id, _)| id.to_string()).collect();
        let mut out = Vec::new();
        for m in adds {
            let key = m.key.as_str();
            if r.omit.contains(key) {
                continue;
            }
            let result = if r.for_good.contains(key) {
                Err(Rejection::for_good("compliance", "the person unsubscribed"))
            } else if !self.records_first || known.contains(&m.id.0) {
                r.lists
                    .entry(list.0.clone())
                    .or_default()
                    .insert(m.id.0.clone());
                Ok(())
            } else {
                Err(Rejection::new("1004", "Lead not found"))
            };
            out.push(MemberOutcome {
                key: m.key.clone(),
                result,
            });
        }
        for m in removes {
            if r.omit.contains(m.key.as_str()) {
                continue;
            }
            r.lists.entry(list.0.clone()).or_default().remove(&m.id.0);
            out.push(MemberOutcome {
                key: m.key.clone(),
                result: Ok(()),
            });
        }
        out
    }
}

use crate::record::RecordKey;

// ---------------------------------------------------------------- helpers

fn settings(mode: Mode) -> ExportSettings {
    ExportSettings {
        display_name: "Fake".into(),
        data_privacy_consent: true,
        export_user: ExportUser("ops@example.com".into()),
        mapping: [("email", "email"), ("firstName", "first_name")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        mode,
        max_profiles: 1_000_000,
        schedule: None,
        timezone: None,
        run_on: Default::default(),
        mirror_guard: Default::default(),
    }
}

fn target(dest: &Arc<FakeDest>, sources: &[(&str, u64, &FakeSource)], mode: Mode) -> Target {
    let settings = settings(mode);
    Target {
        name: "fake".into(),
        destination: dest.clone(),
        exports: sources
            .iter()
            .enumerate()
            .map(|(position, (s, l, src))| TargetExport {
                spec: ExportSpec {
                    position,
                    segment: s.to_string(),
                    target: list_target(*l),
                    mode,
                },
                source_name: "fake".into(),
                source: Arc::new((*src).clone()),
                query: SegmentQuery::Table("profiles".into()),
            })
            .collect(),
        settings,
    }
}

/// A list target, as a list-based destination would resolve it.
fn list_target(list: u64) -> ExportTarget {
    ExportTarget::new(
        ListId(list.to_string()),
        serde_json::Map::from_iter([("list_id".to_string(), list.into())]),
        format!("list {list}"),
    )
}

struct Env {
    _dir: tempfile::TempDir,
    store: StateStore,
    options: RunOptions,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("state.db")).unwrap();
    let options = RunOptions {
        rejects_dir: Some(dir.path().join("rejects")),
        ..RunOptions::default()
    };
    Env {
        _dir: dir,
        store,
        options,
    }
}

fn emails(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("user{n}@example.com")).collect()
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn rejects(report: &RunReport) -> Vec<Vec<String>> {
    let Some(path) = &report.rejects_file else {
        return Vec::new();
    };
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(start_paused = true)]
async fn first_run_fills_the_list_and_counts_add_up() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let mut rows: Vec<(Option<String>, Option<String>)> = emails(0..45)
        .into_iter()
        .map(|m| (Some(m), Some("Ann".into())))
        .collect();
    rows.push((Some("not-an-email".into()), Some("Bad".into())));
    rows.push((None, Some("Nobody".into())));
    // Same key after trimming and lowercasing: a duplicate of row 1.
    rows.push((Some("  USER0@Example.com ".into()), Some("Dup".into())));
    let src = FakeSource::new(rows);
    let t = target(&dest, &[("all", 1001, &src)], Mode::Mirror);

    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let s = &report.segments[0];
    assert_eq!(
        (
            s.read,
            s.rejected,
            s.upserted,
            s.unchanged,
            s.failed,
            s.added,
            s.removed
        ),
        (48, 3, 45, 0, 0, 45, 0)
    );
    assert!(s.adds_up());
    assert_eq!(dest.list("1001"), set(&emails(0..45)));
    // 5 upserts + 5 adds of 10, plus describe.
    assert_eq!(s.calls, 10);
    assert_eq!(report.calls_total, 11);
    assert_eq!(dest.total_calls(), 11);
    assert_eq!(dest.max_in_flight.load(Ordering::SeqCst), 3);

    let lines = rejects(&report);
    let codes: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l[1].as_str(), l[4].as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("46", "invalid_email"),
            ("47", "missing_key"),
            ("48", DUPLICATE_KEY)
        ]
    );
    assert!(lines[2][5].contains("row 1"), "{:?}", lines[2]);
    assert_eq!(e.store.record_count("fake").unwrap(), 45);
    assert_eq!(e.store.member_count("fake", "1001").unwrap(), 45);

    let history = e.store.run(report.run_id).unwrap().unwrap();
    assert_eq!(history.status, RunStatus::Succeeded);
    assert_eq!(history.export_user, "ops@example.com");
    assert_eq!(history.segments, report.segments);
}

#[tokio::test(start_paused = true)]
async fn later_runs_send_only_changes_and_mirror_removes_leavers() {
    let e = env();
    let dest = FakeDest::new(10, 4);
    let all = emails(0..100);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();

    // Nothing changed: only the describe call.
    let before = dest.total_calls();
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(dest.total_calls() - before, 1);
    assert_eq!(
        (
            r.segments[0].unchanged,
            r.segments[0].upserted,
            r.segments[0].calls
        ),
        (100, 0, 0)
    );

    // 3 changed, 2 gone, 4 new.
    let mut rows: Vec<(Option<String>, Option<String>)> = all[2..]
        .iter()
        .map(|m| (Some(m.clone()), Some(format!("n-{m}"))))
        .collect();
    for r in rows.iter_mut().take(3) {
        r.1 = Some("changed".into());
    }
    for m in emails(100..104) {
        rows.push((Some(m.clone()), Some("new".into())));
    }
    src.set(rows);
    let before = dest.remote.lock().unwrap().calls.len();
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    let s = &r.segments[0];
    assert_eq!(
        (
            s.read,
            s.upserted,
            s.unchanged,
            s.added,
            s.removed,
            s.failed
        ),
        (102, 7, 95, 4, 2, 0)
    );
    let calls: Vec<_> = dest.remote.lock().unwrap().calls[before..].to_vec();
    assert_eq!(
        calls,
        vec![("fields", 0), ("upsert", 7), ("add", 4), ("remove", 2)]
    );
    let mut expected = set(&all[2..]);
    expected.extend(emails(100..104));
    assert_eq!(dest.list("7"), expected);
    assert_eq!(
        dest.remote.lock().unwrap().leads["user5@example.com"].1["firstName"],
        FieldValue::Text("n-user5@example.com".into())
    );
    assert_eq!(
        dest.remote.lock().unwrap().leads["user2@example.com"].1["firstName"],
        FieldValue::Text("changed".into())
    );
}

#[tokio::test(start_paused = true)]
async fn append_mode_keeps_leavers() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    let src = FakeSource::emails(&emails(0..20));
    let t = target(&dest, &[("all", 7, &src)], Mode::Append);
    run_target(&t, &e.store, &e.options).await.unwrap();
    src.set(
        FakeSource::emails(&emails(5..25))
            .rows
            .lock()
            .unwrap()
            .clone(),
    );
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.segments[0].removed, 0);
    assert_eq!(r.segments[0].added, 5);
    assert_eq!(dest.list("7"), set(&emails(0..25)));
    assert_eq!(dest.calls("remove"), 0);
}

#[tokio::test(start_paused = true)]
async fn dry_run_writes_nothing_and_estimates_the_real_calls() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let src = FakeSource::emails(&emails(0..95));
    let other = FakeSource::emails(&emails(50..130));
    let t = target(&dest, &[("a", 1, &src), ("b", 2, &other)], Mode::Mirror);
    let dry = RunOptions {
        dry_run: true,
        ..e.options.clone()
    };
    let plan = run_target(&t, &e.store, &dry).await.unwrap();
    assert_eq!(plan.status, RunStatus::DryRun);
    assert_eq!(
        dest.calls("upsert") + dest.calls("add") + dest.calls("remove"),
        0
    );
    assert_eq!(e.store.record_count("fake").unwrap(), 0);
    // Segment b's first 45 rows are upserted by a: counted once.
    assert_eq!(plan.segments[1].upserted, 35);
    assert_eq!(plan.segments[1].added, 80);

    let real = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(real.status, RunStatus::Succeeded);
    assert_eq!(plan.calls_total, real.calls_total);
    for (p, r) in plan.segments.iter().zip(&real.segments) {
        assert_eq!(p, r);
    }
    // Records upserted once serve both lists.
    assert_eq!(dest.remote.lock().unwrap().leads.len(), 130);
    let upserted: usize = dest
        .remote
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.0 == "upsert")
        .map(|c| c.1)
        .sum();
    assert_eq!(upserted, 130);
    assert_eq!(dest.list("2"), set(&emails(50..130)));
}

#[tokio::test(start_paused = true)]
async fn a_segment_over_max_profiles_is_refused_before_any_write() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let src = FakeSource::emails(&emails(0..30));
    let mut t = target(&dest, &[("big", 1, &src)], Mode::Mirror);
    t.settings.max_profiles = 25;
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    let err = r.error.unwrap();
    assert_eq!(err.class, ErrorClass::Config);
    assert!(err.message.contains("`big`"), "{}", err.message);
    assert!(err.message.contains("30 profiles"), "{}", err.message);
    assert!(err.message.contains("max_profiles (25)"), "{}", err.message);
    assert_eq!(dest.calls("upsert") + dest.calls("add"), 0);

    // With two exports, each is held to the limit before any of its own
    // writes; the segment query runs once (no count before the stream).
    let small = FakeSource::emails(&emails(0..5));
    let mut t = target(
        &dest,
        &[("small", 1, &small), ("big", 2, &src)],
        Mode::Mirror,
    );
    t.settings.max_profiles = 25;
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.error.unwrap().message.contains("`big` has 30 profiles"));
    assert_eq!(dest.list("1").len(), 5);
    assert!(dest.list("2").is_empty());
    assert_eq!(src.streams(), 2, "one stream per run, no count");
}

#[tokio::test(start_paused = true)]
async fn a_spent_quota_pauses_and_the_next_run_resumes_without_resending() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    let all = emails(0..100);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 3, &src)], Mode::Mirror);
    dest.remote.lock().unwrap().quota = Some(7);
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Paused);
    assert_eq!(r.error.as_ref().unwrap().class, ErrorClass::QuotaExhausted);
    let s = &r.segments[0];
    assert!(s.adds_up(), "{s:?}");
    // The quota stopped the rest before it was sent: pending, not failed.
    assert_eq!(s.failed, 0, "{s:?}");
    assert!(s.pending > 0, "{s:?}");
    let upserted_first = dest
        .remote
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.0 == "upsert")
        .count();
    assert!(upserted_first > 0);

    dest.remote.lock().unwrap().quota = None;
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(dest.list("3"), set(&all));
    // Every record was created once, and upserts confirmed by the first run
    // were not sent again.
    let remote = dest.remote.lock().unwrap();
    assert!(remote.created.values().all(|&n| n == 1));
    let sent: usize = remote
        .calls
        .iter()
        .filter(|c| c.0 == "upsert")
        .map(|c| c.1)
        .sum();
    assert!(sent <= 100 + 2 * 10, "{sent}");
}

/// An observer that cancels the run after `after` finished calls.
struct CancelAfter {
    token: CancellationToken,
    after: usize,
    seen: AtomicUsize,
}

impl RunObserver for CancelAfter {
    fn event(&self, event: &RunEvent<'_>) {
        if let RunEvent::CallFinished { .. } = event {
            if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
                self.token.cancel();
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_finishes_in_flight_calls_and_ends_interrupted() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let all = emails(0..200);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 3, &src)], Mode::Mirror);
    let token = CancellationToken::new();
    let opts = RunOptions {
        cancel: token.clone(),
        observer: Some(Arc::new(CancelAfter {
            token,
            after: 4,
            seen: AtomicUsize::new(0),
        })),
        ..e.options.clone()
    };
    let r = run_target(&t, &e.store, &opts).await.unwrap();
    assert_eq!(r.status, RunStatus::Interrupted);
    assert!(r.segments[0].adds_up());
    // The 4th call ended with 2 still in flight; they finished and counted.
    assert_eq!(dest.total_calls(), 1 + 4 + 2);
    let stored = e.store.record_count("fake").unwrap();
    assert!(stored > 0 && stored < 200, "{stored}");

    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.segments[0].upserted, 200 - stored);
    assert_eq!(r.segments[0].unchanged, stored);
    assert_eq!(dest.list("3"), set(&all));
}

#[tokio::test(start_paused = true)]
async fn a_run_dropped_mid_flight_loses_nothing_on_rerun() {
    // Dropping the run's future is what a SIGKILL does to it: calls in flight
    // may have reached the destination, but their checkpoints never happen.
    for stop_after in [1usize, 3, 6, 9, 12] {
        let e = env();
        let dest = FakeDest::new(10, 3);
        let all = emails(0..60);
        let src = FakeSource::emails(&all);
        let t = target(&dest, &[("all", 3, &src)], Mode::Mirror);
        // Two leavers from an earlier run, so there are removals to cut into.
        run_target(
            &t_with(&dest, &FakeSource::emails(&emails(0..62))),
            &e.store,
            &e.options,
        )
        .await
        .unwrap();
        let start = dest.total_calls();
        let run = run_target(&t, &e.store, &e.options);
        tokio::pin!(run);
        loop {
            tokio::select! {
                _ = &mut run => break,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            if dest.total_calls() >= start + stop_after {
                break;
            }
        }
        #[allow(clippy::drop_non_drop)] // dropping the future abandons the run mid-flight
        drop(run);
        // The dropped run keeps the destination's lock under this (live)
        // process id; a killed process would be gone.
        e.store
            .lock()
            .execute("UPDATE destination_locks SET pid = -1", [])
            .unwrap();
        let r = run_target(&t, &e.store, &e.options).await.unwrap();
        assert_eq!(r.status, RunStatus::Succeeded, "stop after {stop_after}");
        assert_eq!(dest.list("3"), set(&all), "stop after {stop_after}");
        assert!(dest
            .remote
            .lock()
            .unwrap()
            .created
            .values()
            .all(|&n| n == 1));
    }
}

fn t_with(dest: &Arc<FakeDest>, src: &FakeSource) -> Target {
    target(dest, &[("all", 3, src)], Mode::Mirror)
}

#[tokio::test(start_paused = true)]
async fn reconcile_removes_strays_and_readds_members_removed_by_hand() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let all = emails(0..30);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 3, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();
    {
        let mut r = dest.remote.lock().unwrap();
        // A stray added by another tool, and a member removed by hand.
        r.leads
            .insert("stray@example.com".into(), (999, BTreeMap::new()));
        let list = r.lists.get_mut("3").unwrap();
        list.insert("999".to_string());
        let id = r.leads["user4@example.com"].0.to_string();
        r.lists.get_mut("3").unwrap().remove(&id);
    }
    // Without reconcile the engine trusts its state: nothing to do.
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!((r.segments[0].added, r.segments[0].removed), (0, 0));

    let opts = RunOptions {
        reconcile: true,
        ..e.options.clone()
    };
    let r = run_target(&t, &e.store, &opts).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!((r.segments[0].added, r.segments[0].removed), (1, 1));
    assert_eq!(r.segments[0].upserted, 0);
    // 3 pages read, 1 add, 1 remove.
    assert_eq!(r.segments[0].calls, 5);
    assert_eq!(dest.list("3"), set(&all));
    assert_eq!(e.store.member_count("fake", "3").unwrap(), 30);
}

#[tokio::test(start_paused = true)]
async fn destination_rejections_are_reported_and_retried_next_run() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let all = emails(0..25);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 3, &src)], Mode::Mirror);
    dest.remote
        .lock()
        .unwrap()
        .refuse
        .insert("user7@example.com".into());
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    let s = &r.segments[0];
    assert_eq!((s.rejected, s.upserted, s.added), (1, 24, 24));
    assert!(s.adds_up());
    let lines = rejects(&r);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (
            lines[0][1].as_str(),
            lines[0][2].as_str(),
            lines[0][4].as_str()
        ),
        ("8", "user7@example.com", "1003")
    );
    dest.remote.lock().unwrap().refuse.clear();
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!((r.segments[0].upserted, r.segments[0].added), (1, 1));
    assert_eq!(dest.list("3"), set(&all));
}

#[tokio::test(start_paused = true)]
async fn a_record_deleted_in_the_destination_is_forgotten_and_resent() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let src = FakeSource::emails(&emails(0..5));
    let t1 = target(&dest, &[("a", 1, &src)], Mode::Mirror);
    run_target(&t1, &e.store, &e.options).await.unwrap();
    dest.remote
        .lock()
        .unwrap()
        .leads
        .remove("user2@example.com");
    // A second list: the engine trusts its records and only adds.
    let t2 = target(&dest, &[("a", 2, &src)], Mode::Mirror);
    let r = run_target(&t2, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!((r.segments[0].added, r.segments[0].failed), (4, 1));
    assert_eq!(rejects(&r)[0][4], "1004");
    let r = run_target(&t2, &e.store, &e.options).await.unwrap();
    assert_eq!((r.segments[0].upserted, r.segments[0].added), (1, 1));
    assert_eq!(dest.list("2"), set(&emails(0..5)));
}

#[tokio::test(start_paused = true)]
async fn full_resends_everything() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let src = FakeSource::emails(&emails(0..25));
    let t = target(&dest, &[("a", 1, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();
    let opts = RunOptions {
        full: true,
        ..e.options.clone()
    };
    let r = run_target(&t, &e.store, &opts).await.unwrap();
    let s = &r.segments[0];
    assert_eq!((s.upserted, s.unchanged, s.added, s.calls), (25, 0, 25, 6));
    assert!(dest
        .remote
        .lock()
        .unwrap()
        .created
        .values()
        .all(|&n| n == 1));
}

#[tokio::test]
async fn consent_cannot_be_bypassed() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let src = FakeSource::emails(&emails(0..3));
    let mut t = target(&dest, &[("a", 1, &src)], Mode::Mirror);
    t.settings.data_privacy_consent = false;
    let err = run_target(&t, &e.store, &e.options).await.unwrap_err();
    assert!(err.is_config());
    assert_eq!(
        err.config_errors()[0].path,
        "destinations.fake.data_privacy_consent"
    );
    assert_eq!(dest.total_calls(), 0);
    assert!(e.store.runs(10).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_mapping_error_fails_the_run_with_its_config_path() {
    let e = env();
    let dest = FakeDest::new(10, 3);
    let src = FakeSource::emails(&emails(0..3));
    let mut t = target(&dest, &[("a", 1, &src)], Mode::Mirror);
    t.settings
        .mapping
        .insert("lastName".into(), "last_name".into());
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    let err = r.error.unwrap();
    assert_eq!(err.class, ErrorClass::Config);
    assert!(
        err.message.contains("destinations.fake.mapping.lastName"),
        "{}",
        err.message
    );
    assert_eq!(dest.calls("upsert"), 0);
}

#[test]
fn estimate_rounds_each_kind_up_to_whole_batches() {
    let l = Limits::new(300);
    assert_eq!(l.estimate_calls(0, 0, 0), 0);
    assert_eq!(l.estimate_calls(1, 1, 1), 3);
    assert_eq!(l.estimate_calls(300, 301, 600), 1 + 2 + 2);
    assert_eq!(l.estimate_calls(1_000_000, 1_000_000, 0), 6668);
    // A batch size per operation.
    let l = Limits::new(1).with_batches(500, 300, 100);
    assert_eq!(l.estimate_calls(1000, 600, 250), 2 + 2 + 3);
    // Adds carry removals: the longer of the two sets the calls.
    let l = Limits::new(500).with_adds_and_removes_together();
    assert_eq!(l.estimate_calls(0, 1000, 300), 2);
    assert_eq!(l.estimate_calls(0, 300, 1200), 3);
    assert_eq!(l.estimate_calls(501, 0, 0), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the segments before and after, and the batch size and
    /// concurrency: the list ends equal to the valid distinct keys, the
    /// counts add up, no batch exceeds the batch size, and the calls are
    /// exactly the estimate.
    #[test]
    fn runs_converge_to_the_segment(
        before in proptest::collection::vec(0u32..60, 0..80),
        after in proptest::collection::vec(0u32..60, 0..80),
        renamed in proptest::collection::vec(0u32..60, 0..10),
        batch in 1usize..12,
        concurrency in 1usize..5,
        append in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let e = env();
            let dest = FakeDest::new(batch, concurrency);
            let mode = if append { Mode::Append } else { Mode::Mirror };
            let rows = |keys: &[u32], renamed: &[u32]| -> Vec<(Option<String>, Option<String>)> {
                keys.iter()
                    .map(|k| {
                        let name = if renamed.contains(k) { "renamed" } else { "same" };
                        (Some(format!("U{k}@x.io")), Some(name.to_string()))
                    })
                    .collect()
            };
            let src = FakeSource::new(rows(&before, &[]));
            let t = target(&dest, &[("s", 5, &src)], mode);
            run_target(&t, &e.store, &e.options).await.unwrap();
            src.set(rows(&after, &renamed));
            let dry = run_target(&t, &e.store, &RunOptions { dry_run: true, ..e.options.clone() })
                .await
                .unwrap();
            let start = dest.total_calls();
            let r = run_target(&t, &e.store, &e.options).await.unwrap();
            let s = &r.segments[0];
            prop_assert_eq!(r.status, RunStatus::Succeeded);
            prop_assert!(s.adds_up());
            prop_assert_eq!(s.read, after.len() as u64);
            let distinct_after: BTreeSet<String> =
                after.iter().map(|k| format!("u{k}@x.io")).collect();
            let distinct_before: BTreeSet<String> =
                before.iter().map(|k| format!("u{k}@x.io")).collect();
            prop_assert_eq!(s.rejected, after.len() as u64 - distinct_after.len() as u64);
            let expected = if append {
                distinct_after.union(&distinct_before).cloned().collect()
            } else {
                distinct_after.clone()
            };
            prop_assert_eq!(dest.list("5"), expected);
            prop_assert_eq!((dest.total_calls() - start) as u64, r.calls_total);
            prop_assert_eq!(dry.calls_total, r.calls_total);
            prop_assert_eq!(&dry.segments, &r.segments);
            prop_assert!(dest.remote.lock().unwrap().calls.iter().all(|c| c.1 <= batch));
            prop_assert!(dest.max_in_flight.load(Ordering::SeqCst) <= concurrency);
            Ok(())
        })?;
    }
}

#[tokio::test(start_paused = true)]
async fn two_segments_that_disagree_about_a_person_do_not_fight_over_the_fields() {
    // The same email in two segments with different first names (two
    // profiles sharing an address): the earlier export's fields stand, the
    // person is a member of both lists, and later runs send nothing.
    let e = env();
    let dest = FakeDest::new(10, 2);
    let shared = emails(0..20);
    let first = FakeSource::new(
        shared
            .iter()
            .map(|m| (Some(m.clone()), Some("First".into())))
            .collect(),
    );
    let second = FakeSource::new(
        shared
            .iter()
            .map(|m| (Some(m.clone()), Some("Second".into())))
            .chain(
                emails(20..25)
                    .into_iter()
                    .map(|m| (Some(m), Some("Own".into()))),
            )
            .collect(),
    );
    let t = target(&dest, &[("a", 1, &first), ("b", 2, &second)], Mode::Mirror);

    let dry = run_target(
        &t,
        &e.store,
        &RunOptions {
            dry_run: true,
            ..e.options.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.segments[1].upserted, 5, "{:?}", dry.segments[1]);

    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!((r.segments[0].upserted, r.segments[0].added), (20, 20));
    assert_eq!(
        (
            r.segments[1].upserted,
            r.segments[1].unchanged,
            r.segments[1].added
        ),
        (5, 20, 25)
    );
    assert_eq!(dest.calls("upsert"), 3);
    assert_eq!(dry.calls_total, r.calls_total);
    assert_eq!(dest.list("1"), set(&shared));
    assert_eq!(dest.list("2"), set(&emails(0..25)));
    {
        let remote = dest.remote.lock().unwrap();
        let (_, fields) = &remote.leads[&shared[3]];
        assert_eq!(
            fields.get("firstName"),
            Some(&FieldValue::Text("First".into()))
        );
    }

    for _ in 0..2 {
        let before = dest.total_calls();
        let r = run_target(&t, &e.store, &e.options).await.unwrap();
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(r.segments[0].upserted + r.segments[1].upserted, 0, "{r:?}");
        // Only the field description.
        assert_eq!(dest.total_calls() - before, 1);
    }

    // With --full each record is still sent once, by its first segment.
    let before = dest.calls("upsert");
    let r = run_target(
        &t,
        &e.store,
        &RunOptions {
            full: true,
            ..e.options.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.segments[0].upserted + r.segments[1].upserted, 25, "{r:?}");
    assert_eq!(dest.calls("upsert") - before, 3);
    assert_eq!(dest.list("2"), set(&emails(0..25)));
}

#[tokio::test(start_paused = true)]
async fn the_mirror_guard_stops_a_mass_removal_until_it_is_allowed() {
    let e = env();
    let dest = FakeDest::new(50, 3);
    let all = emails(0..300);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(dest.list("7").len(), 300);

    // A truncated source: 10 % of the rows and one new member.
    let mut kept = all[..30].to_vec();
    kept.push("new@example.com".into());
    src.set(FakeSource::emails(&kept).rows.lock().unwrap().clone());

    // A dry run reports the verdict and sends nothing.
    let dry = RunOptions {
        dry_run: true,
        ..e.options.clone()
    };
    let r = run_target(&t, &e.store, &dry).await.unwrap();
    assert_eq!(r.status, RunStatus::DryRun);
    let m = r.segments[0].mass_removal.clone().unwrap();
    assert_eq!((m.removals, m.members, m.allowed), (270, 300, false));

    // A real run sends nothing at all (not even the new member) and fails.
    let before = dest.total_calls();
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    let err = r.error.clone().unwrap();
    assert_eq!(err.class, ErrorClass::Guard);
    assert!(
        err.message.contains("270 of the list's 300"),
        "{}",
        err.message
    );
    assert!(err.message.contains("90 %"), "{}", err.message);
    assert_eq!(dest.total_calls() - before, 1, "only the describe call");
    assert_eq!(dest.list("7").len(), 300);
    let s = &r.segments[0];
    assert_eq!((s.read, s.removed, s.added, s.pending), (31, 0, 0, 1));
    assert!(s.adds_up());

    // Below min_removals, or within the share, the guard stays quiet.
    let mut lenient = t.clone();
    lenient.settings.mirror_guard.min_removals = 271;
    let r = run_target(&lenient, &e.store, &dry).await.unwrap();
    assert!(r.segments[0].mass_removal.is_none());
    lenient.settings.mirror_guard.min_removals = 100;
    lenient.settings.mirror_guard.max_removal_share = 0.9;
    let r = run_target(&lenient, &e.store, &dry).await.unwrap();
    assert!(r.segments[0].mass_removal.is_none());

    // Allowed once: the removals go through, and are reported as allowed.
    let allow = RunOptions {
        allow_mass_removal: true,
        ..e.options.clone()
    };
    let r = run_target(&t, &e.store, &allow).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert!(r.segments[0].mass_removal.as_ref().unwrap().allowed);
    assert_eq!(r.segments[0].removed, 270);
    assert_eq!(dest.list("7"), set(&kept));
}

#[test]
fn the_mirror_guard_counts_shares_and_floors() {
    let g = crate::settings::MirrorGuard::default();
    assert!(!g.trips(99, 100), "fewer than min_removals");
    assert!(g.trips(100, 150), "100 of 150 is over half");
    assert!(!g.trips(100, 200), "exactly half is allowed");
    assert!(!g.trips(0, 0));
    let off = crate::settings::MirrorGuard {
        max_removal_share: 1.0,
        min_removals: 0,
    };
    assert!(!off.trips(1000, 1000), "a share of 1 never trips");
    let strict = crate::settings::MirrorGuard {
        max_removal_share: 0.0,
        min_removals: 0,
    };
    assert!(strict.trips(1, 1000));
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_within_the_run() {
    let e = env();
    let dest = FakeDest::new(10, 1);
    dest.remote.lock().unwrap().faults = [
        ("upsert", ErrorClass::Transient),
        ("upsert", ErrorClass::RateLimited),
    ]
    .into();
    let src = FakeSource::emails(&emails(0..25));
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let s = &r.segments[0];
    assert_eq!((s.upserted, s.added, s.failed), (25, 25, 0));
    // 3 upserts + 3 adds, and the first upsert made twice more.
    assert_eq!(dest.calls("upsert"), 5);
    assert_eq!(s.calls, 8);
    assert_eq!(dest.list("7"), set(&emails(0..25)));
}

#[tokio::test(start_paused = true)]
async fn a_call_failing_on_every_attempt_fails_its_rows_and_three_in_a_row_stop_the_run() {
    let e = env();
    let dest = FakeDest::new(10, 1);
    dest.remote.lock().unwrap().faults =
        std::iter::repeat_n(("upsert", ErrorClass::Transient), 9).collect();
    let src = FakeSource::emails(&emails(0..50));
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    let err = r.error.clone().unwrap();
    assert!(
        err.message.contains("3 calls in a row failed"),
        "{}",
        err.message
    );
    // Three calls, each made three times; nothing after them.
    assert_eq!(dest.calls("upsert"), 9);
    let s = &r.segments[0];
    assert_eq!((s.failed, s.pending, s.upserted), (30, 20, 0));
    assert!(s.adds_up());
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_rejects_its_rows_and_never_stops_the_run() {
    let e = env();
    let dest = FakeDest::new(10, 1);
    dest.remote.lock().unwrap().faults =
        std::iter::repeat_n(("upsert", ErrorClass::Rejected), 3).collect();
    let src = FakeSource::emails(&emails(0..40));
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    // Three refusals in a row are answers, not an outage; never retried.
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(dest.calls("upsert"), 4);
    let s = &r.segments[0];
    assert_eq!((s.rejected, s.upserted, s.failed), (30, 10, 0));
    let lines = rejects(&r);
    assert_eq!(lines.len(), 30);
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&"call_rejected".to_string())),
        "{lines:?}"
    );
    // The next run sends them again.
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.segments[0].upserted, 30);
    assert_eq!(dest.list("7"), set(&emails(0..40)));
}

#[tokio::test(start_paused = true)]
async fn a_member_without_an_outcome_is_an_error_not_a_success() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    let all = emails(0..20);
    let src = FakeSource::emails(&all);
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();

    // user3 leaves, user4 changes, user30 arrives; the destination answers
    // nothing about any of them.
    {
        let mut r = dest.remote.lock().unwrap();
        r.omit = [
            "user3@example.com",
            "user4@example.com",
            "user30@example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    let mut rows: Vec<FakeRow> = all
        .iter()
        .filter(|m| *m != "user3@example.com")
        .map(|m| (Some(m.clone()), Some(format!("n-{m}"))))
        .collect();
    rows[3].1 = Some("changed".into());
    rows.push((Some("user30@example.com".into()), Some("new".into())));
    src.set(rows);
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    let err = r.error.clone().unwrap();
    assert!(err.message.contains("no outcome"), "{}", err.message);
    let s = &r.segments[0];
    assert_eq!((s.failed, s.removed, s.added), (2, 0, 0), "{s:?}");
    assert!(s.adds_up());

    // Once the destination answers, the next run finishes the job.
    dest.remote.lock().unwrap().omit.clear();
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!((r.segments[0].removed, r.segments[0].added), (1, 1));
    let mut expected = set(&all);
    expected.remove("user3@example.com");
    expected.insert("user30@example.com".into());
    assert_eq!(dest.list("7"), expected);
}

#[tokio::test(start_paused = true)]
async fn a_run_holds_its_lock_and_stops_when_another_process_takes_it() {
    let e = env();
    let store = Arc::new(e.store);
    // 40 calls of 2 s each, one at a time: 80 s, several heartbeats.
    let dest = FakeDest::slow(10, 1, Duration::from_secs(2));
    let src = FakeSource::emails(&emails(0..200));
    let t = target(&dest, &[("all", 7, &src)], Mode::Mirror);

    let watcher = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let held = store
                .destination_lock("fake")
                .unwrap()
                .expect("held while running");
            assert_eq!(held.purpose, "audex (library)");
            // Another process takes the lock over (as after a long silence).
            tokio::time::sleep(Duration::from_secs(20)).await;
            store
                .lock()
                .execute("UPDATE destination_locks SET token = 'someone-else'", [])
                .unwrap();
        })
    };
    let r = run_target(&t, &store, &e.options).await.unwrap();
    watcher.await.unwrap();
    // The next heartbeat (at 30 s) found the lock gone: the run stopped
    // after its call in flight instead of writing on.
    assert_eq!(r.status, RunStatus::Interrupted, "{r:?}");
    let calls = dest.total_calls();
    assert!((10..=20).contains(&calls), "{calls} calls");
    // Its lock is not released on the new holder's behalf.
    let holder = store.destination_lock("fake").unwrap().expect("still held");
    assert_eq!(holder.pid, std::process::id());
    store
        .lock()
        .execute("DELETE FROM destination_locks", [])
        .unwrap();
    // Unlocked again, a run completes and releases its lock.
    let r = run_target(&t, &store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(store.destination_lock("fake").unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_row_is_reported_once_per_table_and_its_member_stays() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    let all = emails(0..30);
    let src = FakeSource::emails(&all);
    // Two segments read the same table.
    let t = target(&dest, &[("a", 7, &src), ("b", 8, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(dest.list("7").len(), 30);

    // user3's row can no longer be read, but its email can; user4's row
    // has no readable email; user5 left for real.
    src.set(
        all.iter()
            .filter(|m| {
                !["user3@", "user4@", "user5@"]
                    .iter()
                    .any(|p| m.starts_with(p))
            })
            .map(|m| (Some(m.clone()), Some(format!("n-{m}"))))
            .collect(),
    );
    *src.unreadable.lock().unwrap() = vec![
        UnreadableRow::new(
            "profiles",
            unreadable::INVALID_UTF8,
            "column `first_name` is not UTF-8",
        )
        .in_file("data/p.csv")
        .at_line(5)
        .column("first_name")
        .with_values(vec![("email".into(), " User3@Example.com".into())]),
        UnreadableRow::new(
            "profiles",
            unreadable::COLUMN_COUNT,
            "3 fields, the header has 2",
        )
        .in_file("data/p.csv")
        .at_line(6),
    ];
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    for s in &r.segments {
        // Unreadable rows are not rows of the segment.
        assert_eq!((s.read, s.removed, s.held), (27, 2, 1), "{s:?}");
        assert!(s.adds_up());
    }
    assert!(dest.list("7").contains("user3@example.com"));
    assert!(!dest.list("7").contains("user4@example.com"));
    assert_eq!(
        r.tables,
        vec![TableReport {
            source: "fake".into(),
            table: "profiles".into(),
            unreadable: 2
        }]
    );
    // Each row once, though two segments read it, with where it is.
    let lines = rejects(&r);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        vec![
            "a",
            "",
            " User3@Example.com",
            "first_name",
            "invalid_utf8",
            "column `first_name` is not UTF-8",
            "profiles",
            "data/p.csv",
            "5"
        ]
    );
    assert_eq!(lines[1][4], "column_count");
    let history = e.store.run(r.run_id).unwrap().unwrap();
    assert_eq!(history.tables, r.tables);
    assert_eq!(history.segments, r.segments);

    // Readable again: the member is a member as before, nothing resent.
    *src.unreadable.lock().unwrap() = Vec::new();
    let mut rows = src.rows.lock().unwrap().clone();
    rows.push((Some(all[3].clone()), Some(format!("n-{}", all[3]))));
    src.set(rows);
    let r = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(
        (
            r.segments[0].held,
            r.segments[0].upserted,
            r.segments[0].added
        ),
        (0, 0, 0),
        "{r:?}"
    );
    assert!(r.tables.is_empty());
}

// ------------------------------------------- what a destination declares

/// A dry run's estimate of an export's calls, then the real run's calls.
async fn estimate_then_run(t: &Target, e: &Env) -> (u64, RunReport) {
    let dry = RunOptions {
        dry_run: true,
        ..e.options.clone()
    };
    let estimate = run_target(t, &e.store, &dry).await.unwrap().segments[0].calls;
    (estimate, run_target(t, &e.store, &e.options).await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn each_operation_goes_in_its_own_batch_size_and_the_estimate_is_exact() {
    let e = env();
    let limits = Limits::new(1).with_batches(7, 5, 3).with_max_concurrency(2);
    let dest = FakeDest::shaped(limits, true, Duration::from_millis(5));
    let src = FakeSource::emails(&emails(0..23));
    let t = target(&dest, &[("all", 1, &src)], Mode::Mirror);

    let (estimate, report) = estimate_then_run(&t, &e).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(dest.call_sizes("upsert"), [7, 7, 7, 2]);
    assert_eq!(dest.call_sizes("add").iter().sum::<usize>(), 23);
    assert!(dest.call_sizes("add").iter().all(|&n| n <= 5));
    assert_eq!(dest.calls("add"), 5);
    assert_eq!(estimate, report.segments[0].calls);
    assert_eq!(estimate, 4 + 5);

    src.set_emails(&emails(0..13));
    let (estimate, report) = estimate_then_run(&t, &e).await;
    assert_eq!(dest.call_sizes("remove"), [3, 3, 3, 1]);
    assert_eq!((estimate, report.segments[0].calls), (4, 4));
    assert_eq!(dest.list("1"), set(&emails(0..13)));
}

#[tokio::test(start_paused = true)]
async fn adds_carry_removals_where_the_destination_takes_both_in_one_call() {
    let e = env();
    let limits = Limits::new(4)
        .with_adds_and_removes_together()
        .with_max_concurrency(1);
    let dest = FakeDest::shaped(limits, true, Duration::from_millis(5));
    let src = FakeSource::emails(&emails(0..10));
    let t = target(&dest, &[("all", 1, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!((dest.calls("add"), dest.calls("change")), (3, 0));

    // 5 leave, 7 join: two calls of adds, which carry the 5 removals.
    src.set_emails(&emails(5..17));
    let (estimate, report) = estimate_then_run(&t, &e).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(dest.call_sizes("change"), [4 + 4, 3 + 1]);
    assert_eq!(dest.calls("remove"), 0);
    let s = &report.segments[0];
    assert_eq!((s.added, s.removed), (7, 5));
    assert_eq!((estimate, s.calls), (2 + 2, 2 + 2));
    assert_eq!(dest.list("1"), set(&emails(5..17)));

    // Removals alone go in calls of their own.
    src.set_emails(&emails(5..8));
    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(dest.call_sizes("remove"), [4, 4, 1]);
    assert_eq!(report.segments[0].removed, 9);
    assert_eq!(dest.list("1"), set(&emails(5..8)));
}

#[tokio::test(start_paused = true)]
async fn a_destination_without_records_first_gets_members_only() {
    let e = env();
    let limits = Limits::new(10).with_max_concurrency(2);
    let dest = FakeDest::shaped(limits, false, Duration::from_millis(5));
    let src = FakeSource::emails(&emails(0..25));
    let t = target(&dest, &[("all", 1, &src)], Mode::Mirror);

    let (estimate, report) = estimate_then_run(&t, &e).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(dest.calls("upsert"), 0);
    assert_eq!(dest.call_sizes("add"), [10, 10, 5]);
    let s = &report.segments[0];
    assert_eq!((s.upserted, s.unchanged, s.added), (0, 25, 25));
    assert!(s.adds_up());
    assert_eq!((estimate, s.calls), (3, 3));
    assert_eq!(dest.list("1"), set(&emails(0..25)));

    // Other field values change nothing: no record is sent.
    src.set(
        emails(0..20)
            .into_iter()
            .map(|m| (Some(m), Some("Renamed".into())))
            .collect(),
    );
    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(dest.calls("upsert"), 0);
    assert_eq!(dest.call_sizes("remove"), [5]);
    assert_eq!(report.segments[0].calls, 1);
    assert_eq!(dest.list("1"), set(&emails(0..20)));

    // Read back, the members are the keys.
    let reconcile = RunOptions {
        reconcile: true,
        ..e.options.clone()
    };
    let report = run_target(&t, &e.store, &reconcile).await.unwrap();
    assert_eq!(
        (report.segments[0].added, report.segments[0].removed),
        (0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_for_good_is_kept_and_never_sent_again() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    dest.remote
        .lock()
        .unwrap()
        .for_good
        .insert("user3@example.com".into());
    let src = FakeSource::emails(&emails(0..8));
    let t = target(&dest, &[("all", 1, &src)], Mode::Mirror);
    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let s = &report.segments[0];
    assert_eq!((s.rejected, s.upserted, s.added), (1, 7, 7));
    let lines = rejects(&report);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0][4], "compliance");

    // The destination would take it now; audex does not ask. A new member
    // goes alone.
    dest.remote.lock().unwrap().for_good.clear();
    src.set_emails(&emails(0..9));
    let upserts_before = dest.call_sizes("upsert").len();
    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(&dest.call_sizes("upsert")[upserts_before..], [1]);
    let s = &report.segments[0];
    assert_eq!((s.rejected, s.upserted, s.unchanged, s.added), (1, 1, 7, 1));
    assert!(s.adds_up());
    let lines = rejects(&report);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (lines[0][2].as_str(), lines[0][4].as_str()),
        ("user3@example.com", "compliance")
    );
    assert!(lines[0][5].contains("refused for good"), "{lines:?}");
    assert!(!dest.list("1").contains("user3@example.com"));

    // A dry run counts it the same way.
    let dry = RunOptions {
        dry_run: true,
        ..e.options.clone()
    };
    let s = run_target(&t, &e.store, &dry).await.unwrap().segments[0].clone();
    assert_eq!((s.rejected, s.upserted, s.unchanged), (1, 0, 8));
    assert!(s.adds_up());
}

#[tokio::test(start_paused = true)]
async fn a_record_to_send_later_fails_this_run_and_goes_next_run() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    dest.remote
        .lock()
        .unwrap()
        .later
        .insert("user2@example.com".into());
    let src = FakeSource::emails(&emails(0..6));
    let t = target(&dest, &[("all", 1, &src)], Mode::Mirror);
    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.clone().unwrap();
    assert!(
        error.message.contains("again later (throttled"),
        "{error:?}"
    );
    let s = &report.segments[0];
    assert_eq!((s.failed, s.upserted, s.rejected), (1, 5, 0));
    assert!(rejects(&report).is_empty());

    dest.remote.lock().unwrap().later.clear();
    let report = run_target(&t, &e.store, &e.options).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.segments[0].upserted, 1);
    assert_eq!(dest.list("1"), set(&emails(0..6)));
}

#[tokio::test(start_paused = true)]
async fn reconcile_of_a_shared_list_removes_only_what_audex_added() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    dest.remote.lock().unwrap().sharing = true;
    let src = FakeSource::emails(&emails(0..10));
    let t = target(&dest, &[("all", 3, &src)], Mode::Mirror);
    run_target(&t, &e.store, &e.options).await.unwrap();
    {
        // Someone else's contact, in the list.
        let mut r = dest.remote.lock().unwrap();
        r.leads
            .insert("theirs@example.com".into(), (999, BTreeMap::new()));
        r.lists.get_mut("3").unwrap().insert("999".to_string());
    }
    src.set_emails(&emails(2..10));
    let reconcile = RunOptions {
        reconcile: true,
        ..e.options.clone()
    };
    let report = run_target(&t, &e.store, &reconcile).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.segments[0].removed, 2);
    let mut want = set(&emails(2..10));
    want.insert("theirs@example.com".into());
    assert_eq!(dest.list("3"), want);
    // Audex's record holds only its own members.
    assert_eq!(e.store.member_count("fake", "3").unwrap(), 8);
    // Owned, the same list loses the stray.
    dest.remote.lock().unwrap().sharing = false;
    let report = run_target(&t, &e.store, &reconcile).await.unwrap();
    assert_eq!(report.segments[0].removed, 1);
    assert_eq!(dest.list("3"), set(&emails(2..10)));
}

#[tokio::test(start_paused = true)]
async fn the_destination_tells_what_a_person_should_know_before_a_run() {
    let e = env();
    let dest = FakeDest::new(10, 2);
    dest.remote.lock().unwrap().notice = true;
    let src = FakeSource::emails(&emails(0..12));
    let t = target(&dest, &[("all", 4, &src)], Mode::Mirror);
    let (_, report) = estimate_then_run(&t, &e).await;
    assert_eq!(report.segments[0].notices, ["12 records are new to list 4"]);
    // Changed records are not new; joiners are.
    src.set(
        emails(0..15)
            .into_iter()
            .map(|m| (Some(m), Some("Renamed".into())))
            .collect(),
    );
    let dry = RunOptions {
        dry_run: true,
        ..e.options.clone()
    };
    let report = run_target(&t, &e.store, &dry).await.unwrap();
    assert_eq!(report.segments[0].upserted, 15);
    assert_eq!(report.segments[0].notices, ["3 records are new to list 4"]);
}
