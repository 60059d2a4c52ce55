//! `audex schedule` and the destination lock end to end: the built binary as
//! real processes, real signals (`kill`), real HTTP against an in-process
//! Marketo simulator, a real SQLite state store shared between processes.

mod common;
use common::list_emails;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use audex_core::state::{LockAttempt, StateStore, DEFAULT_STALE_AFTER};
use audex_marketo_sim::{LatencyModel, SimConfig, SimHandle, Simulator};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/schedule/audex.yaml");

/// Once a year (Jan 1, 00:00 UTC): a destination that never ran is due (a
/// tick has passed), and after one run it is not due again for months, so
/// the tests do not depend on the minute they run in.
const YEARLY: &str = "0 0 1 1 *";

struct Workspace {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Workspace {
    fn new(sim: &SimHandle, rows: u32) -> Workspace {
        Workspace::with(sim, rows, "")
    }

    /// With `extra` lines added to the destination's block.
    fn with(sim: &SimHandle, rows: u32, extra: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = FIXTURE
            .replace("__ENDPOINT__", &sim.base_url())
            .replace("__SCHEDULE__", YEARLY)
            + extra;
        let ws = Workspace {
            config: dir.path().join("audex.yaml"),
            dir,
        };
        std::fs::create_dir_all(ws.dir.path().join("data")).expect("data dir");
        ws.write_profiles(rows);
        std::fs::write(&ws.config, yaml).expect("config");
        ws
    }

    fn write_profiles(&self, rows: u32) {
        let mut csv = String::from("email,first_name\n");
        for e in emails(rows) {
            csv.push_str(&format!("{e},Name\n"));
        }
        std::fs::write(self.dir.path().join("data/profiles.csv"), csv).expect("csv");
    }

    /// Make every run in the history look a year old, so the yearly
    /// schedule's last time has passed since (instead of waiting for it).
    fn age_history(&self) {
        let db = rusqlite::Connection::open(self.dir.path().join(".audex/state.db")).expect("db");
        db.execute(
            "UPDATE runs SET started_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .expect("age the history");
    }

    fn state(&self) -> StateStore {
        StateStore::open(&self.dir.path().join(".audex/state.db")).expect("state store")
    }

    fn command(&self, verb: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("audex"));
        cmd.arg(verb)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("AUDEX_CONFIG")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Run to the end: (exit code, stdout, stderr).
    async fn audex(&self, verb: &str, args: &[&str]) -> (i32, String, String) {
        let mut cmd = self.command(verb, args);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("runs"))
            .await
            .expect("join");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Start in the background, its output going to `<name>.out`/`.err`.
    fn spawn(&self, name: &str, verb: &str, args: &[&str]) -> Background {
        let out = self.dir.path().join(format!("{name}.out"));
        let err = self.dir.path().join(format!("{name}.err"));
        let child = self
            .command(verb, args)
            .stdout(Stdio::from(std::fs::File::create(&out).expect("out")))
            .stderr(Stdio::from(std::fs::File::create(&err).expect("err")))
            .spawn()
            .expect("spawn audex");
        Background { child, out, err }
    }

    async fn history(&self) -> Vec<Value> {
        let (code, out, err) = self.audex("runs", &["--output", "json"]).await;
        assert_eq!(code, 0, "{err}");
        match serde_json::from_str(&out) {
            Ok(Value::Array(entries)) => entries,
            other => panic!("runs --output json: {other:?}\n{out}"),
        }
    }
}

struct Background {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    /// Poll (real time: a real child) until `cond` holds; fail if the child
    /// ends first or a minute passes.
    async fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&Background) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(self) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "audex ended ({status}) before {what}\n{}\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(Instant::now() < deadline, "never saw {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "audex did not exit");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn emails(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("person{i}@example.com")).collect()
}

fn upserted(sim: &SimHandle) -> u64 {
    sim.counters()
        .records
        .get("sync_leads")
        .copied()
        .unwrap_or(0)
}

fn added(sim: &SimHandle) -> u64 {
    sim.counters()
        .list_adds
        .get(&1001)
        .map_or(0, |a| a.total_adds)
}

/// Realistic latency, 4x faster: a 300-record call takes about 250 ms, so
/// an export of 9,000 rows (30 upserts, 30 adds) lasts a few seconds and a
/// signal lands in its middle.
async fn slow_sim() -> SimHandle {
    Simulator::start(SimConfig {
        time_scale: 4.0,
        latency: LatencyModel::realistic(),
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_runs_the_due_export_and_the_list_is_exact() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = Workspace::new(&sim, 700);

    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("mkto: starting (scheduled for ") && out.contains("-01-01T00:00:00Z)"),
        "{out}"
    );
    assert!(
        out.contains("mkto: run 1 succeeded: 700 read, 700 upserted"),
        "{out}"
    );
    assert_eq!(list_emails(&sim, 1001), emails(700).into_iter().collect());
    assert_eq!(upserted(&sim), 700);

    // Called again (as cron would): nothing is due, nothing is sent.
    let calls = sim.counters().total_calls;
    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("mkto: not due; next run "), "{out}");
    assert_eq!(sim.counters().total_calls, calls);

    let history = ws.history().await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["kind"], "run");
    assert_eq!(history[0]["status"], "succeeded");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_refuses_runs_records_a_skip_and_wait_runs_after_release() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = Workspace::new(&sim, 600);
    // This test process holds the lock: a live process on this host, with a
    // fresh heartbeat.
    let store = ws.state();
    let token = match store
        .try_lock_destination(
            "mkto",
            "a test holding the lock",
            chrono::Utc::now(),
            DEFAULT_STALE_AFTER,
        )
        .expect("lock")
    {
        LockAttempt::Acquired { token, .. } => token,
        LockAttempt::Held(h) => panic!("held by {h}"),
    };
    let holder = format!(
        "locked by a test holding the lock (process {} on ",
        std::process::id()
    );

