//! The kit proves itself on a small in-process destination: members join
//! without a record first, the audience cannot be read back, adds and
//! removes share a call. It is the one in-process fake of the suite; it
//! stands for no vendor (the Marketo and Mailchimp plugins run the same
//! suite against their simulators).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use audex_conformance::{Calls, Harness, Setup, Subject};
use audex_core::registry::{deserialize_block, DestinationPlugin};
use audex_core::{
    BuildContext, Capabilities, CheckResult, ConfigError, Destination, DestinationConfig, Error,
    ErrorClass, ExportSettings, ExportSpec, ExportTarget, Exports, FieldSpec, FieldType, Limits,
    ListId, Member, MemberOutcome, RecordOutcome, Records, Rejection, Result, TargetConfig,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The most calls the server takes at once; one more is throttled.
const MAX_IN_FLIGHT: usize = 3;

/// An audience server in memory, shared by name between the destination
/// a config builds and the subject that observes it.
#[derive(Debug, Default)]
struct Server {
    audiences: Mutex<HashMap<String, BTreeSet<String>>>,
    refused: Mutex<HashSet<String>>,
    writes: AtomicU64,
    throttled: AtomicU64,
    in_flight: AtomicUsize,
    /// Every `fault_every`-th call fails (0: none).
    fault_every: AtomicU64,
    calls: AtomicU64,
    /// Milliseconds each call takes.
    delay_ms: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static SERVERS: LazyLock<Mutex<BTreeMap<String, Arc<Server>>>> = LazyLock::new(Mutex::default);

fn server(name: &str) -> Option<Arc<Server>> {
    lock(&SERVERS).get(name).cloned()
}

impl Server {
    /// One write call: throttled beyond the cap, failed now and then,
    /// `apply` otherwise.
    async fn call<T>(&self, apply: impl FnOnce() -> T) -> Result<T> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _leave = Leave(&self.in_flight);
        if now > MAX_IN_FLIGHT {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Err(Error::new(
                ErrorClass::RateLimited,
                "too many calls at once",
            ));
        }
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.fault_every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            return Err(Error::new(ErrorClass::Transient, "the server stumbled"));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(apply())
    }
}

/// Leaves the in-flight count on drop (a cancelled call leaves too).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// ------------------------------------------------------------ the plugin

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "In-memory destination (conformance kit)", deny_unknown_fields)]
struct MemoryConfig {
    #[serde(rename = "type")]
    kind: MemoryType,
    /// The in-memory server's name.
    server: String,
    #[serde(flatten)]
    export: ExportSettings,
    #[serde(flatten)]
    exports: Exports<MemoryTarget>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum MemoryType {
    KitMemory,
}

/// An audience by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
struct MemoryTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
}

impl TargetConfig for MemoryTarget {
    fn resolve(&self, default: &Self) -> Option<ExportTarget> {
        let name = self.audience.as_ref().or(default.audience.as_ref())?;
        Some(ExportTarget::new(
            ListId(name.clone()),
            serde_json::Map::from_iter([("audience".to_string(), json!(name))]),
            format!("audience {name}"),
        ))
    }

    fn missing() -> ConfigError {
        ConfigError::new("audience", "no audience to export to")
    }
}

impl DestinationConfig for MemoryConfig {
    fn settings(&self) -> &ExportSettings {
        &self.export
    }

    fn exports(&self) -> Vec<ExportSpec> {
        self.exports.specs(self.export.mode)
    }

    fn validate(&self) -> Vec<ConfigError> {
        let mut errors = self.export.validate();
        errors.extend(self.exports.validate());
        errors
    }

    fn build(&self, _: &BuildContext) -> Result<Arc<dyn Destination>> {
        let server = server(&self.server).ok_or_else(|| {
            Error::config(vec![ConfigError::new("server", "no such in-memory server")])
        })?;
        Ok(Arc::new(MemoryDestination { server }))
    }
}

#[derive(Debug)]
struct MemoryDestination {
    server: Arc<Server>,
}

#[async_trait]
impl Destination for MemoryDestination {
    fn limits(&self) -> Limits {
        Limits::new(1)
            .with_batches(1, 40, 25)
            .with_adds_and_removes_together()
            .with_max_concurrency(MAX_IN_FLIGHT)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .without_records_first()
            .without_reading_members()
    }

    fn lookup_field(&self) -> &str {
        "email"
    }

    async fn check(&self, _: &[ListId], _: &[String]) -> Vec<CheckResult> {
        vec![CheckResult::ok("server", "in memory")]
    }

    async fn fields(&self) -> Result<Vec<FieldSpec>> {
        let text = |name: &str, data_type| FieldSpec {
            name: name.into(),
            data_type,
            max_length: None,
            writable: true,
        };
        Ok(vec![
            text("email", FieldType::Email),
            text("first_name", FieldType::String),
        ])
    }

    async fn upsert(&self, _: &Records) -> Result<Vec<RecordOutcome>> {
        Err(Error::internal(
            "this destination keeps no records: the engine must not upsert",
        ))
    }

    async fn add_members(&self, list: &ListId, members: &[Member]) -> Result<Vec<MemberOutcome>> {
        self.change_members(list, members, &[]).await
    }

    async fn remove_members(
        &self,
        list: &ListId,
        members: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        self.change_members(list, &[], members).await
    }

