use super::*;
use crate::engine::report::{RunError, RunReport, RunStatus, SegmentReport};
use crate::error::ErrorClass;
use crate::record::ListId;
use crate::settings::Mode;

fn rec(key: &str, id: &str, h: u8) -> StoredRecord {
    StoredRecord {
        key: key.into(),
        member_id: id.into(),
        hash: [h; 16],
    }
}

fn member(key: &str, id: &str) -> MemberRow {
    MemberRow {
        key: key.into(),
        member_id: id.into(),
    }
}

/// Take `dest`'s lock, as the engine does before a run.
fn take(store: &StateStore, dest: &str) -> LockToken {
    match store
        .try_lock_destination(dest, "test", chrono::Utc::now(), DEFAULT_STALE_AFTER)
        .expect("lock")
    {
        LockAttempt::Acquired { token, .. } => token,
        LockAttempt::Held(h) => panic!("held by {h}"),
    }
}

fn new_run(lock: &LockToken) -> NewRun<'_> {
    NewRun {
        lock,
        display_name: "Marketo",
        export_user: "ops",
        dry_run: false,
        full: false,
        reconcile: false,
    }
}

#[test]
fn creates_a_private_file_with_the_current_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".audex/nested/state.db");
    let store = StateStore::open(&path).expect("open");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let mode: String = store
        .lock()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    drop(store);
    // Reopening applies nothing twice.
    let store = StateStore::open(&path).expect("reopen");
    let n: i64 = store
        .lock()
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, i64::from(SCHEMA_VERSION));
}

#[cfg(unix)]
#[test]
fn tightens_an_existing_world_readable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    std::fs::write(&path, b"").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    StateStore::open(&path).expect("open");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = StateStore::open(&path).expect("open");
    store
        .lock()
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 'x')",
            [SCHEMA_VERSION + 1],
        )
        .expect("insert");
    drop(store);
    let err = StateStore::open(&path).expect_err("newer schema");
    assert!(err.message().contains("newer"), "{err}");
}

#[test]
fn checkpoints_records_and_members_per_destination_and_list() {
    let store = StateStore::open_in_memory().expect("open");
    let cp = Checkpoint {
        save_records: vec![rec("a@x.com", "1", 1), rec("b@x.com", "2", 2)],
        add_members: vec![member("a@x.com", "1")],
        ..Checkpoint::default()
    };
    store.checkpoint("mkto", "1001", &cp).expect("checkpoint");
    store
        .checkpoint(
            "other",
            "1001",
            &Checkpoint {
                save_records: vec![rec("a@x.com", "9", 9)],
                ..Checkpoint::default()
            },
        )
        .expect("checkpoint");
    // An update replaces id and hash.
    store
        .checkpoint(
            "mkto",
            "1002",
            &Checkpoint {
                save_records: vec![rec("b@x.com", "2", 7)],
                add_members: vec![member("b@x.com", "2")],
                ..Checkpoint::default()
            },
        )
        .expect("checkpoint");
    let mut seen = Vec::new();
    let n = store
        .for_each_record("mkto", |k, id, h| {
            seen.push((k.to_string(), id.to_string(), h[0]))
        })
        .expect("scan");
    seen.sort();
    assert_eq!(n, 2);
    assert_eq!(
        seen,
        vec![
            ("a@x.com".into(), "1".into(), 1),
            ("b@x.com".into(), "2".into(), 7)
        ]
    );
    assert_eq!(store.member_count("mkto", "1001").expect("count"), 1);
    assert_eq!(store.member_count("mkto", "1002").expect("count"), 1);
    assert_eq!(
        store
            .key_for_member_id("mkto", "2")
            .expect("lookup")
            .as_deref(),
        Some("b@x.com")
    );
    assert_eq!(
        store.record("other", "a@x.com").expect("get"),
        Some(rec("a@x.com", "9", 9))
    );

    store
        .checkpoint(
            "mkto",
            "1001",
            &Checkpoint {
                forget_records: vec!["a@x.com".into()],
                remove_members: vec!["a@x.com".into()],
                ..Checkpoint::default()
            },
        )
        .expect("checkpoint");
    assert_eq!(store.record_count("mkto").expect("count"), 1);
    assert_eq!(store.member_count("mkto", "1001").expect("count"), 0);
    assert_eq!(store.record_count("other").expect("count"), 1);
}

#[test]
fn replace_members_makes_the_list_what_was_read() {
    let store = StateStore::open_in_memory().expect("open");
    store
        .checkpoint(
            "mkto",
            "1",
            &Checkpoint {
                add_members: vec![member("a", "1"), member("b", "2")],
                ..Checkpoint::default()
            },
        )
        .expect("checkpoint");
    store
        .replace_members("mkto", "1", &[member("b", "2"), member("c", "3")])
        .expect("replace");
    let mut keys = Vec::new();
    store
        .for_each_member("mkto", "1", |k, _| keys.push(k.to_string()))
        .expect("scan");
    keys.sort();
    assert_eq!(keys, vec!["b", "c"]);
}

