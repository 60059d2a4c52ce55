//! Static segments (tags): create, list, read, batch add/remove with the
//! 500 caps, saved-segment refusals, PATCH replace, members read with the
//! `include_*` flags and paging (facts §5).
mod common;

use audex_mailchimp_sim::{ContactStatus, SimConfig, SimContact};
use common::{assert_problem, emails, Api, LIST};
use serde_json::{json, Value};

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["email_address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn seeded() -> Api {
    let api = Api::start(SimConfig::default()).await;
    let mut seed: Vec<SimContact> = emails("s", 5)
        .iter()
        .map(|e| SimContact::new(e, ContactStatus::Subscribed))
        .collect();
    seed.push(SimContact::new(
        "unsub@example.com",
        ContactStatus::Unsubscribed,
    ));
    seed.push(SimContact::new("clean@example.com", ContactStatus::Cleaned));
    seed.push(SimContact::new(
        "tx@example.com",
        ContactStatus::Transactional,
    ));
    seed.push(SimContact::new("pend@example.com", ContactStatus::Pending));
    seed.push(SimContact::new("arch@example.com", ContactStatus::Archived));
    api.sim.seed_contacts(LIST, seed).expect("seed");
    api
}

#[tokio::test]
async fn create_list_and_get_static_segments() {
    let api = seeded().await;
    let path = format!("/lists/{LIST}/segments");
    let r = api
        .post(&path, &json!({"name": "audex:vip", "static_segment": ["s0@example.com", "S1@example.com", "stranger@example.com", "arch@example.com"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["type"], "static");
    assert_eq!(r.json["name"], "audex:vip");
    assert_eq!(
        r.json["member_count"], 2,
        "strangers and archived contacts are ignored"
    );
    let id = r.json["id"].as_u64().expect("id");
    assert_eq!(api.sim.segment_members(LIST, id), Some(emails("s", 2)));

    let r = api
        .post(&path, &json!({"name": "empty", "static_segment": []}))
        .await;
    assert_eq!(r.json["member_count"], 0);
    assert_problem(
        &api.post(&path, &json!({"name": "nothing"})).await,
        400,
        "Invalid Resource",
    );
    assert_problem(
        &api.post(&path, &json!({"name": "audex:vip", "static_segment": []}))
            .await,
        400,
        "Invalid Resource",
    );
    assert_problem(
        &api.post(&path, &json!({"static_segment": []})).await,
        400,
        "Invalid Resource",
    );
    api.sim
        .create_saved_segment(LIST, "saved one")
        .expect("saved");

    let r = api.get(&format!("{path}?type=static")).await;
    assert_eq!(r.json["total_items"], 2);
    let r = api.get(&format!("{path}?count=1&offset=2")).await;
    assert_eq!(r.json["total_items"], 3);
    assert_eq!(r.json["segments"][0]["type"], "saved");
    let r = api.get(&format!("{path}/{id}")).await;
    assert_eq!(r.json["id"], id);
    assert_eq!(r.json["member_count"], 2);
    assert_problem(
        &api.get(&format!("{path}/999")).await,
        404,
        "Resource Not Found",
    );
}

#[tokio::test]
async fn batch_add_and_remove() {
    let api = seeded().await;
    let seg = api
        .sim
        .create_static_segment(LIST, "t", &["s0@example.com".to_string()])
        .expect("seg");
    let path = format!("/lists/{LIST}/segments/{seg}");
    let r = api
        .post(&path, &json!({
            "members_to_add": ["s0@example.com", "S1@example.com", "s2@example.com", "stranger@example.com", "arch@example.com", "unsub@example.com", "bad@", "also bad"],
            "members_to_remove": ["s0@example.com", "s4@example.com"],
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.json;
    assert_eq!(
        names(v, "members_added"),
        ["s1@example.com", "s2@example.com", "unsub@example.com"]
    );
    assert_eq!(names(v, "members_removed"), ["s0@example.com"]);
    assert_eq!(v["total_added"], 3);
    assert_eq!(v["total_removed"], 1);
    assert_eq!(v["error_count"], 2);
    assert_eq!(
        v["errors"],
        json!([{"email_addresses": ["bad@", "also bad"], "error": "Please provide a valid email address."}])
    );
    assert_eq!(
        api.sim.segment_members(LIST, seg),
        Some(vec![
            "s1@example.com".to_string(),
            "s2@example.com".to_string(),
            "unsub@example.com".to_string()
        ])
    );
    // The unsubscribed member is in the segment but hidden from a default read.
    let r = api.get(&format!("/lists/{LIST}/segments/{seg}")).await;
    assert_eq!(r.json["member_count"], 2);
}

#[tokio::test]
async fn caps_and_saved_segments() {
    let api = seeded().await;
    let seg = api.sim.create_static_segment(LIST, "t", &[]).expect("seg");
    let path = format!("/lists/{LIST}/segments/{seg}");
    let r = api
        .post(&path, &json!({"members_to_add": emails("x", 501)}))
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(r.json["errors"][0]["field"], "members_to_add");
    let r = api
        .post(&path, &json!({"members_to_remove": emails("x", 501)}))
        .await;
    assert_eq!(r.json["errors"][0]["field"], "members_to_remove");
    let r = api
        .post(
            &path,
            &json!({"members_to_add": emails("s", 5), "members_to_remove": emails("x", 500)}),
        )
        .await;
    assert_eq!(r.json["total_added"], 5);
    let r = api
        .post(
            &format!("/lists/{LIST}/segments"),
            &json!({"name": "big", "static_segment": emails("x", 501)}),
        )
        .await;
    assert_problem(&r, 400, "Invalid Resource");

    let saved = api.sim.create_saved_segment(LIST, "saved").expect("saved");
    let r = api
        .post(
            &format!("/lists/{LIST}/segments/{saved}"),
            &json!({"members_to_add": ["s0@example.com"]}),
        )
        .await;
    assert_problem(&r, 400, "Invalid Resource");
    assert_eq!(
        r.json["detail"],
        format!("A Static Segment with an id of {saved} does not exist")
    );
    let r = api
        .patch(
            &format!("/lists/{LIST}/segments/{saved}"),
            &json!({"static_segment": []}),
        )
        .await;
    assert_eq!(
        r.json["detail"],
        format!("A Static Segment with an id of {saved} does not exist")
    );
    assert_problem(
        &api.post(
            &format!("/lists/{LIST}/segments/424242"),
            &json!({"members_to_add": []}),
        )
        .await,
        404,
        "Resource Not Found",
    );
}

#[tokio::test]
async fn members_read_hides_compliance_states_unless_asked() {
    let api = seeded().await;
    let all: Vec<String> = [
        "s0@example.com",
        "unsub@example.com",
        "clean@example.com",
        "tx@example.com",
        "pend@example.com",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let seg = api.sim.create_static_segment(LIST, "t", &all).expect("seg");
    let path = format!("/lists/{LIST}/segments/{seg}/members");
    let r = api.get(&path).await;
    assert_eq!(r.json["total_items"], 2);
    assert_eq!(
        names(&r.json, "members"),
        ["s0@example.com", "pend@example.com"]
    );
    let r = api.get(&format!("{path}?include_unsubscribed=true")).await;
    assert_eq!(
        names(&r.json, "members"),
        ["s0@example.com", "unsub@example.com", "pend@example.com"]
    );
    let r = api
        .get(&format!(
            "{path}?include_unsubscribed=true&include_cleaned=true&include_transactional=true"
        ))
        .await;
    assert_eq!(r.json["total_items"], 5);
    assert_eq!(r.json["members"][2]["status"], "cleaned");
    assert_problem(
        &api.get(&format!("{path}?count=1001")).await,
        400,
        "Invalid Resource",
    );
}

#[tokio::test]
async fn members_read_pages_and_patch_replaces_all() {
    let api = Api::start(SimConfig::default()).await;
    let list = emails("p", 2500);
    api.sim
        .seed_contacts(
            LIST,
            list.iter()
                .map(|e| SimContact::new(e, ContactStatus::Subscribed)),
        )
        .expect("seed");
    let seg = api
        .sim
        .create_static_segment(LIST, "big", &list)
        .expect("seg");
    let path = format!("/lists/{LIST}/segments/{seg}/members");
    let mut read = Vec::new();
    let mut offset = 0;
    loop {
        let r = api
            .get(&format!(
                "{path}?count=1000&offset={offset}&fields=members.email_address,total_items"
            ))
            .await;
        assert_eq!(r.json["total_items"], 2500);
        let page = names(&r.json, "members");
        if page.is_empty() {
            break;
        }
        offset += page.len();
        read.extend(page);
    }
    assert_eq!(read, list);
    // A read out of order (not where the last page ended) is still right.
    let r = api.get(&format!("{path}?count=2&offset=1234")).await;
    assert_eq!(
        names(&r.json, "members"),
        [list[1234].clone(), list[1235].clone()]
    );

    let r = api
        .patch(
            &format!("/lists/{LIST}/segments/{seg}"),
            &json!({"name": "renamed", "static_segment": ["p7@example.com", "stranger@example.com"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["member_count"], 1);
    assert_eq!(r.json["name"], "renamed");
    assert_eq!(
        api.sim.segment_members(LIST, seg),
        Some(vec!["p7@example.com".to_string()])
    );
    let r = api
        .patch(
            &format!("/lists/{LIST}/segments/{seg}"),
            &json!({"static_segment": []}),
        )
        .await;
    assert_eq!(r.json["member_count"], 0);
    // The member's tags follow the segment.
    let r = api.get(&common::member_path("p7@example.com")).await;
    assert_eq!(r.json["tags"], json!([]));
    assert_eq!(
        api.delete(&format!("/lists/{LIST}/segments/{seg}"))
            .await
            .status,
        204
    );
    assert_eq!(
        api.get(&format!("/lists/{LIST}/segments/{seg}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn single_member_add_and_remove() {
    let api = seeded().await;
    let seg = api.sim.create_static_segment(LIST, "t", &[]).expect("seg");
    let path = format!("/lists/{LIST}/segments/{seg}/members");
    let r = api
        .post(&path, &json!({"email_address": "s3@example.com"}))
        .await;
    assert_eq!(r.json["email_address"], "s3@example.com");
    assert_eq!(r.json["tags"][0]["name"], "t");
    assert_eq!(
        api.post(&path, &json!({"email_address": "stranger@example.com"}))
            .await
            .status,
        404
    );
    let del = format!(
        "{path}/{}",
        audex_mailchimp_sim::email::hash_hex("s3@example.com")
    );
    assert_eq!(api.delete(&del).await.status, 204);
    assert_eq!(api.delete(&del).await.status, 404);
}
