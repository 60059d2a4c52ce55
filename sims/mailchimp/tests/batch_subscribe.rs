//! Batch subscribe, `POST /lists/{id}`: HTTP 200 on partial failure,
//! per-member errors with Mailchimp's texts, the 500 cap (facts §4, §7, §8).
mod common;

use audex_mailchimp_sim::{ContactStatus, SimConfig};
use common::{assert_problem, emails, Api, LIST};
use serde_json::{json, Value};

fn member(e: &str) -> Value {
    json!({"email_address": e, "status_if_new": "subscribed", "merge_fields": {"FNAME": "B"}})
}

fn error_for<'a>(v: &'a Value, e: &str) -> &'a Value {
    v["errors"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["email_address"] == e))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn partial_failure_is_200_with_per_member_errors() {
    let api = Api::start(SimConfig::default()).await;
    api.sim
        .seed_contact(LIST, "old@example.com", ContactStatus::Subscribed)
        .expect("seed");
    api.sim
        .seed_contact(LIST, "unsub@example.com", ContactStatus::Unsubscribed)
        .expect("seed");
    api.sim
        .seed_contact(LIST, "clean@example.com", ContactStatus::Cleaned)
        .expect("seed");
    api.sim
        .seed_contact(LIST, "arch@example.com", ContactStatus::Archived)
        .expect("seed");
    api.sim.forget(LIST, &["gone@example.com"]).expect("forget");
    let path = format!("/lists/{LIST}");
    let body = json!({"members": [
        member("new1@example.com"),
        member("old@example.com"),
        member("unsub@example.com"),
        member("clean@example.com"),
        member("gone@example.com"),
        member("not-an-email"),
        member("bob@gmil.com"),
        member("arch@example.com"),
        {"email_address": "new2@example.com", "status": "pending", "merge_fields": {"NOPE": 1}},
    ]});
    let r = api.post(&path, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.json;
    assert_eq!(v["total_created"], 2, "{v}");
    assert_eq!(v["total_updated"], 0);
    assert_eq!(v["error_count"], 7);
    let created: Vec<&str> = v["new_members"]
        .as_array()
        .expect("new")
        .iter()
        .filter_map(|m| m["email_address"].as_str())
        .collect();
    assert_eq!(created, ["new1@example.com", "arch@example.com"]);
    assert_eq!(v["new_members"][0]["status"], "subscribed");
    assert_eq!(v["new_members"][0]["merge_fields"]["FNAME"], "B");

    let old = error_for(v, "old@example.com");
    assert_eq!(old["error_code"], "ERROR_CONTACT_EXISTS");
    assert_eq!(
        old["error"],
        "old@example.com is already a list member, do you want to update? please provide update_existing:true in the request body"
    );
    for e in ["unsub@example.com", "clean@example.com"] {
        let x = error_for(v, e);
        assert_eq!(x["error_code"], "ERROR_GENERIC");
        assert_eq!(
            x["error"],
            format!("{e} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.")
        );
    }
    assert!(error_for(v, "gone@example.com")["error"]
        .as_str()
        .is_some_and(|t| t.contains("was permanently deleted and cannot be re-imported")));
    assert_eq!(
        error_for(v, "not-an-email")["error"],
        "Please provide a valid email address."
    );
    assert_eq!(
        error_for(v, "bob@gmil.com")["error"],
        "bob@gmil.com looks fake or invalid, please enter a real email address."
    );
    let mf = error_for(v, "new2@example.com");
    assert_eq!(mf["field"], "NOPE");
    assert!(mf["field_message"].as_str().is_some_and(|m| !m.is_empty()));

    let c = api.sim.counters();
    assert_eq!(c.record_error("compliance_state"), 2);
    assert_eq!(c.record_error("contact_exists"), 1);
    assert_eq!(c.record_error("forgotten_email"), 1);
    assert_eq!(c.members.get("batch_subscribe"), Some(&9));
    assert_eq!(
        api.sim.contact(LIST, "unsub@example.com").map(|c| c.status),
        Some(ContactStatus::Unsubscribed)
    );
}

#[tokio::test]
async fn update_existing_updates_and_keeps_statuses() {
    let api = Api::start(SimConfig::default()).await;
    api.sim
        .seed_contact(LIST, "old@example.com", ContactStatus::Pending)
        .expect("seed");
    let list = emails("u", 3);
    let mut members: Vec<Value> = list.iter().map(|e| member(e)).collect();
    members.push(member("OLD@example.com"));
    let r = api
        .post(
            &format!("/lists/{LIST}"),
            &json!({"members": members, "update_existing": true}),
        )
        .await;
    assert_eq!(r.json["total_created"], 3, "{}", r.text);
    assert_eq!(r.json["total_updated"], 1);
    assert_eq!(r.json["error_count"], 0);
    assert_eq!(r.json["errors"], json!([]));
    assert_eq!(
        r.json["updated_members"][0]["status"], "pending",
        "status_if_new never changes an existing status"
    );
    assert_eq!(r.json["updated_members"][0]["merge_fields"]["FNAME"], "B");
    // Re-running is idempotent: everything is an update.
    let r = api
        .post(
            &format!("/lists/{LIST}"),
            &json!({"members": list.iter().map(|e| member(e)).collect::<Vec<_>>(), "update_existing": true}),
        )
        .await;
    assert_eq!(
        (
            r.json["total_created"].as_u64(),
            r.json["total_updated"].as_u64()
        ),
        (Some(0), Some(3))
    );
}

#[tokio::test]
async fn more_than_500_members_or_a_malformed_member_is_refused_whole() {
    let api = Api::start(SimConfig::default()).await;
    let path = format!("/lists/{LIST}");
    let many: Vec<Value> = emails("m", 501).iter().map(|e| member(e)).collect();
    let r = api.post(&path, &json!({"members": many})).await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["errors"][0]["field"], "members");
    assert_eq!(api.sim.contact_count(LIST), 0);
    let five_hundred: Vec<Value> = emails("m", 500).iter().map(|e| member(e)).collect();
    let r = api.post(&path, &json!({"members": five_hundred})).await;
    assert_eq!(r.json["total_created"], 500);

    let r = api
        .post(&path, &json!({"members": [member("ok@example.com"), {"email_address": "nostatus@example.com"}]}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert!(api.sim.contact(LIST, "ok@example.com").is_none());
    assert_problem(&api.post(&path, &json!({})).await, 400, "Invalid Resource");
    assert_problem(
        &api.post("/lists/nope000000", &json!({"members": []})).await,
        404,
        "Resource Not Found",
    );
}

#[tokio::test]
async fn duplicates_tags_and_sync_tags() {
    let api = Api::start(SimConfig::default()).await;
    let path = format!("/lists/{LIST}");
    let r = api
        .post(
            &path,
            &json!({"members": [
                {"email_address": "d@example.com", "status": "subscribed", "tags": ["one", "two"]},
                {"email_address": "D@example.com", "status": "unsubscribed"},
            ]}),
        )
        .await;
    assert_eq!(r.json["total_created"], 1);
    assert_eq!(r.json["error_count"], 1, "a later duplicate is an error");
    assert_eq!(r.json["new_members"][0]["tags_count"], 2);
    let r = api
        .post(
            &format!("{path}?skip_duplicate_check=true"),
            &json!({"members": [
                {"email_address": "e@example.com", "status": "subscribed"},
                {"email_address": "e@example.com", "status": "unsubscribed"},
            ]}),
        )
        .await;
    assert_eq!(r.json["error_count"], 0);
    assert_eq!(
        r.json["new_members"][0]["status"], "subscribed",
        "the first wins"
    );
    let r = api
        .post(&path, &json!({"update_existing": true, "sync_tags": true, "members": [
            {"email_address": "d@example.com", "status_if_new": "subscribed", "tags": ["two", "three"]},
        ]}))
        .await;
    let tags: Vec<&str> = r.json["updated_members"][0]["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(tags, ["two", "three"]);
}
