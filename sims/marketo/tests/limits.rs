//! Limits and faults: rolling window (606), concurrency (615), daily quota
//! (607), body (413) and URL (414) limits, seeded faults (facts §3, §4).
mod common;

use std::time::Duration;

use audex_marketo_sim::{FaultConfig, FaultKind, LatencyModel, SimConfig};
use common::{err_code, Api};
use serde_json::{json, Value};

#[tokio::test(start_paused = true)]
async fn rolling_window_answers_606_and_recovers() {
    let api = Api::start(SimConfig {
        rate_calls: 5,
        ..SimConfig::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            api.get("/rest/v1/leads/describe.json").await["success"],
            true
        );
    }
    let v = api.get("/rest/v1/leads/describe.json").await;
    assert_eq!(err_code(&v), "606");
    assert_eq!(
        v["errors"][0]["message"],
        "Max rate limit '5' exceeded with in '20' secs"
    );
    tokio::time::advance(Duration::from_secs(19)).await;
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "606"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        api.get("/rest/v1/leads/describe.json").await["success"],
        true
    );
    let c = api.sim.counters();
    assert_eq!(c.code("606"), 2);
    // 606 answers count against the quota (only 601/602/604/605/608/611 are exempt).
    assert_eq!(c.quota_calls, 8);
}

#[tokio::test(start_paused = true)]
async fn time_scale_shrinks_the_window() {
    let api = Api::start(SimConfig {
        rate_calls: 2,
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .await;
    api.get("/rest/v1/leads/describe.json").await;
    api.get("/rest/v1/leads/describe.json").await;
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "606"
    );
    tokio::time::advance(Duration::from_secs(1)).await; // 20 s / 20
    assert_eq!(
        api.get("/rest/v1/leads/describe.json").await["success"],
        true
    );
}

#[tokio::test]
async fn concurrency_limit_answers_615_and_peak_is_recorded() {
    let api = Api::start(SimConfig {
        max_concurrency: 2,
        latency: LatencyModel {
            base: Duration::from_millis(300),
            per_record: Duration::ZERO,
        },
        ..SimConfig::default()
    })
    .await;
    let (a, b, c) = tokio::join!(
        api.get("/rest/v1/leads/describe.json"),
        api.get("/rest/v1/leads/describe.json"),
        api.get("/rest/v1/leads/describe.json"),
    );
    let codes: Vec<Option<&str>> = [&a, &b, &c]
        .iter()
        .map(|v| v["errors"][0]["code"].as_str())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Some("615")).count(),
        1,
        "{codes:?}"
    );
    let counters = api.sim.counters();
    assert_eq!(counters.peak_concurrency, 3);
    assert_eq!(counters.code("615"), 1);
    let v = [a, b, c]
        .into_iter()
        .find(|v| v["success"] == false)
        .expect("one refused");
    assert_eq!(
        v["errors"][0]["message"],
        "Concurrent access limit '2' reached"
    );
}

#[tokio::test]
async fn daily_quota_answers_607_until_reset() {
    let api = Api::start(SimConfig {
        daily_quota: 3,
        ..SimConfig::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            api.get("/rest/v1/leads/describe.json").await["success"],
            true
        );
    }
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "607"
    );
    assert_eq!(api.sim.counters().quota_used, 3);
    // Over HTTP too.
    let r = api
        .http
        .post(api.url("/_sim/quota/reset"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.get("/rest/v1/leads/describe.json").await["success"],
        true
    );
    api.sim.reset_daily_quota();
    assert_eq!(api.sim.counters().quota_used, 0);
}

#[tokio::test]
async fn body_over_1mb_is_413_and_url_over_8kb_is_414_uncounted() {
    let api = Api::start(SimConfig::default()).await;
    let big = json!({"input": [{"email": "a@example.com", "address": "x".repeat(1024 * 1024)}]});
    let r = api
        .http
        .post(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .json(&big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    let long = format!(
        "/rest/v1/leads.json?filterType=id&filterValues={}",
        "1,".repeat(4200)
    );
    let r = api
        .http
        .get(api.url(&long))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 414);
    let c = api.sim.counters();
    assert_eq!(c.code("413"), 1);
    assert_eq!(c.code("414"), 1);
    assert_eq!(c.quota_calls, 0);
    assert_eq!(api.sim.lead_count(), 0);
}

async fn with_fault(kind: FaultKind) -> Api {
    Api::start(SimConfig {
        faults: FaultConfig {
            seed: 1,
            rate: 1.0,
            kinds: vec![kind],
        },
        ..SimConfig::default()
    })
    .await
}

#[tokio::test]
async fn uncounted_fault_codes_execute_nothing() {
    for (kind, code) in [
        (FaultKind::Code604, "604"),
        (FaultKind::Code608, "608"),
        (FaultKind::Code611, "611"),
    ] {
        let api = with_fault(kind).await;
        let v = api
            .post_json(
                "/rest/v1/leads.json",
                &json!({"input": [{"email": "f@example.com"}]}),
            )
            .await;
        assert_eq!(err_code(&v), code);
        assert_eq!(api.sim.lead_count(), 0);
        let c = api.sim.counters();
        assert_eq!(c.quota_calls, 0, "{code} does not count");
        assert_eq!(c.faults[kind.name()], 1);
    }
    let api = with_fault(FaultKind::Code713).await;
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"input": [{"email": "f@example.com"}]}),
        )
        .await;
    assert_eq!(err_code(&v), "713");
    assert_eq!(api.sim.lead_count(), 0);
    assert_eq!(api.sim.counters().quota_calls, 1);
}

