//! The Mailchimp destination against the simulator, over real HTTP. Each
//! test starts its own simulator (its own port, so its own connection cap).

use std::sync::Arc;
use std::time::Duration;

use audex_core::{
    Destination, ErrorClass, FieldValue, ListId, Member, Record, RecordKey, Records, Refusal,
    RemoteMember,
};
use audex_mailchimp::client::Backoff;
use audex_mailchimp::outcomes::{subscriber_hash, COMPLIANCE_STATE, FORGOTTEN_EMAIL};
use audex_mailchimp::{ClientOptions, MailchimpConfig, MailchimpDestination, TagRef};
use audex_mailchimp_sim::{
    ContactStatus, FaultConfig, FaultKind, LatencyModel, SimAudience, SimConfig, SimContact,
    SimHandle, Simulator, DEFAULT_AUDIENCE_ID,
};
use futures::TryStreamExt;
use serde_json::{json, Value};

const LIST: &str = DEFAULT_AUDIENCE_ID;

async fn start(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).await.expect("the simulator starts")
}

/// A config for `sim`, with `extra` keys on top (null removes one).
fn config(sim: &SimHandle, extra: Value) -> MailchimpConfig {
    let mut block = json!({
        "type": "mailchimp",
        "display_name": "Simulator",
        "api_key": sim.api_key(),
        "base_url": sim.api_root(),
        "audience_id": LIST,
        "data_privacy_consent": true,
        "export_user": "tester",
        "mapping": {"email": "email", "FNAME": "first_name", "PHONE": "phone"},
        "tag": "VIP",
        "create_tag": true,
        "exports": [{"segment": "all"}],
    });
    if let (Some(b), Some(e)) = (block.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::from_value(block).expect("a valid config")
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(200),
            max_attempts: 8,
        },
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        timeout_hold: Duration::from_millis(300),
        abandon_hold: Duration::from_millis(100),
        max_throttle_retries: 20,
    }
}

fn destination(cfg: &MailchimpConfig) -> MailchimpDestination {
    MailchimpDestination::with_options(cfg, fast_options()).expect("builds")
}

/// Records of `email, FNAME, PHONE`.
fn records(rows: &[(&str, &str, Option<&str>)]) -> Records {
    let fields: Arc<[String]> = ["email", "FNAME", "PHONE"]
        .map(String::from)
        .to_vec()
        .into();
    Records::new(
        fields,
        rows.iter()
            .map(|(email, first, phone)| Record {
                key: RecordKey::new(email.trim().to_lowercase()),
                values: vec![
                    FieldValue::Text((*email).into()),
                    FieldValue::Text((*first).into()),
                    phone.map_or(FieldValue::Null, |p| FieldValue::Text(p.into())),
                ],
            })
            .collect(),
    )
}

fn member(email: &str) -> Member {
    let key = RecordKey::new(email);
    Member {
        id: subscriber_hash(&key),
        key,
    }
}

fn tag(name: &str) -> ListId {
    TagRef::Name(name.into()).list_id()
}

