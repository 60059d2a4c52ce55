//! The HTTP server and the per-call pipeline: body limit, API key, calls in
//! flight, the optional window, `X-Trigger-Error`, faults, the operation,
//! latency, then counters and the request log.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{self, Ctx, NoRoute};
use crate::config::{FaultConfig, FaultKind, SimConfig};
use crate::counters::Counters;
use crate::faults;
use crate::limits::{InFlight, Window};
use crate::reply::{Payload, Reply};
use crate::request::Req;
use crate::side;
use crate::store::Store;

/// Locks a mutex; a panic elsewhere while holding it leaves data a test can
/// still inspect.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
pub(crate) struct Sim {
    pub cfg: SimConfig,
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultConfig>,
    counters: Mutex<Counters>,
    in_flight: InFlight,
    window: Option<Mutex<Window>>,
    call_seq: AtomicU64,
    rid_seq: AtomicU64,
    salt: u64,
    log: Option<Mutex<BufWriter<File>>>,
    started: Instant,
    base: Mutex<String>,
}

/// The connection is to be closed without an answer (fault injection).
#[derive(Debug, thiserror::Error)]
#[error("connection closed by fault injection")]
pub(crate) struct Dropped;

/// What the log and the counters record about one finished call.
struct Finished<'a> {
    method: &'a Method,
    path: &'a str,
    op: &'a str,
    template: Option<&'a str>,
    fault: Option<FaultKind>,
    limited: bool,
    started: Instant,
    rid: &'a str,
}

