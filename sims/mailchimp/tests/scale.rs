//! A million contacts and a million-member segment: every call stays
//! indexed, and reading the segment back page by page stays linear.
mod common;

use std::time::Instant;

use audex_mailchimp_sim::{ContactStatus, SimConfig, SimContact};
use common::{member_path, Api, LIST};
use serde_json::{json, Value};

const N: usize = 1_000_000;

fn email(i: usize) -> String {
    format!("u{i}@example.com")
}

#[tokio::test]
async fn million_contacts_and_a_million_member_segment() {
    let api = Api::start(SimConfig::default()).await;
    let t = Instant::now();
    let seeded = api
        .sim
        .seed_contacts(
            LIST,
            (0..N).map(|i| SimContact::new(&email(i), ContactStatus::Subscribed)),
        )
        .expect("seed");
    assert_eq!(seeded, N);
    let seg = api
        .sim
        .create_static_segment(LIST, "all", &[])
        .expect("segment");
    let all: Vec<String> = (0..N).map(email).collect();
    assert_eq!(api.sim.add_to_segment(LIST, seg, &all).expect("add"), N);
    let seed_time = t.elapsed();

    // A batch of 500 upserts of existing contacts (different case).
    let t = Instant::now();
    let members: Vec<Value> = (0..500)
        .map(|i| json!({"email_address": email(i * 2000).to_uppercase(), "status_if_new": "subscribed", "merge_fields": {"FNAME": "F"}}))
        .collect();
    let r = api
        .post(
            &format!("/lists/{LIST}"),
            &json!({"members": members, "update_existing": true}),
        )
        .await;
    assert_eq!(r.json["total_updated"], 500, "{}", r.json["errors"]);
    let batch_time = t.elapsed();
    assert_eq!(api.sim.contact_count(LIST), N);

    // Remove and add 500 each in the middle of the segment.
    let t = Instant::now();
    let out: Vec<String> = (500_000..500_500).map(email).collect();
    let r = api
        .post(
            &format!("/lists/{LIST}/segments/{seg}"),
            &json!({"members_to_remove": out}),
        )
        .await;
    assert_eq!(r.json["total_removed"], 500);
    let r = api
        .post(
            &format!("/lists/{LIST}/segments/{seg}"),
            &json!({"members_to_add": out}),
        )
        .await;
    assert_eq!(r.json["total_added"], 500);
    let segment_time = t.elapsed();

    // Pages near the end, then sequential pages: each answers quickly.
    let t = Instant::now();
    let path = format!("/lists/{LIST}/segments/{seg}/members");
    let r = api
        .get(&format!(
            "{path}?count=1000&offset={}&fields=members.email_address,total_items",
            N - 1000
        ))
        .await;
    assert_eq!(r.json["total_items"], N);
    assert_eq!(r.json["members"][999]["email_address"], email(N - 1));
    for page in 0..5 {
        let r = api
            .get(&format!(
                "{path}?count=1000&offset={}&fields=members.email_address",
                page * 1000
            ))
            .await;
        assert_eq!(r.json["members"][0]["email_address"], email(page * 1000));
    }
    let read_time = t.elapsed();
    let r = api.get(&member_path(&email(N - 1))).await;
    assert_eq!(r.json["tags"][0]["name"], "all");
    eprintln!("seed {N} + segment: {seed_time:?}; batch 500: {batch_time:?}; segment ±500: {segment_time:?}; 6 pages: {read_time:?}");
}