#[tokio::test]
async fn upsert_outcomes_are_keyed_by_email_with_compliance_refused_for_good() {
    let sim = start(SimConfig::default()).await;
    sim.seed_contacts(
        LIST,
        [
            SimContact::new("old@example.com", ContactStatus::Subscribed)
                .with_merge("FNAME", json!("Before")),
            SimContact::new("gone@example.com", ContactStatus::Unsubscribed),
            SimContact::new("bounced@example.com", ContactStatus::Cleaned),
        ],
    )
    .expect("seeded");
    sim.forget(LIST, &["deleted@example.com"])
        .expect("forgotten");
    let dest = destination(&config(&sim, json!({})));
    let batch = records(&[
        ("new@example.com", "Neo", Some("+1 555 0100")),
        ("OLD@example.com", "After", None),
        ("gone@example.com", "G", None),
        ("bounced@example.com", "B", None),
        ("deleted@example.com", "D", None),
        ("typo@gmil.com", "T", None),
        ("badphone@example.com", "P", Some("call me!")),
    ]);
    let out = dest.upsert(&batch).await.expect("the call succeeds");
    assert_eq!(out.len(), 7);
    let get = |k: &str| {
        out.iter()
            .find(|o| o.key.as_str() == k)
            .map(|o| o.result.clone())
            .expect("an outcome for every record")
    };
    assert_eq!(
        get("new@example.com"),
        Ok(subscriber_hash(&RecordKey::new("new@example.com")))
    );
    assert!(get("old@example.com").is_ok());
    for (k, code) in [
        ("gone@example.com", COMPLIANCE_STATE),
        ("bounced@example.com", COMPLIANCE_STATE),
        ("deleted@example.com", FORGOTTEN_EMAIL),
    ] {
        let r = get(k).expect_err("refused");
        assert_eq!(
            (r.code.as_str(), r.refusal),
            (code, Refusal::ForGood),
            "{k}"
        );
    }
    for k in ["typo@gmil.com", "badphone@example.com"] {
        let r = get(k).expect_err("refused");
        assert_eq!(r.refusal, Refusal::Invalid, "{k}");
        assert!(!r.code.is_empty());
    }
    for o in &out {
        if let Err(r) = &o.result {
            assert!(!r.message.contains('@'), "{}", r.message);
        }
    }
    // What Mailchimp holds now.
    let new = sim.contact(LIST, "new@example.com").expect("created");
    assert_eq!(new.status, ContactStatus::Subscribed);
    assert_eq!(new.merge_fields["FNAME"], "Neo");
    let old = sim.contact(LIST, "old@example.com").expect("kept");
    assert_eq!(old.merge_fields["FNAME"], "After");
    let gone = sim.contact(LIST, "gone@example.com").expect("kept");
    assert_eq!(gone.status, ContactStatus::Unsubscribed);
    let c = sim.counters();
    assert_eq!(c.calls("batch_subscribe"), 1);
    assert_eq!(c.record_error("compliance_state"), 2);
}

#[tokio::test]
async fn status_if_new_auto_follows_the_audience_double_opt_in() {
    let sim = start(SimConfig::default()).await;
    let mut double = SimAudience::new("d0ub1e", "double opt-in");
    double.double_optin = true;
    sim.add_audience(&double).expect("added");
    let batch = records(&[("ann@example.com", "Ann", None)]);

    let single = destination(&config(&sim, json!({})));
    assert!(single.upsert(&batch).await.expect("upserts")[0]
        .result
        .is_ok());
    let ann = sim.contact(LIST, "ann@example.com").expect("created");
    assert_eq!(ann.status, ContactStatus::Subscribed);

    let dest = destination(&config(&sim, json!({"audience_id": "d0ub1e"})));
    assert!(dest.upsert(&batch).await.expect("upserts")[0]
        .result
        .is_ok());
    let ann = sim.contact("d0ub1e", "ann@example.com").expect("created");
    assert_eq!(ann.status, ContactStatus::Pending);
    // Asked once, however many batches follow.
    let before = sim.counters().calls("get_list");
    let more = records(&[("bob@example.com", "Bob", None)]);
    dest.upsert(&more).await.expect("upserts");
    assert_eq!(sim.counters().calls("get_list"), before);

    let check = dest.check(&[tag("VIP")], &["email".into()]).await;
    let step = check
        .iter()
        .find(|c| c.name == "new contacts")
        .expect("a step for new contacts");
    assert!(
        step.detail.contains("confirmation email"),
        "{}",
        step.detail
    );

    // An explicit status wins over the audience.
    let forced = destination(&config(
        &sim,
        json!({"audience_id": "d0ub1e", "status_if_new": "transactional"}),
    ));
    forced
        .upsert(&records(&[("cy@example.com", "Cy", None)]))
        .await
        .expect("upserts");
    let cy = sim.contact("d0ub1e", "cy@example.com").expect("created");
    assert_eq!(cy.status, ContactStatus::Transactional);
}

