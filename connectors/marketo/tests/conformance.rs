//! The conformance suite (audex-conformance) against the Marketo
//! simulator: every check a destination plugin must pass.

use std::collections::BTreeSet;

use async_trait::async_trait;
use audex_conformance::{Calls, Harness, Setup, Subject};
use audex_marketo_sim::{FaultConfig, FaultKind, LatencyModel, SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};

// Link the plugin, so its descriptor is registered.
use audex_marketo as _;

/// The first list the suite fills; audience `n` is list `FIRST_LIST + n`.
const FIRST_LIST: u64 = 1001;

struct MarketoHarness;

#[async_trait]
impl Harness for MarketoHarness {
    async fn start(&self, setup: Setup) -> Box<dyn Subject> {
        let cfg = if setup.slow {
            // A 300-record call takes about 250 ms.
            SimConfig {
                time_scale: 4.0,
                latency: LatencyModel::realistic(),
                ..SimConfig::default()
            }
        } else {
            SimConfig::default()
        };
        let sim = Simulator::start(cfg).await.expect("the simulator starts");
        Box::new(MarketoSubject { sim })
    }
}

struct MarketoSubject {
    sim: SimHandle,
}

#[async_trait]
impl Subject for MarketoSubject {
    fn plugin(&self) -> &'static str {
        "marketo"
    }

    fn destination(&self) -> Value {
        json!({
            "type": "marketo",
            "display_name": "Marketo (conformance)",
            "endpoint": self.sim.base_url(),
            "client_id": self.sim.config().client_id,
            "client_secret": "${KIT_MARKETO_SECRET}",
            "data_privacy_consent": true,
            "export_user": "kit@example.com",
        })
    }

    fn environment(&self) -> Vec<(String, String)> {
        vec![(
            "KIT_MARKETO_SECRET".into(),
            self.sim.config().client_secret.clone(),
        )]
    }

    fn fields(&self) -> (&'static str, &'static str) {
        ("email", "firstName")
    }

    fn target(&self, n: usize) -> Value {
        json!({ "list_id": FIRST_LIST + n as u64 })
    }

    async fn members(&self, n: usize) -> BTreeSet<String> {
        self.sim
            .list_members(FIRST_LIST + n as u64)
            .into_iter()
            .filter_map(|id| self.sim.lead(id))
            .filter_map(|lead| lead.fields.get("email")?.as_str().map(str::to_lowercase))
            .collect()
    }

    async fn first_name(&self, key: &str) -> Option<String> {
        let lead = self.sim.lead_by_email(key)?;
        lead.fields.get("firstName")?.as_str().map(String::from)
    }

    async fn calls(&self) -> Calls {
        let c = self.sim.counters();
        Calls {
            writes: c.calls("sync_leads") + c.calls("add_to_list") + c.calls("remove_from_list"),
            throttled: c.code("606") + c.code("615"),
        }
    }

    async fn faults(&self, share: f64) {
        self.sim.set_faults(FaultConfig {
            seed: 11,
            rate: share,
            kinds: vec![
                FaultKind::Http502,
                FaultKind::Http503,
                FaultKind::Code604,
                FaultKind::Code608,
                FaultKind::Code713,
                FaultKind::CloseConnection,
            ],
        });
    }

    async fn refuse(&self, key: &str) -> bool {
        // Two leads with one email: Marketo cannot tell which to update
        // (1007, "Multiple lead match lookup criteria").
        for _ in 0..2 {
            self.sim.insert_lead(json!({ "email": key }));
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketo_passes_the_conformance_suite() {
    audex_conformance::run(&MarketoHarness).await;
}
