//! The HTTP server and the per-call pipeline: URL and body limits, token,
//! faults, daily quota, concurrency, rolling rate window, the operation,
//! latency, then counters and the request log.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{self, Route};
use crate::bulk::{self, Bulk};
use crate::config::{FaultConfig, FaultKind, SimConfig};
use crate::envelope::{asset_err, lead_err, Payload, Reply};
use crate::faults;
use crate::fields::Catalogue;
use crate::gate::{Gate, TokenCheck};
use crate::request::SimRequest;
use crate::side;
use crate::store::{AddStats, Store};

/// Leads, lists and import jobs: one lock, never held across an await.
#[derive(Debug)]
pub struct World {
    pub store: Store,
    pub bulk: Bulk,
}

impl World {
    fn advance(&mut self, now: Instant) {
        self.bulk.advance(now, &mut self.store);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data a test can still inspect.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a handler needs for one call.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub cfg: &'a SimConfig,
    world: &'a Mutex<World>,
    pub rid: String,
    pub now: Instant,
}

impl Ctx<'_> {
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = lock(self.world);
        w.advance(self.now);
        f(&mut w)
    }

    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        self.with_world(|w| f(&mut w.store))
    }
}

#[derive(Debug, Default)]
struct CounterData {
    total_calls: u64,
    quota_calls: u64,
    by_op: BTreeMap<String, u64>,
    by_route: BTreeMap<String, u64>,
    codes: BTreeMap<String, u64>,
    record_codes: BTreeMap<String, u64>,
    records: BTreeMap<String, u64>,
    faults: BTreeMap<String, u64>,
}

/// A snapshot of what the simulator has seen. Also served at `GET /_sim/counters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Every call, Identity and refused ones included.
    pub total_calls: u64,
    /// Calls that counted against the daily quota since start (or the last counter reset).
    pub quota_calls: u64,
    /// Daily quota used now (resets at CST midnight or by `reset_daily_quota`).
    pub quota_used: u64,
    /// Most Marketo calls (Identity excluded) in flight at once.
    pub peak_concurrency: u64,
    pub in_flight: u64,
    /// Calls per operation, e.g. `sync_leads`, `add_to_list`, `identity`.
    pub by_op: BTreeMap<String, u64>,
    /// Calls per method and path template, e.g. `POST /rest/v1/lists/{id}/leads.json`.
    pub by_route: BTreeMap<String, u64>,
    /// Answers per response-level code ("606", "1013") or HTTP error status ("413", "502", "401").
    pub codes: BTreeMap<String, u64>,
    /// Skipped records per record-level reason code ("1003", "1015").
    pub record_codes: BTreeMap<String, u64>,
    /// Records or lead ids carried, per operation.
    pub records: BTreeMap<String, u64>,
    /// Faults injected, per kind.
    pub faults: BTreeMap<String, u64>,
    /// Per list: how often leads were added (an add of an existing member counts again).
    pub list_adds: BTreeMap<u64, AddStats>,
}

impl Counters {
    pub fn calls(&self, op: &str) -> u64 {
        self.by_op.get(op).copied().unwrap_or(0)
    }

    pub fn code(&self, code: &str) -> u64 {
        self.codes.get(code).copied().unwrap_or(0)
    }

    pub fn route(&self, template: &str) -> u64 {
        self.by_route.get(template).copied().unwrap_or(0)
    }
}

/// A lead as the side channel shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimLead {
    pub id: u64,
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug)]
pub(crate) struct Sim {
    pub cfg: SimConfig,
    pub world: Mutex<World>,
    pub gate: Mutex<Gate>,
    pub faults: Mutex<FaultConfig>,
    counters: Mutex<CounterData>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    call_seq: AtomicU64,
    rid_seq: AtomicU64,
    log: Option<Mutex<BufWriter<File>>>,
    started: Instant,
}

/// The connection is to be closed without an answer (fault injection).
#[derive(Debug, thiserror::Error)]
#[error("connection closed by fault injection")]
pub(crate) struct Dropped;