#[tokio::test]
async fn change_members_adds_500_and_removes_500_in_one_call() {
    let sim = start(SimConfig::default()).await;
    let emails: Vec<String> = (0..1000).map(|i| format!("p{i:04}@example.com")).collect();
    sim.seed_contacts(
        LIST,
        emails
            .iter()
            .map(|e| SimContact::new(e, ContactStatus::Subscribed)),
    )
    .expect("seeded");
    let seg = sim
        .create_static_segment(LIST, "VIP", &emails[500..])
        .expect("a tag");
    let dest = destination(&config(&sim, json!({})));
    let adds: Vec<Member> = emails[..500].iter().map(|e| member(e)).collect();
    let removes: Vec<Member> = emails[500..].iter().map(|e| member(e)).collect();
    sim.reset_counters();
    let out = dest
        .change_members(&tag("VIP"), &adds, &removes)
        .await
        .expect("changes");
    assert_eq!(out.len(), 1000);
    assert!(out.iter().all(|o| o.result.is_ok()));
    let c = sim.counters();
    assert_eq!(c.calls("batch_segment"), 1);
    let mut now = sim.segment_members(LIST, seg).expect("the tag");
    now.sort();
    assert_eq!(now, emails[..500].to_vec());
    // Idempotent: the same call again changes nothing and fails nothing.
    let again = dest
        .change_members(&tag("VIP"), &adds, &removes)
        .await
        .expect("changes");
    assert!(again.iter().all(|o| o.result.is_ok()));
    assert_eq!(sim.segment_member_count(LIST, seg), Some(500));
    // More than Mailchimp takes is refused before anything is sent.
    let too_many: Vec<Member> = (0..501)
        .map(|i| member(&format!("x{i}@example.com")))
        .collect();
    let err = dest
        .add_members(&tag("VIP"), &too_many)
        .await
        .expect_err("too many");
    assert_eq!(err.class(), ErrorClass::Internal);
    assert_eq!(sim.counters().calls("batch_segment"), 2);
}

#[tokio::test]
async fn a_tag_by_name_is_created_only_with_create_tag() {
    let sim = start(SimConfig::default()).await;
    sim.seed_contact(LIST, "ann@example.com", ContactStatus::Subscribed)
        .expect("seeded");
    let list = tag("Fresh");

    let strict = destination(&config(&sim, json!({"create_tag": false})));
    let err = strict
        .add_members(&list, &[member("ann@example.com")])
        .await
        .expect_err("no such tag");
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("create_tag"), "{err}");
    let check = strict
        .check(std::slice::from_ref(&list), &["email".into()])
        .await;
    let step = check
        .iter()
        .find(|c| c.name == "tag \"Fresh\"")
        .expect("a step");
    assert!(!step.ok, "{step:?}");
    assert_eq!(sim.segment_id(LIST, "Fresh"), None);
    assert_eq!(sim.counters().calls("create_segment"), 0);

    let lenient = destination(&config(&sim, json!({"create_tag": true})));
    let check = lenient
        .check(std::slice::from_ref(&list), &["email".into()])
        .await;
    let step = check
        .iter()
        .find(|c| c.name == "tag \"Fresh\"")
        .expect("a step");
    assert!(step.ok && step.detail.contains("creates"), "{step:?}");
    assert_eq!(sim.segment_id(LIST, "Fresh"), None, "check creates nothing");
    let ann = [member("ann@example.com")];
    let (a, b) = tokio::join!(
        lenient.add_members(&list, &ann),
        lenient.add_members(&list, &ann),
    );
    assert!(a.is_ok() && b.is_ok());
    let seg = sim.segment_id(LIST, "Fresh").expect("created");
    assert_eq!(sim.counters().calls("create_segment"), 1, "created once");
    assert_eq!(
        sim.segment_members(LIST, seg),
        Some(vec!["ann@example.com".to_string()])
    );

    // A saved segment under the name is not a tag.
    sim.create_saved_segment(LIST, "Smart").expect("saved");
    let err = lenient
        .add_members(&tag("Smart"), &[member("ann@example.com")])
        .await
        .expect_err("a saved segment");
    assert_eq!(err.class(), ErrorClass::Config);
    // And by id, Mailchimp's refusal is a config error too.
    let saved = sim.segment_id(LIST, "Smart").expect("saved");
    let err = lenient
        .add_members(&TagRef::Id(saved).list_id(), &[member("ann@example.com")])
        .await
        .expect_err("a saved segment");
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
}

