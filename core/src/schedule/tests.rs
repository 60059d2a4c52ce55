//! Schedule tests with explicit instants: no real waiting anywhere.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Midnight at UTC-6, as Marketo declares its quota reset.
fn cst() -> crate::DailyReset {
    crate::DailyReset::midnight_at_offset(-6 * 3600).unwrap()
}

fn sched(expr: &str, tz: Option<&str>) -> Schedule {
    Schedule::parse(expr, tz)
        .unwrap()
        .with_quota_reset(Some(cst()))
}

fn ticks(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    s.upcoming(at(from), n)
        .into_iter()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
}

#[test]
fn utc_is_the_default_zone() {
    let s = sched("0 3 * * *", None);
    assert_eq!(s.timezone(), chrono_tz::UTC);
    assert_eq!(
        ticks(&s, "2026-05-01T03:00:00Z", 2),
        ["2026-05-02T03:00:00Z", "2026-05-03T03:00:00Z"]
    );
}

#[test]
fn spring_forward_gap_runs_right_after_the_gap() {
    // New York skips 02:00-03:00 on 2026-03-08.
    let s = sched("30 2 * * *", Some("America/New_York"));
    assert_eq!(
        ticks(&s, "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ]
    );
}

#[test]
fn fall_back_overlap_runs_once() {
    // New York repeats 01:00-02:00 on 2026-11-01.
    let s = sched("30 1 * * *", Some("America/New_York"));
    assert_eq!(
        ticks(&s, "2026-10-31T12:00:00Z", 3),
        [
            "2026-11-01T05:30:00Z", // first 01:30 (EDT)
            "2026-11-02T06:30:00Z", // 01:30 EST, the day after
            "2026-11-03T06:30:00Z",
        ]
    );
}

#[test]
fn a_daily_time_keeps_its_wall_clock_across_dst_in_europe() {
    // Paris moves to CEST on 2026-03-29.
    let s = sched("0 3 * * *", Some("Europe/Paris"));
    assert_eq!(
        ticks(&s, "2026-03-28T00:00:00Z", 2),
        ["2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z"]
    );
}

#[test]
fn intervals_move_in_real_time_over_the_gap() {
    let s = sched("*/30 * * * *", Some("America/New_York"));
    assert_eq!(
        ticks(&s, "2026-03-08T06:15:00Z", 3),
        [
            "2026-03-08T06:30:00Z", // 01:30 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T07:30:00Z",
        ]
    );
}

#[test]
fn month_ends() {
    // The 31st skips the months that lack one.
    let s = sched("0 12 31 * *", None);
    assert_eq!(
        ticks(&s, "2026-01-31T12:00:00Z", 3),
        [
            "2026-03-31T12:00:00Z",
            "2026-05-31T12:00:00Z",
            "2026-07-31T12:00:00Z"
        ]
    );
    // `L`: the last day of each month, leap February included.
    let s = sched("0 0 L * *", Some("Asia/Tokyo"));
    assert_eq!(
        ticks(&s, "2028-01-15T00:00:00Z", 3),
        [
            "2028-01-30T15:00:00Z",
            "2028-02-28T15:00:00Z",
            "2028-03-30T15:00:00Z"
        ]
    );
    // A year boundary.
    let s = sched("0 0 1 * *", None);
    assert_eq!(
        ticks(&s, "2026-12-31T23:59:59Z", 1),
        ["2027-01-01T00:00:00Z"]
    );
}

#[test]
fn last_tick_at_or_before() {
    let s = sched("0 3 * * *", None);
    assert_eq!(
        s.last_at_or_before(at("2026-05-02T03:00:00Z")),
        Some(at("2026-05-02T03:00:00Z"))
    );
    assert_eq!(
        s.last_at_or_before(at("2026-05-02T02:59:59Z")),
        Some(at("2026-05-01T03:00:00Z"))
    );
}

#[test]
fn bad_schedules_are_config_errors_with_paths() {
    let errs = Schedule::parse("0 3 * *", Some("Mars/Olympus")).unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["timezone", "schedule"]);
    assert!(errs[1].message.contains("5 fields"));
    let errs = Schedule::parse("61 3 * * *", None).unwrap_err();
    assert_eq!(errs[0].path, "schedule");
    // What `audex validate` refuses, the scheduler refuses too.
    assert!(Schedule::parse("@daily", None).is_err());
    assert!(Schedule::parse("0 0 3 * * *", None).is_err());
}