/// Decrements the in-flight count however the call ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn error_for(route: Option<Route>, rid: &str, code: &str, message: &str) -> Reply {
    if route.is_some_and(|r| r.is_asset()) {
        asset_err(rid, code, message)
    } else {
        lead_err(rid, code, message)
    }
}

fn to_response(reply: Reply) -> Response<Body> {
    let (ct, body, identity) = match reply.payload {
        Payload::Json(v) => ("application/json;charset=UTF-8", v.to_string(), false),
        Payload::Identity(v) => ("application/json;charset=UTF-8", v.to_string(), true),
        Payload::Text { content_type, text } => (content_type, text, false),
        Payload::Html(h) => ("text/html", h, false),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::SERVER, HeaderValue::from_static("nginx"));
    if identity {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    resp
}

/// Everything the log and counters record about one finished call.
struct Finished<'a> {
    method: &'a Method,
    path: &'a str,
    op: &'a str,
    template: Option<&'a str>,
    counted: bool,
    fault: Option<FaultKind>,
    started: Instant,
}

impl Sim {
    fn new(cfg: SimConfig) -> anyhow::Result<Sim> {
        if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0) {
            anyhow::bail!(
                "time_scale must be a positive number, got {}",
                cfg.time_scale
            );
        }
        let cat = Catalogue::new(&cfg.custom_fields).map_err(|e| anyhow::anyhow!(e))?;
        let store = Store::new(cat, &cfg.lists, &cfg.folders);
        let log = match &cfg.request_log {
            Some(p) => Some(Mutex::new(BufWriter::new(
                File::create(p).with_context(|| format!("creating request log {}", p.display()))?,
            ))),
            None => None,
        };
        let salt = faults::mix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7),
        );
        let gate = Gate::new(
            cfg.scaled(cfg.token_ttl),
            cfg.rate_calls,
            cfg.scaled(cfg.rate_window),
            cfg.daily_quota,
            cfg.time_scale,
            salt,
        );
        Ok(Sim {
            faults: Mutex::new(cfg.faults.clone()),
            world: Mutex::new(World {
                store,
                bulk: Bulk::new(),
            }),
            gate: Mutex::new(gate),
            counters: Mutex::new(CounterData::default()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            call_seq: AtomicU64::new(0),
            rid_seq: AtomicU64::new(0),
            log,
            started: Instant::now(),
            cfg,
        })
    }

    fn next_rid(&self) -> String {
        let n = self.rid_seq.fetch_add(1, Ordering::Relaxed) + 0x1_0000;
        let ms = chrono::Utc::now().timestamp_millis();
        format!("{:x}#{:x}", n & 0xfffff, ms)
    }

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> Result<Response<Body>, Dropped> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        if path == "/_sim" || path.starts_with("/_sim/") {
            let bytes = axum::body::to_bytes(Body::new(body), 64 * 1024 * 1024)
                .await
                .unwrap_or_default();
            return Ok(side::handle(
                &self,
                &parts.method,
                &path,
                parts.uri.query(),
                &bytes,
            ));
        }
        let method = parts.method.clone();
        let url_len = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().len())
            .unwrap_or(0);
        let fin = |op: &str,
                   template: Option<&str>,
                   counted: bool,
                   fault: Option<FaultKind>,
                   reply: &Reply| {
            self.finish(
                &Finished {
                    method: &method,
                    path: &path,
                    op,
                    template,
                    counted,
                    fault,
                    started,
                },
                reply,
            )
        };
        // HTTP-level limits are the gateway's: nothing reaches the API, nothing is counted.
        if url_len > self.cfg.max_url_bytes {
            let reply = Reply::http(StatusCode::URI_TOO_LONG);
            fin("uri_too_long", None, false, None, &reply);
            return Ok(to_response(reply));
        }
        let limit = if path.starts_with("/bulk/") {
            self.cfg.bulk_max_body_bytes
        } else {
            self.cfg.max_body_bytes
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bytes = if declared.is_some_and(|n| n > limit) {
            None
        } else {
            axum::body::to_bytes(Body::new(body), limit).await.ok()
        };
        let Some(bytes) = bytes else {
            let reply = Reply::http(StatusCode::PAYLOAD_TOO_LARGE);
            fin("payload_too_large", None, false, None, &reply);
            return Ok(to_response(reply));
        };
        let req = SimRequest::new(
            parts.method.clone(),
            parts.uri.query(),
            parts.headers,
            bytes,
        );
        let rid = self.next_rid();
        let routed = api::route(&req.method, &path);
        if let Ok((Route::Identity, template)) = &routed {
            let reply = self.identity(&req);
            fin("identity", Some(template), false, None, &reply);
            return Ok(to_response(reply));
        }
        let (route, template) = match &routed {
            Ok((r, t)) => (Some(*r), Some(t.as_str())),
            Err(_) => (None, None),
        };
        let op = route.map(|r| r.op()).unwrap_or("unknown");

        let now_in = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(&self.in_flight);
        self.peak.fetch_max(now_in, Ordering::SeqCst);

        // Token: the deprecated query parameter only when explicitly allowed.
        let token = req.bearer().map(str::to_string).or_else(|| {
            self.cfg
                .accept_query_token
                .then(|| req.param("access_token").map(str::to_string))
                .flatten()
        });
        let now = Instant::now();
        let check = lock(&self.gate).check_token(token.as_deref(), now);
        match check {
            TokenCheck::Invalid => {
                let reply = error_for(route, &rid, "601", "Access token invalid");
                fin(op, template, false, None, &reply);
                return Ok(to_response(reply));
            }
            TokenCheck::Expired => {
                let reply = error_for(route, &rid, "602", "Access token expired");
                fin(op, template, false, None, &reply);
                return Ok(to_response(reply));
            }
            TokenCheck::Valid => {}
        }
        if let Err(no) = &routed {
            // 605 does not count; 610 reached the API and does (facts §3, §4).
            let counted = no.code == "610" && lock(&self.gate).take_quota(now);
            let reply = lead_err(&rid, no.code, &no.message);
            fin(op, None, counted, None, &reply);
            return Ok(to_response(reply));
        }
        let route = route.unwrap_or(Route::Describe);

        let n = self.call_seq.fetch_add(1, Ordering::SeqCst);
        let fault = faults::decide(&lock(&self.faults), n);
        let uncounted = match fault {
            Some(FaultKind::TokenExpiry) => {
                if let Some(t) = &token {
                    lock(&self.gate).expire(t, now);
                }
                Some(("602", "Access token expired"))
            }
            Some(FaultKind::Code604) => Some(("604", "Request timed out")),
            Some(FaultKind::Code608) => Some(("608", "API Temporarily Unavailable")),
            Some(FaultKind::Code611) => Some(("611", "System error")),
            _ => None,
        };
        if let Some((code, msg)) = uncounted {
            let reply = error_for(Some(route), &rid, code, msg);
            fin(op, template, false, fault, &reply);
            return Ok(to_response(reply));
        }

        // Admission. Order: quota (a spent quota answers 607 and costs nothing),
        // then concurrency, then the window. 615 and 606 answers do count
        // against the quota: only 601/602/604/605/608/611 are exempt (facts §3).
        let admission = {
            let mut gate = lock(&self.gate);
            if !gate.take_quota(now) {
                Err(("607", "Max daily quota reached".to_string(), false))
            } else if now_in > self.cfg.max_concurrency {
                // A refused call still reached the instance: it uses a window slot.
                gate.record_rate(now);
                Err((
                    "615",
                    format!(
                        "Concurrent access limit '{}' reached",
                        self.cfg.max_concurrency
                    ),
                    true,
                ))
            } else if !gate.take_rate(now) {
                Err((
                    "606",
                    format!(
                        "Max rate limit '{}' exceeded with in '{}' secs",
                        self.cfg.rate_calls,
                        self.cfg.rate_window.as_secs()
                    ),
                    true,
                ))
            } else {
                Ok(())
            }
        };
        if let Err((code, msg, counted)) = admission {
            let reply = error_for(Some(route), &rid, code, &msg);
            fin(op, template, counted, None, &reply);
            return Ok(to_response(reply));
        }
        match fault {
            Some(FaultKind::Code713) => {
                let reply = error_for(Some(route), &rid, "713", "Transient Error");
                fin(op, template, true, fault, &reply);
                return Ok(to_response(reply));
            }
            Some(FaultKind::Http503) => {
                let reply = Reply::http(StatusCode::SERVICE_UNAVAILABLE);
                fin(op, template, true, fault, &reply);
                return Ok(to_response(reply));
            }
            _ => {}
        }

        let ctx = Ctx {
            cfg: &self.cfg,
            world: &self.world,
            rid: rid.clone(),
            now,
        };
        let mut reply = match route {
            Route::BulkImport => bulk::create(&req, &ctx).await,
            Route::BulkStatus(id) => bulk::status(id, &ctx),
            Route::BulkFailures(id) => bulk::file(id, false, &ctx),
            Route::BulkWarnings(id) => bulk::file(id, true, &ctx),
            _ => api::handle(route, &req, &ctx),
        };

        let mut delay = self.cfg.scaled(self.cfg.latency.for_records(reply.records));
        if fault == Some(FaultKind::Slow) {
            delay += self.cfg.scaled(self.cfg.slow_answer);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(FaultKind::Http502) => {
                // The work is done; only the answer is lost (a gateway timeout).
                let records = reply.records;
                reply = Reply::http(StatusCode::BAD_GATEWAY);
                reply.records = records;
            }
            Some(FaultKind::CloseConnection) => {
                let mut lost = Reply::http(StatusCode::OK);
                lost.code = Some("closed".to_string());
                lost.records = reply.records;
                fin(op, template, true, fault, &lost);
                return Err(Dropped);
            }
            _ => {}
        }
        fin(op, template, true, fault, &reply);
        Ok(to_response(reply))
    }

    fn identity(&self, req: &SimRequest) -> Reply {
        let oauth = |status: StatusCode, error: &str, desc: &str| {
            let mut r = Reply::json(Value::Null);
            r.status = status;
            r.payload = Payload::Identity(json!({"error": error, "error_description": desc}));
            r.code = Some(status.as_u16().to_string());
            r
        };
        if req.param("grant_type") != Some("client_credentials") {
            return oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant type",
            );
        }
        if req.param("client_id") != Some(self.cfg.client_id.as_str()) {
            return oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Bad client credentials",
            );
        }
        if req.param("client_secret") != Some(self.cfg.client_secret.as_str()) {
            return oauth(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Bad client credentials",
            );
        }
        let (token, left) = lock(&self.gate).issue(Instant::now());
        let mut r = Reply::json(Value::Null);
        r.payload = Payload::Identity(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": left,
            "scope": self.cfg.scope,
        }));
        r
    }

    fn finish(&self, f: &Finished<'_>, reply: &Reply) {
        let duration = f.started.elapsed();
        {
            let mut c = lock(&self.counters);
            c.total_calls += 1;
            if f.counted {
                c.quota_calls += 1;
            }
            *c.by_op.entry(f.op.to_string()).or_insert(0) += 1;
            if let Some(t) = f.template {
                *c.by_route.entry(t.to_string()).or_insert(0) += 1;
            }
            if let Some(code) = &reply.code {
                *c.codes.entry(code.clone()).or_insert(0) += 1;
            }
            for rc in &reply.record_codes {
                *c.record_codes.entry((*rc).to_string()).or_insert(0) += 1;
            }
            if reply.records > 0 {
                *c.records.entry(f.op.to_string()).or_insert(0) += reply.records;
            }
            if let Some(k) = f.fault {
                *c.faults.entry(k.name().to_string()).or_insert(0) += 1;
            }
        }
        if let Some(log) = &self.log {
            // The path only: query strings can carry emails (filterValues).
            let line = json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "elapsed_ms": f.started.duration_since(self.started).as_secs_f64() * 1000.0,
                "method": f.method.as_str(),
                "path": f.path,
                "op": f.op,
                "status": reply.status.as_u16(),
                "code": reply.code,
                "records": reply.records,
                "duration_ms": duration.as_secs_f64() * 1000.0,
                "counted": f.counted,
                "fault": f.fault.map(FaultKind::name),
            });
            let mut w = lock(log);
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }

    pub fn counters(&self) -> Counters {
        let now = Instant::now();
        let list_adds = {
            let mut w = lock(&self.world);
            w.advance(now);
            w.store.add_stats()
        };
        let quota_used = lock(&self.gate).quota_used(now);
        let c = lock(&self.counters);
        Counters {
            total_calls: c.total_calls,
            quota_calls: c.quota_calls,
            quota_used,
            peak_concurrency: self.peak.load(Ordering::SeqCst) as u64,
            in_flight: self.in_flight.load(Ordering::SeqCst) as u64,
            by_op: c.by_op.clone(),
            by_route: c.by_route.clone(),
            codes: c.codes.clone(),
            record_codes: c.record_codes.clone(),
            records: c.records.clone(),
            faults: c.faults.clone(),
            list_adds,
        }
    }

    pub fn reset_counters(&self) {
        *lock(&self.counters) = CounterData::default();
        self.peak
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = lock(&self.world);
        w.advance(Instant::now());
        f(&mut w)
    }

    pub fn try_insert_lead(&self, fields: &Value) -> Result<u64, String> {
        self.with_world(|w| seed_lead(&mut w.store, fields))
    }
}

