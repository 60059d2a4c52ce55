//! The Marketo REST client: every call goes through one loop that takes a
//! token, a place from the instance limiter, sends, classifies the answer
//! and retries what is safe to retry.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use audex_core::{Error, ErrorClass, Result, Secret};

use super::auth::{AuthInfo, TokenCache};
use super::classify::{self, Throttle, Verdict};
use super::limiter::{LimitSettings, Limiter};
use super::request::{ApiRequest, Body, Expect, Method};
use super::retry::{Backoff, Idempotency};
use super::wire::{scrub, Envelope};
use crate::endpoint::Endpoint;

/// Tuning of the client itself (not of Marketo's limits).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub backoff: Backoff,
    /// Give up on one request after this long. Above Marketo's own server
    /// timeouts (Sync Leads: 90 s), so we normally hear its verdict.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// After a request timed out on our side, keep its place in the limiter
    /// this much longer: the server may still be working on it.
    pub timeout_hold: Duration,
    /// Retries spent on 606/615 (another integration's traffic) before
    /// giving up with class `RateLimited`.
    pub max_throttle_retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            timeout_hold: Duration::from_secs(60),
            max_throttle_retries: 10,
        }
    }
}

/// An answer that passed classification.
#[derive(Debug)]
pub enum Reply {
    Envelope(Envelope),
    Text(String),
}

/// A client for one Marketo instance and one LaunchPoint service.
pub struct MarketoClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    auth: Arc<TokenCache>,
    limiter: Arc<Limiter>,
    opts: ClientOptions,
}

impl fmt::Debug for MarketoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarketoClient")
            .field("endpoint", &self.endpoint.origin())
            .field("auth", &self.auth)
            .field("limits", &self.limiter.limits())
            .finish_non_exhaustive()
    }
}

/// The most of one API answer we read. Lead Database answers are a few
/// hundred KB at most (300 records); a bulk failures file at most a little
/// more than the 10 MB file it reports on.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Why an answer's body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection failed or closed early (a truncated body).
    Transport(reqwest::Error),
    /// The body is longer than this many bytes.
    TooLarge(usize),
}

/// Read a body, refusing one longer than `limit` bytes (announced or
/// actual) instead of holding all of it in memory.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
    {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Done(Reply),
    Failed {
        verdict: Verdict,
        /// Marketo said so itself (6xx/7xx): the call did nothing, so even a
        /// non-idempotent one may be repeated.
        nothing_executed: bool,
        message: String,
    },
}

/// New tokens one call may ask for before its 601/602 counts as an
/// authentication failure.
pub const MAX_REAUTHS: u32 = 3;