#[test]
fn purge_deletes_one_destination_and_keeps_history() {
    let store = StateStore::open_in_memory().expect("open");
    for dest in ["mkto", "keep"] {
        store
            .checkpoint(
                dest,
                "1",
                &Checkpoint {
                    save_records: vec![rec("a", "1", 1), rec("b", "2", 1)],
                    add_members: vec![member("a", "1")],
                    suppress: vec![Suppression {
                        key: "c".into(),
                        code: "compliance".into(),
                        message: "unsubscribed".into(),
                    }],
                    ..Checkpoint::default()
                },
            )
            .expect("checkpoint");
    }
    let suppressed = |dest: &str| {
        let mut keys = Vec::new();
        store
            .for_each_suppression(dest, |k, code, message, since| {
                assert_eq!((code, message), ("compliance", "unsubscribed"));
                assert!(!since.is_empty());
                keys.push(k.to_string());
            })
            .expect("suppressions");
        keys
    };
    assert_eq!(suppressed("mkto"), ["c"]);
    // Lifting one that is not there changes nothing.
    assert_eq!(
        store
            .forget_suppressions("keep", Some(&["nobody".to_string()]))
            .expect("lift"),
        0
    );
    assert_eq!(suppressed("keep"), ["c"]);
    let lock = take(&store, "mkto");
    let id = store.begin_run(&new_run(&lock)).expect("begin");
    let counts = store.purge_destination("mkto").expect("purge");
    assert_eq!(
        counts,
        PurgeCounts {
            records: 2,
            members: 1,
            suppressions: 1,
        }
    );
    assert!(suppressed("mkto").is_empty());
    assert_eq!(suppressed("keep"), ["c"]);
    assert_eq!(
        store
            .forget_suppressions("keep", Some(&["c".to_string()]))
            .expect("lift"),
        1
    );
    assert!(suppressed("keep").is_empty());
    assert_eq!(store.record_count("mkto").expect("count"), 0);
    assert_eq!(store.record_count("keep").expect("count"), 2);
    assert!(store.run(id).expect("run").is_some());
}

#[test]
fn run_history_round_trips_with_segments() {
    let store = StateStore::open_in_memory().expect("open");
    let lock = take(&store, "mkto");
    let id = store.begin_run(&new_run(&lock)).expect("begin");
    let running = store.run(id).expect("read").expect("exists");
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.export_user, "ops");
    let target = crate::settings::ExportTarget::new(
        ListId("1001".into()),
        serde_json::Map::from_iter([("list_id".to_string(), 1001.into())]),
        "list 1001",
    );
    let mut seg = SegmentReport::new("vip", &target, Mode::Append);
    seg.read = 10;
    seg.rejected = 2;
    seg.upserted = 8;
    seg.added = 8;
    seg.calls = 2;
    let report = RunReport {
        run_id: id,
        destination: "mkto".into(),
        status: RunStatus::Paused,
        segments: vec![seg.clone()],
        tables: Vec::new(),
        calls_total: 3,
        duration_ms: 42,
        rejects_file: Some("r.csv".into()),
        started_at: running.started_at.clone(),
        finished_at: "2026-01-01T00:00:00.000Z".into(),
        error: Some(RunError {
            class: ErrorClass::QuotaExhausted,
            message: "quota".into(),
        }),
    };
    store.finish_run(&report).expect("finish");
    let got = store.run(id).expect("read").expect("exists");
    assert_eq!(got.status, RunStatus::Paused);
    assert_eq!(got.segments, vec![seg]);
    assert_eq!(got.calls_total, 3);
    assert_eq!(got.duration_ms, Some(42));
    assert_eq!(got.error, report.error);
    assert_eq!(got.rejects_file.as_deref(), Some("r.csv"));

    let other = take(&store, "other");
    let id2 = store.begin_run(&new_run(&other)).expect("begin");
    let list = store.runs(10).expect("list");
    assert_eq!(list.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id2, id]);
    assert_eq!(store.runs(1).expect("list").len(), 1);
}

#[test]
fn a_run_needs_the_lock_and_stale_runs_are_closed() {
    let store = StateStore::open_in_memory().expect("open");
    let lock = take(&store, "mkto");
    let first = store.begin_run(&new_run(&lock)).expect("begin");
    // The lock is held by this process; another taker is refused.
    let holder = store.destination_lock("mkto").expect("lock").expect("held");
    assert_eq!(holder.pid, std::process::id());
    match store
        .try_lock_destination("mkto", "other", chrono::Utc::now(), DEFAULT_STALE_AFTER)
        .expect("try")
    {
        LockAttempt::Held(h) => assert_eq!(h.purpose, "test"),
        LockAttempt::Acquired { .. } => panic!("two holders"),
    }
    // The process of the first run dies (its lock names a pid that is gone):
    // the lock is taken over, the old token no longer starts runs, and the
    // new holder's run closes the old one as interrupted.
    store
        .lock()
        .execute(
            "UPDATE destination_locks SET pid = ?1 WHERE destination = 'mkto'",
            [i64::from(u32::MAX)],
        )
        .expect("fake a dead pid");
    let second_lock = take(&store, "mkto");
    let err = store.begin_run(&new_run(&lock)).expect_err("taken over");
    assert!(err.message().contains("in progress"), "{err}");
    let second = store
        .begin_run(&new_run(&second_lock))
        .expect("stale run closed");
    let stale = store.run(first).expect("read").expect("exists");
    assert_eq!(stale.status, RunStatus::Interrupted);
    assert!(stale.error.is_some());
    assert!(second > first);
    // Finishing a run leaves the lock to its holder, who releases it.
    store.finish_run(&finished("mkto", second)).expect("finish");
    assert!(store.destination_lock("mkto").expect("lock").is_some());
    store.unlock_destination(&second_lock).expect("unlock");
    assert_eq!(store.destination_lock("mkto").expect("lock"), None);
}

