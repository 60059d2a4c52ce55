//! audex-conformance: the standard suite every destination plugin passes.
//!
//! One call, [`run`], drives a destination through audex's real engine, a
//! real state store and the files source, against a server the suite can
//! observe (the destination's simulator, or any server its [`Subject`]
//! can read back and disturb), and checks what a user of any destination
//! relies on:
//!
//! - the plugin is registered (what `audex connectors` lists) and its
//!   example block is a valid config;
//! - a first export makes the audience exactly the segment's valid rows,
//!   and a dry run before it estimated its calls exactly;
//! - a rerun with nothing changed sends nothing;
//! - churn in mirror mode (joiners, leavers, changed fields) and in append
//!   mode (leavers stay) leaves the audience exact;
//! - a row the destination refuses is in the rejects file under its key,
//!   with the destination's reason, and never in the audience;
//! - a run killed mid-batch resumes without resending what the state store
//!   confirmed, and ends exact;
//! - transient faults are survived with the audience exact;
//! - a quiet server never answers a throttling refusal (the destination's
//!   declared limits hold).
//!
//! A failed check panics with the check's name and what differed, so the
//! suite reads as one `#[tokio::test]` per destination:
//!
//! ```text
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn marketo_passes_the_conformance_suite() {
//!     audex_conformance::run(&MarketoHarness).await;
//! }
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use audex_core::config::{Config, Environment};
use audex_core::engine::report::{RunReport, RunStatus};
use audex_core::engine::{run_destination, LockRequest, RunEnd, RunOptions};
use audex_core::state::{LockAttempt, StateStore};
use serde_json::{json, Value};

// The suite's segments are CSV files: keep the files source linked.
use audex_files as _;

/// The destination's name in the suite's configs.
pub const DESTINATION: &str = "kit";

/// What the suite asks of a fresh server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Setup {
    /// Each call takes a realistic time (hundreds of milliseconds), so a
    /// run can be killed between calls.
    pub slow: bool,
}

/// Calls the server answered so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// Calls that change something: upserts, adds, removes.
    pub writes: u64,
    /// Throttling refusals (Marketo's 606 and 615, Mailchimp's 429).
    pub throttled: u64,
}

/// Starts a fresh server, and the destination's view of it, per check.
#[async_trait]
pub trait Harness: Send + Sync {
    async fn start(&self, setup: Setup) -> Box<dyn Subject>;
}

/// A destination under test and a server the suite can observe.
#[async_trait]
pub trait Subject: Send + Sync {
    /// The plugin's `type:`.
    fn plugin(&self) -> &'static str;

    /// The destination's block, without `mapping`, `mode`, `exports` or a
    /// target: `type`, the connection to this server (secrets as `${VAR}`
    /// from [`Subject::environment`]), `display_name`,
    /// `data_privacy_consent: true`, `export_user`, and any limit the
    /// server needs.
    fn destination(&self) -> Value;

    /// Environment variables the block refers to.
    fn environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The destination fields that take the profile's email and first
    /// name (Marketo: `email`, `firstName`).
    fn fields(&self) -> (&'static str, &'static str);

    /// The target fields naming audience `n` (0, 1, …) on this server,
    /// which starts empty: `{"list_id": 1001}`, `{"tag": "kit-0"}`.
    fn target(&self, n: usize) -> Value;

    /// The keys (normalised emails) audience `n` holds, read on the
    /// server's side.
    async fn members(&self, n: usize) -> BTreeSet<String>;

    /// The first name the server holds for `key`, if it knows the person.
    async fn first_name(&self, key: &str) -> Option<String>;

    /// Whether the destination keeps the mapped fields (one that only
    /// keeps membership, such as an ad platform's hashed audience, does
    /// not: the suite then skips the checks of field values).
    fn keeps_fields(&self) -> bool {
        true
    }

    /// Calls the server answered so far.
    async fn calls(&self) -> Calls;

    /// From now on, fail this share (0 to 1) of calls with faults that
    /// pass (5xx, dropped connections); 0 stops them.
    async fn faults(&self, share: f64);

    /// Make the server refuse `key`'s record or membership from now on
    /// (Marketo: a duplicate lead; Mailchimp: an unsubscribed contact).
    /// `false` when the destination refuses nothing a server can be told to.
    async fn refuse(&self, key: &str) -> bool;
}

