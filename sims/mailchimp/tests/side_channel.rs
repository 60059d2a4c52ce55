//! The `/_sim/` side channel over HTTP: seeding, inspection, counters and
//! faults at run time; and the key never shows in `Debug`.
mod common;

use audex_mailchimp_sim::{FaultKind, SimConfig, DEFAULT_API_KEY};
use common::{member_path, Api, LIST};
use serde_json::{json, Value};

async fn side(api: &Api, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = api
        .http
        .request(method, format!("{}{path}", api.sim.base_url()));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn seed_inspect_and_steer_over_http() {
    use reqwest::Method;
    let api = Api::start(SimConfig::default()).await;
    let (s, v) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/contacts"),
        Some(json!([
            {"email": "a@example.com", "status": "subscribed", "merge_fields": {"FNAME": "A"}, "tags": ["t1"]},
            {"email": "b@example.com", "status": "unsubscribed"},
        ])),
    )
    .await;
    assert_eq!((s, v["seeded"].as_u64()), (200, Some(2)));
    let (s, v) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/contacts"),
        Some(json!({"email": "a@example.com", "status": "subscribed"})),
    )
    .await;
    assert_eq!(s, 400, "duplicate: {v}");
    let (s, _) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/contacts"),
        Some(json!({"email": "c@example.com", "status": "subscribed", "merge_fields": {"NOPE": "x"}})),
    )
    .await;
    assert_eq!(s, 400, "unknown merge tag");

    let (s, v) = side(
        &api,
        Method::GET,
        &format!("/_sim/audiences/{LIST}/contacts?email=A@example.com"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"email": "a@example.com", "status": "subscribed", "merge_fields": {"FNAME": "A"}, "tags": ["t1"]})
    );

    let (s, _) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/forgotten"),
        Some(json!({"emails": ["a@example.com"]})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = side(
        &api,
        Method::GET,
        &format!("/_sim/audiences/{LIST}/contacts?email=a@example.com"),
        None,
    )
    .await;
    assert_eq!((s, &v["forgotten"]), (404, &json!(true)));

    let (_, v) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/segments"),
        Some(json!({"name": "seg", "emails": ["b@example.com", "zz@example.com"]})),
    )
    .await;
    let seg = v["id"].as_u64().expect("id");
    let (_, v) = side(
        &api,
        Method::GET,
        &format!("/_sim/audiences/{LIST}/segments/{seg}/members"),
        None,
    )
    .await;
    assert_eq!(
        v["emails"],
        json!(["b@example.com"]),
        "every status, strangers ignored"
    );
    let (_, v) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/segments"),
        Some(json!({"name": "s2", "type": "saved"})),
    )
    .await;
    let saved = v["id"].as_u64().expect("id");
    let r = api
        .post(
            &format!("/lists/{LIST}/segments/{saved}"),
            &json!({"members_to_add": []}),
        )
        .await;
    assert_eq!(r.status, 400);

    let (s, _) = side(
        &api,
        Method::POST,
        &format!("/_sim/audiences/{LIST}/contacts/status"),
        Some(json!({"email": "b@example.com", "status": "cleaned"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        api.sim.contact(LIST, "b@example.com").map(|c| c.status),
        Some(audex_mailchimp_sim::ContactStatus::Cleaned)
    );
    let (_, v) = side(
        &api,
        Method::DELETE,
        &format!("/_sim/audiences/{LIST}/segments/{seg}/members"),
        Some(json!({"emails": ["b@example.com"]})),
    )
    .await;
    assert_eq!(v["removed"], 1);
    assert_eq!(api.sim.segment_members(LIST, seg), Some(vec![]));
    assert!(!api.sim.set_status(
        LIST,
        "nobody@example.com",
        audex_mailchimp_sim::ContactStatus::Unsubscribed
    ));
    assert!(api.sim.set_status(
        LIST,
        "b@example.com",
        audex_mailchimp_sim::ContactStatus::Unsubscribed
    ));
    let (_, state) = side(&api, Method::GET, "/_sim/state", None).await;
    assert_eq!(state["audiences"][0]["contacts"]["unsubscribed"], 1);
    assert_eq!(
        state["audiences"][0]["segments"].as_array().map(Vec::len),
        Some(3)
    );

    // Faults at run time, then counters and their reset.
    let (s, _) = side(
        &api,
        Method::POST,
        "/_sim/faults",
        Some(json!({"seed": 1, "rate": 1.0, "kinds": ["http_503"]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(api.get("/ping").await.status, 503);
    let (s, _) = side(
        &api,
        Method::POST,
        "/_sim/faults",
        Some(json!({"rate": 2.0, "kinds": ["http_503"]})),
    )
    .await;
    assert_eq!(s, 400);
    let (_, f) = side(&api, Method::GET, "/_sim/faults", None).await;
    assert_eq!(f["kinds"], json!(["http_503"]));
    side(
        &api,
        Method::POST,
        "/_sim/faults",
        Some(json!({"rate": 0.0})),
    )
    .await;
    assert_eq!(
        api.get(&member_path("b@example.com")).await.json["status"],
        "unsubscribed"
    );
    let (_, c) = side(&api, Method::GET, "/_sim/counters", None).await;
    assert_eq!(c["faults"]["http_503"], 1);
    assert_eq!(api.sim.counters().fault(FaultKind::Http503), 1);
    side(&api, Method::POST, "/_sim/counters/reset", None).await;
    let (_, c) = side(&api, Method::GET, "/_sim/counters", None).await;
    assert_eq!(c["total_calls"], 0);
    assert_eq!(side(&api, Method::GET, "/_sim/nothing", None).await.0, 404);
}

#[tokio::test]
async fn debug_output_never_holds_the_key() {
    let api = Api::start(SimConfig::default()).await;
    let shown = format!("{:?} {:?}", api.sim, api.sim.config());
    assert!(!shown.contains(DEFAULT_API_KEY));
    assert!(shown.contains("<redacted>"));
}
