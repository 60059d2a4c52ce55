//! A million leads and a million-member list: every call stays indexed
//! (docs/connectors/marketo-sim.md). Correctness at scale, over HTTP.
mod common;

use std::time::Instant;

use audex_marketo_sim::SimConfig;
use common::Api;
use serde_json::{json, Value};

const N: usize = 1_000_000;

#[tokio::test]
async fn million_leads_and_million_member_list() {
    let api = Api::start(SimConfig::default()).await;
    let t = Instant::now();
    let ids = api
        .sim
        .insert_leads((0..N).map(|i| json!({"email": format!("u{i}@example.com")})))
        .expect("seed");
    assert!(api.sim.add_members(1001, &ids));
    let seeded = t.elapsed();
    assert_eq!(api.sim.lead_count(), N);
    assert_eq!(api.sim.member_count(1001), N);

    // Upsert 300 existing leads by email (different case): all updated, none duplicated.
    let t = Instant::now();
    let input: Vec<Value> = (0..300)
        .map(|i| json!({"email": format!("U{}@EXAMPLE.com", i * 3000), "city": "Bergen"}))
        .collect();
    let v = api
        .post_json("/rest/v1/leads.json", &json!({"input": input}))
        .await;
    let upsert = t.elapsed();
    let r = v["result"].as_array().expect("result");
    assert!(r.iter().all(|x| x["status"] == "updated"), "{}", r[0]);
    assert_eq!(r[299]["id"], ids[299 * 3000]);
    assert_eq!(api.sim.lead_count(), N);

    // Remove 300 members from the middle and page from the end of the list.
    let t = Instant::now();
    let input: Vec<Value> = (0..300).map(|i| json!({"id": ids[500_000 + i]})).collect();
    let v = api
        .delete_json("/rest/v1/lists/1001/leads.json", &json!({"input": input}))
        .await;
    let remove = t.elapsed();
    assert!(v["result"]
        .as_array()
        .expect("r")
        .iter()
        .all(|x| x["status"] == "removed"));
    assert_eq!(api.sim.member_count(1001), N - 300);

    let side: Value = api
        .http
        .get(api.url(&format!(
            "/_sim/lists/1001/members?after={}&limit=5",
            ids[N - 3]
        )))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(side["count"], N - 300);
    assert_eq!(side["members"], json!([ids[N - 2], ids[N - 1]]));
    assert_eq!(side["next_after"], Value::Null);

    let t = Instant::now();
    let v = api
        .get_q("/rest/v1/lists/1001/leads.json", &[("batchSize", "300")])
        .await;
    let page = t.elapsed();
    assert_eq!(v["result"].as_array().expect("r").len(), 300);
    let token = v["nextPageToken"].as_str().expect("token").to_string();
    let v = api
        .get_q(
            "/rest/v1/lists/1001/leads.json",
            &[("batchSize", "300"), ("nextPageToken", &token)],
        )
        .await;
    assert_eq!(v["result"][0]["id"], ids[300]);

    let v = api
        .get_q(
            "/rest/v1/leads.json",
            &[
                ("filterType", "email"),
                ("filterValues", "u999999@example.com"),
            ],
        )
        .await;
    assert_eq!(v["result"][0]["id"], ids[N - 1]);
    eprintln!("seed {N} leads + members: {seeded:?}; upsert 300: {upsert:?}; remove 300: {remove:?}; members page: {page:?}");
}
