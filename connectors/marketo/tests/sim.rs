//! The Marketo client and destination against the simulator, over real HTTP.
//! Each test starts its own simulator (its own port, so its own limiter and
//! token cache) with time scaled down so Marketo's 20 s window is 1 s.

use std::sync::Arc;
use std::time::Duration;

use audex_core::{
    Destination, ErrorClass, FieldValue, ListId, Member, MemberId, Record, RecordKey, Records,
};
use audex_marketo::client::retry::Backoff;
use audex_marketo::client::{ClientOptions, ListLookup};
use audex_marketo::{MarketoConfig, MarketoDestination};
use audex_marketo_sim::faults::decide;
use audex_marketo_sim::{
    FaultConfig, FaultKind, LatencyModel, SimConfig, SimField, SimHandle, Simulator,
};
use futures::TryStreamExt;
use serde_json::json;

/// Scale 20: the 20 s window lasts 1 s, a 3600 s token 180 s.
const SCALE: f64 = 20.0;

fn sim_config() -> SimConfig {
    SimConfig {
        time_scale: SCALE,
        custom_fields: vec![SimField::new("score", "integer")],
        ..SimConfig::default()
    }
}

async fn start(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).await.expect("simulator starts")
}

fn config(sim: &SimHandle, calls: u32, concurrency: usize, budget: u64) -> MarketoConfig {
    let window = sim.config().rate_window.as_secs_f64() / SCALE;
    serde_json::from_value(json!({
        "type": "marketo",
        "display_name": "Simulator",
        "endpoint": sim.base_url(),
        "client_id": sim.config().client_id,
        "client_secret": sim.config().client_secret,
        "data_privacy_consent": true,
        "export_user": "tester",
        "mapping": {"email": "email", "firstName": "first_name", "score": "score"},
        "list_id": 1001,
        "exports": [{"segment": "all"}],
        "rate_limit": {
            "calls": calls,
            "window_secs": window,
            "max_concurrency": concurrency,
            "daily_call_budget": budget,
        },
    }))
    .expect("valid config")
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(400),
            max_attempts: 8,
        },
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        timeout_hold: Duration::from_millis(500),
        max_throttle_retries: 10,
    }
}

fn destination(cfg: &MarketoConfig) -> MarketoDestination {
    MarketoDestination::with_options(cfg, fast_options()).expect("builds")
}

/// A record of `email, firstName, score` (score null).
fn record(email: &str, first: &str) -> Record {
    Record {
        key: RecordKey::new(email),
        values: vec![
            FieldValue::Text(email.to_string()),
            FieldValue::Text(first.to_string()),
            FieldValue::Null,
        ],
    }
}

/// `records` as one batch of `email, firstName, score`.
fn batch(records: Vec<Record>) -> Records {
    Records::new(
        ["email", "firstName", "score"]
            .map(String::from)
            .to_vec()
            .into(),
        records,
    )
}

fn records(prefix: &str, n: usize) -> Records {
    batch(
        (0..n)
            .map(|i| record(&format!("{prefix}{i}@example.com"), &format!("P{i}")))
            .collect(),
    )
}

fn members(outcomes: &[audex_core::RecordOutcome]) -> Vec<Member> {
    outcomes
        .iter()
        .map(|o| Member {
            key: o.key.clone(),
            id: o.result.clone().expect("accepted"),
        })
        .collect()
}

#[tokio::test]
async fn upsert_add_read_remove_round_trip() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    let list = ListId("1001".into());

    let out = dest.upsert(&records("rt", 300)).await.expect("upsert");
    assert_eq!(out.len(), 300);
    let added = members(&out);
    for (o, r) in out.iter().zip(records("rt", 300).records()) {
        assert_eq!(o.key, r.key);
        let id: u64 = o.result.clone().expect("ok").0.parse().expect("numeric id");
        let lead = sim.lead_by_email(r.key.as_str()).expect("lead exists");
        assert_eq!(lead.id, id, "outcome keyed by our key, not position");
    }

    let res = dest.add_members(&list, &added).await.expect("add");
    assert!(res.iter().all(|r| r.result.is_ok()));
    assert_eq!(sim.member_count(1001), 300);
    // Re-adding is idempotent.
    let again = dest.add_members(&list, &added[..10]).await.expect("re-add");
    assert!(again.iter().all(|r| r.result.is_ok()));

    // A second batch so reading needs three pages (300 a page).
    let more = dest.upsert(&records("rt2-", 100)).await.expect("upsert 2");
    dest.add_members(&list, &members(&more))
        .await
        .expect("add 2");
    let pages: Vec<Vec<audex_core::RemoteMember>> =
        dest.read_members(&list).try_collect().await.expect("read");
    assert!(pages.len() >= 2, "paged: {}", pages.len());
    let read: Vec<_> = pages.into_iter().flatten().collect();
    assert_eq!(read.len(), 400);
    assert!(read.iter().all(|m| m
        .key
        .as_ref()
        .is_some_and(|k| k.as_str().ends_with("@example.com"))));

    // Removing members and non-members alike succeeds.
    let res = dest
        .remove_members(&list, &added[..50])
        .await
        .expect("remove");
    assert!(res.iter().all(|r| r.result.is_ok()));
    let res = dest
        .remove_members(&list, &added[..50])
        .await
        .expect("remove twice");
    assert!(
        res.iter().all(|r| r.result.is_ok()),
        "1015 counts as removed"
    );
    assert_eq!(sim.member_count(1001), 350);

    // An unknown lead id is a per-member rejection, not an error.
    let ghost = Member {
        key: RecordKey::new("ghost@example.com"),
        id: MemberId("999999".into()),
    };
    let res = dest.add_members(&list, &[ghost]).await.expect("add ghost");
    assert_eq!(
        res[0].result.as_ref().map_err(|r| r.code.as_str()),
        Err("1004")
    );
}

