//! Sync Leads and Get Leads by Filter (facts §6, §3 `_method=GET`).
mod common;

use audex_marketo_sim::{SimConfig, SimField};
use common::{emails, err_code, Api};
use serde_json::{json, Value};

fn cfg() -> SimConfig {
    SimConfig {
        custom_fields: vec![
            SimField::new("workEmail", "email"),
            SimField::new("ltv", "float"),
            SimField::new("pct", "percent"),
            SimField::new("lastSeen", "datetime"),
        ],
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn create_or_update_matches_email_case_insensitively() {
    let api = Api::start(cfg()).await;
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"action": "createOrUpdate", "lookupField": "email",
                    "input": [{"email": "Ann@Example.com", "firstName": "Ann"}]}),
        )
        .await;
    let keys: Vec<&String> = v.as_object().expect("obj").keys().collect();
    assert_eq!(
        keys.len(),
        3,
        "Lead DB success: requestId, result, success only: {v}"
    );
    assert_eq!(v["result"][0]["status"], "created");
    let id = v["result"][0]["id"].as_u64().expect("id");
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"input": [{"email": "ann@example.COM", "city": "Oslo"}]}),
        )
        .await;
    assert_eq!(v["result"][0], json!({"id": id, "status": "updated"}));
    let lead = api.sim.lead_by_email("ANN@example.com").expect("lead");
    assert_eq!(lead.id, id);
    assert_eq!(lead.fields["firstName"], "Ann");
    assert_eq!(lead.fields["city"], "Oslo");
    assert_eq!(api.sim.lead_count(), 1);
}

#[tokio::test]
async fn results_keep_input_order_and_skip_invalid_values_with_1003() {
    let api = Api::start(cfg()).await;
    let input = json!([
        {"email": "ok1@example.com"},
        {"email": "bad-email"},
        {"email": "i@example.com", "numberOfEmployees": 14.1},
        {"email": "f@example.com", "ltv": "14c"},
        {"email": "d@example.com", "lastSeen": "yesterday"},
        {"email": "p@example.com", "pct": "100%"},
        {"email": "b@example.com", "unsubscribed": "other"},
        {"email": "w@example.com", "workEmail": "bademail"},
        {"email": "ok2@example.com", "unsubscribed": null, "lastSeen": "2020-08-30T05:49:48.000Z"},
    ]);
    let v = api
        .post_json("/rest/v1/leads.json", &json!({"input": input}))
        .await;
    assert_eq!(v["success"], true);
    let r = v["result"].as_array().expect("result");
    assert_eq!(r.len(), 9, "same length as input");
    assert_eq!(r[0]["status"], "created");
    assert_eq!(r[8]["status"], "created");
    for (i, field) in [
        (1, "email"),
        (2, "numberOfEmployees"),
        (3, "ltv"),
        (4, "lastSeen"),
        (5, "pct"),
        (6, "unsubscribed"),
        (7, "workEmail"),
    ] {
        assert_eq!(r[i]["status"], "skipped", "{i}");
        assert!(r[i].get("id").is_none(), "skipped rows carry no id");
        assert_eq!(r[i]["reasons"][0]["code"], "1003", "{i}");
        assert_eq!(
            r[i]["reasons"][0]["message"],
            format!("Invalid value for field '{field}'")
        );
    }
    let ok2 = api.sim.lead_by_email("ok2@example.com").expect("ok2");
    assert_eq!(
        ok2.fields["unsubscribed"], false,
        "null boolean stored as false [GRP]"
    );
    assert_eq!(ok2.fields["lastSeen"], "2020-08-30T05:49:48Z");
    assert_eq!(api.sim.counters().record_codes["1003"], 7);
}