/// Seed a lead: known fields are validated like Sync Leads; unknown or
/// invalid ones are refused. Duplicate emails are allowed on purpose.
pub(crate) fn seed_lead(store: &mut Store, fields: &Value) -> Result<u64, String> {
    let obj = fields.as_object().ok_or("a lead must be a JSON object")?;
    let mut values = Vec::new();
    for (k, v) in obj {
        let ix = store
            .cat
            .lookup(k)
            .ok_or_else(|| format!("Field '{k}' not found"))?;
        if store.cat.def(ix).read_only {
            return Err(format!("Field '{k}' is read only"));
        }
        let c = store
            .cat
            .coerce(ix, v)
            .map_err(|_| format!("Invalid value for field '{k}'"))?;
        values.push((ix, c.value));
    }
    Ok(store.insert_raw(values))
}

async fn serve(listener: TcpListener, sim: Arc<Sim>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let sim = sim.clone();
                let mut stop = stop.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| sim.clone().handle(req));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(6), drain).await;
    conns.shutdown().await;
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Start on a free loopback port.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        Simulator::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        let sim = Arc::new(Sim::new(config)?);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, sim.clone(), rx));
        Ok(SimHandle {
            sim,
            addr: local,
            stop: tx,
            task,
        })
    }
}

/// A running simulator. Dropping it stops the server too; `shutdown` waits
/// for in-flight calls to finish.
#[derive(Debug)]
pub struct SimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, usable as audex's `endpoint`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &SimConfig {
        &self.sim.cfg
    }

    /// Member lead ids of a list, sorted.
    pub fn list_members(&self, list_id: u64) -> Vec<u64> {
        self.sim.with_world(|w| {
            w.store
                .lists
                .get(&list_id)
                .map(|l| l.members.iter().copied().collect())
                .unwrap_or_default()
        })
    }

    pub fn member_count(&self, list_id: u64) -> usize {
        self.sim.with_world(|w| {
            w.store
                .lists
                .get(&list_id)
                .map(|l| l.members.len())
                .unwrap_or(0)
        })
    }

    pub fn is_member(&self, list_id: u64, lead_id: u64) -> bool {
        self.sim.with_world(|w| {
            w.store
                .lists
                .get(&list_id)
                .is_some_and(|l| l.members.contains(&lead_id))
        })
    }

    /// The lead with this email (case-insensitive); the lowest id if seeded twice.
    pub fn lead_by_email(&self, email: &str) -> Option<SimLead> {
        self.sim.with_world(|w| {
            let id = w.store.ids_by_email(email).into_iter().min()?;
            let lead = w.store.lead(id)?;
            Some(SimLead {
                id,
                fields: w.store.lead_fields(lead),
            })
        })
    }

    pub fn lead(&self, id: u64) -> Option<SimLead> {
        self.sim.with_world(|w| {
            w.store.lead(id).map(|l| SimLead {
                id,
                fields: w.store.lead_fields(l),
            })
        })
    }

    pub fn lead_count(&self) -> usize {
        self.sim.with_world(|w| w.store.lead_count())
    }

    pub fn counters(&self) -> Counters {
        self.sim.counters()
    }

    pub fn reset_counters(&self) {
        self.sim.reset_counters()
    }

    /// How many times a lead was added to a list through the API (bulk import included).
    pub fn times_added(&self, list_id: u64, lead_id: u64) -> u32 {
        self.sim
            .with_world(|w| w.store.times_added(list_id, lead_id))
    }

    /// Seed a lead (e.g. a pre-existing one or a stray). `fields` is a JSON
    /// object of REST field names; a value that Sync Leads would refuse is
    /// refused here too, see [`SimHandle::try_insert_lead`]. Returns the id,
    /// or 0 when refused.
    pub fn insert_lead(&self, fields: Value) -> u64 {
        match self.sim.try_insert_lead(&fields) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("insert_lead refused: {e}");
                0
            }
        }
    }

    pub fn try_insert_lead(&self, fields: Value) -> Result<u64, String> {
        self.sim.try_insert_lead(&fields)
    }

    /// Seed many leads with one lock (benchmarks: a million leads). Stops at
    /// the first refused lead and returns its index and the reason.
    pub fn insert_leads(
        &self,
        leads: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<u64>, (usize, String)> {
        let mut w = lock(&self.sim.world);
        let mut ids = Vec::new();
        for (i, fields) in leads.into_iter().enumerate() {
            let id = crate::server::seed_lead(&mut w.store, &fields).map_err(|e| (i, e))?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Seed many members at once (not counted as adds). False if the list does not exist.
    pub fn add_members(&self, list_id: u64, lead_ids: &[u64]) -> bool {
        let mut w = lock(&self.sim.world);
        if !w.store.lists.contains_key(&list_id) {
            return false;
        }
        for id in lead_ids {
            w.store.force_member(list_id, *id);
        }
        true
    }

    /// Make a lead a member of a list without an API call (not counted as an add).
    /// False if the list does not exist.
    pub fn add_member(&self, list_id: u64, lead_id: u64) -> bool {
        self.sim
            .with_world(|w| w.store.force_member(list_id, lead_id))
    }

    /// Remove a member without an API call, as a marketer would by hand in
    /// Marketo. False if the lead was not a member (or the list does not exist).
    pub fn remove_member(&self, list_id: u64, lead_id: u64) -> bool {
        self.sim.with_world(|w| {
            w.store
                .remove_members(list_id, &[lead_id])
                .first()
                .is_some_and(|o| matches!(o, crate::store::Outcome::Updated(_)))
        })
    }

    pub fn reset_daily_quota(&self) {
        lock(&self.sim.gate).reset_quota();
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        *lock(&self.sim.faults) = faults;
    }

    /// Every token issued so far answers 602 from now on.
    pub fn expire_tokens(&self) {
        lock(&self.sim.gate).expire_all(Instant::now());
    }

    /// Stop accepting, let in-flight calls finish (up to a few seconds), stop.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
