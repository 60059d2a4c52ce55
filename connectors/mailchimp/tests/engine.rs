//! Whole runs through audex's engine (files source, state store) against
//! the simulator: what the user sees of a bad mapping, of suppressions, and
//! of `--reconcile` on a shared tag.

use audex_core::config::{Config, Environment};
use audex_core::engine::report::{RunReport, RunStatus};
use audex_core::engine::{run_destination, LockRequest, RunEnd, RunOptions};
use audex_core::state::StateStore;
use audex_core::ErrorClass;
use audex_mailchimp_sim::{ContactStatus, SimConfig, SimHandle, Simulator, DEFAULT_AUDIENCE_ID};
use serde_json::{json, Value};

// Link the plugins the configs name.
use audex_files as _;
use audex_mailchimp as _;

const LIST: &str = DEFAULT_AUDIENCE_ID;

struct Workspace {
    dir: tempfile::TempDir,
    sim: SimHandle,
}

impl Workspace {
    async fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("a folder"),
            sim: Simulator::start(SimConfig::default())
                .await
                .expect("the simulator starts"),
        }
    }

    fn rows(&self, rows: &[(&str, &str)]) {
        let mut w = csv::Writer::from_path(self.dir.path().join("people.csv")).expect("a file");
        w.write_record(["email", "first_name"]).expect("a header");
        for (e, f) in rows {
            w.write_record([e, f]).expect("a row");
        }
        w.flush().expect("written");
    }

    fn config(&self, extra: Value) {
        let mut block = json!({
            "type": "mailchimp",
            "display_name": "Mailchimp (engine tests)",
            "api_key": "${MC_KEY}",
            "base_url": self.sim.api_root(),
            "audience_id": LIST,
            "tag": "VIP",
            "create_tag": true,
            "data_privacy_consent": true,
            "export_user": "tester",
            "mapping": {"email": "email", "FNAME": "first_name"},
            "mode": "mirror",
            "exports": [{"segment": "people"}],
        });
        if let (Some(b), Some(e)) = (block.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let doc = json!({
            "sources": {"crm": {"type": "files", "tables": {"people": "people.csv"}}},
            "segments": {"people": {"source": "crm", "table": "people"}},
            "destinations": {"mc": block},
        });
        std::fs::write(self.dir.path().join("audex.yaml"), doc.to_string()).expect("written");
    }

    async fn run(&self, reconcile: bool) -> RunEnd {
        self.run_with(RunOptions {
            reconcile,
            ..RunOptions::default()
        })
        .await
    }

    async fn run_with(&self, options: RunOptions) -> RunEnd {
        let env =
            Environment::from_vars(vec![("MC_KEY".to_string(), self.sim.api_key().to_string())]);
        let config = Config::load_with(&self.dir.path().join("audex.yaml"), &env)
            .unwrap_or_else(|e| panic!("the config is refused: {e:#}"));
        let store = StateStore::open(&self.dir.path().join("state.db")).expect("state");
        let options = RunOptions {
            rejects_dir: Some(self.dir.path().join("rejects")),
            ..options
        };
        run_destination(&config, "mc", &store, &options, &LockRequest::default()).await
    }

    async fn ran(&self, reconcile: bool) -> RunReport {
        match self.run(reconcile).await {
            RunEnd::Ran(r) => *r,
            other => panic!("the run did not happen: {other:?}"),
        }
    }

    fn writes(&self) -> u64 {
        let c = self.sim.counters();
        c.calls("batch_subscribe") + c.calls("batch_segment")
    }

    fn tagged(&self) -> Vec<String> {
        let seg = self.sim.segment_id(LIST, "VIP").expect("the tag");
        let mut m = self.sim.segment_members(LIST, seg).expect("members");
        m.sort();
        m
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_merge_field_is_a_config_error_before_anything_is_sent() {
    let ws = Workspace::new().await;
    ws.rows(&[("ann@example.com", "Ann")]);
    ws.config(json!({"mapping": {"email": "email", "FIRSTNAME": "first_name"}}));
    let (class, shown) = match ws.run(false).await {
        RunEnd::NotStarted(e) => (e.class(), e.to_string()),
        RunEnd::Ran(r) => {
            assert_eq!(r.status, RunStatus::Failed);
            let e = r.error.expect("an error");
            (e.class, format!("{e:?}"))
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(class, ErrorClass::Config, "{shown}");
    assert!(shown.contains("FIRSTNAME"), "{shown}");
    assert_eq!(ws.writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_refusal_is_suppressed_and_never_sent_again() {
    let ws = Workspace::new().await;
    ws.sim
        .seed_contact(LIST, "gone@example.com", ContactStatus::Unsubscribed)
        .expect("seeded");
    ws.rows(&[("ann@example.com", "Ann"), ("gone@example.com", "Gone")]);
    ws.config(json!({}));
    let first = ws.ran(false).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.segments[0].rejected, 1);
    assert_eq!(ws.tagged(), ["ann@example.com"]);
    let carried = ws.sim.counters().members.get("batch_subscribe").copied();
    assert_eq!(carried, Some(2));

    // A changed first name makes Ann an upsert again; the suppressed
    // contact is not sent.
    ws.rows(&[
        ("ann@example.com", "Anna"),
        ("gone@example.com", "Gone again"),
    ]);
    let second = ws.ran(false).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    let carried = ws.sim.counters().members.get("batch_subscribe").copied();
    assert_eq!(carried, Some(3), "only Ann was sent again");
    let gone = ws.sim.contact(LIST, "gone@example.com").expect("kept");
    assert_eq!(gone.status, ContactStatus::Unsubscribed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_leaves_contacts_others_tagged_unless_the_tag_is_owned() {
    let ws = Workspace::new().await;
    ws.sim
        .seed_contact(LIST, "form@example.com", ContactStatus::Subscribed)
        .expect("seeded");
    let seg = ws
        .sim
        .create_static_segment(LIST, "VIP", &["form@example.com".to_string()])
        .expect("a tag");
    ws.rows(&[("ann@example.com", "Ann"), ("bob@example.com", "Bob")]);
    ws.config(json!({}));
    let first = ws.ran(true).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(
        ws.tagged(),
        ["ann@example.com", "bob@example.com", "form@example.com"]
    );

    // Bob leaves: audex added him, so he goes; the form's contact stays.
    ws.rows(&[("ann@example.com", "Ann")]);
    let second = ws.ran(true).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(ws.tagged(), ["ann@example.com", "form@example.com"]);

    // An owned tag is made exactly the segment.
    ws.config(json!({"tag_owned": true}));
    let third = ws.ran(true).await;
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.error);
    assert_eq!(ws.tagged(), ["ann@example.com"]);
    assert_eq!(ws.sim.segment_member_count(LIST, seg), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_opt_in_audience_is_announced_with_the_count_of_confirmation_emails() {
    let ws = Workspace::new().await;
    let mut audience = audex_mailchimp_sim::SimAudience::new("d0ub1e0pt1", "Double opt-in");
    audience.double_optin = true;
    ws.sim.add_audience(&audience).expect("an audience");
    ws.rows(&[
        ("a@example.com", "A"),
        ("b@example.com", "B"),
        ("c@example.com", "C"),
    ]);
    ws.config(json!({"audience_id": "d0ub1e0pt1", "status_if_new": "auto"}));
    let dry = match ws
        .run_with(RunOptions {
            dry_run: true,
            ..RunOptions::default()
        })
        .await
    {
        RunEnd::Ran(r) => *r,
        other => panic!("{other:?}"),
    };
    let notices = &dry.segments[0].notices;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with("up to 3 contacts new to the audience join as pending")
            && notices[0].contains("confirmation email"),
        "{notices:?}"
    );
    assert_eq!(
        ws.sim.contact_count("d0ub1e0pt1"),
        0,
        "a dry run sends nothing"
    );

    // A single opt-in audience says nothing.
    ws.config(json!({}));
    let dry = match ws
        .run_with(RunOptions {
            dry_run: true,
            ..RunOptions::default()
        })
        .await
    {
        RunEnd::Ran(r) => *r,
        other => panic!("{other:?}"),
    };
    assert!(dry.segments[0].notices.is_empty());
}