impl MarketoClient {
    /// A client sharing the process-wide limiter of `endpoint`'s instance and
    /// the token cache of `client_id`.
    pub fn new(
        endpoint: Endpoint,
        client_id: &str,
        client_secret: &Secret,
        limits: LimitSettings,
        opts: ClientOptions,
    ) -> Result<MarketoClient> {
        let http = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("audex/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        let auth = TokenCache::shared(
            &http,
            endpoint.origin(),
            endpoint.url("/identity/oauth/token"),
            client_id,
            client_secret,
        );
        let limiter = Limiter::shared(endpoint.origin(), limits);
        Ok(MarketoClient {
            http,
            endpoint,
            auth,
            limiter,
            opts,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Authenticate now and report what Identity said.
    pub async fn authenticate(&self) -> Result<AuthInfo> {
        self.auth.authenticate().await
    }

    /// Send a call expecting a JSON envelope; `Ok` only for `success:true`
    /// (or 702 "no data", as an empty envelope).
    pub async fn call(&self, req: ApiRequest) -> Result<Envelope> {
        match self.send(req).await? {
            Reply::Envelope(e) => Ok(e),
            Reply::Text(_) => Err(Error::internal(
                "Marketo answered text where JSON was expected",
            )),
        }
    }

    /// Send a call whose success is a text file (bulk failures/warnings).
    pub async fn call_text(&self, mut req: ApiRequest) -> Result<String> {
        req.expect = Expect::Text;
        match self.send(req).await? {
            Reply::Text(t) => Ok(t),
            Reply::Envelope(_) => Ok(String::new()),
        }
    }

    async fn send(&self, req: ApiRequest) -> Result<Reply> {
        let backoff = &self.opts.backoff;
        let mut attempts = 0u32;
        let mut throttles = 0u32;
        let mut reauths = 0u32;
        let mut force_post = false;
        loop {
            attempts += 1;
            let token = self.auth.token().await?;
            let attempt = self.attempt(&req, &token, force_post).await?;
            let (verdict, nothing_executed, message) = match attempt {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Failed {
                    verdict,
                    nothing_executed,
                    message,
                } => (verdict, nothing_executed, message),
            };
            tracing::debug!(
                op = req.op,
                attempt = attempts,
                ?verdict,
                "Marketo call failed"
            );
            let may_repeat = nothing_executed || req.idempotency == Idempotency::Idempotent;
            match verdict {
                // A token can expire (or be replaced by another process's
                // Identity call) between our fetch and Marketo's check, even
                // a fresh one; a few in a row mean the token is refused.
                Verdict::Reauth if reauths < MAX_REAUTHS => {
                    reauths += 1;
                    attempts -= 1;
                    self.auth.invalidate(&token).await;
                }
                Verdict::Reauth => {
                    return Err(Error::auth(format!(
                        "{}: Marketo refused {MAX_REAUTHS} fresh access tokens in a row ({message})",
                        req.op
                    )))
                }
                Verdict::Throttled(kind) if throttles < self.opts.max_throttle_retries => {
                    throttles += 1;
                    attempts -= 1;
                    // Everyone sharing the instance holds off, not only us:
                    // whoever pushed it over, more traffic now only
                    // prolongs it.
                    let pause = match kind {
                        // Adobe: wait out the rolling window.
                        Throttle::Rate => self
                            .limiter
                            .limits()
                            .window
                            .saturating_add(backoff.delay(throttles - 1)),
                        Throttle::Concurrency => backoff.delay(throttles - 1),
                    };
                    tracing::warn!(op = req.op, ?kind, ?pause, "Marketo is throttling; backing off");
                    self.limiter.pause(pause);
                }
                Verdict::Throttled(_) => {
                    return Err(Error::rate_limited(format!(
                        "{}: Marketo kept refusing calls for its rate or concurrency limit ({message})",
                        req.op
                    ))
                    .with_hint("another integration may be using the instance's limits; lower rate_limit or run later"))
                }
                Verdict::ResendAsPost if !force_post && req.method == Method::Get => {
                    force_post = true;
                    attempts -= 1;
                }
                Verdict::Retry if may_repeat && backoff.may_retry(attempts) => {
                    tokio::time::sleep(backoff.delay(attempts - 1)).await;
                }
                Verdict::Retry => {
                    let why = if may_repeat {
                        format!("gave up after {attempts} attempts")
                    } else {
                        "not retried: the call may have taken effect".to_string()
                    };
                    return Err(Error::transient(format!("{}: {message} ({why})", req.op)));
                }
                Verdict::QuotaExhausted => {
                    self.limiter.quota_spent();
                    return Err(Error::quota_exhausted(format!(
                        "{}: Marketo's daily API quota is spent ({message})",
                        req.op
                    ))
                    .with_hint("the quota resets at midnight US Central time; run again then to resume"));
                }
                Verdict::Empty => return Ok(Reply::Envelope(Envelope::default())),
                Verdict::Fatal(class) => {
                    let err = Error::new(class, format!("{}: {message}", req.op));
                    return Err(match class {
                        ErrorClass::Auth => err.with_hint(
                            "the API user's role needs Read-Write Lead and Read-Only Assets; check Admin > Users & Roles and any IP allowlist",
                        ),
                        _ => err,
                    });
                }
                Verdict::ResendAsPost | Verdict::RecordRejected => {
                    return Err(Error::internal(format!("{}: {message}", req.op)))
                }
            }
        }
    }

    /// One HTTP exchange, holding a limiter place for exactly as long as the
    /// server may count it.
    async fn attempt(&self, req: &ApiRequest, token: &Secret, force_post: bool) -> Result<Attempt> {
        let prepared = req.prepare(self.endpoint.origin(), force_post);
        let permit = if req.counted {
            Some(self.limiter.acquire().await?)
        } else {
            None
        };
        let method = match prepared.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .http
            .request(method, &prepared.url)
            .bearer_auth(token.expose());
        if let Some(form) = prepared.form {
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form);
        } else {
            match &req.body {
                Body::None => {}
                Body::Json(json) => {
                    builder = builder
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(json.bytes().to_vec());
                }
                Body::File {
                    field,
                    filename,
                    content_type,
                    bytes,
                } => {
                    let part = reqwest::multipart::Part::bytes(bytes.clone())
                        .file_name(filename.clone())
                        .mime_str(content_type)
                        .map_err(|e| Error::internal(format!("bad content type: {e}")))?;
                    builder = builder.multipart(reqwest::multipart::Form::new().part(*field, part));
                }
            }
        }
        let sent = builder.send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Ok(self.transport_failure(e, permit)),
        };
        let status = response.status().as_u16();
        let body = match read_body(response, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(BodyError::Transport(e)) => return Ok(self.transport_failure(e, permit)),
            Err(BodyError::TooLarge(limit)) => {
                drop(permit);
                return Ok(Attempt::Failed {
                    verdict: Verdict::Fatal(ErrorClass::Internal),
                    nothing_executed: false,
                    message: format!("HTTP {status} with an answer of more than {limit} bytes"),
                });
            }
        };
        drop(permit);
        Ok(interpret(status, &body, req.expect))
    }

    fn transport_failure(
        &self,
        e: reqwest::Error,
        permit: Option<super::limiter::Permit>,
    ) -> Attempt {
        let e = e.without_url();
        if e.is_timeout() {
            if let Some(p) = permit {
                p.hold_for(self.opts.timeout_hold);
            }
        } else {
            drop(permit);
        }
        Attempt::Failed {
            verdict: Verdict::Retry,
            // A refused connection never reached Marketo.
            nothing_executed: e.is_connect() && !e.is_timeout(),
            message: format!("request failed: {}", describe_transport(&e)),
        }
    }
}

/// One answer (`status` and the whole `body`) as a reply or a classified
/// failure. Pure, so every answer can be tested: it never panics, and a
/// failure's message carries no email address (Marketo's text is scrubbed).
pub(crate) fn interpret(status: u16, body: &[u8], expect: Expect) -> Attempt {
    if let Some(verdict) = classify::http_status(status) {
        return Attempt::Failed {
            verdict,
            nothing_executed: false,
            message: format!("HTTP {status}"),
        };
    }
    // One pass: a body without `success` is not an envelope.
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) if env.success => Attempt::Done(Reply::Envelope(env)),
        Ok(env) => {
            let (code, msg) = env
                .first_error()
                .map(|e| (scrub(&e.code), scrub(&e.message)))
                .unwrap_or_else(|| (String::new(), "no error given".to_string()));
            Attempt::Failed {
                verdict: classify::response_code(&code),
                nothing_executed: code.starts_with('6'),
                message: format!("Marketo error {code} {msg}"),
            }
        }
        Err(_) if expect == Expect::Text => {
            Attempt::Done(Reply::Text(String::from_utf8_lossy(body).into_owned()))
        }
        Err(_) => Attempt::Failed {
            verdict: Verdict::Fatal(ErrorClass::Internal),
            nothing_executed: false,
            message: "Marketo answered with an unexpected body (not a JSON envelope)".to_string(),
        },
    }
}

/// reqwest's error text, with its cause chain: "error sending request" alone
/// says nothing a person can act on.
fn describe_transport(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