#[test]
fn quota_resets_at_midnight_cst_all_year() {
    // Winter: midnight CST is 06:00 UTC.
    assert_eq!(
        cst().next_after(at("2026-01-15T12:00:00Z")),
        at("2026-01-16T06:00:00Z")
    );
    // Summer: still midnight at UTC-6 (01:00 CDT), never before the
    // Chicago midnight (05:00 UTC) either.
    assert_eq!(
        cst().next_after(at("2026-07-15T12:00:00Z")),
        at("2026-07-16T06:00:00Z")
    );
    // Between the Chicago midnight and the CST one: today's 06:00 UTC.
    assert_eq!(
        cst().next_after(at("2026-07-16T05:30:00Z")),
        at("2026-07-16T06:00:00Z")
    );
    // Across the DST change in March.
    assert_eq!(
        cst().next_after(at("2026-03-08T05:59:00Z")),
        at("2026-03-08T06:00:00Z")
    );
    assert_eq!(
        cst().next_after(at("2026-03-09T04:00:00Z")),
        at("2026-03-09T06:00:00Z")
    );
    // Exactly at a reset: the next one.
    assert_eq!(
        cst().next_after(at("2026-01-16T06:00:00Z")),
        at("2026-01-17T06:00:00Z")
    );
}

#[test]
fn without_a_declared_reset_a_paused_run_waits_for_its_tick() {
    let s = Schedule::parse("0 12 * * *", None).unwrap();
    assert_eq!(s.resume_after_pause(at("2026-01-15T20:00:00Z")), None);
    let mut p = Planner::new([("plain".to_string(), s)], at("2026-01-15T11:00:00Z"));
    p.poll(at("2026-01-15T12:00:00Z"));
    p.finished("plain", Outcome::Paused, at("2026-01-15T20:00:00Z"));
    // No reset at 06:00: the next tick.
    assert_eq!(p.next_wake(), Some(at("2026-01-16T12:00:00Z")));
}

// ---- the planner ----

fn planner(expr: &str, now: &str) -> Planner {
    Planner::new([("mkto".to_string(), sched(expr, None))], at(now))
}

fn start(due: &str, trigger: Trigger) -> Action {
    Action::Start {
        destination: "mkto".into(),
        trigger,
        due: at(due),
    }
}

#[test]
fn starts_when_due_and_not_before() {
    let mut p = planner("0 * * * *", "2026-05-01T10:20:00Z");
    assert_eq!(p.next_wake(), Some(at("2026-05-01T11:00:00Z")));
    assert!(p.poll(at("2026-05-01T10:59:59Z")).is_empty());
    assert_eq!(
        p.poll(at("2026-05-01T11:00:00Z")),
        [start("2026-05-01T11:00:00Z", Trigger::Schedule)]
    );
    assert!(p.is_running("mkto"));
    assert_eq!(p.next_wake(), Some(at("2026-05-01T12:00:00Z")));
}

#[test]
fn a_tick_during_a_run_is_skipped_not_queued() {
    let mut p = planner("0 * * * *", "2026-05-01T10:20:00Z");
    p.poll(at("2026-05-01T11:00:00Z"));
    // The run takes 2.5 hours: the 12:00 and 13:00 ticks are skipped.
    assert_eq!(
        p.poll(at("2026-05-01T12:00:00Z")),
        [Action::Skip {
            destination: "mkto".into(),
            due: at("2026-05-01T12:00:00Z")
        }]
    );
    assert_eq!(p.poll(at("2026-05-01T13:00:01Z")).len(), 1);
    p.finished("mkto", Outcome::Succeeded, at("2026-05-01T13:30:00Z"));
    // Nothing runs again until the next tick.
    assert!(p.poll(at("2026-05-01T13:30:00Z")).is_empty());
    assert_eq!(
        p.poll(at("2026-05-01T14:00:00Z")),
        [start("2026-05-01T14:00:00Z", Trigger::Schedule)]
    );
}

