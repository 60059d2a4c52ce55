//! `audex run` end to end: the built binary, real HTTP against an in-process
//! Marketo simulator, a real SQLite state store, real CSV files.

mod common;
use common::list_emails;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use audex_marketo_sim::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/run/audex.yaml");

struct Workspace {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn workspace(sim: &SimHandle, mode: &str, max: u64) -> Workspace {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = FIXTURE
        .replace("__ENDPOINT__", &sim.base_url())
        .replace("__MODE__", mode)
        .replace("__MAX__", &max.to_string());
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    let config = dir.path().join("audex.yaml");
    std::fs::write(&config, yaml).expect("config");
    Workspace { dir, config }
}

/// Profiles `range` as CSV rows (email, first_name), plus `extra` raw rows.
fn write_profiles(dir: &Path, emails: &[String], extra: &[&str]) {
    let mut csv = String::from("email,first_name\n");
    for e in emails {
        csv.push_str(&format!("{e},Name{}\n", e.len()));
    }
    for line in extra {
        csv.push_str(line);
        csv.push('\n');
    }
    std::fs::write(dir.join("data/profiles.csv"), csv).expect("csv");
}

fn emails(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("person{n}@example.com")).collect()
}

async fn audex(config: &Path, args: &[&str]) -> (i32, String, String) {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("audex")
            .expect("audex binary")
            .arg("run")
            .arg("-c")
            .arg(&config)
            .args(&args)
            .env_remove("AUDEX_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("one JSON object: {e}\n{stdout}"))
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_then_only_changes_with_rejects_and_counts_that_add_up() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..700);
    write_profiles(
        ws.dir.path(),
        &all,
        &["not-an-email,Bad", ",Empty", "PERSON3@Example.com,Dup"],
    );

    // A dry run first: nothing written, and its estimate is what the run spends.
    let (code, out, err) = audex(&ws.config, &["--dry-run", "--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let dry = report(&out);
    assert_eq!(dry["status"], "dry_run");
    assert_eq!(sim.counters().calls("sync_leads"), 0);
    assert_eq!(sim.member_count(1001), 0);

    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let r = report(&out);
    assert_eq!(r["status"], "succeeded");
    let s = &r["segments"][0];
    // The target as the destination names it, and Marketo's list id beside it.
    assert_eq!(s["target"], serde_json::json!({"list_id": 1001}));
    assert_eq!(s["list_id"], 1001);
    assert_eq!(n(s, "read"), 703);
    assert_eq!(n(s, "rejected"), 3);
    assert_eq!(n(s, "upserted"), 700);
    assert_eq!(n(s, "added"), 700);
    assert_eq!(
        n(s, "read"),
        n(s, "rejected") + n(s, "upserted") + n(s, "unchanged") + n(s, "failed") + n(s, "pending")
    );
    assert_eq!(n(s, "pending"), 0);
    // 3 upserts + 3 adds of 300, plus describe.
    assert_eq!(n(&r, "calls_total"), 7);
    assert_eq!(n(&dry, "calls_total"), n(&r, "calls_total"));
    assert_eq!(list_emails(&sim, 1001), all.iter().cloned().collect());

    let rejects = r["rejects_file"].as_str().expect("rejects file");
    let text = std::fs::read_to_string(rejects).expect("rejects");
    let codes: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap_or(""))
        .collect();
    assert_eq!(codes, vec!["invalid_email", "missing_key", "duplicate_key"]);

    // 1% changed, 1% gone, 1% new.
    let mut next: Vec<String> = all[7..].to_vec();
    next.extend(emails(700..707));
    let mut csv = String::from("email,first_name\n");
    for (i, e) in next.iter().enumerate() {
        let name = if i < 7 {
            "Changed".to_string()
        } else {
            format!("Name{}", e.len())
        };
        csv.push_str(&format!("{e},{name}\n"));
    }
    std::fs::write(ws.dir.path().join("data/profiles.csv"), csv).expect("csv");
    sim.reset_counters();
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let r = report(&out);
    let s = &r["segments"][0];
    assert_eq!(n(s, "upserted"), 14);
    assert_eq!(n(s, "added"), 7);
    assert_eq!(n(s, "removed"), 7);
    assert_eq!(n(s, "unchanged"), 686);
    // describe + 1 upsert + 1 add + 1 remove: the minimum for this change.
    assert_eq!(n(&r, "calls_total"), 4);
    assert_eq!(list_emails(&sim, 1001), next.iter().cloned().collect());
    assert_eq!(sim.lead_count(), 707);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_quota_pauses_with_75_and_the_next_run_completes() {
    let sim = Simulator::start(SimConfig {
        daily_quota: 4,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..1500);
    write_profiles(ws.dir.path(), &all, &[]);
    // Each run spends the 4 calls the quota allows, stops with 75 and keeps
    // what it confirmed; the next (after the quota resets) goes on from there.
    let mut paused = 0;
    loop {
        let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
        let r = report(&out);
        if code == 0 {
            assert_eq!(r["status"], "succeeded");
            break;
        }
        assert_eq!(code, 75, "{out}\n{err}");
        assert_eq!(r["status"], "paused");
        assert_eq!(r["error"]["class"], "quota_exhausted", "{out}");
        // What the quota stopped is pending, not failed: nothing failed.
        let s = &r["segments"][0];
        assert_eq!(n(s, "failed"), 0, "{out}");
        assert!(n(s, "pending") > 0, "{out}");
        assert_eq!(
            n(s, "read"),
            n(s, "rejected") + n(s, "upserted") + n(s, "unchanged") + n(s, "pending"),
            "{out}"
        );
        paused += 1;
        assert!(paused < 10, "no progress after {paused} paused runs");
        sim.reset_daily_quota();
    }
    assert!(
        paused >= 2,
        "the quota of 4 calls must pause a 1500-row export"
    );
    assert_eq!(list_emails(&sim, 1001), all.iter().cloned().collect());
    assert_eq!(sim.lead_count(), 1500);
    // Nothing sent twice across the paused runs: every lead upserted once and
    // added to the list once.
    let c = sim.counters();
    assert_eq!(c.records.get("sync_leads").copied(), Some(1500), "{c:?}");
    assert_eq!(
        c.list_adds.get(&1001).map(|a| a.total_adds),
        Some(1500),
        "{c:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_over_max_profiles_is_a_clear_error_and_nothing_is_sent() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 10);
    write_profiles(ws.dir.path(), &emails(0..25), &[]);
    let (code, out, err) = audex(&ws.config, &[]).await;
    assert_ne!(code, 0);
    let text = format!("{out}{err}");
    assert!(
        text.contains("everyone") && text.contains("25") && text.contains("max_profiles"),
        "{text}"
    );
    assert_eq!(sim.counters().calls("sync_leads"), 0);
    assert_eq!(sim.lead_count(), 0);
    sim.shutdown().await;
}

/// The path of the built `audex` binary, for tests that drive a child process
/// by hand (kill it, signal it).
fn audex_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("audex")
}

fn lead_id(sim: &SimHandle, email: &str) -> u64 {
    sim.lead_by_email(email)
        .unwrap_or_else(|| panic!("lead {email}"))
        .id
}

/// Start `audex run` as a child and SIGKILL it (no cleanup at all) once the
/// simulator has seen `at` records of operation `op`. Returns the list's size
/// at the kill.
async fn kill_during(
    sim: &SimHandle,
    ws: &Workspace,
    op: &str,
    at: u64,
    total: usize,
    args: &[&str],
) -> usize {
    let mut child = std::process::Command::new(audex_bin())
        .args(["run", "-c"])
        .arg(&ws.config)
        .args(args)
        .env_remove("AUDEX_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn audex");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Kill once the simulator has taken `at` records of `op` and the run
    // has checkpointed at least one answer of that kind (an answer in
    // transit at the kill is lost like any other: the test is about what
    // was confirmed).
    let journal_op = match op {
        "sync_leads" => 1,
        "add_to_list" => 3,
        _ => 4,
    };
    loop {
        if sim.counters().records.get(op).copied().unwrap_or(0) >= at
            && checkpointed(&ws.dir.path().join(".audex/state.db"), journal_op) > 0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{op} never reached {at}"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before {op} reached {at}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let size = sim.member_count(1001);
    assert!(
        size != total,
        "the kill during {op} came too late to test anything"
    );
    size
}

/// Checkpoint entries of kind `op` in the state store's journal, read
/// without writing (0 while the store does not exist yet).
fn checkpointed(state: &Path, op: i64) -> u64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(conn) = rusqlite::Connection::open_with_flags(state, flags) else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM journal WHERE op = ?1", [op], |r| {
        r.get::<_, i64>(0)
    })
    .map_or(0, |n| n.max(0) as u64)
}

fn run_statuses(config: &Path) -> Vec<String> {
    let out = Command::cargo_bin("audex")
        .expect("audex")
        .args(["runs", "-c"])
        .arg(config)
        .args(["--output", "json"])
        .output()
        .expect("runs");
    let runs: Value = serde_json::from_slice(&out.stdout).expect("runs json");
    runs.as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["status"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_killed_during_upserts_adds_and_removes_resume_with_the_list_exact() {
    // Realistic latency, 4x faster: a 300-record call takes about 250 ms, so
    // an export of 9,000 rows (30 upserts, 30 adds) can be killed mid-way.
    for (op, at) in [
        ("sync_leads", 1500),
        ("add_to_list", 1500),
        ("remove_from_list", 900),
    ] {
        let sim = Simulator::start(SimConfig {
            time_scale: 4.0,
            latency: audex_marketo_sim::LatencyModel::realistic(),
            ..SimConfig::default()
        })
        .await
        .expect("sim");
        let ws = workspace(&sim, "mirror", 1_000_000);
        let all = emails(0..9000);
        write_profiles(ws.dir.path(), &all, &[]);
        // For removals: export everyone, then shrink the segment to a sixth.
        let want: Vec<String> = if op == "remove_from_list" {
            let (code, _, err) = audex(&ws.config, &[]).await;
            assert_eq!(code, 0, "{err}");
            write_profiles(ws.dir.path(), &all[..1500], &[]);
            sim.reset_counters();
            all[..1500].to_vec()
        } else {
            all.clone()
        };

        // Five in six members leave on purpose: past the mirror guard.
        let allow: &[&str] = if op == "remove_from_list" {
            &["--allow-mass-removal"]
        } else {
            &[]
        };
        kill_during(&sim, &ws, op, at, want.len(), allow).await;

        let args = [&["--output", "json"], allow].concat();
        let (code, out, err) = audex(&ws.config, &args).await;
        assert_eq!(code, 0, "{op}: {out}\n{err}");
        let r = report(&out);
        let s = &r["segments"][0];
        assert_eq!(
            n(s, "upserted") + n(s, "unchanged"),
            want.len() as u64,
            "{op}: {s}"
        );
        if op != "remove_from_list" {
            // The checkpoints of the killed run survived: what it confirmed
            // is not sent again.
            assert!(n(s, "unchanged") > 0, "{op}: {s}");
        }
        assert_eq!(
            list_emails(&sim, 1001),
            want.iter().cloned().collect(),
            "{op}: the list is exactly the segment"
        );
        // No lead created twice, and nothing resent beyond the calls that
        // were in flight at the kill (at most 10 calls of 300).
        assert_eq!(sim.lead_count(), 9000, "{op}");
        let c = sim.counters();
        let sent = |o: &str| c.records.get(o).copied().unwrap_or(0);
        let in_flight = 10 * 300;
        let first = if op == "remove_from_list" { 0 } else { 9000 };
        assert!(sent("sync_leads") <= first + in_flight, "{op}: {c:?}");
        assert!(sent("add_to_list") <= first + in_flight, "{op}: {c:?}");
        assert!(sent("remove_from_list") <= 7500 + in_flight, "{op}: {c:?}");
        // The killed run is in the history as interrupted, not left `running`.
        let statuses = run_statuses(&ws.config);
        assert!(
            statuses.iter().any(|s| s == "interrupted"),
            "{op}: {statuses:?}"
        );
        assert!(
            !statuses.iter().any(|s| s == "running"),
            "{op}: {statuses:?}"
        );
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_source_removes_nobody_until_mass_removal_is_allowed() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..1000);
    write_profiles(ws.dir.path(), &all, &[]);
    let (code, _, err) = audex(&ws.config, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(sim.member_count(1001), 1000);

    // The source arrives truncated: a tenth of its rows.
    write_profiles(ws.dir.path(), &all[..100], &[]);
    sim.reset_counters();

    // A dry run gives the verdict.
    let (code, out, err) = audex(&ws.config, &["--dry-run", "--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let r = report(&out);
    let m = &r["segments"][0]["mass_removal"];
    assert_eq!((n(m, "removals"), n(m, "members")), (900, 1000), "{r}");
    assert_eq!(m["allowed"], false);

    // The run sends nothing and fails with a message saying what to do.
    let (code, out, err) = audex(&ws.config, &[]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("would remove 900 of the list's 1000 members (90 %)"),
        "{text}"
    );
    assert!(text.contains("--allow-mass-removal"), "{text}");
    assert_eq!(sim.counters().calls("remove_from_list"), 0);
    assert_eq!(sim.counters().calls("sync_leads"), 0);
    assert_eq!(sim.member_count(1001), 1000);
    let statuses = run_statuses(&ws.config);
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("failed"),
        "{statuses:?}"
    );

    // Allowed, it proceeds.
    let (code, out, err) = audex(&ws.config, &["--allow-mass-removal", "--output", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(n(&report(&out)["segments"][0], "removed"), 900);
    assert_eq!(
        list_emails(&sim, 1001),
        all[..100].iter().cloned().collect()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_removes_strays_and_readds_members_removed_by_hand() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..400);
    write_profiles(ws.dir.path(), &all, &[]);
    let (code, _, err) = audex(&ws.config, &[]).await;
    assert_eq!(code, 0, "{err}");

    // Another tool adds two strays; a marketer removes a member by hand.
    for stray in ["stray1@example.com", "stray2@example.com"] {
        let id = sim.insert_lead(serde_json::json!({ "email": stray }));
        assert!(sim.add_member(1001, id));
    }
    assert!(sim.remove_member(1001, lead_id(&sim, "person5@example.com")));

    // A plain run trusts its state: nothing to do, the list stays wrong.
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(n(&report(&out)["segments"][0], "removed"), 0);
    assert_eq!(sim.member_count(1001), 401);

    let (code, out, err) = audex(&ws.config, &["--reconcile", "--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let s = &report(&out)["segments"][0];
    assert_eq!(n(s, "removed"), 2, "{s}");
    assert_eq!(n(s, "added"), 1, "{s}");
    assert_eq!(list_emails(&sim, 1001), all.iter().cloned().collect());
    // Strays leave the list, not the database.
    assert!(sim.lead_by_email("stray1@example.com").is_some());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_faults_are_retried_and_the_list_ends_exact() {
    // One call in four fails: 502/503, timeouts (604), 608, 611, 713, dropped
    // connections and expired tokens.
    use audex_marketo_sim::{FaultConfig, FaultKind};
    let sim = Simulator::start(SimConfig {
        faults: FaultConfig {
            seed: 7,
            rate: 0.25,
            kinds: FaultKind::ALL
                .into_iter()
                .filter(|k| *k != FaultKind::Slow)
                .collect(),
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..3000);
    write_profiles(ws.dir.path(), &all, &[]);
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = report(&out);
    assert_eq!(r["status"], "succeeded", "{out}");
    let s = &r["segments"][0];
    assert_eq!(n(s, "upserted"), 3000, "{s}");
    assert_eq!(n(s, "failed"), 0, "{s}");
    let c = sim.counters();
    assert!(
        c.faults.values().sum::<u64>() >= 3,
        "faults injected: {:?}",
        c.faults
    );
    assert_eq!(list_emails(&sim, 1001), all.iter().cloned().collect());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_to_a_missing_column_fails_before_any_write_and_lists_the_columns() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let yaml = std::fs::read_to_string(&ws.config)
        .expect("config")
        .replace("firstName: first_name", "firstName: given_name");
    std::fs::write(&ws.config, yaml).expect("config");
    write_profiles(ws.dir.path(), &emails(0..10), &[]);
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    // A mapping that does not fit the segment is a config error (78).
    assert_eq!(code, 78, "{out}\n{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("destinations.mkto.mapping.firstName"),
        "{text}"
    );
    assert!(text.contains("given_name"), "{text}");
    assert!(
        text.contains("first_name"),
        "the columns that exist: {text}"
    );
    assert_eq!(sim.counters().calls("sync_leads"), 0);
    assert_eq!(sim.counters().calls("add_to_list"), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_mode_keeps_leavers() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "append", 1_000_000);
    let all = emails(0..350);
    write_profiles(ws.dir.path(), &all, &[]);
    let (code, _, err) = audex(&ws.config, &[]).await;
    assert_eq!(code, 0, "{err}");
    // Ten new rows, and ten without a first_name field at all (a ragged
    // CSV): those are set aside as unreadable, not a failed run.
    let new = emails(350..370);
    let mut extra: Vec<String> = new[..10].iter().map(|e| format!("{e},New")).collect();
    extra.extend(new[10..].iter().cloned());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    write_profiles(ws.dir.path(), &all[50..], &extra);
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let r = report(&out);
    let s = &r["segments"][0];
    assert_eq!(n(s, "removed"), 0, "{s}");
    assert_eq!(n(s, "added"), 10, "{s}");
    assert_eq!(n(&r["tables"][0], "unreadable"), 10, "{r}");
    assert_eq!(sim.member_count(1001), 360);
    assert_eq!(sim.counters().calls("remove_from_list"), 0);
    sim.shutdown().await;
}

/// Profiles as CSV bytes: each email with a first name, except the rows
/// `broken` names, whose line is made unreadable in one of four ways (the
/// email stays readable).
fn profiles_with_broken_rows(emails: &[String], broken: &[usize]) -> Vec<u8> {
    let mut csv = b"email,first_name\n".to_vec();
    for (i, e) in emails.iter().enumerate() {
        let line: Vec<u8> = match broken.iter().position(|&b| b == i) {
            Some(0) => [format!("{e},Ren").as_bytes(), b"\xe9e"].concat(),
            Some(1) => format!("{e},nul\0byte").into_bytes(),
            Some(2) => format!("{e},{}", "x".repeat(2 << 20)).into_bytes(),
            Some(_) => format!("{e},{}", vec!["f"; 299].join(",")).into_bytes(),
            None => format!("{e},Name{i}").into_bytes(),
        };
        csv.extend_from_slice(&line);
        csv.push(b'\n');
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_never_stop_the_good_ones_and_their_members_stay() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..600);
    let csv = ws.dir.path().join("data/profiles.csv");
    let broken = [99, 199, 299, 399];

    // Invalid UTF-8, a NUL, a 2 MB value, 300 columns: the 596 others go.
    std::fs::write(&csv, profiles_with_broken_rows(&all, &broken)).expect("csv");
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = report(&out);
    let seg = &r["segments"][0];
    assert_eq!(
        (n(seg, "read"), n(seg, "upserted"), n(seg, "added")),
        (596, 596, 596),
        "{r}"
    );
    assert_eq!(r["tables"][0]["source"], "crm", "{r}");
    assert_eq!(r["tables"][0]["table"], "profiles", "{r}");
    assert_eq!(n(&r["tables"][0], "unreadable"), 4, "{r}");
    let good: std::collections::BTreeSet<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !broken.contains(i))
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(list_emails(&sim, 1001), good);
    // Nothing broken was sent: no lead for a broken row.
    assert_eq!(sim.lead_count(), 596);
    assert!(sim.lead_by_email("person299@example.com").is_none());
    let rejects = r["rejects_file"].as_str().expect("rejects file");
    let mut lines = csv::Reader::from_path(rejects).expect("rejects");
    let got: Vec<Vec<String>> = lines
        .records()
        .map(|rec| rec.expect("record").iter().map(String::from).collect())
        .collect();
    let codes: Vec<(&str, &str, &str, &str, &str)> = got
        .iter()
        .map(|l| {
            (
                l[2].as_str(),
                l[4].as_str(),
                l[6].as_str(),
                l[7].as_str(),
                l[8].as_str(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (
                "person99@example.com",
                "invalid_utf8",
                "profiles",
                "data/profiles.csv",
                "101"
            ),
            (
                "person199@example.com",
                "nul_byte",
                "profiles",
                "data/profiles.csv",
                "201"
            ),
            (
                "person299@example.com",
                "value_too_large",
                "profiles",
                "data/profiles.csv",
                "301"
            ),
            (
                "person399@example.com",
                "column_count",
                "profiles",
                "data/profiles.csv",
                "401"
            ),
        ]
    );

    // Fixed, the four join the list.
    std::fs::write(&csv, profiles_with_broken_rows(&all, &[])).expect("csv");
    let (code, _, err) = audex(&ws.config, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(sim.member_count(1001), 600);

    // Broken again: in mirror mode their members stay (held), the one
    // real leaver goes.
    let mut stayed = all.clone();
    stayed.remove(500);
    std::fs::write(&csv, profiles_with_broken_rows(&stayed, &broken)).expect("csv");
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let seg = &report(&out)["segments"][0];
    assert_eq!((n(seg, "removed"), n(seg, "held")), (1, 4), "{seg}");
    let mut expected: std::collections::BTreeSet<String> = all.iter().cloned().collect();
    expected.remove(&all[500]);
    assert_eq!(list_emails(&sim, 1001), expected);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_ndjson_line_never_stops_the_others() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "append", 1_000_000);
    let yaml = std::fs::read_to_string(&ws.config).expect("config");
    std::fs::write(
        &ws.config,
        yaml.replace("data/profiles.csv", "data/profiles.ndjson"),
    )
    .expect("config");
    let all = emails(0..600);
    let mut text = String::new();
    for (i, e) in all.iter().enumerate() {
        match i {
            99 => text.push_str(&format!("{{\"email\": \"{e}\", \"first_name\": \"cut")),
            199 => text.push_str(&format!(
                "{{\"email\": \"{e}\", \"first_name\": \"{}\"}}",
                "x".repeat(2 << 20)
            )),
            _ => text.push_str(&format!("{{\"email\": \"{e}\", \"first_name\": \"N{i}\"}}")),
        }
        text.push('\n');
    }
    std::fs::write(ws.dir.path().join("data/profiles.ndjson"), text).expect("ndjson");
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = report(&out);
    assert_eq!(n(&r["segments"][0], "read"), 598, "{r}");
    assert_eq!(n(&r["tables"][0], "unreadable"), 2, "{r}");
    assert_eq!(sim.member_count(1001), 598);
    let rejects =
        std::fs::read_to_string(r["rejects_file"].as_str().expect("rejects")).expect("read");
    assert!(rejects.contains(",malformed,"), "{rejects}");
    assert!(
        rejects.contains(",profiles,data/profiles.ndjson,100\n"),
        "{rejects}"
    );
    assert!(rejects.contains(",value_too_large,"), "{rejects}");
    assert!(
        rejects.contains(",profiles,data/profiles.ndjson,200\n"),
        "{rejects}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_row_with_an_oversized_value_never_stops_the_others() {
    let url = audex_pg_testkit::test_database_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS run_oversized;
             CREATE TABLE run_oversized (email text, first_name text);
             INSERT INTO run_oversized
             SELECT 'person' || i || '@example.com',
                    CASE WHEN i = 300 THEN repeat('x', 2 * 1024 * 1024) ELSE 'N' || i END
             FROM generate_series(0, 599) AS i;",
        )
        .await
        .expect("setup");
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "append", 1_000_000);
    let yaml = std::fs::read_to_string(&ws.config).expect("config");
    let yaml = yaml
        .replace(
            "    type: files\n    tables:\n      profiles: data/profiles.csv\n",
            "    type: postgres\n    url: ${AUDEX_TEST_PG_URL}\n",
        )
        .replace("table: profiles", "table: run_oversized");
    std::fs::write(&ws.config, yaml).expect("config");
    let config = ws.config.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("audex")
            .expect("audex binary")
            .args(["run", "--output", "json", "-c"])
            .arg(&config)
            .env("AUDEX_TEST_PG_URL", url)
            .env_remove("AUDEX_CONFIG")
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&stdout);
    assert_eq!(n(&r["segments"][0], "read"), 599, "{r}");
    assert_eq!(r["tables"][0]["table"], "run_oversized", "{r}");
    assert_eq!(n(&r["tables"][0], "unreadable"), 1, "{r}");
    assert_eq!(sim.member_count(1001), 599);
    let rejects =
        std::fs::read_to_string(r["rejects_file"].as_str().expect("rejects")).expect("read");
    assert!(
        rejects.contains("person300@example.com,first_name,value_too_large,"),
        "{rejects}"
    );
    assert!(rejects.contains(",run_oversized,,301\n"), "{rejects}");
    sim.shutdown().await;
}

/// `audex state` verb with its arguments, in the workspace of `config`.
fn state_verb(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("audex")
        .expect("audex binary")
        .arg("state")
        .args(args)
        .arg("-c")
        .arg(config)
        .env_remove("AUDEX_CONFIG")
        .output()
        .expect("audex state");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_person_is_never_sent_until_lifted() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let ws = workspace(&sim, "mirror", 1_000_000);
    let all = emails(0..20);
    write_profiles(ws.dir.path(), &all, &[]);
    // A refusal for good recorded by an earlier run (Marketo itself never
    // gives one; a compliance refusal of another destination would).
    {
        let store = audex_core::state::StateStore::open(&ws.dir.path().join(".audex/state.db"))
            .expect("state");
        store
            .checkpoint(
                "mkto",
                "",
                &audex_core::state::Checkpoint {
                    suppress: vec![audex_core::state::Suppression {
                        key: "person7@example.com".into(),
                        code: "unsubscribed".into(),
                        message: "the contact unsubscribed".into(),
                    }],
                    ..Default::default()
                },
            )
            .expect("checkpoint");
    }
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let s = &report(&out)["segments"][0];
    assert_eq!((n(s, "rejected"), n(s, "added")), (1, 19), "{s}");
    assert!(sim.lead_by_email("person7@example.com").is_none());

    let export = ws.dir.path().join("suppressed.csv");
    let export_arg = export.to_string_lossy().into_owned();
    let (code, out, err) = state_verb(
        &ws.config,
        &[
            "suppressions",
            "--destination",
            "mkto",
            "--export",
            &export_arg,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 refused for good"), "{out}");
    assert!(out.contains("unsubscribed: 1"), "{out}");
    assert!(!out.contains("person7"), "stdout names nobody: {out}");
    let csv = std::fs::read_to_string(&export).expect("export");
    assert!(
        csv.starts_with("key,code,message,since\nperson7@example.com,unsubscribed,"),
        "{csv}"
    );

    let (code, out, err) = state_verb(
        &ws.config,
        &[
            "unsuppress",
            "--destination",
            "mkto",
            "--key",
            " Person7@Example.com ",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 suppression lifted"), "{out}");
    let (code, out, err) = audex(&ws.config, &["--output", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let s = &report(&out)["segments"][0];
    assert_eq!((n(s, "rejected"), n(s, "added")), (0, 1), "{s}");
    assert_eq!(list_emails(&sim, 1001), all.iter().cloned().collect());

    // Neither a key nor --all: a usage error.
    let (code, _, _) = state_verb(&ws.config, &["unsuppress", "--destination", "mkto"]);
    assert_eq!(code, 2);
}