#[tokio::test]
async fn invalid_rows_are_rejected_with_codes_and_the_rest_accepted() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    let mut rows: Vec<Record> = records("mixed", 10).records().to_vec();
    for i in [2usize, 7] {
        rows[i].values[2] = FieldValue::Text("fourteen".into());
    }
    rows[4].values[2] = FieldValue::Int(14);
    let out = dest
        .upsert(&batch(rows.clone()))
        .await
        .expect("the call succeeds");
    assert_eq!(out.len(), 10);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.key, rows[i].key);
        if i == 2 || i == 7 {
            let rej = o.result.as_ref().expect_err("rejected");
            assert_eq!(rej.code, "1003");
            assert!(!rej.message.contains('@'), "no email in {:?}", rej.message);
        } else {
            assert!(o.result.is_ok(), "row {i}");
        }
    }
    assert!(sim.lead_by_email("mixed2@example.com").is_none());
    assert!(sim.lead_by_email("mixed4@example.com").is_some());
}

#[tokio::test]
async fn token_expiry_mid_sequence_reauthenticates_once_and_retries() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    dest.upsert(&records("tok", 5)).await.expect("first");
    sim.expire_tokens();
    dest.upsert(&records("tok", 5)).await.expect("after expiry");
    dest.fields().await.expect("and after");
    let c = sim.counters();
    let refused = c.code("601") + c.code("602");
    assert_eq!(refused, 1, "one refused call: {:?}", c.codes);
    assert_eq!(c.calls("identity"), 2, "{:?}", c.by_op);
    assert_eq!(c.calls("sync_leads"), 3);
}

/// Faults where only token expiries happen, at calls picked by the seed.
fn token_expiries(seed: u64, rate: f64) -> FaultConfig {
    FaultConfig {
        seed,
        rate,
        kinds: vec![FaultKind::TokenExpiry],
    }
}

#[tokio::test]
async fn a_fresh_token_that_expires_again_is_renewed_again() {
    // A seed whose first two Marketo calls meet a token expiry and whose
    // third does not: the one upsert is refused twice, with two different
    // tokens, before it goes through.
    let seed = (0..10_000u64)
        .find(|&s| {
            let f = token_expiries(s, 0.5);
            decide(&f, 0).is_some() && decide(&f, 1).is_some() && decide(&f, 2).is_none()
        })
        .expect("a seed exists");
    let sim = start(SimConfig {
        faults: token_expiries(seed, 0.5),
        ..sim_config()
    })
    .await;
    let dest = destination(&config(&sim, 100, 1, 50_000));
    let out = dest
        .upsert(&records("again", 3))
        .await
        .expect("two expiries in a row are not an auth failure");
    assert!(out.iter().all(|o| o.result.is_ok()));
    let c = sim.counters();
    assert_eq!(c.code("602"), 2, "{:?}", c.codes);
    assert_eq!(c.calls("identity"), 3, "{:?}", c.by_op);
    assert_eq!(c.calls("sync_leads"), 3, "{:?}", c.by_op);
}

#[tokio::test]
async fn a_token_refused_every_time_fails_as_auth_after_a_bound() {
    let sim = start(SimConfig {
        faults: token_expiries(1, 1.0),
        ..sim_config()
    })
    .await;
    let dest = destination(&config(&sim, 100, 1, 50_000));
    let e = dest
        .upsert(&records("never", 2))
        .await
        .expect_err("every call refused");
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    let c = sim.counters();
    let tries = u64::from(audex_marketo::client::service::MAX_REAUTHS) + 1;
    assert_eq!(c.calls("sync_leads"), tries, "{:?}", c.by_op);
    assert_eq!(c.calls("identity"), tries, "{:?}", c.by_op);
}