/// Run every check against fresh servers from `harness`. Panics on the
/// first failed check, naming it.
pub async fn run(harness: &dyn Harness) {
    registered(harness).await;
    first_export_rerun_and_churn(harness).await;
    append_keeps_leavers(harness).await;
    refused_rows_are_rejected_by_key(harness).await;
    killed_runs_resume_without_resending(harness).await;
    faults_are_survived(harness).await;
}

// ------------------------------------------------------------- workspace

/// A config folder: the CSV segment, the config, the state store.
struct Workspace {
    dir: tempfile::TempDir,
    env: Environment,
}

/// A profile row: email, first name.
type Row = (String, String);

impl Workspace {
    fn new(subject: &dyn Subject) -> Workspace {
        let dir = tempfile::tempdir().expect("a temporary folder");
        Workspace {
            dir,
            env: Environment::from_vars(subject.environment()),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("audex.yaml")
    }

    fn state(&self) -> StateStore {
        StateStore::open(&self.dir.path().join("state.db")).expect("the state store opens")
    }

    /// The segment's rows.
    fn rows(&self, rows: &[Row]) {
        let mut w =
            csv::Writer::from_path(self.dir.path().join("people.csv")).expect("the segment file");
        w.write_record(["email", "first_name"]).expect("a header");
        for (email, first) in rows {
            w.write_record([email, first]).expect("a row");
        }
        w.flush().expect("the segment file is written");
    }

    /// The config: the destination exporting the segment to `target` in
    /// `mode`.
    fn config(&self, subject: &dyn Subject, target: Value, mode: &str) {
        let (email, first) = subject.fields();
        let mut block = subject.destination();
        let Some(obj) = block.as_object_mut() else {
            panic!("conformance: the subject's destination block is not an object");
        };
        obj.insert(
            "mapping".into(),
            json!({ email: "email", first: "first_name" }),
        );
        obj.insert("mode".into(), json!(mode));
        let mut export = json!({ "segment": "people" });
        if let (Some(e), Some(t)) = (export.as_object_mut(), target.as_object()) {
            e.extend(t.clone());
        }
        obj.insert("exports".into(), json!([export]));
        let doc = json!({
            "sources": {"crm": {"type": "files", "tables": {"people": "people.csv"}}},
            "segments": {"people": {"source": "crm", "table": "people"}},
            "destinations": { DESTINATION: block },
        });
        // JSON is YAML.
        std::fs::write(self.config_path(), doc.to_string()).expect("the config is written");
    }

    fn load(&self) -> Config {
        Config::load_with(&self.config_path(), &self.env)
            .unwrap_or_else(|e| panic!("conformance: the suite's config is refused: {e:#}"))
    }

    fn options(&self, dry_run: bool) -> RunOptions {
        RunOptions {
            dry_run,
            rejects_dir: Some(self.dir.path().join("rejects")),
            ..RunOptions::default()
        }
    }

    async fn run(&self, dry_run: bool) -> RunReport {
        let config = self.load();
        let store = self.state();
        match run_destination(
            &config,
            DESTINATION,
            &store,
            &self.options(dry_run),
            &LockRequest::default(),
        )
        .await
        {
            RunEnd::Ran(report) => *report,
            other => panic!("conformance: the run did not happen: {other:?}"),
        }
    }
}

/// `n` valid rows named `{prefix}{i}@example.com`, first name `{first}{i}`.
fn people(prefix: &str, range: std::ops::Range<usize>, first: &str) -> Vec<Row> {
    range
        .map(|i| (format!("{prefix}{i}@example.com"), format!("{first}{i}")))
        .collect()
}

fn keys(rows: &[Row]) -> BTreeSet<String> {
    rows.iter().map(|(e, _)| e.to_lowercase()).collect()
}

/// The rejects file's lines as `(key, code, message)`.
fn rejects(report: &RunReport) -> Vec<(String, String, String)> {
    let Some(path) = &report.rejects_file else {
        return Vec::new();
    };
    let mut r = csv::Reader::from_path(path).expect("the rejects file");
    r.records()
        .map(|rec| {
            let rec = rec.expect("a rejects line");
            let at = |i: usize| rec.get(i).unwrap_or_default().to_string();
            (at(2), at(4), at(5))
        })
        .collect()
}

fn check(name: &str, ok: bool, what: impl FnOnce() -> String) {
    assert!(ok, "conformance check `{name}` failed: {}", what());
}

fn succeeded(name: &str, report: &RunReport) {
    check(name, report.status == RunStatus::Succeeded, || {
        format!("the run ended {:?}: {:?}", report.status, report.error)
    });
    let s = &report.segments[0];
    check(name, s.adds_up(), || {
        format!("read ≠ rejected + upserted + unchanged + failed + pending: {s:?}")
    });
}

async fn exact(name: &str, subject: &dyn Subject, n: usize, want: &BTreeSet<String>) {
    let got = subject.members(n).await;
    let missing: Vec<&String> = want.difference(&got).take(5).collect();
    let extra: Vec<&String> = got.difference(want).take(5).collect();
    check(name, missing.is_empty() && extra.is_empty(), || {
        format!(
            "the audience holds {} members, the segment {}; missing (first 5) {missing:?}, extra {extra:?}",
            got.len(),
            want.len()
        )
    });
}

async fn quiet(name: &str, subject: &dyn Subject) {
    let throttled = subject.calls().await.throttled;
    check(name, throttled == 0, || {
        format!("the server refused {throttled} calls for throttling: the destination's limits do not hold")
    });
}

// ---------------------------------------------------------------- checks

/// The plugin is registered, and its example is a valid destination block.
async fn registered(harness: &dyn Harness) {
    let name = "registered";
    let subject = harness.start(Setup::default()).await;
    let plugin = subject.plugin();
    let listed = audex_core::registry::all()
        .iter()
        .any(|p| p.name == plugin && p.kind == audex_core::PluginKind::Destination);
    check(name, listed, || {
        format!("no destination `{plugin}` in the registry: is the crate linked and its descriptor submitted?")
    });
    let Some(descriptor) = audex_core::registry::destination(plugin) else {
        return;
    };
    let example = audex_core::config::parse_yaml(descriptor.example)
        .unwrap_or_else(|e| panic!("conformance: the example of `{plugin}` is not YAML: {e}"));
    match (descriptor.parse)(example) {
        Ok(block) => {
            let errors = block.validate();
            check(name, errors.is_empty(), || {
                format!("the example block of `{plugin}` does not validate: {errors:?}")
            });
        }
        Err(errors) => check(name, false, || {
            format!("the example block of `{plugin}` does not parse: {errors:?}")
        }),
    }
}

/// First export exact (with its estimate), a rerun sends nothing, churn in
/// mirror mode exact.
async fn first_export_rerun_and_churn(harness: &dyn Harness) {
    let subject = harness.start(Setup::default()).await;
    let subject = subject.as_ref();
    let ws = Workspace::new(subject);
    let mut rows = people("kit", 0..1200, "Ann");
    // Refused by audex itself: a bad email, a blank one, a duplicate key.
    rows.push(("not-an-email".into(), "Bad".into()));
    rows.push(("".into(), "Blank".into()));
    rows.push(("  KIT7@Example.com ".into(), "Dup".into()));
    ws.rows(&rows);
    ws.config(subject, subject.target(0), "mirror");
    let valid = keys(&people("kit", 0..1200, "Ann"));

    let name = "first export";
    let dry = ws.run(true).await;
    check(name, dry.status == RunStatus::DryRun, || {
        format!("the dry run ended {:?}: {:?}", dry.status, dry.error)
    });
    check(name, subject.calls().await.writes == 0, || {
        "the dry run wrote to the server".into()
    });
    let estimate = dry.segments[0].calls;
    let before = subject.calls().await.writes;
    let first = ws.run(false).await;
    succeeded(name, &first);
    let s = &first.segments[0];
    check(name, (s.read, s.rejected) == (1203, 3), || {
        format!(
            "read {} rows, rejected {} (want 1203, 3)",
            s.read, s.rejected
        )
    });
    exact(name, subject, 0, &valid).await;
    let writes = subject.calls().await.writes - before;
    check(
        "dry-run estimate",
        estimate == writes && s.calls == writes,
        || {
            format!(
            "the dry run estimated {estimate} calls, the run counted {}, the server answered {writes} writes",
            s.calls
        )
        },
    );
    let lines = rejects(&first);
    check(name, lines.len() == 3, || {
        format!("{} lines in the rejects file, want 3", lines.len())
    });
    if subject.keeps_fields() {
        let got = subject.first_name("kit5@example.com").await;
        check(name, got.as_deref() == Some("Ann5"), || {
            format!("the server holds the mapped first name as {got:?}, not \"Ann5\"")
        });
    }

    let name = "rerun sends nothing";
    let before = subject.calls().await.writes;
    let again = ws.run(false).await;
    succeeded(name, &again);
    let writes = subject.calls().await.writes - before;
    let s = &again.segments[0];
    check(name, writes == 0 && s.calls == 0, || {
        format!("{writes} writes reached the server ({} counted)", s.calls)
    });
    check(name, s.unchanged == 1200, || format!("{s:?}"));

    let name = "mirror churn";
    // 100 leave, 150 join, 60 change their first name.
    let mut churned = people("kit", 100..1200, "Ann");
    for (i, row) in churned.iter_mut().enumerate().take(60) {
        row.1 = format!("Changed{i}");
    }
    churned.extend(people("new", 0..150, "Neo"));
    ws.rows(&churned);
    let dry = ws.run(true).await;
    let estimate = dry.segments[0].calls;
    let before = subject.calls().await.writes;
    let report = ws.run(false).await;
    succeeded(name, &report);
    let s = &report.segments[0];
    let writes = subject.calls().await.writes - before;
    check(name, (s.added, s.removed) == (150, 100), || {
        format!("added {}, removed {} (want 150, 100)", s.added, s.removed)
    });
    check(name, estimate == writes, || {
        format!("the dry run estimated {estimate} calls; the server answered {writes} writes")
    });
    exact(name, subject, 0, &keys(&churned)).await;
    if subject.keeps_fields() {
        let renamed = subject.first_name("kit100@example.com").await;
        check(name, renamed.as_deref() == Some("Changed0"), || {
            format!("a changed first name reads {renamed:?} on the server")
        });
    }
    quiet(name, subject).await;
}

/// Append mode adds joiners and keeps leavers.
async fn append_keeps_leavers(harness: &dyn Harness) {
    let name = "append churn";
    let subject = harness.start(Setup::default()).await;
    let subject = subject.as_ref();
    let ws = Workspace::new(subject);
    ws.rows(&people("app", 0..400, "Ann"));
    ws.config(subject, subject.target(1), "append");
    succeeded(name, &ws.run(false).await);
    ws.rows(&people("app", 200..700, "Ann"));
    let report = ws.run(false).await;
    succeeded(name, &report);
    let s = &report.segments[0];
    check(name, (s.added, s.removed) == (300, 0), || {
        format!("added {}, removed {} (want 300, 0)", s.added, s.removed)
    });
    exact(name, subject, 1, &keys(&people("app", 0..700, "Ann"))).await;
    quiet(name, subject).await;
}

/// A row the destination refuses is rejected under its key with the
/// destination's reason, is never in the audience, and stays out.
async fn refused_rows_are_rejected_by_key(harness: &dyn Harness) {
    let name = "rejects by key";
    let subject = harness.start(Setup::default()).await;
    let subject = subject.as_ref();
    let refused = "refused3@example.com";
    if !subject.refuse(refused).await {
        return;
    }
    let ws = Workspace::new(subject);
    let rows = people("refused", 0..300, "Ann");
    ws.rows(&rows);
    ws.config(subject, subject.target(0), "mirror");
    for round in 0..2 {
        let report = ws.run(false).await;
        check(
            name,
            report.status != RunStatus::Failed || round == 0,
            || format!("run {round} ended {:?}: {:?}", report.status, report.error),
        );
        let lines = rejects(&report);
        let line = lines.iter().find(|l| l.0 == refused);
        check(
            name,
            line.is_some_and(|l| !l.1.is_empty() && !l.2.is_empty()),
            || format!("no rejects line with a code and a reason under the refused key: {lines:?}"),
        );
        check(name, line.is_some_and(|l| !l.2.contains('@')), || {
            "the reason repeats an email address".into()
        });
        let s = &report.segments[0];
        check(name, s.rejected + s.failed >= 1, || format!("{s:?}"));
        let mut want = keys(&rows);
        want.remove(refused);
        exact(name, subject, 0, &want).await;
    }
    quiet(name, subject).await;
}

/// A run killed between calls resumes: nothing the state store confirmed
/// is sent again, and the audience ends exact.
async fn killed_runs_resume_without_resending(harness: &dyn Harness) {
    let name = "crash and resume";
    let subject: Arc<dyn Subject> = harness.start(Setup { slow: true }).await.into();
    let ws = Workspace::new(subject.as_ref());
    let rows = people("crash", 0..3000, "Ann");
    ws.rows(&rows);
    ws.config(subject.as_ref(), subject.target(0), "mirror");

    let config = ws.load();
    let store = ws.state();
    let options = ws.options(false);
    let run = {
        let path = ws.dir.path().join("state.db");
        let env = ws.env.clone();
        let config_path = ws.config_path();
        tokio::spawn(async move {
            let config = Config::load_with(&config_path, &env).expect("the config");
            let store = StateStore::open(&path).expect("the state store");
            run_destination(
                &config,
                DESTINATION,
                &store,
                &options,
                &LockRequest::default(),
            )
            .await
        })
    };
    // Kill it once a few writes have been answered.
    let mut waited = Duration::ZERO;
    while subject.calls().await.writes < 3 && !run.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += Duration::from_millis(5);
        check(name, waited < Duration::from_secs(120), || {
            "no write reached the server in two minutes".into()
        });
    }
    check(name, !run.is_finished(), || {
        "the export finished before it could be killed: make each call slower in `Setup { slow: true }`".into()
    });
    run.abort();
    let _ = run.await;
    take_over(&store);