fn to_response(mut reply: Reply, rid: &str) -> Response<Body> {
    reply.set_instance(rid);
    let (ct, body) = match reply.payload {
        Payload::Json(v) => (Some("application/json; charset=utf-8"), v.to_string()),
        Payload::Problem(v) => (
            Some("application/problem+json; charset=utf-8"),
            v.to_string(),
        ),
        Payload::Empty => (None, String::new()),
        Payload::Html(h) => (Some("text/html"), h),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    if let Some(ct) = ct {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    h.insert(header::SERVER, HeaderValue::from_static("openresty"));
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-request-id", v);
    }
    resp
}

/// The problem a `X-Trigger-Error: <name>` header forces, if the name is known.
fn triggered(name: &str) -> Option<Reply> {
    let (status, title, detail) = match name {
        "BadRequest" => (400, "Bad Request", "Your request could not be processed."),
        "InvalidAction" => (
            400,
            "Invalid Action",
            "The action requested was not valid for this resource.",
        ),
        "InvalidResource" => (
            400,
            "Invalid Resource",
            "The resource submitted could not be validated.",
        ),
        "JSONParseError" => (
            400,
            "JSON Parse Exception",
            "We encountered an unspecified JSON parsing error.",
        ),
        "APIKeyMissing" => (
            401,
            "API Key Missing",
            "Your request did not include an API key.",
        ),
        "APIKeyInvalid" => (
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        ),
        "Forbidden" => (
            403,
            "Forbidden",
            "You don't have permission to access this resource.",
        ),
        "UserDisabled" => (403, "User Disabled", "This account has been disabled."),
        "WrongDatacenter" => (
            403,
            "Wrong Datacenter",
            "The API key provided is linked to a different datacenter.",
        ),
        "ComplianceRelated" => (
            403,
            "Compliance Related",
            "This account is under compliance review.",
        ),
        "ResourceNotFound" => (
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
        ),
        "MethodNotAllowed" => (
            405,
            "Method Not Allowed",
            "The requested method and resource are not compatible.",
        ),
        "ResourceNestingTooDeep" => (
            414,
            "Resource Nesting Too Deep",
            "The nested resource is too deep.",
        ),
        "InvalidMethodOverride" => (
            422,
            "Invalid Method Override",
            "You can only use the X-HTTP-Method-Override header with the POST method.",
        ),
        "RequestedFieldsInvalid" => (
            422,
            "Requested Fields Invalid",
            "The fields requested from this resource are invalid.",
        ),
        "TooManyRequests" => (
            429,
            "TooManyRequests",
            "You have exceeded the limit of 10 simultaneous connections.",
        ),
        "InternalServerError" => (
            500,
            "Internal Server Error",
            "An unexpected internal error has occurred.",
        ),
        _ => return None,
    };
    let status = StatusCode::from_u16(status).ok()?;
    Some(Reply::problem(status, title, detail))
}

impl Sim {
    fn new(cfg: SimConfig) -> anyhow::Result<Sim> {
        if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0) {
            anyhow::bail!(
                "time_scale must be a positive number, got {}",
                cfg.time_scale
            );
        }
        if !(0.0..=1.0).contains(&cfg.faults.rate) {
            anyhow::bail!("fault rate must be between 0 and 1");
        }
        let log = match &cfg.request_log {
            Some(p) => Some(Mutex::new(BufWriter::new(
                File::create(p).with_context(|| format!("creating request log {}", p.display()))?,
            ))),
            None => None,
        };
        let window = cfg
            .rate_window
            .map(|w| Mutex::new(Window::new(w.calls, cfg.scaled(w.window))));
        let salt = faults::mix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(11),
        );
        Ok(Sim {
            store: Mutex::new(Store::new(&cfg.audiences)),
            faults: Mutex::new(cfg.faults.clone()),
            counters: Mutex::new(Counters::default()),
            in_flight: InFlight::default(),
            window,
            call_seq: AtomicU64::new(0),
            rid_seq: AtomicU64::new(0),
            salt,
            log,
            started: Instant::now(),
            base: Mutex::new(String::new()),
            cfg,
        })
    }

    fn next_rid(&self) -> String {
        let n = self.rid_seq.fetch_add(1, Ordering::Relaxed);
        let a = faults::mix(self.salt ^ n);
        let b = faults::mix(a ^ n.wrapping_mul(31));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> Result<Response<Body>, Dropped> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        if path == "/_sim" || path.starts_with("/_sim/") {
            let bytes = axum::body::to_bytes(Body::new(body), 256 * 1024 * 1024)
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
        let rid = self.next_rid();
        let fin = |op: &str,
                   template: Option<&str>,
                   fault: Option<FaultKind>,
                   limited: bool,
                   reply: &Reply| {
            self.finish(
                &Finished {
                    method: &method,
                    path: &path,
                    op,
                    template,
                    fault,
                    limited,
                    started,
                    rid: &rid,
                },
                reply,
            )
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let limit = self.cfg.max_body_bytes;
        let bytes = if declared.is_some_and(|n| n > limit) {
            None
        } else {
            axum::body::to_bytes(Body::new(body), limit).await.ok()
        };
        let Some(bytes) = bytes else {
            let reply = Reply::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
                "The request body is too large.",
            );
            fin("payload_too_large", None, None, false, &reply);
            return Ok(to_response(reply, &rid));
        };
        let req = Req::new(
            parts.method.clone(),
            parts.uri.query(),
            parts.headers,
            bytes,
        );
        let routed = api::route(&req.method, &path);
        let (op, template) = match &routed {
            Ok((r, t)) => (r.op(), Some(format!("{} {t}", req.method))),
            Err(_) => ("unknown", None),
        };
        let template = template.as_deref();

        // The key: Basic password or Bearer token, compared whole (its dc too).
        match req.api_key() {
            Some(k) if k == self.cfg.api_key => {}
            presented => {
                let detail = if presented.is_none() {
                    "Your request did not include an API key."
                } else {
                    "Your API key may be invalid, or you've attempted to access the wrong datacenter."
                };
                let reply = Reply::problem(StatusCode::UNAUTHORIZED, "API Key Invalid", detail);
                fin(op, template, None, false, &reply);
                return Ok(to_response(reply, &rid));
            }
        }

        let (_slot, in_flight) = self.in_flight.enter();
        let now = Instant::now();
        let over_window = || self.window.as_ref().is_some_and(|w| !lock(w).admit(now));
        if in_flight > self.cfg.max_concurrency || over_window() {
            let detail = if in_flight > self.cfg.max_concurrency {
                format!(
                    "You have exceeded the limit of {} simultaneous connections.",
                    self.cfg.max_concurrency
                )
            } else {
                "You have exceeded the rate limit for this account.".to_string()
            };
            let reply = Reply::problem(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", &detail);
            fin(op, template, None, true, &reply);
            return Ok(to_response(reply, &rid));
        }

        let route = match routed {
            Ok((r, _)) => r,
            Err(no) => {
                let reply = match no {
                    NoRoute::NotFound => Reply::not_found(),
                    NoRoute::Method => Reply::problem(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Method Not Allowed",
                        "The requested method and resource are not compatible. See the Allow header for this resource's available methods.",
                    ),
                };
                fin(op, template, None, false, &reply);
                return Ok(to_response(reply, &rid));
            }
        };
        if let Some(reply) = req.trigger_error().and_then(triggered) {
            fin(op, template, None, false, &reply);
            return Ok(to_response(reply, &rid));
        }

        let n = self.call_seq.fetch_add(1, Ordering::SeqCst);
        let fault = faults::decide(&lock(&self.faults), n);
        let early = match fault {
            Some(FaultKind::Http429) => Some(Reply::bare(StatusCode::TOO_MANY_REQUESTS)),
            Some(FaultKind::Http403) => Some(Reply::bare(StatusCode::FORBIDDEN)),
            Some(FaultKind::Http500) => Some(Reply::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "An unexpected internal error has occurred. Please contact Support for more information.",
            )),
            Some(FaultKind::Http503) => Some(Reply::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "The service is temporarily unavailable. Please try again later.",
            )),
            Some(FaultKind::CloseBefore) => {
                fin(op, template, fault, false, &Reply::bare(StatusCode::OK));
                return Err(Dropped);
            }
            _ => None,
        };
        if let Some(reply) = early {
            fin(op, template, fault, false, &reply);
            return Ok(to_response(reply, &rid));
        }

        let ctx = Ctx {
            cfg: &self.cfg,
            base: format!("{}/3.0", lock(&self.base)),
        };
        let mut reply = {
            let mut store = lock(&self.store);
            api::handle(&route, &req, &mut store, &ctx)
        };

        let mut delay = self.cfg.scaled(self.cfg.latency.for_members(reply.members));
        if fault == Some(FaultKind::Slow) {
            delay += self.cfg.scaled(self.cfg.slow_answer);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(FaultKind::Http502) => {
                // The work is done; the CDN gave up waiting for the answer.
                let mut lost = Reply::html(StatusCode::BAD_GATEWAY);
                lost.members = reply.members;
                lost.record_errors = std::mem::take(&mut reply.record_errors);
                reply = lost;
            }
            Some(FaultKind::CloseAfter) => {
                fin(op, template, fault, false, &reply);
                return Err(Dropped);
            }
            _ => {}
        }
        fin(op, template, fault, false, &reply);
        Ok(to_response(reply, &rid))
    }

    fn finish(&self, f: &Finished<'_>, reply: &Reply) {
        let duration = f.started.elapsed();
        let status = if matches!(
            f.fault,
            Some(FaultKind::CloseBefore | FaultKind::CloseAfter)
        ) {
            None
        } else {
            Some(reply.status.as_u16())
        };
        {
            let mut c = lock(&self.counters);
            c.total_calls += 1;
            *c.by_op.entry(f.op.to_string()).or_insert(0) += 1;
            if let Some(t) = f.template {
                *c.by_route.entry(t.to_string()).or_insert(0) += 1;
            }
            let key = status.map_or_else(|| "closed".to_string(), |s| s.to_string());
            *c.statuses.entry(key).or_insert(0) += 1;
            if let Some(t) = &reply.title {
                *c.titles.entry(t.clone()).or_insert(0) += 1;
            }
            if f.limited {
                c.too_many_requests += 1;
            }
            if let Some(k) = f.fault {
                *c.faults.entry(k.name().to_string()).or_insert(0) += 1;
            }
            for k in &reply.record_errors {
                *c.record_errors.entry((*k).to_string()).or_insert(0) += 1;
            }
            if reply.members > 0 {
                *c.members.entry(f.op.to_string()).or_insert(0) += reply.members;
            }
        }
        if let Some(log) = &self.log {
            // The path only: never the query, never a header (the key).
            let line = json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "elapsed_ms": f.started.duration_since(self.started).as_secs_f64() * 1000.0,
                "request_id": f.rid,
                "method": f.method.as_str(),
                "path": f.path,
                "op": f.op,
                "status": status,
                "title": reply.title,
                "members": reply.members,
                "record_errors": reply.record_errors.len(),
                "duration_ms": duration.as_secs_f64() * 1000.0,
                "fault": f.fault.map(FaultKind::name),
            });
            let mut w = lock(log);
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        let mut c = lock(&self.counters).clone();
        c.max_in_flight = self.in_flight.peak() as u64;
        c.in_flight = self.in_flight.current() as u64;
        c
    }

    pub(crate) fn reset_counters(&self) {
        *lock(&self.counters) = Counters::default();
        self.in_flight.reset_peak();
    }
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
    /// Starts on a free loopback port.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        Simulator::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on this address.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        let sim = Arc::new(Sim::new(config)?);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        *lock(&sim.base) = format!("http://{local}");
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
/// for calls in flight to finish. Seeding and inspection methods live in
/// `handle.rs`.
#[derive(Debug)]
pub struct SimHandle {
    pub(crate) sim: Arc<Sim>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (the API is under `/3.0`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/3.0`: what a client uses instead of
    /// `https://<dc>.api.mailchimp.com/3.0`.
    pub fn api_root(&self) -> String {
        format!("{}/3.0", self.base_url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it started with.
    pub fn config(&self) -> &SimConfig {
        &self.sim.cfg
    }

    /// The accepted API key (for tests to present).
    pub fn api_key(&self) -> &str {
        &self.sim.cfg.api_key
    }

    /// Counters since start or the last reset.
    pub fn counters(&self) -> Counters {
        self.sim.counters()
    }

    /// Zeroes the counters (the in-flight peak restarts from now).
    pub fn reset_counters(&self) {
        self.sim.reset_counters()
    }

    /// Replaces fault injection (call numbering goes on).
    pub fn set_faults(&self, faults: FaultConfig) {
        *lock(&self.sim.faults) = faults;
    }

    /// Stops accepting, lets calls in flight finish (a few seconds at most), stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