#[test]
fn missed_ticks_are_coalesced_into_one_run() {
    let mut p = planner("*/5 * * * *", "2026-05-01T10:00:00Z");
    // The machine slept for an hour.
    let actions = p.poll(at("2026-05-01T11:02:00Z"));
    assert_eq!(actions, [start("2026-05-01T10:05:00Z", Trigger::Schedule)]);
    assert_eq!(p.next_wake(), Some(at("2026-05-01T11:05:00Z")));
}

#[test]
fn a_paused_run_resumes_at_the_quota_reset_when_it_comes_first() {
    // Daily at 12:00 UTC; paused at 20:00 UTC (14:00 CST): the quota resets
    // at 06:00 UTC, before the next tick.
    let mut p = planner("0 12 * * *", "2026-01-15T11:00:00Z");
    p.poll(at("2026-01-15T12:00:00Z"));
    p.finished("mkto", Outcome::Paused, at("2026-01-15T20:00:00Z"));
    assert_eq!(p.next_wake(), Some(at("2026-01-16T06:00:00Z")));
    assert!(p.poll(at("2026-01-16T05:59:59Z")).is_empty());
    assert_eq!(
        p.poll(at("2026-01-16T06:00:00Z")),
        [start("2026-01-16T06:00:00Z", Trigger::Resume)]
    );
    p.finished("mkto", Outcome::Succeeded, at("2026-01-16T07:00:00Z"));
    assert_eq!(p.next_wake(), Some(at("2026-01-16T12:00:00Z")));
}

#[test]
fn a_paused_run_resumes_at_the_next_tick_when_it_comes_first() {
    let mut p = planner("0 * * * *", "2026-01-15T11:30:00Z");
    p.poll(at("2026-01-15T12:00:00Z"));
    p.finished("mkto", Outcome::Paused, at("2026-01-15T12:40:00Z"));
    assert_eq!(p.next_wake(), Some(at("2026-01-15T13:00:00Z")));
    assert_eq!(
        p.poll(at("2026-01-15T13:00:00Z")),
        [start("2026-01-15T13:00:00Z", Trigger::Schedule)]
    );
    // The resume was consumed by that run; it does not fire again.
    p.finished("mkto", Outcome::Succeeded, at("2026-01-15T13:10:00Z"));
    assert_eq!(p.next_wake(), Some(at("2026-01-15T14:00:00Z")));
    assert_eq!(
        p.next_runs(),
        [("mkto".to_string(), Some(at("2026-01-15T14:00:00Z")))]
    );
}

#[test]
fn a_paused_destination_found_at_start_up_resumes() {
    let mut p = planner("0 12 * * *", "2026-01-15T22:00:00Z");
    p.mark_paused("mkto", at("2026-01-15T21:00:00Z"));
    assert_eq!(
        p.next_runs(),
        [("mkto".to_string(), Some(at("2026-01-16T06:00:00Z")))]
    );
    assert_eq!(
        p.poll(at("2026-01-16T06:00:00Z")),
        [start("2026-01-16T06:00:00Z", Trigger::Resume)]
    );
}

#[test]
fn destinations_are_planned_independently() {
    let mut p = Planner::new(
        [
            ("a".to_string(), sched("0 * * * *", None)),
            ("b".to_string(), sched("30 * * * *", None)),
        ],
        at("2026-05-01T10:10:00Z"),
    );
    assert_eq!(p.next_wake(), Some(at("2026-05-01T10:30:00Z")));
    let acts = p.poll(at("2026-05-01T10:30:00Z"));
    assert!(matches!(&acts[..], [Action::Start { destination, .. }] if destination == "b"));
    assert!(!p.is_running("a"));
}

#[test]
fn overlap_skip_is_recorded_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::state::StateStore::open(&dir.path().join("s.db")).unwrap();
    let clock = ManualClock::new(at("2026-05-01T10:20:00Z"));
    let mut p = planner("0 * * * *", "2026-05-01T10:20:00Z");
    let mut skipped = 0;
    for _ in 0..4 {
        clock.advance(Duration::minutes(40));
        for action in p.poll(clock.now()) {
            if let Action::Skip { destination, due } = action {
                store
                    .record_skip(
                        &destination,
                        due,
                        "the previous run is still going",
                        clock.now(),
                    )
                    .unwrap();
                skipped += 1;
            }
        }
    }
    // Started at 11:00, still running at 12:00 and 13:00 (now 13:00 + 40 min).
    assert_eq!(skipped, 2);
    let history = store.skips(Some("mkto"), 10).unwrap();
    let dues: Vec<&str> = history.iter().map(|s| s.due_at.as_str()).collect();
    assert_eq!(
        dues,
        ["2026-05-01T13:00:00.000Z", "2026-05-01T12:00:00.000Z"]
    );
}