#[tokio::test]
async fn read_members_sees_every_status_page_by_page() {
    let sim = start(SimConfig::default()).await;
    let statuses = [
        ContactStatus::Subscribed,
        ContactStatus::Unsubscribed,
        ContactStatus::Cleaned,
        ContactStatus::Transactional,
        ContactStatus::Pending,
    ];
    let emails: Vec<String> = (0..2300).map(|i| format!("r{i:04}@example.com")).collect();
    sim.seed_contacts(
        LIST,
        emails
            .iter()
            .enumerate()
            .map(|(i, e)| SimContact::new(e, statuses[i % statuses.len()])),
    )
    .expect("seeded");
    let seg = sim.create_static_segment(LIST, "VIP", &[]).expect("a tag");
    for chunk in emails.chunks(500) {
        sim.add_to_segment(LIST, seg, chunk).expect("tagged");
    }
    let dest = destination(&config(&sim, json!({})));
    let pages: Vec<Vec<RemoteMember>> = dest
        .read_members(&tag("VIP"))
        .try_collect()
        .await
        .expect("reads");
    assert_eq!(pages.len(), 3);
    let read: Vec<RemoteMember> = pages.into_iter().flatten().collect();
    assert_eq!(read.len(), 2300);
    for (m, e) in read.iter().zip(&emails) {
        let key = RecordKey::new(e.clone());
        assert_eq!(m.key.as_ref(), Some(&key));
        assert_eq!(m.id, subscriber_hash(&key));
    }
    // By id, the same.
    let by_id: Vec<Vec<RemoteMember>> = dest
        .read_members(&TagRef::Id(seg).list_id())
        .try_collect()
        .await
        .expect("reads");
    assert_eq!(by_id.concat().len(), 2300);
}