#[tokio::test]
async fn http_502_and_closed_connection_lose_the_answer_after_the_work() {
    let api = with_fault(FaultKind::Http502).await;
    let r = api
        .http
        .post(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .json(&json!({"input": [{"email": "g@example.com"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(
        api.sim.lead_count(),
        1,
        "a gateway timeout may hide completed work"
    );

    let api = with_fault(FaultKind::CloseConnection).await;
    let r = api
        .http
        .post(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .json(&json!({"input": [{"email": "c@example.com"}]}))
        .send()
        .await;
    assert!(r.is_err(), "no reply: {r:?}");
    assert_eq!(api.sim.lead_count(), 1);

    let api = with_fault(FaultKind::Http503).await;
    let r = api
        .http
        .post(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .json(&json!({"input": [{"email": "c@example.com"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 503);
    assert_eq!(api.sim.lead_count(), 0);
}

#[tokio::test]
async fn token_expiry_fault_expires_the_token() {
    let api = with_fault(FaultKind::TokenExpiry).await;
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "602"
    );
    api.sim.set_faults(FaultConfig::none());
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "602"
    );
    let fresh = api.fresh_token().await;
    assert_ne!(fresh, api.token);
}

#[tokio::test(start_paused = true)]
async fn slow_fault_delays_the_answer() {
    let api = Api::start(SimConfig {
        faults: FaultConfig {
            seed: 1,
            rate: 1.0,
            kinds: vec![FaultKind::Slow],
        },
        slow_answer: Duration::from_secs(45),
        ..SimConfig::default()
    })
    .await;
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        api.get("/rest/v1/leads/describe.json").await["success"],
        true
    );
    assert!(t0.elapsed() >= Duration::from_secs(45));
}

async fn outcome_sequence(seed: u64) -> Vec<(u16, Option<String>)> {
    let api = Api::start(SimConfig {
        faults: FaultConfig {
            seed,
            rate: 0.4,
            kinds: vec![
                FaultKind::Code604,
                FaultKind::Code608,
                FaultKind::Code713,
                FaultKind::Http502,
                FaultKind::Http503,
            ],
        },
        ..SimConfig::default()
    })
    .await;
    let mut out = Vec::new();
    for _ in 0..40 {
        let r = api
            .http
            .get(api.url("/rest/v1/leads/describe.json"))
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let code = if status == 200 {
            let v: Value = r.json().await.expect("json");
            v["errors"][0]["code"].as_str().map(str::to_string)
        } else {
            None
        };
        out.push((status, code));
    }
    out
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    let a = outcome_sequence(99).await;
    let b = outcome_sequence(99).await;
    assert_eq!(a, b);
    assert!(
        a.iter().any(|(s, c)| *s != 200 || c.is_some()),
        "some faults drawn"
    );
    assert!(
        a.iter().any(|(s, c)| *s == 200 && c.is_none()),
        "some calls succeed"
    );
    assert_ne!(a, outcome_sequence(100).await);
}

#[tokio::test]
async fn faults_over_the_side_channel() {
    let api = Api::start(SimConfig::default()).await;
    let r = api
        .http
        .post(api.url("/_sim/faults"))
        .json(&json!({"seed": 3, "rate": 1.0, "kinds": ["code_608"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "608"
    );
    let r = api
        .http
        .post(api.url("/_sim/faults"))
        .json(&json!({"seed": 3, "rate": 1.0, "kinds": ["nonsense"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn request_log_has_one_line_per_call_without_query_strings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("calls.jsonl");
    let api = Api::start(SimConfig {
        request_log: Some(log.clone()),
        ..SimConfig::default()
    })
    .await;
    api.upsert(&["secret.person@example.com".to_string()]).await;
    api.get_q(
        "/rest/v1/leads.json",
        &[
            ("filterType", "email"),
            ("filterValues", "secret.person@example.com"),
        ],
    )
    .await;
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3, "identity + upsert + filter");
    assert_eq!(lines[1]["method"], "POST");
    assert_eq!(lines[1]["path"], "/rest/v1/leads.json");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["records"], 1);
    assert!(lines[1]["duration_ms"].is_number());
    assert!(lines[1]["time"].is_string());
    assert!(!text.contains("secret.person"), "no emails in the log");
}