#[tokio::test]
async fn rate_limit_hit_by_another_client_is_waited_out() {
    let sim = start(SimConfig {
        rate_calls: 10,
        ..sim_config()
    })
    .await;
    let dest = destination(&config(&sim, 10, 10, 50_000));
    // Warm the token so the flood below comes right before our call.
    dest.fields().await.expect("describe");
    let http = reqwest::Client::new();
    let token = raw_token(&http, &sim).await;
    for _ in 0..10 {
        http.get(format!("{}/rest/v1/leads/describe.json", sim.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("flood call");
    }
    sim.reset_counters();
    let out = dest
        .upsert(&records("rate", 3))
        .await
        .expect("succeeds after backing off");
    assert!(out.iter().all(|o| o.result.is_ok()));
    let c = sim.counters();
    assert!(
        c.code("606") >= 1,
        "the flood made our call meet a 606: {:?}",
        c.codes
    );
    assert_eq!(
        c.calls("sync_leads"),
        c.code("606") + 1,
        "retried until it passed: {:?}",
        c.codes
    );
}

#[tokio::test]
async fn concurrency_limit_hit_by_another_client_is_retried() {
    let sim = start(SimConfig {
        max_concurrency: 2,
        latency: LatencyModel {
            base: Duration::from_secs(6),
            per_record: Duration::ZERO,
        },
        ..sim_config()
    })
    .await;
    let dest = destination(&config(&sim, 100, 2, 50_000));
    dest.client().authenticate().await.expect("auth");
    let http = reqwest::Client::new();
    let token = raw_token(&http, &sim).await;
    let mut flood = Vec::new();
    for _ in 0..2 {
        let (http, url, token) = (
            http.clone(),
            format!("{}/rest/v1/leads/describe.json", sim.base_url()),
            token.clone(),
        );
        flood.push(tokio::spawn(async move {
            http.get(url).bearer_auth(token).send().await.map(|_| ())
        }));
    }
    // Wait until both slow calls hold the instance's two places.
    while sim.counters().in_flight < 2 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let fields = dest.fields().await.expect("succeeds after backing off");
    assert!(fields.iter().any(|f| f.name == "email"));
    for f in flood {
        f.await.expect("join").expect("flood call");
    }
    let c = sim.counters();
    assert!(c.code("615") >= 1, "the flood caused a 615: {:?}", c.codes);
}

#[tokio::test]
async fn http_502_and_closed_connections_are_retried() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    dest.client().authenticate().await.expect("auth");
    sim.set_faults(FaultConfig {
        seed: 7,
        rate: 0.3,
        kinds: vec![
            FaultKind::Http502,
            FaultKind::CloseConnection,
            FaultKind::Code608,
        ],
    });
    let list = ListId("1002".into());
    for round in 0..12 {
        let out = dest
            .upsert(&records(&format!("flaky{round}-"), 20))
            .await
            .expect("upsert survives faults");
        let res = dest
            .add_members(&list, &members(&out))
            .await
            .expect("add survives faults");
        assert!(res.iter().all(|r| r.result.is_ok()));
    }
    sim.set_faults(FaultConfig::none());
    let c = sim.counters();
    assert!(
        c.faults.get("http_502").copied().unwrap_or(0) >= 1,
        "{:?}",
        c.faults
    );
    assert!(
        c.faults.get("close_connection").copied().unwrap_or(0) >= 1,
        "{:?}",
        c.faults
    );
    assert_eq!(sim.member_count(1002), 240);
    // Retried upserts matched the same leads: no duplicates.
    assert_eq!(sim.lead_count(), 240);
}

#[tokio::test]
async fn long_lookups_avoid_414() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    let rows: Records = batch(
        (0..300)
            .map(|i| {
                record(
                    &format!("a.rather.long.mailbox.name.{i:04}@subdomain.example.com"),
                    "X",
                )
            })
            .collect(),
    );
    dest.upsert(&rows).await.expect("upsert");
    let emails: Vec<String> = rows.iter().map(|r| r.key().as_str().to_string()).collect();
    assert!(emails.join(",").len() > 8 * 1024, "the GET would pass 8 KB");
    let found = dest.client().leads_by_email(&emails).await.expect("lookup");
    assert_eq!(found.len(), 300);
    let c = sim.counters();
    assert_eq!(c.code("414"), 0, "{:?}", c.codes);
    assert_eq!(c.calls("get_leads_by_filter"), 1);
}