#[tokio::test]
async fn passing_faults_are_survived() {
    let sim = start(SimConfig::default()).await;
    let dest = destination(&config(&sim, json!({})));
    for (n, kind) in [
        FaultKind::Http429,
        FaultKind::Http403,
        FaultKind::Http500,
        FaultKind::Http502,
        FaultKind::Http503,
        FaultKind::CloseBefore,
        FaultKind::CloseAfter,
    ]
    .into_iter()
    .enumerate()
    {
        sim.set_faults(FaultConfig {
            seed: n as u64,
            rate: 0.5,
            kinds: vec![kind],
        });
        for i in 0..6 {
            let email = format!("f{n}-{i}@example.com");
            let out = dest
                .upsert(&records(&[(email.as_str(), "F", None)]))
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(out[0].result.is_ok(), "{kind:?}: {out:?}");
            dest.add_members(&tag("VIP"), &[member(&email)])
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
        assert!(sim.counters().fault(kind) > 0, "{kind:?} never happened");
    }
    sim.set_faults(FaultConfig::none());
    let seg = sim.segment_id(LIST, "VIP").expect("the tag");
    assert_eq!(sim.segment_member_count(LIST, seg), Some(42));
}

#[tokio::test]
async fn a_call_that_timed_out_is_retried_after_a_pause() {
    let sim = start(SimConfig {
        slow_answer: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    let opts = ClientOptions {
        request_timeout: Duration::from_millis(300),
        timeout_hold: Duration::from_millis(400),
        ..fast_options()
    };
    let dest = MailchimpDestination::with_options(&config(&sim, json!({})), opts).expect("builds");
    // Resolve the status first, so the slow call is the write.
    dest.new_contact_status().await.expect("the audience");
    sim.set_faults(FaultConfig::always(FaultKind::Slow));
    let began = std::time::Instant::now();
    let batch = records(&[("t@example.com", "T", None)]);
    let write = dest.upsert(&batch);
    let clear = async {
        // Once the slow write is in, the next answers come in time.
        while sim.counters().in_flight == 0 {
            tokio::task::yield_now().await;
        }
        sim.set_faults(FaultConfig::none());
    };
    let (out, ()) = tokio::join!(write, clear);
    let out = out.expect("survives the timeout");
    assert!(out[0].result.is_ok());
    // It waited for the timeout, then the hold, before trying again.
    assert!(
        began.elapsed() >= Duration::from_millis(700),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(sim.contact_count(LIST), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_eleventh_concurrent_call_never_happens() {
    let sim = start(SimConfig {
        time_scale: 10.0,
        latency: LatencyModel::realistic(),
        ..SimConfig::default()
    })
    .await;
    let cfg = config(&sim, json!({}));
    // Two destinations of one account share one cap.
    let a = Arc::new(destination(&cfg));
    let b = Arc::new(destination(&cfg));
    a.new_contact_status().await.expect("the audience");
    b.new_contact_status().await.expect("the audience");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let dest = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let rows: Vec<String> = (0..20).map(|j| format!("c{i}-{j}@example.com")).collect();
            let rows: Vec<(&str, &str, Option<&str>)> =
                rows.iter().map(|e| (e.as_str(), "C", None)).collect();
            dest.upsert(&records(&rows)).await.map(|o| o.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("joins").expect("upserts"), 20);
    }
    let c = sim.counters();
    assert!(c.max_in_flight <= 10, "{} in flight", c.max_in_flight);
    assert!(
        c.max_in_flight >= 5,
        "the cap was not filled: {}",
        c.max_in_flight
    );
    assert_eq!(c.too_many_requests, 0);
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_never_shows_the_key() {
    let sim = start(SimConfig::default()).await;
    let wrong = "fedcba9876543210fedcba9876543210-us6";
    let cfg = config(&sim, json!({"api_key": wrong}));
    let dest = destination(&cfg);
    let err = dest
        .upsert(&records(&[("ann@example.com", "Ann", None)]))
        .await
        .expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Auth);
    let check = dest.check(&[tag("VIP")], &["email".into()]).await;
    assert!(!check[0].ok);
    let shown = [
        err.to_string(),
        format!("{err:?}"),
        format!("{dest:?}"),
        format!("{cfg:?}"),
        format!("{check:?}"),
    ];
    for s in shown {
        assert!(!s.contains("fedcba9876543210"), "{s}");
        assert!(!s.contains(sim.api_key()), "{s}");
    }
    assert_eq!(sim.counters().calls("batch_subscribe"), 0);
}

#[tokio::test]
async fn config_mistakes_are_clear_errors_and_nothing_is_sent() {
    let sim = start(SimConfig::default()).await;

    // A missing audience: the check says so, a run fails as a config error.
    let dest = destination(&config(&sim, json!({"audience_id": "n0such"})));
    let check = dest.check(&[tag("VIP")], &["email".into()]).await;
    let step = check
        .iter()
        .find(|c| c.name == "audience n0such")
        .expect("an audience step");
    assert!(!step.ok && step.detail.contains("n0such"), "{step:?}");
    let err = dest
        .upsert(&records(&[("ann@example.com", "Ann", None)]))
        .await
        .expect_err("no audience");
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(dest.fields().await.is_err());

    // An unknown merge field: fields() does not list it (core's mapper
    // refuses the mapping before anything is sent) and the check names it.
    let dest = destination(&config(&sim, json!({})));
    let fields = dest.fields().await.expect("fields");
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["email", "FNAME", "LNAME", "ADDRESS", "PHONE"]);
    let check = dest
        .check(
            &[tag("VIP")],
            &[
                "email".into(),
                "FNAME".into(),
                "fname".into(),
                "NOPE".into(),
            ],
        )
        .await;
    let step = check
        .iter()
        .find(|c| c.name == "merge fields")
        .expect("a step");
    assert!(!step.ok, "{step:?}");
    assert!(step.detail.contains("fname, NOPE"), "{}", step.detail);

    // Plain http to a host that is not loopback, and a tag named twice.
    let mut cfg = config(
        &sim,
        json!({"base_url": "http://us6.api.mailchimp.com/3.0"}),
    );
    let errs = cfg.check();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "base_url");
    let err = MailchimpDestination::from_config(&cfg).expect_err("refused");
    assert!(err.is_config());
    cfg = config(&sim, json!({"tag_id": 12}));
    let errs = cfg.check();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "tag_id");
    assert!(errs[0].message.contains("both"), "{}", errs[0].message);

    let c = sim.counters();
    assert_eq!(c.calls("batch_subscribe") + c.calls("batch_segment"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_creating_one_tag_end_with_one_tag() {
    // Latency makes both lookups miss the tag before either creates it:
    // the second creation is refused (a duplicate name), and the tag found
    // then is used.
    let sim = start(SimConfig {
        time_scale: 10.0,
        latency: LatencyModel::realistic(),
        ..SimConfig::default()
    })
    .await;
    for e in ["ann@example.com", "bob@example.com"] {
        sim.seed_contact(LIST, e, ContactStatus::Subscribed)
            .expect("seeded");
    }
    let cfg = config(&sim, json!({"create_tag": true}));
    let (a, b) = (destination(&cfg), destination(&cfg));
    let list = tag("Race");
    let (ann, bob) = ([member("ann@example.com")], [member("bob@example.com")]);
    let (x, y) = tokio::join!(a.add_members(&list, &ann), b.add_members(&list, &bob));
    assert!(x.is_ok_and(|o| o[0].result.is_ok()));
    assert!(y.is_ok_and(|o| o[0].result.is_ok()));
    let seg = sim.segment_id(LIST, "Race").expect("one tag");
    assert_eq!(sim.segment_member_count(LIST, seg), Some(2));
    // Both created; Mailchimp refused the second.
    assert_eq!(sim.counters().calls("create_segment"), 2);
}
