//! Schedule tests with explicit instants: no real waiting anywhere.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn sched(expr: &str, tz: Option<&str>) -> Schedule {
    Schedule::parse(expr, tz).unwrap()
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
    assert!(Schedule::parse("@daily", None).is_ok());
}

#[test]
fn quota_resets_at_midnight_chicago_across_dst() {
    // Winter: CST is UTC-6.
    assert_eq!(
        next_quota_reset(at("2026-01-15T12:00:00Z")),
        at("2026-01-16T06:00:00Z")
    );
    // Summer: CDT is UTC-5.
    assert_eq!(
        next_quota_reset(at("2026-07-15T12:00:00Z")),
        at("2026-07-16T05:00:00Z")
    );
    // Just before midnight CST on the day DST starts: midnight is still CST.
    assert_eq!(
        next_quota_reset(at("2026-03-08T05:59:00Z")),
        at("2026-03-08T06:00:00Z")
    );
    // The evening DST started: the next midnight is CDT.
    assert_eq!(
        next_quota_reset(at("2026-03-09T04:00:00Z")),
        at("2026-03-09T05:00:00Z")
    );
    // Exactly at a reset: the next one.
    assert_eq!(
        next_quota_reset(at("2026-01-16T06:00:00Z")),
        at("2026-01-17T06:00:00Z")
    );
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
    // Never ran, and a tick has passed.
    assert_eq!(due_now(&s, None, now), Some(Trigger::Schedule));
    // Ran after today's tick: not due.
    let ran = |started: &str, paused: bool| LastRun {
        started_at: at(started),
        finished_at: Some(at(started) + Duration::minutes(30)),
        paused,
    };
    assert_eq!(
        due_now(&s, Some(&ran("2026-05-02T03:00:01Z", false)), now),
        None
    );
    // Last ran yesterday: today's tick is due.
    assert_eq!(
        due_now(&s, Some(&ran("2026-05-01T03:00:01Z", false)), now),
        Some(Trigger::Schedule)
    );
    // Paused at 22:30 CDT (03:30Z), after the tick: due again once the quota
    // resets at the Chicago midnight (05:00Z), before the next tick.
    let paused = ran("2026-05-02T03:00:01Z", true);
    assert_eq!(due_now(&s, Some(&paused), at("2026-05-02T04:59:59Z")), None);
    assert_eq!(
        due_now(&s, Some(&paused), at("2026-05-02T05:00:00Z")),
        Some(Trigger::Resume)
    );
}