    let (code, out, err) = ws.audex("run", &[]).await;
    assert_eq!(code, 75, "{out}\n{err}");
    assert!(
        err.contains(&format!("destination mkto is {holder}")),
        "{err}"
    );
    assert!(err.contains("--wait"), "{err}");

    // The scheduler skips it and records the skip.
    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("mkto: skipped the run due at "), "{out}");
    assert_eq!(sim.counters().calls("sync_leads"), 0);
    let history = ws.history().await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["kind"], "skip");
    assert_eq!(history[0]["status"], "skipped");
    assert_eq!(history[0]["destination"], "mkto");
    assert!(
        history[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(&holder)),
        "{history:?}"
    );
    let (_, text, _) = ws.audex("runs", &[]).await;
    assert!(
        text.lines()
            .any(|l| l.contains("mkto") && l.contains("skipped")),
        "{text}"
    );

    // --wait waits while the lock is held, then runs.
    let mut waiting = ws.spawn("wait", "run", &["--wait", "--output", "json"]);
    waiting
        .wait_for("the wait message", |b| {
            b.stderr().contains("waiting for it")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(waiting.child.try_wait().expect("try_wait").is_none());
    assert_eq!(sim.counters().calls("sync_leads"), 0);
    store.unlock_destination(&token).expect("release");
    assert_eq!(waiting.exit_code().await, 0, "{}", waiting.stderr());
    let report: Value = serde_json::from_str(waiting.stdout().trim()).expect("report");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(list_emails(&sim, 1001), emails(600).into_iter().collect());
    // Released at the end.
    assert_eq!(store.destination_lock("mkto").expect("lock"), None);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_killed_run_is_taken_over() {
    let sim = slow_sim().await;
    let ws = Workspace::new(&sim, 9000);
    let mut run = ws.spawn("killed", "run", &[]);
    run.wait_for("the export under way", |_| upserted(&sim) >= 1500)
        .await;
    // SIGKILL: no cleanup; the lock stays behind naming a dead process.
    run.signal("KILL");
    let pid = run.pid();
    assert_eq!(run.exit_code().await, -1);
    let store = ws.state();
    let left = store.destination_lock("mkto").expect("lock").expect("left");
    assert_eq!((left.pid, left.purpose.as_str()), (pid, "audex run"));
    assert!(sim.member_count(1001) < 9000, "killed too late");

    let (code, out, err) = ws.audex("run", &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "took over the lock left by audex run (process {pid} on "
        )),
        "{err}"
    );
    assert_eq!(list_emails(&sim, 1001), emails(9000).into_iter().collect());
    assert_eq!(store.destination_lock("mkto").expect("lock"), None);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_records_interrupted_and_the_next_run_completes() {
    let sim = slow_sim().await;
    let ws = Workspace::new(&sim, 9000);

    // `audex run`: SIGTERM mid-export finishes the calls in flight and exits
    // 130: a one-shot export stopped half-way is not a success.
    let mut run = ws.spawn("run", "run", &[]);
    run.wait_for("the export under way", |_| upserted(&sim) >= 1500)
        .await;
    run.signal("TERM");
    assert_eq!(run.exit_code().await, 130, "{}", run.stderr());
    let first = upserted(&sim);
    assert!(first < 9000, "stopped too late");

    // `audex schedule --once`: the interrupted run is due again; SIGTERM in
    // its middle is a clean stop (0).
    let mut once = ws.spawn("once", "schedule", &["--once"]);
    once.wait_for("the resumed export under way", |_| {
        upserted(&sim) >= first + 1200
    })
    .await;
    once.signal("TERM");
    assert_eq!(once.exit_code().await, 0, "{}", once.stderr());
    assert!(
        once.stdout()
            .contains("mkto: starting (resuming its unfinished run)"),
        "{}",
        once.stdout()
    );
    assert!(upserted(&sim) < 9000, "stopped too late");
    let history = ws.history().await;
    let statuses: Vec<&str> = history
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["interrupted", "interrupted"], "{history:?}");

    // The long-running scheduler resumes the interrupted run at start, then
    // waits for its next tick; SIGTERM stops it with 0.
    let mut service = ws.spawn("service", "schedule", &[]);
    service
        .wait_for("the run to finish", |b| {
            b.stdout().contains("mkto: run 3 succeeded")
        })
        .await;
    let log = service.stdout();
    assert!(
        log.contains("mkto: \"0 0 1 1 *\" (UTC); next runs "),
        "{log}"
    );
    assert!(log.contains("mkto: resumes at "), "{log}");
    service.signal("TERM");
    assert_eq!(service.exit_code().await, 0, "{}", service.stderr());
    assert!(service.stdout().contains("audex schedule: stopped"));

    // Exact, and nothing sent twice across the three processes: every
    // checkpoint of the stopped runs held.
    assert_eq!(list_emails(&sim, 1001), emails(9000).into_iter().collect());
    assert_eq!(upserted(&sim), 9000);
    assert_eq!(added(&sim), 9000);
    assert_eq!(ws.history().await[0]["status"], "succeeded");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_quits_at_once_and_the_next_run_is_still_exact() {
    let sim = slow_sim().await;
    let ws = Workspace::new(&sim, 9000);
    let mut once = ws.spawn("once", "schedule", &["--once"]);
    once.wait_for("the export under way", |_| upserted(&sim) >= 1500)
        .await;
    once.signal("TERM");
    once.wait_for("the first signal heard", |b| {
        b.stderr().contains("signal again to quit now")
    })
    .await;
    once.signal("TERM");
    // 130, not the 0 of a clean stop: it did not wait to checkpoint.
    assert_eq!(once.exit_code().await, 130, "{}", once.stderr());
    assert!(once.stderr().contains("quitting now"), "{}", once.stderr());
    assert!(sim.member_count(1001) < 9000, "quit too late");

    // As after a crash: the lock is taken over, the run left `running` is
    // closed as interrupted and resumed, and the list ends exact.
    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("mkto: starting (resuming its unfinished run)"),
        "{out}"
    );
    assert_eq!(list_emails(&sim, 1001), emails(9000).into_iter().collect());
    // At most the calls in flight at the quit (10 of 300) went twice.
    assert!(upserted(&sim) <= 9000 + 10 * 300, "{}", upserted(&sim));
    let history = ws.history().await;
    let statuses: Vec<&str> = history
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["succeeded", "interrupted"], "{history:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_change_exports_only_when_the_files_change() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = Workspace::with(&sim, 700, "    run_on: source_change\n");
    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("mkto: run 1 succeeded"), "{out}");

    // The next scheduled time, the files as they were: nothing to do.
    ws.age_history();
    let calls = sim.counters().total_calls;
    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("mkto: its sources have not changed since the last export"),
        "{out}"
    );
    assert_eq!(sim.counters().total_calls, calls);
    assert_eq!(ws.history().await.len(), 1);

    // New rows in the file: exported at the next scheduled time.
    ws.write_profiles(750);
    let (code, out, err) = ws.audex("schedule", &["--once"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("mkto: run 2 succeeded: 750 read, 50 upserted, 700 unchanged, 50 added"),
        "{out}"
    );
    assert_eq!(list_emails(&sim, 1001), emails(750).into_iter().collect());

    // And not again while they stay so.
    ws.age_history();
    let (_, out, _) = ws.audex("schedule", &["--once"]).await;
    assert!(out.contains("have not changed"), "{out}");
    sim.shutdown().await;
}

#[test]
fn schedule_needs_a_destination_with_a_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = FIXTURE
        .replace("__ENDPOINT__", "http://127.0.0.1:9")
        .replace("    schedule: \"__SCHEDULE__\"\n", "");
    let config = dir.path().join("audex.yaml");
    std::fs::write(&config, yaml).expect("config");
    let out = Command::new(assert_cmd::cargo::cargo_bin("audex"))
        .args(["schedule", "--once", "-c"])
        .arg(&config)
        .env_remove("AUDEX_CONFIG")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no destination in"), "{err}");
    assert!(!Path::new(&dir.path().join(".audex/state.db")).exists());
}
