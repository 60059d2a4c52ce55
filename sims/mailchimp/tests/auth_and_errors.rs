//! Auth (Basic or Bearer), the account root and ping, audiences, merge
//! fields, and the problem+json errors (facts §1, §3, §7).
mod common;

use audex_mailchimp_sim::{MergeType, SimAudience, SimConfig, SimMergeField, DEFAULT_API_KEY};
use common::{assert_problem, resp, Api, LIST};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn basic_and_bearer_keys_work_wrong_or_missing_keys_are_401() {
    let api = Api::start(SimConfig::default()).await;
    let r = api.get("/ping").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"health_status": "Everything's Chimpy!"}));
    assert!(r.content_type.starts_with("application/json"));

    let bearer = resp(
        api.http
            .get(api.url("/ping"))
            .bearer_auth(DEFAULT_API_KEY)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(bearer.status, 200);

    let wrong = resp(
        api.http
            .get(api.url("/ping"))
            .basic_auth("user", Some("ffffffffffffffffffffffffffffffff-us6"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&wrong, 401, "API Key Invalid");
    assert!(!wrong.text.contains(DEFAULT_API_KEY));

    // The right key for another data center is another key.
    let other_dc = resp(
        api.http
            .get(api.url("/ping"))
            .bearer_auth("0123456789abcdef0123456789abcdef-us1")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&other_dc, 401, "API Key Invalid");

    let missing = resp(api.http.get(api.url("/lists")).send().await.expect("send")).await;
    assert_problem(&missing, 401, "API Key Invalid");
    assert_eq!(
        missing.json["detail"],
        "Your request did not include an API key."
    );
    assert_eq!(api.sim.counters().status(401), 3);
}

#[tokio::test]
async fn root_list_and_merge_fields() {
    let api = Api::start(SimConfig::default()).await;
    let root = api.get("/").await;
    assert_eq!(root.status, 200);
    assert!(root.json["account_id"].is_string());
    assert_eq!(root.json["account_name"], "audex sim");

    let list = api.get(&format!("/lists/{LIST}")).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["id"], LIST);
    assert_eq!(list.json["double_optin"], false);
    assert_eq!(list.json["stats"]["member_count"], 0);

    let all = api.get("/lists").await;
    assert_eq!(all.json["total_items"], 1);
    assert_eq!(all.json["lists"][0]["id"], LIST);

    let mf = api.get(&format!("/lists/{LIST}/merge-fields")).await;
    assert_eq!(mf.status, 200);
    assert_eq!(mf.json["total_items"], 4);
    let tags: Vec<&str> = mf.json["merge_fields"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["tag"].as_str())
        .collect();
    assert_eq!(tags, ["FNAME", "LNAME", "ADDRESS", "PHONE"]);
    let addr = &mf.json["merge_fields"][2];
    assert_eq!(addr["type"], "address");
    assert_eq!(addr["merge_id"], 3);
    for k in ["required", "default_value", "public", "options", "name"] {
        assert!(addr.get(k).is_some(), "{k}");
    }
    let page = api
        .get(&format!("/lists/{LIST}/merge-fields?count=2&offset=3"))
        .await;
    assert_eq!(page.json["merge_fields"].as_array().map(Vec::len), Some(1));
    assert_eq!(page.json["merge_fields"][0]["tag"], "PHONE");
    let over = api
        .get(&format!("/lists/{LIST}/merge-fields?count=1001"))
        .await;
    assert_problem(&over, 400, "Invalid Resource");

    let missing = api.get("/lists/nope123456").await;
    assert_problem(&missing, 404, "Resource Not Found");
    assert_problem(
        &api.get("/lists/nope123456/merge-fields").await,
        404,
        "Resource Not Found",
    );
}

#[tokio::test]
async fn configured_audiences_and_fields() {
    let mut audience = SimAudience::new("d0d0d0d0d0", "Double");
    audience.double_optin = true;
    audience.merge_fields = vec![SimMergeField::new("PLAN", "Plan", MergeType::Radio)
        .with_choices(&["a", "b"])
        .required()];
    let api = Api::start(SimConfig {
        audiences: vec![audience],
        ..SimConfig::default()
    })
    .await;
    let list = api.get("/lists/d0d0d0d0d0").await;
    assert_eq!(list.json["double_optin"], true);
    let mf = api
        .get("/lists/d0d0d0d0d0/merge-fields?required=true")
        .await;
    assert_eq!(
        mf.json["merge_fields"][0]["options"]["choices"],
        json!(["a", "b"])
    );
    assert_eq!(mf.json["merge_fields"][0]["required"], true);
    assert_problem(
        &api.get(&format!("/lists/{LIST}")).await,
        404,
        "Resource Not Found",
    );
    // Added at run time, over the side channel.
    let r = api
        .http
        .post(format!("{}/_sim/audiences", api.sim.base_url()))
        .json(&json!({"id": "e1e1e1e1e1", "name": "Side"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let mf = api.get("/lists/e1e1e1e1e1/merge-fields").await;
    assert_eq!(mf.json["total_items"], 4, "default merge fields");
}

#[tokio::test]
async fn unknown_routes_methods_and_bad_json() {
    let api = Api::start(SimConfig::default()).await;
    assert_problem(&api.get("/nothing/here").await, 404, "Resource Not Found");
    assert_problem(
        &api.get("/lists/x/segments/notanumber").await,
        404,
        "Resource Not Found",
    );
    assert_problem(
        &api.send(Method::DELETE, "/ping", None).await,
        405,
        "Method Not Allowed",
    );
    assert_problem(
        &api.send(Method::PUT, &format!("/lists/{LIST}"), None).await,
        405,
        "Method Not Allowed",
    );
    let bad = resp(
        api.http
            .post(api.url(&format!("/lists/{LIST}")))
            .basic_auth("u", Some(&api.key))
            .header("content-type", "application/json")
            .body("{\"members\": [")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&bad, 400, "JSON Parse Exception");
    let c = api.sim.counters();
    assert_eq!(c.calls("unknown"), 4);
    assert_eq!(c.titles.get("JSON Parse Exception"), Some(&1));
}

#[tokio::test]
async fn x_trigger_error_forces_a_problem_without_running_the_call() {
    let api = Api::start(SimConfig::default()).await;
    let r = resp(
        api.http
            .put(api.url(&common::member_path("t@example.com")))
            .basic_auth("u", Some(&api.key))
            .header("X-Trigger-Error", "InternalServerError")
            .json(&json!({"email_address": "t@example.com", "status_if_new": "subscribed"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&r, 500, "Internal Server Error");
    assert!(api.sim.contact(LIST, "t@example.com").is_none());
    let r = resp(
        api.http
            .get(api.url("/ping"))
            .basic_auth("u", Some(&api.key))
            .header("X-Trigger-Error", "TooManyRequests")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_problem(&r, 429, "TooManyRequests");
}

#[tokio::test]
async fn request_log_has_one_line_per_call_and_never_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("calls.jsonl");
    let api = Api::start(SimConfig {
        request_log: Some(log.clone()),
        ..SimConfig::default()
    })
    .await;
    api.get("/ping").await;
    api.upsert(&json!({"email_address": "log@example.com", "status_if_new": "subscribed"}))
        .await;
    let bad = resp(
        api.http
            .get(api.url("/ping"))
            .bearer_auth("nope")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(bad.status, 401);
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["op"], "put_member");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["members"], 1);
    assert_eq!(lines[2]["title"], "API Key Invalid");
    assert!(!text.contains(DEFAULT_API_KEY));
    assert!(!text.contains("log@example.com"), "no emails in the log");
}