// ---- --once ----

#[test]
fn once_runs_what_is_due() {
    let s = sched("0 3 * * *", None);
    let now = at("2026-05-02T03:05:00Z");
    let trigger = |last: Option<&LastRun>, now| due_now(&s, last, now).map(|d| d.trigger);
    // Never ran, and a tick has passed: due for today's tick.
    assert_eq!(
        due_now(&s, None, now),
        Some(Due {
            trigger: Trigger::Schedule,
            at: at("2026-05-02T03:00:00Z")
        })
    );
    // Ran after today's tick: not due.
    let ran = |started: &str, paused: bool| LastRun {
        started_at: at(started),
        finished_at: Some(at(started) + Duration::minutes(30)),
        paused,
        interrupted: false,
    };
    assert_eq!(
        trigger(Some(&ran("2026-05-02T03:00:01Z", false)), now),
        None
    );
    // Last ran yesterday: today's tick is due.
    assert_eq!(
        trigger(Some(&ran("2026-05-01T03:00:01Z", false)), now),
        Some(Trigger::Schedule)
    );
    // Paused at 03:30Z, after the tick: due again once the quota resets at
    // midnight CST (06:00Z), before the next tick.
    let paused = ran("2026-05-02T03:00:01Z", true);
    assert_eq!(trigger(Some(&paused), at("2026-05-02T05:59:59Z")), None);
    assert_eq!(
        due_now(&s, Some(&paused), at("2026-05-02T06:00:00Z")),
        Some(Due {
            trigger: Trigger::Resume,
            at: at("2026-05-02T06:00:00Z")
        })
    );
    // Interrupted (a signal, a crash) after the tick: due at once, to finish.
    let interrupted = LastRun {
        interrupted: true,
        ..ran("2026-05-02T03:00:01Z", false)
    };
    assert_eq!(trigger(Some(&interrupted), now), Some(Trigger::Resume));
}

#[test]
fn restore_from_the_history_at_start_up() {
    let now = at("2026-05-01T10:20:00Z");
    let finished =
        |started: &str| LastRun::finished(at(started), at(started) + Duration::minutes(5));
    // A tick (10:00) passed since the last run started (09:00): run it once,
    // at the first poll, then follow the schedule.
    let mut p = planner("0 * * * *", "2026-05-01T10:20:00Z");
    p.restore("mkto", &finished("2026-05-01T09:00:00Z"), now);
    assert_eq!(
        p.poll(now),
        [start("2026-05-01T10:00:00Z", Trigger::Schedule)]
    );
    p.finished("mkto", Outcome::Succeeded, now);
    assert_eq!(p.next_wake(), Some(at("2026-05-01T11:00:00Z")));
    // The last run started after the last tick: nothing until the next.
    let mut p = planner("0 * * * *", "2026-05-01T10:20:00Z");
    p.restore("mkto", &finished("2026-05-01T10:00:01Z"), now);
    assert!(p.poll(now).is_empty());
    // Interrupted: finish it at once.
    let mut p = planner("0 * * * *", "2026-05-01T10:20:00Z");
    let interrupted = LastRun {
        interrupted: true,
        ..finished("2026-05-01T10:00:01Z")
    };
    p.restore("mkto", &interrupted, now);
    assert_eq!(
        p.poll(now),
        [start("2026-05-01T10:20:00Z", Trigger::Resume)]
    );
    // Paused after the last tick: resume at the quota reset (06:00Z) unless
    // a tick comes first.
    let mut p = planner("0 12 * * *", "2026-05-01T13:00:00Z");
    let paused = LastRun {
        paused: true,
        ..finished("2026-05-01T12:00:00Z")
    };
    p.restore("mkto", &paused, at("2026-05-01T13:00:00Z"));
    assert_eq!(p.next_wake(), Some(at("2026-05-02T06:00:00Z")));
}

// ---- the loop, on paused tokio time ----