#[tokio::test]
async fn create_only_and_update_only() {
    let api = Api::start(cfg()).await;
    api.upsert(&["x@example.com".to_string()]).await;
    let v = api
        .post_json("/rest/v1/leads.json", &json!({"action": "createOnly", "input": [{"email": "X@example.com"}, {"email": "new@example.com"}]}))
        .await;
    assert_eq!(
        v["result"][0]["reasons"][0],
        json!({"code": "1005", "message": "Lead already exists"})
    );
    assert_eq!(v["result"][1]["status"], "created");
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"action": "updateOnly", "input": [{"email": "none@example.com"}]}),
        )
        .await;
    assert_eq!(v["result"][0]["reasons"][0]["code"], "1004");
    let id = api.sim.lead_by_email("x@example.com").expect("x").id;
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"action": "updateOnly", "lookupField": "id", "input": [{"id": id, "lastName": "Z"}]}),
        )
        .await;
    assert_eq!(v["result"][0], json!({"id": id, "status": "updated"}));
    // id as lookup with createOnly is invalid data (facts §6).
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"action": "createOnly", "lookupField": "id", "input": [{"id": id}]}),
        )
        .await;
    assert_eq!(v["result"][0]["reasons"][0]["code"], "1003");
}

#[tokio::test]
async fn unknown_field_fails_the_whole_request_with_1006() {
    let api = Api::start(cfg()).await;
    let v = api
        .post_json("/rest/v1/leads.json", &json!({"input": [{"email": "a@example.com"}, {"email": "b@example.com", "shoeSize": 44}]}))
        .await;
    assert_eq!(err_code(&v), "1006");
    assert!(v["errors"][0]["message"]
        .as_str()
        .expect("msg")
        .contains("shoeSize"));
    assert_eq!(api.sim.lead_count(), 0, "nothing written");
}

#[tokio::test]
async fn more_than_300_records_is_refused_whole() {
    let api = Api::start(cfg()).await;
    let input: Vec<Value> = emails("big", 301)
        .into_iter()
        .map(|e| json!({"email": e}))
        .collect();
    let v = api
        .post_json("/rest/v1/leads.json", &json!({"input": input}))
        .await;
    assert_eq!(err_code(&v), "1003");
    assert_eq!(api.sim.lead_count(), 0);
    let input: Vec<Value> = emails("ok", 300)
        .into_iter()
        .map(|e| json!({"email": e}))
        .collect();
    let v = api
        .post_json("/rest/v1/leads.json", &json!({"input": input}))
        .await;
    assert_eq!(v["result"].as_array().expect("r").len(), 300);
}

#[tokio::test]
async fn bad_json_and_wrong_content_type() {
    let api = Api::start(cfg()).await;
    let v: Value = api
        .http
        .post(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(err_code(&v), "609");
    let v: Value = api
        .http
        .post(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .header("content-type", "text/plain")
        .body(r#"{"input":[{"email":"a@example.com"}]}"#)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(err_code(&v), "612");
}

#[tokio::test]
async fn duplicate_emails_in_one_batch_skip_the_later_ones() {
    let api = Api::start(cfg()).await;
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"input": [{"email": "d@example.com"}, {"email": "D@EXAMPLE.com"}]}),
        )
        .await;
    assert_eq!(v["result"][0]["status"], "created");
    assert_eq!(v["result"][1]["status"], "skipped");
    assert_eq!(v["result"][1]["reasons"][0]["code"], "1036");
    assert_eq!(api.sim.lead_count(), 1);
}

#[tokio::test]
async fn overlong_strings_are_truncated_not_refused() {
    let api = Api::start(cfg()).await;
    let long = "y".repeat(300);
    let v = api
        .post_json(
            "/rest/v1/leads.json",
            &json!({"input": [{"email": "t@example.com", "city": long}]}),
        )
        .await;
    assert_eq!(v["result"][0]["status"], "created");
    let lead = api.sim.lead_by_email("t@example.com").expect("lead");
    assert_eq!(lead.fields["city"].as_str().expect("city").len(), 255);
}

