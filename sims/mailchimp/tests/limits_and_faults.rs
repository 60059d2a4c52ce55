//! Limits (10 calls in flight per account → 429; the optional window),
//! seeded faults of every kind, latency and the time scale (facts §7).
mod common;

use std::time::Duration;

use audex_mailchimp_sim::{FaultConfig, FaultKind, LatencyModel, RateWindow, SimConfig};
use common::{assert_problem, emails, member_path, resp, Api, LIST};
use futures::future::join_all;
use serde_json::json;

#[tokio::test]
async fn the_eleventh_call_in_flight_gets_429() {
    // Every admitted call holds its slot for 1 s, so all eleven overlap.
    let api = Api::start(SimConfig {
        latency: LatencyModel {
            base: Duration::from_secs(1),
            per_member: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await;
    let calls = (0..11).map(|_| api.get("/ping"));
    let answers = join_all(calls).await;
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_problem(refused[0], 429, "TooManyRequests");
    assert_eq!(
        refused[0].json["detail"],
        "You have exceeded the limit of 10 simultaneous connections."
    );
    assert_eq!(answers.iter().filter(|r| r.status == 200).count(), 10);
    let c = api.sim.counters();
    assert_eq!(c.too_many_requests, 1);
    assert_eq!(c.max_in_flight, 11);
    assert_eq!(c.in_flight, 0);
    // Sequential calls never hit the limit.
    assert_eq!(api.get("/ping").await.status, 200);
}

#[tokio::test]
async fn a_lower_concurrency_limit_is_configurable() {
    let api = Api::start(SimConfig {
        max_concurrency: 2,
        latency: LatencyModel {
            base: Duration::from_millis(500),
            per_member: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await;
    let answers = join_all((0..4).map(|_| api.get("/ping"))).await;
    assert_eq!(answers.iter().filter(|r| r.status == 429).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_optional_window_is_off_by_default_and_rolls_when_set() {
    let api = Api::start(SimConfig::default()).await;
    for _ in 0..50 {
        assert_eq!(api.get("/ping").await.status, 200);
    }
    let api = Api::start(SimConfig {
        rate_window: Some(RateWindow {
            calls: 3,
            window: Duration::from_secs(100),
        }),
        time_scale: 10.0,
        ..SimConfig::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(api.get("/ping").await.status, 200);
    }
    assert_problem(&api.get("/ping").await, 429, "TooManyRequests");
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(api.get("/ping").await.status, 429);
    tokio::time::advance(Duration::from_secs(1)).await; // 100 s / 10
    assert_eq!(api.get("/ping").await.status, 200);
    assert_eq!(api.sim.counters().too_many_requests, 2);
}

fn upsert_body(e: &str) -> serde_json::Value {
    json!({"email_address": e, "status_if_new": "subscribed"})
}

#[tokio::test]
async fn each_fault_kind_and_whether_the_write_ran() {
    let api = Api::start(SimConfig::default()).await;
    let cases = [
        (FaultKind::Http429, Some(429), false),
        (FaultKind::Http403, Some(403), false),
        (FaultKind::Http500, Some(500), false),
        (FaultKind::Http502, Some(502), true),
        (FaultKind::Http503, Some(503), false),
        (FaultKind::CloseBefore, None, false),
        (FaultKind::CloseAfter, None, true),
    ];
    for (i, (kind, status, applied)) in cases.into_iter().enumerate() {
        api.sim.set_faults(FaultConfig::always(kind));
        let e = format!("f{i}@example.com");
        let sent = api
            .http
            .put(api.url(&member_path(&e)))
            .basic_auth("u", Some(&api.key))
            .json(&upsert_body(&e))
            .send()
            .await;
        match status {
            Some(s) => {
                let r = resp(sent.expect("an answer")).await;
                assert_eq!(r.status, s, "{kind:?}");
                match kind {
                    FaultKind::Http429 | FaultKind::Http403 => {
                        assert_eq!(r.text, "", "{kind:?} has no body")
                    }
                    FaultKind::Http502 => {
                        assert!(r.content_type.starts_with("text/html"));
                        assert!(r.text.contains("<html"));
                    }
                    _ => assert!(
                        r.content_type.starts_with("application/problem+json"),
                        "{kind:?}"
                    ),
                }
            }
            None => assert!(
                sent.is_err(),
                "{kind:?}: the connection closes without an answer"
            ),
        }
        assert_eq!(api.sim.contact(LIST, &e).is_some(), applied, "{kind:?}");
        assert_eq!(api.sim.counters().fault(kind), 1, "{kind:?}");
    }
    api.sim.set_faults(FaultConfig::none());
    assert_eq!(api.get("/ping").await.status, 200);
}

#[tokio::test]
async fn a_slow_answer_runs_the_write_first_and_holds_its_slot() {
    // 60 s at scale 100 = 0.6 s; the client gives up after 0.2 s.
    let api = Api::start(SimConfig {
        time_scale: 100.0,
        slow_answer: Duration::from_secs(60),
        faults: FaultConfig::always(FaultKind::Slow),
        ..SimConfig::default()
    })
    .await;
    let e = "slow@example.com";
    let sent = api
        .http
        .put(api.url(&member_path(e)))
        .basic_auth("u", Some(&api.key))
        .json(&upsert_body(e))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(sent.is_err_and(|err| err.is_timeout()));
    assert!(
        api.sim.contact(LIST, e).is_some(),
        "the call ran although the client timed out"
    );
    assert_eq!(api.sim.counters().in_flight, 1, "and still holds its slot");
}

#[tokio::test]
async fn faults_are_seeded() {
    let kinds = vec![
        FaultKind::Http429,
        FaultKind::Http500,
        FaultKind::Http503,
        FaultKind::CloseBefore,
    ];
    let run = || async {
        let api = Api::start(SimConfig {
            faults: FaultConfig {
                seed: 99,
                rate: 0.4,
                kinds: kinds.clone(),
            },
            ..SimConfig::default()
        })
        .await;
        let mut seen = Vec::new();
        for _ in 0..40 {
            let r = api
                .http
                .get(api.url("/ping"))
                .basic_auth("u", Some(&api.key))
                .send()
                .await;
            seen.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        let faults: u64 = api.sim.counters().faults.values().sum();
        (seen, faults)
    };
    let (a, fa) = run().await;
    let (b, fb) = run().await;
    assert_eq!(a, b);
    assert_eq!(fa, fb);
    assert!((6..=26).contains(&fa), "{fa} faults in 40 calls at 0.4");
    assert_eq!(a.iter().filter(|s| **s != 200).count() as u64, fa);
}

#[tokio::test]
async fn realistic_latency_scales_with_members_and_time_scale() {
    let api = Api::start(SimConfig {
        latency: LatencyModel::realistic(),
        time_scale: 10.0,
        ..SimConfig::default()
    })
    .await;
    let members: Vec<_> = emails("l", 500).iter().map(|e| upsert_body(e)).collect();
    let t = std::time::Instant::now();
    let r = api
        .post(&format!("/lists/{LIST}"), &json!({"members": members}))
        .await;
    let took = t.elapsed();
    assert_eq!(r.json["total_created"], 500);
    // (0.4 s + 500 × 2 ms) / 10 = 140 ms.
    assert!(took >= Duration::from_millis(140), "{took:?}");
    assert!(took < Duration::from_millis(1400), "{took:?}");
}