fn finished(dest: &str, run_id: i64) -> RunReport {
    RunReport {
        run_id,
        destination: dest.into(),
        status: RunStatus::Succeeded,
        segments: Vec::new(),
        tables: Vec::new(),
        calls_total: 0,
        duration_ms: 1,
        rejects_file: None,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: "2026-01-01T00:00:01.000Z".into(),
        error: None,
    }
}

#[test]
fn a_run_is_refused_while_another_live_process_holds_the_lock() {
    let store = StateStore::open_in_memory().expect("open");
    let ours = take(&store, "mkto");
    // Process 1 (init) is alive on this host and takes the lock over.
    store
        .lock()
        .execute(
            "UPDATE destination_locks SET pid = 1, token = 'theirs', purpose = 'audex schedule'",
            [],
        )
        .expect("hand the lock to pid 1");
    let err = store.begin_run(&new_run(&ours)).expect_err("locked");
    assert!(
        err.message().contains("audex schedule (process 1 on "),
        "{err}"
    );
    assert_eq!(store.runs(10).expect("runs").len(), 0);
}

#[test]
fn the_last_run_ignores_dry_runs() {
    let store = StateStore::open_in_memory().expect("open");
    assert_eq!(store.last_run("mkto").expect("last"), None);
    let lock = take(&store, "mkto");
    let real = store.begin_run(&new_run(&lock)).expect("begin");
    store.finish_run(&finished("mkto", real)).expect("finish");
    let dry = store
        .begin_run(&NewRun {
            dry_run: true,
            ..new_run(&lock)
        })
        .expect("begin");
    store.finish_run(&finished("mkto", dry)).expect("finish");
    assert_eq!(
        store.last_run("mkto").expect("last").map(|r| r.id),
        Some(real)
    );
}

#[test]
fn checkpoints_are_journalled_and_the_last_change_of_a_key_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    {
        let store = StateStore::open(&path).expect("open");
        let cp =
            |save: Vec<StoredRecord>, forget: Vec<&str>, add: Vec<MemberRow>, remove: Vec<&str>| {
                Checkpoint {
                    save_records: save,
                    forget_records: forget.into_iter().map(String::from).collect(),
                    add_members: add,
                    remove_members: remove.into_iter().map(String::from).collect(),
                    suppress: Vec::new(),
                }
            };
        store
            .checkpoint(
                "d",
                "1",
                &cp(
                    vec![rec("a", "1", 1), rec("b", "2", 2)],
                    vec![],
                    vec![member("a", "1"), member("b", "2")],
                    vec![],
                ),
            )
            .expect("cp1");
        store
            .checkpoint(
                "d",
                "1",
                &cp(
                    vec![rec("a", "1", 9), rec("c", "3", 3)],
                    vec!["b"],
                    vec![member("c", "3")],
                    vec!["a"],
                ),
            )
            .expect("cp2");
        // A key forgotten then saved again is kept; removed then re-added stays a member.
        store
            .checkpoint(
                "d",
                "1",
                &cp(
                    vec![rec("b", "2", 4)],
                    vec![],
                    vec![member("a", "1")],
                    vec!["c"],
                ),
            )
            .expect("cp3");
        // Another list and destination are untouched by those changes.
        store
            .checkpoint(
                "e",
                "1",
                &cp(
                    vec![rec("a", "7", 7)],
                    vec![],
                    vec![member("a", "7")],
                    vec![],
                ),
            )
            .expect("cp4");
        // Dropped without folding, as a killed process leaves it.
    }
    let store = StateStore::open(&path).expect("reopen");
    let mut records = Vec::new();
    store
        .for_each_record("d", |k, id, h| {
            records.push((k.to_string(), id.to_string(), h[0]))
        })
        .expect("records");
    records.sort();
    assert_eq!(
        records,
        [
            ("a".into(), "1".into(), 9),
            ("b".into(), "2".into(), 4),
            ("c".into(), "3".into(), 3)
        ]
    );
    let mut members = Vec::new();
    store
        .for_each_member("d", "1", |k, _| members.push(k.to_string()))
        .expect("members");
    members.sort();
    assert_eq!(members, ["a", "b"]);
    assert_eq!(store.record_count("e").expect("count"), 1);
    assert_eq!(store.member_count("e", "1").expect("count"), 1);
    let journal: i64 = store
        .lock()
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .expect("journal");
    assert_eq!(journal, 0, "folded");
}