mod service {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration as StdDuration;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use tokio_util::sync::CancellationToken;

    use super::{at, sched};
    use crate::engine::{RunReport, RunStatus};
    use crate::schedule::*;
    use crate::state::{LockHolder, StateStore};

    /// A clock that follows tokio's (paused) time, so the loop's sleeps
    /// move it.
    #[derive(Debug)]
    struct TokioClock {
        origin: DateTime<Utc>,
        start: tokio::time::Instant,
    }

    impl Clock for TokioClock {
        fn now(&self) -> DateTime<Utc> {
            self.origin + chrono::Duration::from_std(self.start.elapsed()).unwrap()
        }
    }

    enum Step {
        /// Take this long, then end with this status.
        Run(StdDuration, RunStatus),
        /// Another process holds the lock.
        Locked,
        /// Wait for the stop, finish the calls in flight (this long), end
        /// interrupted.
        UntilStopped(StdDuration),
    }

    struct Script {
        clock: Arc<TokioClock>,
        steps: Mutex<VecDeque<Step>>,
        starts: Mutex<Vec<(Trigger, DateTime<Utc>)>>,
        ends: Mutex<Vec<DateTime<Utc>>>,
    }

    fn report(status: RunStatus) -> Box<RunReport> {
        Box::new(RunReport {
            run_id: 1,
            destination: "mkto".into(),
            status,
            segments: Vec::new(),
            tables: Vec::new(),
            calls_total: 0,
            duration_ms: 0,
            rejects_file: None,
            started_at: String::new(),
            finished_at: String::new(),
            error: None,
        })
    }

    #[async_trait]
    impl Runner for Script {
        async fn run(&self, _: &str, trigger: Trigger, stop: CancellationToken) -> RunEnd {
            self.starts
                .lock()
                .unwrap()
                .push((trigger, self.clock.now()));
            let step = self.steps.lock().unwrap().pop_front();
            let end = match step {
                Some(Step::Run(d, status)) => {
                    tokio::time::sleep(d).await;
                    RunEnd::Ran(report(status))
                }
                Some(Step::Locked) => RunEnd::Locked(LockHolder {
                    pid: 4242,
                    host: "pod-7".into(),
                    purpose: "audex run".into(),
                    acquired_at: "2026-05-01T10:59:00.000Z".into(),
                    heartbeat_at: "2026-05-01T10:59:45.000Z".into(),
                }),
                Some(Step::UntilStopped(d)) => {
                    stop.cancelled().await;
                    tokio::time::sleep(d).await;
                    RunEnd::Ran(report(RunStatus::Interrupted))
                }
                None => RunEnd::Ran(report(RunStatus::Succeeded)),
            };
            self.ends.lock().unwrap().push(self.clock.now());
            end
        }
    }

    struct Rig {
        clock: Arc<TokioClock>,
        store: Arc<StateStore>,
        script: Arc<Script>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn rig(expr: &str, start: &str, steps: Vec<Step>) -> Rig {
        let clock = Arc::new(TokioClock {
            origin: at(start),
            start: tokio::time::Instant::now(),
        });
        let store = Arc::new(StateStore::open_in_memory().unwrap());
        let script = Arc::new(Script {
            clock: clock.clone(),
            steps: Mutex::new(steps.into()),
            starts: Mutex::default(),
            ends: Mutex::default(),
        });
        let scheduler = Scheduler::from_history(
            vec![("mkto".to_string(), sched(expr, None))],
            clock.clone(),
            store.clone(),
            script.clone(),
        )
        .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(scheduler.serve(stop.clone()));
        Rig {
            clock,
            store,
            script,
            stop,
            task,
        }
    }

    impl Rig {
        async fn run_until(&self, t: &str) {
            let d = (at(t) - self.clock.now()).to_std().unwrap();
            tokio::time::sleep(d).await;
        }