#[tokio::test]
async fn get_leads_by_filter_with_get_and_with_post_method_override() {
    let api = Api::start(cfg()).await;
    let ids = api.upsert(&emails("f", 5)).await;
    let v = api
        .get_q(
            "/rest/v1/leads.json",
            &[
                ("filterType", "email"),
                (
                    "filterValues",
                    "F0@example.com,f3@example.com,zz@example.com",
                ),
                ("fields", "email,firstName"),
            ],
        )
        .await;
    let got: Vec<u64> = v["result"]
        .as_array()
        .expect("r")
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(got, vec![ids[0], ids[3]]);
    assert!(
        v["result"][0].get("firstName").is_some(),
        "requested fields present, null when unset"
    );
    // [PY]: POST form-encoded with _method=GET to avoid 414.
    let v = api
        .post_form(
            "/rest/v1/leads.json",
            &[
                ("_method", "GET"),
                ("filterType", "id"),
                ("filterValues", &format!("{},{}", ids[1], ids[2])),
                ("batchSize", "1"),
            ],
        )
        .await;
    assert_eq!(v["result"].as_array().expect("r").len(), 1);
    let token = v["nextPageToken"].as_str().expect("paged").to_string();
    let v = api
        .post_form(
            "/rest/v1/leads.json",
            &[
                ("_method", "GET"),
                ("filterType", "id"),
                ("filterValues", &format!("{},{}", ids[1], ids[2])),
                ("batchSize", "1"),
                ("nextPageToken", &token),
            ],
        )
        .await;
    assert_eq!(v["result"][0]["id"], ids[2]);
    assert!(v.get("nextPageToken").is_none());
    // Unknown field in `fields`, unknown filter type, too many values.
    assert_eq!(
        err_code(
            &api.get_q(
                "/rest/v1/leads.json",
                &[
                    ("filterType", "email"),
                    ("filterValues", "a@b.com"),
                    ("fields", "nope")
                ]
            )
            .await
        ),
        "1006"
    );
    assert_eq!(
        err_code(
            &api.get_q(
                "/rest/v1/leads.json",
                &[("filterType", "city"), ("filterValues", "Oslo")]
            )
            .await
        ),
        "1011"
    );
    let many = emails("m", 301).join(",");
    let v = api
        .post_form(
            "/rest/v1/leads.json",
            &[
                ("_method", "GET"),
                ("filterType", "email"),
                ("filterValues", &many),
            ],
        )
        .await;
    assert_eq!(err_code(&v), "1003");
}

#[tokio::test]
async fn too_many_filter_matches_is_1003() {
    let api = Api::start(SimConfig {
        max_filter_matches: 3,
        ..cfg()
    })
    .await;
    let ids = api.upsert(&emails("t", 4)).await;
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    let v = api
        .get_q(
            "/rest/v1/leads.json",
            &[("filterType", "id"), ("filterValues", &list.join(","))],
        )
        .await;
    assert_eq!(err_code(&v), "1003");
    assert_eq!(
        v["errors"][0]["message"],
        "Too many results match the filter"
    );
}

#[tokio::test]
async fn delete_leads_both_forms() {
    let api = Api::start(cfg()).await;
    let ids = api.upsert(&emails("del", 3)).await;
    let v = api
        .post_json(
            "/rest/v1/leads/delete.json",
            &json!({"input": [{"id": ids[0]}, {"id": 999_999}]}),
        )
        .await;
    assert_eq!(v["result"][0]["status"], "deleted");
    assert_eq!(v["result"][1]["reasons"][0]["code"], "1004");
    let v = api
        .post_json(
            "/rest/v1/leads.json?_method=DELETE",
            &json!({"input": [{"id": ids[1]}]}),
        )
        .await;
    assert_eq!(v["result"][0]["status"], "deleted");
    assert_eq!(api.sim.lead_count(), 1);
    assert!(api.sim.lead_by_email("del0@example.com").is_none());
}