    async fn change_members(
        &self,
        list: &ListId,
        adds: &[Member],
        removes: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        // Like a real client, retry a call that failed in passing, after
        // a pause.
        let mut attempt = 0;
        loop {
            match self.apply(list, adds, removes).await {
                Err(e) if e.class() == ErrorClass::Transient && attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }
}

impl MemoryDestination {
    async fn apply(
        &self,
        list: &ListId,
        adds: &[Member],
        removes: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        let server = &self.server;
        server
            .call(|| {
                let refused = lock(&server.refused).clone();
                let mut audiences = lock(&server.audiences);
                let audience = audiences.entry(list.0.clone()).or_default();
                let mut out = Vec::with_capacity(adds.len() + removes.len());
                for m in adds {
                    let result = if refused.contains(m.key.as_str()) {
                        Err(Rejection::for_good("opted_out", "the person opted out"))
                    } else {
                        audience.insert(m.id.0.clone());
                        Ok(())
                    };
                    out.push(MemberOutcome {
                        key: m.key.clone(),
                        result,
                    });
                }
                for m in removes {
                    audience.remove(&m.id.0);
                    out.push(MemberOutcome {
                        key: m.key.clone(),
                        result: Ok(()),
                    });
                }
                out
            })
            .await
    }
}

fn schema() -> schemars::Schema {
    schemars::schema_for!(MemoryConfig)
}

fn parse(value: Value) -> std::result::Result<Box<dyn DestinationConfig>, Vec<ConfigError>> {
    let cfg: MemoryConfig = deserialize_block(value)?;
    Ok(Box::new(cfg))
}

audex_core::inventory::submit! {
    DestinationPlugin {
        name: "kit_memory",
        description: "An in-memory audience for the conformance kit's own test",
        schema,
        example: "type: kit_memory\nserver: example\ndisplay_name: Memory\ndata_privacy_consent: true\nexport_user: kit@example.com\nmapping:\n  email: email\naudience: all\nexports:\n  - segment: people\n",
        parse,
    }
}

// ------------------------------------------------------------ the harness

struct MemoryHarness;

static NEXT: AtomicU64 = AtomicU64::new(0);

#[async_trait]
impl Harness for MemoryHarness {
    async fn start(&self, setup: Setup) -> Box<dyn Subject> {
        let name = format!("memory-{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let server = Arc::new(Server::default());
        if setup.slow {
            server.delay_ms.store(20, Ordering::SeqCst);
        }
        lock(&SERVERS).insert(name.clone(), Arc::clone(&server));
        Box::new(MemorySubject { name, server })
    }
}

struct MemorySubject {
    name: String,
    server: Arc<Server>,
}

#[async_trait]
impl Subject for MemorySubject {
    fn plugin(&self) -> &'static str {
        "kit_memory"
    }

    fn destination(&self) -> Value {
        json!({
            "type": "kit_memory",
            "server": self.name,
            "display_name": "Memory",
            "data_privacy_consent": true,
            "export_user": "kit@example.com",
        })
    }

    fn fields(&self) -> (&'static str, &'static str) {
        ("email", "first_name")
    }

    fn target(&self, n: usize) -> Value {
        json!({ "audience": format!("audience-{n}") })
    }

    async fn members(&self, n: usize) -> BTreeSet<String> {
        lock(&self.server.audiences)
            .get(&format!("audience-{n}"))
            .cloned()
            .unwrap_or_default()
    }

    async fn first_name(&self, _: &str) -> Option<String> {
        None
    }

    fn keeps_fields(&self) -> bool {
        false
    }

    async fn calls(&self) -> Calls {
        Calls {
            writes: self.server.writes.load(Ordering::SeqCst),
            throttled: self.server.throttled.load(Ordering::SeqCst),
        }
    }

    async fn faults(&self, share: f64) {
        let every = if share > 0.0 {
            (1.0 / share).round().max(1.0) as u64
        } else {
            0
        };
        self.server.fault_every.store(every, Ordering::SeqCst);
    }

    async fn refuse(&self, key: &str) -> bool {
        lock(&self.server.refused).insert(key.to_string());
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_an_in_process_destination_without_records_or_read_back() {
    audex_conformance::run(&MemoryHarness).await;
}

/// The kit fails a destination that breaks its promises: here, one that
/// forgets every other add it confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_fails_a_destination_that_loses_members() {
    struct Lossy;
    #[async_trait]
    impl Harness for Lossy {
        async fn start(&self, setup: Setup) -> Box<dyn Subject> {
            let inner = MemoryHarness.start(setup).await;
            Box::new(LossySubject(inner))
        }
    }
    struct LossySubject(Box<dyn Subject>);
    #[async_trait]
    impl Subject for LossySubject {
        fn plugin(&self) -> &'static str {
            self.0.plugin()
        }
        fn destination(&self) -> Value {
            self.0.destination()
        }
        fn fields(&self) -> (&'static str, &'static str) {
            self.0.fields()
        }
        fn target(&self, n: usize) -> Value {
            self.0.target(n)
        }
        async fn members(&self, n: usize) -> BTreeSet<String> {
            // The server lost one member.
            let mut m = self.0.members(n).await;
            let first = m.iter().next().cloned();
            if let Some(k) = first {
                m.remove(&k);
            }
            m
        }
        async fn first_name(&self, key: &str) -> Option<String> {
            self.0.first_name(key).await
        }
        fn keeps_fields(&self) -> bool {
            false
        }
        async fn calls(&self) -> Calls {
            self.0.calls().await
        }
        async fn faults(&self, share: f64) {
            self.0.faults(share).await
        }
        async fn refuse(&self, key: &str) -> bool {
            self.0.refuse(key).await
        }
    }
    let outcome = tokio::spawn(async { audex_conformance::run(&Lossy).await }).await;
    let panic = outcome.expect_err("the suite fails");
    let message = panic
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(
        message.contains("conformance check `first export` failed") && message.contains("missing"),
        "{message}"
    );
}