        fn starts(&self) -> Vec<(Trigger, String)> {
            self.script
                .starts
                .lock()
                .unwrap()
                .iter()
                .map(|(t, at)| (*t, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                .collect()
        }

        fn skips(&self) -> Vec<(String, String)> {
            self.store
                .skips(Some("mkto"), 100)
                .unwrap()
                .into_iter()
                .rev()
                .map(|s| (s.due_at, s.reason))
                .collect()
        }

        async fn stop(self) -> Self {
            self.stop.cancel();
            let Rig {
                clock,
                store,
                script,
                stop,
                task,
            } = self;
            task.await.unwrap();
            Rig {
                clock,
                store,
                script,
                stop,
                task: tokio::spawn(async {}),
            }
        }
    }

    fn s(t: Trigger, at: &str) -> (Trigger, String) {
        (t, at.to_string())
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_during_a_long_run_are_skipped_and_recorded() {
        let rig = rig(
            "0 * * * *",
            "2026-05-01T10:20:00Z",
            vec![
                Step::Run(StdDuration::from_secs(150 * 60), RunStatus::Succeeded),
                Step::Run(StdDuration::from_secs(600), RunStatus::Succeeded),
            ],
        );
        rig.run_until("2026-05-01T15:30:00Z").await;
        let rig = rig.stop().await;
        assert_eq!(
            rig.starts(),
            [
                s(Trigger::Schedule, "2026-05-01T11:00:00Z"),
                // 12:00 and 13:00 came while the first run went on (to 13:30).
                s(Trigger::Schedule, "2026-05-01T14:00:00Z"),
                s(Trigger::Schedule, "2026-05-01T15:00:00Z"),
            ]
        );
        assert_eq!(
            rig.skips(),
            [
                ("2026-05-01T12:00:00.000Z".into(), STILL_RUNNING.into()),
                ("2026-05-01T13:00:00.000Z".into(), STILL_RUNNING.into()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_run_resumes_at_the_quota_reset_then_follows_its_schedule() {
        let rig = rig(
            "0 12 * * *",
            "2026-01-15T11:00:00Z",
            // Paused at 20:00Z, eight hours in.
            vec![Step::Run(
                StdDuration::from_secs(8 * 3600),
                RunStatus::Paused,
            )],
        );
        rig.run_until("2026-01-16T12:30:00Z").await;
        let rig = rig.stop().await;
        assert_eq!(
            rig.starts(),
            [
                s(Trigger::Schedule, "2026-01-15T12:00:00Z"),
                // Midnight CST, before the next tick.
                s(Trigger::Resume, "2026-01-16T06:00:00Z"),
                s(Trigger::Schedule, "2026-01-16T12:00:00Z"),
            ]
        );
        assert!(rig.skips().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_run_resumes_at_the_next_tick_when_it_comes_first() {
        let rig = rig(
            "0 */4 * * *",
            "2026-01-15T11:00:00Z",
            vec![Step::Run(StdDuration::from_secs(600), RunStatus::Paused)],
        );
        rig.run_until("2026-01-15T16:30:00Z").await;
        let rig = rig.stop().await;
        assert_eq!(
            rig.starts(),
            [
                s(Trigger::Schedule, "2026-01-15T12:00:00Z"),
                s(Trigger::Schedule, "2026-01-15T16:00:00Z"),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_locked_by_another_process_is_skipped_and_recorded() {
        let rig = rig("0 * * * *", "2026-05-01T10:20:00Z", vec![Step::Locked]);
        rig.run_until("2026-05-01T12:30:00Z").await;
        let rig = rig.stop().await;
        assert_eq!(rig.starts().len(), 2);
        let skips = rig.skips();
        assert_eq!(skips.len(), 1, "{skips:?}");
        assert_eq!(skips[0].0, "2026-05-01T11:00:00.000Z");
        assert!(
            skips[0]
                .1
                .starts_with("locked by audex run (process 4242 on pod-7"),
            "{skips:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_lets_the_run_finish_its_calls_and_starts_nothing_more() {
        let rig = rig(
            "*/5 * * * *",
            "2026-05-01T10:01:00Z",
            vec![Step::UntilStopped(StdDuration::from_secs(20))],
        );
        rig.run_until("2026-05-01T10:07:00Z").await;
        let rig = rig.stop().await;
        // The stop came at 10:07; serve returned only after the run's calls
        // in flight finished (20 s), and the 10:10 tick never started.
        assert_eq!(
            rig.script.ends.lock().unwrap().clone(),
            [at("2026-05-01T10:07:20Z")]
        );
        assert_eq!(rig.starts(), [s(Trigger::Schedule, "2026-05-01T10:05:00Z")]);
        // The 10:05 tick ran, so nothing was skipped either.
        assert!(rig.skips().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn once_runs_what_the_history_says_is_due() {
        let store = Arc::new(StateStore::open_in_memory().unwrap());
        // a: ran at 02:00, a tick (03:00) since: due. b: ran after the tick:
        // not due. c: never ran: due for the 03:00 tick.
        for (dest, started) in [
            ("a", "2026-05-02T02:00:00.000Z"),
            ("b", "2026-05-02T03:01:00.000Z"),
        ] {
            let lock = match store
                .try_lock_destination(dest, "test", Utc::now(), crate::state::DEFAULT_STALE_AFTER)
                .unwrap()
            {
                crate::state::LockAttempt::Acquired { token, .. } => token,
                crate::state::LockAttempt::Held(h) => panic!("held by {h}"),
            };
            let id = store
                .begin_run(&crate::state::NewRun {
                    lock: &lock,
                    display_name: dest,
                    export_user: "ops",
                    dry_run: false,
                    full: false,
                    reconcile: false,
                })
                .unwrap();
            let mut r = *report(RunStatus::Succeeded);
            r.run_id = id;
            r.destination = dest.into();
            r.finished_at = started.into();
            store.finish_run(&r).unwrap();
            store.unlock_destination(&lock).unwrap();
            store
                .lock()
                .execute(
                    "UPDATE runs SET started_at = ?1 WHERE id = ?2",
                    rusqlite::params![started, id],
                )
                .unwrap();
        }
        let clock = Arc::new(TokioClock {
            origin: at("2026-05-02T03:30:00Z"),
            start: tokio::time::Instant::now(),
        });
        let script = Arc::new(Script {
            clock: clock.clone(),
            steps: Mutex::new(vec![Step::Locked].into()),
            starts: Mutex::default(),
            ends: Mutex::default(),
        });
        let jobs = ["a", "b", "c"]
            .map(|d| (d.to_string(), sched("0 3 * * *", None)))
            .to_vec();
        let scheduler = Scheduler::from_history(jobs, clock, store.clone(), script).unwrap();
        let runs = scheduler.run_once(CancellationToken::new()).await.unwrap();
        let got: Vec<(&str, Trigger, bool)> = runs
            .iter()
            .map(|r| {
                (
                    r.destination.as_str(),
                    r.due.trigger,
                    matches!(r.end, RunEnd::Locked(_)),
                )
            })
            .collect();
        // One of the two due runs met a lock (the script's first step),
        // and its skip is recorded.
        assert_eq!(got.len(), 2, "{runs:?}");
        assert_eq!(got[0].0, "a");
        assert_eq!(got[1].0, "c");
        assert_eq!(got.iter().filter(|g| g.2).count(), 1);
        assert!(got.iter().all(|g| g.1 == Trigger::Schedule));
        let skips = store.skips(None, 10).unwrap();
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].due_at, "2026-05-02T03:00:00.000Z");
    }

    #[test]
    fn a_running_row_without_a_live_lock_counts_as_interrupted() {
        let store = StateStore::open_in_memory().unwrap();
        let lock = match store
            .try_lock_destination(
                "mkto",
                "test",
                Utc::now(),
                crate::state::DEFAULT_STALE_AFTER,
            )
            .unwrap()
        {
            crate::state::LockAttempt::Acquired { token, .. } => token,
            crate::state::LockAttempt::Held(h) => panic!("held by {h}"),
        };
        let id = store
            .begin_run(&crate::state::NewRun {
                lock: &lock,
                display_name: "m",
                export_user: "ops",
                dry_run: false,
                full: false,
                reconcile: false,
            })
            .unwrap();
        let now = Utc::now();
        let stale = crate::state::DEFAULT_STALE_AFTER;
        // Its process (this one) holds the lock: running.
        let last = last_run(&store, "mkto", now, stale).unwrap().unwrap();
        assert!(!last.interrupted && !last.paused);
        // The process dies (the lock names a pid that is gone).
        store
            .lock()
            .execute(
                "UPDATE destination_locks SET pid = ?1",
                [i64::from(u32::MAX)],
            )
            .unwrap();
        let last = last_run(&store, "mkto", now, stale).unwrap().unwrap();
        assert!(last.interrupted);
        assert!(store.run(id).unwrap().is_some());
    }
}