    let records = store.record_count(DESTINATION).expect("records");
    let list = config
        .destinations
        .get(DESTINATION)
        .and_then(|d| d.exports().into_iter().next())
        .map(|e| e.target.list.0)
        .expect("the export's target");
    let members = store.member_count(DESTINATION, &list).expect("members");
    check(name, members < 3000, || "the kill came too late".into());

    let report = ws.run(false).await;
    succeeded(name, &report);
    let s = &report.segments[0];
    check(name, s.added + members == 3000, || {
        format!(
            "{members} members were confirmed before the kill and {} added after it (want 3000 in all)",
            s.added
        )
    });
    check(
        name,
        s.upserted == 0 || s.upserted + records == 3000,
        || {
            format!(
            "{records} records were confirmed before the kill and {} sent after it (want 3000 in all)",
            s.upserted
        )
        },
    );
    exact(name, subject.as_ref(), 0, &keys(&rows)).await;
    quiet(name, subject.as_ref()).await;
}

/// Free the lock a killed run left, as the next process does once the
/// holder's heartbeat is stale.
fn take_over(store: &StateStore) {
    let later = chrono::Utc::now() + chrono::Duration::minutes(10);
    match store
        .try_lock_destination(
            DESTINATION,
            "conformance kit",
            later,
            Duration::from_secs(120),
        )
        .expect("the lock table")
    {
        LockAttempt::Acquired { token, .. } => store
            .unlock_destination(&token)
            .expect("the lock is released"),
        LockAttempt::Held(holder) => panic!("conformance: the lock stays held by {holder}"),
    }
}

/// Faults that pass are retried; the audience ends exact.
async fn faults_are_survived(harness: &dyn Harness) {
    let name = "transient faults";
    let subject = harness.start(Setup::default()).await;
    let subject = subject.as_ref();
    let ws = Workspace::new(subject);
    let rows = people("fault", 0..1500, "Ann");
    ws.rows(&rows);
    ws.config(subject, subject.target(0), "mirror");
    subject.faults(0.2).await;
    let mut last = None;
    for _ in 0..4 {
        let report = ws.run(false).await;
        let done = report.status == RunStatus::Succeeded;
        last = Some(report);
        if done {
            break;
        }
    }
    subject.faults(0.0).await;
    let report = last.expect("a run");
    check(name, report.status == RunStatus::Succeeded, || {
        format!("four runs under faults did not succeed: {:?}", report.error)
    });
    exact(name, subject, 0, &keys(&rows)).await;
    quiet(name, subject).await;
}

// The guide's example (docs/writing-a-connector.md, section 6) is a whole
// destination plugin and its conformance test: compiled and run as this
// crate's doc tests, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/writing-a-connector.md")]
pub struct WritingAConnectorGuide;