/// 20 callers share one destination (and so one limiter): Marketo never
/// answers 606 or 615, and the simulator never sees more than 10 in flight.
#[tokio::test]
async fn twenty_concurrent_callers_stay_under_window_and_cap() {
    let sim = start(SimConfig {
        latency: LatencyModel::realistic(),
        ..sim_config()
    })
    .await;
    let dest = Arc::new(destination(&config(&sim, 100, 10, 50_000)));
    let mut tasks = Vec::new();
    for t in 0..20 {
        let dest = dest.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                dest.upsert(&records(&format!("c{t}-{i}-"), 30))
                    .await
                    .expect("upsert");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let c = sim.counters();
    assert_eq!(c.calls("sync_leads"), 160);
    assert_eq!(c.code("606"), 0, "{:?}", c.codes);
    assert_eq!(c.code("615"), 0, "{:?}", c.codes);
    assert!(c.peak_concurrency <= 10, "peak {}", c.peak_concurrency);
    assert!(
        c.peak_concurrency >= 5,
        "calls overlapped: peak {}",
        c.peak_concurrency
    );
    assert_eq!(sim.lead_count(), 20 * 8 * 30);
}

#[tokio::test]
async fn marketo_quota_607_is_quota_exhausted() {
    let sim = start(SimConfig {
        daily_quota: 3,
        ..sim_config()
    })
    .await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    for _ in 0..3 {
        dest.fields().await.expect("within quota");
    }
    let err = dest
        .upsert(&records("q", 2))
        .await
        .expect_err("quota spent");
    assert_eq!(err.class(), ErrorClass::QuotaExhausted);
    let calls = sim.counters().total_calls;
    // Everyone sharing the instance stops without another call.
    let err = dest.fields().await.expect_err("still spent");
    assert!(err.is_quota_exhausted());
    assert_eq!(sim.counters().total_calls, calls);
}

#[tokio::test]
async fn own_daily_budget_stops_before_marketo_does() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 2));
    dest.fields().await.expect("1");
    dest.fields().await.expect("2");
    let err = dest.fields().await.expect_err("budget spent");
    assert!(err.is_quota_exhausted());
    assert_eq!(sim.counters().calls("describe"), 2);
}

#[tokio::test]
async fn lists_are_told_apart() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    let client = dest.client();
    assert!(
        matches!(client.get_list(1001).await.expect("1001"), ListLookup::Static(l) if l.id == 1001)
    );
    assert!(matches!(
        client.get_list(2001).await.expect("2001"),
        ListLookup::Smart { .. }
    ));
    assert_eq!(
        client.get_list(9999).await.expect("9999"),
        ListLookup::Missing
    );
}

#[tokio::test]
async fn describe_reports_types_lengths_and_writability() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    let fields = dest.fields().await.expect("describe");
    let email = fields.iter().find(|f| f.name == "email").expect("email");
    assert!(email.writable);
    assert_eq!(email.data_type, audex_core::FieldType::Email);
    assert_eq!(email.max_length, Some(255));
    let score = fields
        .iter()
        .find(|f| f.name == "score")
        .expect("custom field");
    assert_eq!(score.data_type, audex_core::FieldType::Integer);
    assert!(
        fields.iter().any(|f| !f.writable),
        "some fields are read-only"
    );
}

#[tokio::test]
async fn bulk_import_fills_the_list_and_reports_failures() {
    let sim = start(sim_config()).await;
    let dest = destination(&config(&sim, 100, 10, 50_000));
    let client = dest.client();
    let csv =
        "email,firstName,score\nb1@example.com,B1,1\nb2@example.com,B2,two\nb3@example.com,B3,3\n";
    let job = client
        .bulk_import(csv.as_bytes().to_vec(), Some(1003), "email")
        .await
        .expect("submitted");
    let done = client
        .wait_for_import(job.batch_id, Duration::from_millis(50))
        .await
        .expect("finished");
    assert_eq!(done.status, "Complete", "{done:?}");
    assert_eq!(done.num_of_rows_failed, 1);
    assert_eq!(sim.member_count(1003), 2);
    let failures = client
        .import_failures(job.batch_id)
        .await
        .expect("failures");
    assert!(
        failures.contains("b2@example.com"),
        "the failed row comes back"
    );
    assert_eq!(
        failures.lines().count(),
        2,
        "header and one row: {failures:?}"
    );
}

async fn raw_token(http: &reqwest::Client, sim: &SimHandle) -> String {
    let v: serde_json::Value = http
        .post(format!("{}/identity/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim.config().client_id.as_str()),
            ("client_secret", sim.config().client_secret.as_str()),
        ])
        .send()
        .await
        .expect("identity")
        .json()
        .await
        .expect("json");
    v["access_token"].as_str().expect("token").to_string()
}
