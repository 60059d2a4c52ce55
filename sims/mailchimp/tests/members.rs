//! Members: upsert, status_if_new, compliance states, forgotten emails,
//! merge-field validation, hash checks, read, update, archive, permanent
//! delete, tags, and the member list (facts §2, §3, §8).
mod common;

use audex_mailchimp_sim::{ContactStatus, MergeType, SimConfig, SimContact, SimMergeField};
use common::{assert_problem, member_path, Api, LIST};
use serde_json::json;

#[tokio::test]
async fn put_creates_then_updates_and_status_if_new_only_applies_on_create() {
    let api = Api::start(SimConfig::default()).await;
    let r = api
        .upsert(&json!({
            "email_address": "Ann@Example.com",
            "status_if_new": "pending",
            "merge_fields": {"FNAME": "Ann", "PHONE": "+47 22 00 00 00"}
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.json;
    assert_eq!(
        m["id"],
        audex_mailchimp_sim::email::hash_hex("ann@example.com")
    );
    assert_eq!(m["email_address"], "Ann@Example.com");
    assert_eq!(m["status"], "pending");
    assert_eq!(m["merge_fields"]["FNAME"], "Ann");
    assert_eq!(m["merge_fields"]["LNAME"], "");
    assert_eq!(m["full_name"], "Ann");
    assert_eq!(m["list_id"], LIST);
    assert_eq!(m["tags"], json!([]));
    for k in [
        "unique_email_id",
        "contact_id",
        "timestamp_opt",
        "last_changed",
        "tags_count",
        "_links",
    ] {
        assert!(m.get(k).is_some(), "{k}");
    }

    // Re-run with status_if_new: subscribed does not change the status; fields merge.
    let r = api
        .upsert(&json!({"email_address": "ann@example.com", "status_if_new": "subscribed", "merge_fields": {"LNAME": "Lee"}}))
        .await;
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["merge_fields"]["FNAME"], "Ann");
    assert_eq!(r.json["merge_fields"]["LNAME"], "Lee");
    // `status` overwrites.
    let r = api
        .upsert(&json!({"email_address": "ann@example.com", "status": "subscribed"}))
        .await;
    assert_eq!(r.json["status"], "subscribed");
    assert_eq!(api.sim.contact_count(LIST), 1);
    let list = api.get(&format!("/lists/{LIST}")).await;
    assert_eq!(list.json["stats"]["member_count"], 1);
}

#[tokio::test]
async fn put_needs_a_status_a_matching_hash_and_a_real_email() {
    let api = Api::start(SimConfig::default()).await;
    let r = api.upsert(&json!({"email_address": "x@example.com"})).await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["errors"][0]["field"], "status");

    let r = api
        .put(
            &member_path("other@example.com"),
            &json!({"email_address": "x@example.com", "status_if_new": "subscribed"}),
        )
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["errors"][0]["field"], "email_address");
    // An email in the path is not a hash.
    let r = api
        .put(
            &format!("/lists/{LIST}/members/x@example.com"),
            &json!({"email_address": "x@example.com", "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(r.status, 400);

    let r = api
        .upsert(&json!({"email_address": "two@@example.com", "status_if_new": "subscribed"}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["detail"], "Please provide a valid email address.");
    let r = api
        .upsert(&json!({"email_address": "bob@gmil.com", "status_if_new": "subscribed"}))
        .await;
    assert_eq!(
        r.json["detail"],
        "bob@gmil.com looks fake or invalid, please enter a real email address."
    );
    let r = api
        .upsert(&json!({"email_address": "x@example.com", "status_if_new": "subscribed", "ip_signup": "999.1.1.1"}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["errors"][0]["field"], "ip_signup");
    let r = api
        .upsert(&json!({"email_address": "x@example.com", "status": "archived"}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(api.sim.contact_count(LIST), 0);
    assert_eq!(
        api.sim.counters().record_error("fake_email"),
        0,
        "single writes are not batch records"
    );
}

#[tokio::test]
async fn compliance_states_and_forgotten_emails() {
    let api = Api::start(SimConfig::default()).await;
    api.sim
        .seed_contact(LIST, "unsub@example.com", ContactStatus::Unsubscribed)
        .expect("seed");
    api.sim
        .seed_contact(LIST, "bounced@example.com", ContactStatus::Cleaned)
        .expect("seed");
    api.sim.forget(LIST, &["gone@example.com"]).expect("forget");

    // status_if_new leaves them silently unchanged.
    for e in ["unsub@example.com", "bounced@example.com"] {
        let r = api
            .upsert(&json!({"email_address": e, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Z"}}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_ne!(r.json["status"], "subscribed");
    }
    // status: subscribed is refused.
    let r = api
        .upsert(&json!({"email_address": "unsub@example.com", "status": "subscribed"}))
        .await;
    assert_problem(&r, 400, "Member In Compliance State");
    assert_eq!(
        r.json["detail"],
        "unsub@example.com is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
    );
    let r = api
        .patch(
            &member_path("bounced@example.com"),
            &json!({"status": "pending"}),
        )
        .await;
    assert_problem(&r, 400, "Member In Compliance State");
    // Unsubscribed → pending (an opt-in email) is the documented way back.
    let r = api
        .patch(
            &member_path("unsub@example.com"),
            &json!({"status": "pending"}),
        )
        .await;
    assert_eq!(r.json["status"], "pending");

    for status in ["subscribed", "pending"] {
        let r = api
            .upsert(&json!({"email_address": "Gone@example.com", "status": status}))
            .await;
        assert_problem(&r, 400, "Forgotten Email Not Subscribed");
        assert!(r.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("permanently deleted")));
    }
    assert!(api.sim.contact(LIST, "gone@example.com").is_none());
}

#[tokio::test]
async fn merge_fields_are_validated_against_the_audience() {
    let mut cfg = SimConfig::default();
    cfg.audiences[0]
        .merge_fields
        .push(SimMergeField::new("CODE", "Code", MergeType::Text).required());
    cfg.audiences[0].merge_fields.push(
        SimMergeField::new("PLAN", "Plan", MergeType::Dropdown).with_choices(&["free", "pro"]),
    );
    let api = Api::start(cfg).await;
    let r = api
        .upsert(&json!({"email_address": "m@example.com", "status_if_new": "subscribed", "merge_fields": {"FNAME": "M"}}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["detail"], "Your merge fields were invalid.");
    assert_eq!(
        r.json["errors"],
        json!([{"field": "CODE", "message": "Please enter a value"}])
    );

    let r = api
        .upsert(&json!({"email_address": "m@example.com", "status_if_new": "subscribed", "merge_fields": {"CODE": "c", "NICK": "x"}}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["errors"][0]["field"], "NICK");
    let r = api
        .upsert(&json!({"email_address": "m@example.com", "status_if_new": "subscribed", "merge_fields": {"CODE": "c", "PLAN": "gold"}}))
        .await;
    assert_eq!(r.json["errors"][0]["field"], "PLAN");
    let r = api
        .upsert(&json!({"email_address": "m@example.com", "status_if_new": "subscribed", "merge_fields": {"CODE": "c", "ADDRESS": {"addr1": "1 Road"}}}))
        .await;
    assert_eq!(r.json["errors"][0]["field"], "ADDRESS");
    assert_eq!(
        api.sim.contact_count(LIST),
        0,
        "refused writes change nothing"
    );

    // skip_merge_validation lets a required field be missing.
    let r = api
        .put(
            &format!(
                "{}?skip_merge_validation=true",
                member_path("m@example.com")
            ),
            &json!({"email_address": "m@example.com", "status_if_new": "subscribed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Text is truncated to 255 bytes; an update need not repeat required fields.
    let long = "x".repeat(300);
    let r = api
        .upsert(&json!({"email_address": "m@example.com", "status_if_new": "subscribed", "merge_fields": {"FNAME": long, "PLAN": "pro"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["merge_fields"]["FNAME"].as_str().map(str::len),
        Some(255)
    );
    assert_eq!(r.json["merge_fields"]["PLAN"], "pro");
    let mut addr = api.sim.contact(LIST, "m@example.com").expect("contact");
    addr.merge_fields.retain(|k, _| k == "PLAN");
    assert_eq!(addr.merge_fields.get("PLAN"), Some(&json!("pro")));
}

#[tokio::test]
async fn get_patch_archive_and_delete_permanently() {
    let api = Api::start(SimConfig::default()).await;
    api.upsert(&json!({"email_address": "p@example.com", "status_if_new": "subscribed"}))
        .await;
    let path = member_path("p@example.com");
    let r = api.get(&path).await;
    assert_eq!(r.json["status"], "subscribed");
    assert_problem(
        &api.get(&member_path("nobody@example.com")).await,
        404,
        "Resource Not Found",
    );

    let r = api
        .patch(
            &path,
            &json!({"merge_fields": {"LNAME": "Park"}, "vip": true}),
        )
        .await;
    assert_eq!(r.json["merge_fields"]["LNAME"], "Park");
    assert_eq!(r.json["vip"], true);
    assert_problem(
        &api.patch(
            &member_path("nobody@example.com"),
            &json!({"status": "subscribed"}),
        )
        .await,
        404,
        "Resource Not Found",
    );
    let r = api.patch(&path, &json!({"status": "transactional"})).await;
    assert_problem(&r, 400, "Invalid Resource");

    // Archive: 204 with no body; a second archive is 404.
    let r = api.delete(&path).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.text, "");
    assert_eq!(api.get(&path).await.json["status"], "archived");
    assert_eq!(api.delete(&path).await.status, 404);
    // An archived contact comes back with a status.
    let r = api
        .upsert(&json!({"email_address": "p@example.com", "status_if_new": "subscribed"}))
        .await;
    assert_eq!(r.json["status"], "subscribed");
    assert_eq!(r.json["merge_fields"]["LNAME"], "Park");

    let r = api
        .post(&format!("{path}/actions/delete-permanent"), &json!({}))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(api.get(&path).await.status, 404);
    assert_eq!(
        api.post(&format!("{path}/actions/delete-permanent"), &json!({}))
            .await
            .status,
        404
    );
    assert!(api.sim.is_forgotten(LIST, "P@example.com"));
    let r = api
        .upsert(&json!({"email_address": "p@example.com", "status_if_new": "subscribed"}))
        .await;
    assert_problem(&r, 400, "Forgotten Email Not Subscribed");
}

#[tokio::test]
async fn create_only_post_refuses_existing_members() {
    let api = Api::start(SimConfig::default()).await;
    let path = format!("/lists/{LIST}/members");
    let r = api
        .post(
            &path,
            &json!({"email_address": "c@example.com", "status": "subscribed", "tags": ["vip"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["tags"][0]["name"], "vip");
    let r = api
        .post(
            &path,
            &json!({"email_address": "C@example.com", "status": "subscribed"}),
        )
        .await;
    assert_problem(&r, 400, "Member Exists");
    let r = api
        .post(
            &path,
            &json!({"email_address": "d@example.com", "status_if_new": "subscribed"}),
        )
        .await;
    assert_problem(&r, 400, "Invalid Resource");
}

#[tokio::test]
async fn member_tags_post_is_204_and_only_touches_named_tags() {
    let api = Api::start(SimConfig::default()).await;
    api.upsert(&json!({"email_address": "t@example.com", "status_if_new": "subscribed"}))
        .await;
    let path = format!("{}/tags", member_path("t@example.com"));
    let r = api
        .post(&path, &json!({"tags": [{"name": "alpha", "status": "active"}, {"name": "beta", "status": "active"}]}))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.text, "");
    assert_eq!(
        api.sim.contact(LIST, "t@example.com").expect("c").tags,
        ["alpha", "beta"]
    );
    assert_eq!(api.post(&path, &json!({"tags": []})).await.status, 204);
    let r = api
        .post(
            &path,
            &json!({"tags": [{"name": "alpha", "status": "inactive"}], "is_syncing": true}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        api.sim.contact(LIST, "t@example.com").expect("c").tags,
        ["beta"]
    );
    let seg = api
        .sim
        .segment_id(LIST, "alpha")
        .expect("tag made a static segment");
    assert_eq!(api.sim.segment_member_count(LIST, seg), Some(0));
    let r = api
        .post(&path, &json!({"tags": [{"name": "x", "status": "on"}]}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    let r = api
        .post(
            &format!("{}/tags", member_path("nobody@example.com")),
            &json!({"tags": [{"name": "x", "status": "active"}]}),
        )
        .await;
    assert_problem(&r, 404, "Resource Not Found");
}

#[tokio::test]
async fn member_list_pages_and_filters_by_status() {
    let api = Api::start(SimConfig::default()).await;
    let mut seed: Vec<SimContact> = (0..25)
        .map(|i| SimContact::new(&format!("s{i}@example.com"), ContactStatus::Subscribed))
        .collect();
    seed.push(SimContact::new(
        "u@example.com",
        ContactStatus::Unsubscribed,
    ));
    seed.push(SimContact::new("a@example.com", ContactStatus::Archived));
    seed.push(
        SimContact::new("t@example.com", ContactStatus::Transactional)
            .with_merge("FNAME", json!("T")),
    );
    api.sim.seed_contacts(LIST, seed).expect("seed");

    let r = api.get(&format!("/lists/{LIST}/members")).await;
    assert_eq!(
        r.json["total_items"], 27,
        "archived contacts are not listed by default"
    );
    assert_eq!(r.json["members"].as_array().map(Vec::len), Some(10));
    let mut seen = Vec::new();
    for offset in (0..27).step_by(10) {
        let r = api
            .get(&format!("/lists/{LIST}/members?count=10&offset={offset}&fields=members.email_address,total_items"))
            .await;
        for m in r.json["members"].as_array().expect("members") {
            assert_eq!(m.as_object().map(|o| o.len()), Some(1), "partial response");
            seen.push(m["email_address"].as_str().unwrap_or("").to_string());
        }
    }
    assert_eq!(seen.len(), 27);
    assert_eq!(seen[0], "s0@example.com");
    assert_eq!(seen[26], "t@example.com");
    let r = api
        .get(&format!("/lists/{LIST}/members?status=archived"))
        .await;
    assert_eq!(r.json["total_items"], 1);
    assert_eq!(r.json["members"][0]["email_address"], "a@example.com");
    let r = api
        .get(&format!("/lists/{LIST}/members?status=transactional"))
        .await;
    assert_eq!(r.json["members"][0]["merge_fields"]["FNAME"], "T");
    assert_problem(
        &api.get(&format!("/lists/{LIST}/members?count=1001")).await,
        400,
        "Invalid Resource",
    );
    assert_problem(
        &api.get(&format!("/lists/{LIST}/members?status=gone")).await,
        400,
        "Invalid Resource",
    );
    let r = api
        .get(&format!("/lists/{LIST}/members?count=1000&offset=26"))
        .await;
    assert_eq!(r.json["members"].as_array().map(Vec::len), Some(1));
}
