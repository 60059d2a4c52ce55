//! The conformance suite (audex-conformance) against the Mailchimp
//! simulator: every check a destination plugin must pass.

use std::collections::BTreeSet;

use async_trait::async_trait;
use audex_conformance::{Calls, Harness, Setup, Subject};
use audex_mailchimp_sim::{
    ContactStatus, FaultConfig, FaultKind, LatencyModel, SimConfig, SimHandle, Simulator,
    DEFAULT_AUDIENCE_ID,
};
use serde_json::{json, Value};

// Link the plugin, so its descriptor is registered.
use audex_mailchimp as _;

struct MailchimpHarness;

#[async_trait]
impl Harness for MailchimpHarness {
    async fn start(&self, setup: Setup) -> Box<dyn Subject> {
        let cfg = if setup.slow {
            // Realistic latency at scale 7: a 500-member call takes about
            // 200 ms (1.4 s / 7), an empty one about 57 ms.
            SimConfig {
                time_scale: 7.0,
                latency: LatencyModel::realistic(),
                ..SimConfig::default()
            }
        } else {
            SimConfig::default()
        };
        let sim = Simulator::start(cfg).await.expect("the simulator starts");
        Box::new(MailchimpSubject { sim })
    }
}

struct MailchimpSubject {
    sim: SimHandle,
}

fn tag(n: usize) -> String {
    format!("kit-{n}")
}

#[async_trait]
impl Subject for MailchimpSubject {
    fn plugin(&self) -> &'static str {
        "mailchimp"
    }

    fn destination(&self) -> Value {
        json!({
            "type": "mailchimp",
            "display_name": "Mailchimp (conformance)",
            "api_key": "${KIT_MAILCHIMP_KEY}",
            "base_url": self.sim.api_root(),
            "audience_id": DEFAULT_AUDIENCE_ID,
            "create_tag": true,
            "data_privacy_consent": true,
            "export_user": "kit@example.com",
        })
    }

    fn environment(&self) -> Vec<(String, String)> {
        vec![("KIT_MAILCHIMP_KEY".into(), self.sim.api_key().to_string())]
    }

    fn fields(&self) -> (&'static str, &'static str) {
        ("email", "FNAME")
    }

    fn target(&self, n: usize) -> Value {
        json!({ "tag": tag(n) })
    }

    async fn members(&self, n: usize) -> BTreeSet<String> {
        self.sim
            .segment_id(DEFAULT_AUDIENCE_ID, &tag(n))
            .and_then(|seg| self.sim.segment_members(DEFAULT_AUDIENCE_ID, seg))
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.to_lowercase())
            .collect()
    }

    async fn first_name(&self, key: &str) -> Option<String> {
        let c = self.sim.contact(DEFAULT_AUDIENCE_ID, key)?;
        c.merge_fields.get("FNAME")?.as_str().map(String::from)
    }

    async fn calls(&self) -> Calls {
        let c = self.sim.counters();
        Calls {
            writes: c.calls("batch_subscribe") + c.calls("batch_segment"),
            throttled: c.too_many_requests,
        }
    }

    async fn faults(&self, share: f64) {
        self.sim.set_faults(FaultConfig {
            seed: 11,
            rate: share,
            kinds: vec![
                FaultKind::Http429,
                FaultKind::Http403,
                FaultKind::Http500,
                FaultKind::Http502,
                FaultKind::Http503,
                FaultKind::CloseBefore,
                FaultKind::CloseAfter,
            ],
        });
    }

    async fn refuse(&self, key: &str) -> bool {
        // An unsubscribed contact: Mailchimp will not subscribe it again.
        self.sim
            .seed_contact(DEFAULT_AUDIENCE_ID, key, ContactStatus::Unsubscribed)
            .is_ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailchimp_passes_the_conformance_suite() {
    audex_conformance::run(&MailchimpHarness).await;
}
