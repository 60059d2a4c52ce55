//! The call loop: every call takes a place under the account's connection
//! cap, is sent with the key as Basic-auth password, and its answer is
//! classified by status (body or not); what may pass is retried with
//! backoff. Every write audex makes is idempotent (batch subscribe with
//! `update_existing`, segment adds and removes), so a call that timed out
//! ("may have run") is retried too, but only after a pause; the one call
//! that is not (creating a tag) is never repeated once it may have run.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use audex_core::{Error, ErrorClass, Result, Secret};
use serde::Serialize;

use super::backoff::Backoff;
use super::classify::{self, Verdict};
use super::limiter::ConnectionCap;
use super::wire::Problem;
use crate::account::BaseUrl;

/// Tuning of the client itself (not Mailchimp's limits).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub backoff: Backoff,
    /// Give up waiting for one answer after this long (Mailchimp's own
    /// timeout is 120 s).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// After a call timed out on our side, keep its place under the cap
    /// this much longer, and wait this long before trying it again: it may
    /// still be running at Mailchimp.
    pub timeout_hold: Duration,
    /// A call dropped mid-flight (its run was cancelled) keeps its place
    /// this long.
    pub abandon_hold: Duration,
    /// Retries spent on 429 (and bodiless 403) before giving up with class
    /// `rate_limited`.
    pub max_throttle_retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            timeout_hold: Duration::from_secs(30),
            abandon_hold: Duration::from_secs(2),
            max_throttle_retries: 10,
        }
    }
}

/// The biggest answer audex reads (a page of 1000 full members is a few MB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
}

/// One API call, before it becomes HTTP.
#[derive(Clone, Debug)]
pub(crate) struct ApiRequest {
    /// A short name for messages (`batch_subscribe`).
    pub op: &'static str,
    pub method: Method,
    /// Under the API root, starting with `/`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    /// Serialized once, however often the call is retried. Never shown:
    /// it carries people's emails.
    pub body: Option<Arc<Vec<u8>>>,
    /// Whether making the call twice does no more than making it once.
    pub idempotent: bool,
    /// What a 404 means, for the message: "the audience a1b2c3".
    pub subject: String,
}

impl ApiRequest {
    pub fn get(op: &'static str, path: String, subject: String) -> ApiRequest {
        ApiRequest {
            op,
            method: Method::Get,
            path,
            query: Vec::new(),
            body: None,
            idempotent: true,
            subject,
        }
    }

    pub fn post(
        op: &'static str,
        path: String,
        subject: String,
        body: &impl Serialize,
    ) -> Result<ApiRequest> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("{op}: cannot encode the request: {e}")))?;
        Ok(ApiRequest {
            method: Method::Post,
            body: Some(Arc::new(bytes)),
            ..ApiRequest::get(op, path, subject)
        })
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> ApiRequest {
        self.query.push((key, value.into()));
        self
    }

    pub fn not_idempotent(mut self) -> ApiRequest {
        self.idempotent = false;
        self
    }
}

/// A call that failed for good, with what Mailchimp said.
#[derive(Debug)]
pub(crate) struct Failure {
    pub class: ErrorClass,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub problem: Problem,
    /// What happened, scrubbed, without the operation's name.
    pub message: String,
}

impl Failure {
    /// The error the engine gets: its class, the operation, what Mailchimp
    /// said, and a hint where there is something to do.
    pub fn into_error(self, req: &ApiRequest) -> Error {
        let op = req.op;
        let err = Error::new(self.class, format!("{op}: {}", self.message));
        match (self.class, self.status) {
            (ErrorClass::Auth, Some(401)) => err.with_hint(
                "Mailchimp refused the API key: check api_key (a live key, `<key>-<dc>`) and that base_url is its data centre",
            ),
            (ErrorClass::Auth, _) => err.with_hint(
                "the key's user lacks access (its role may have changed, or the user was disabled); check Account > Users",
            ),
            (ErrorClass::Config, Some(404)) => Error::new(
                ErrorClass::Config,
                format!("{op}: Mailchimp has no {} ({})", req.subject, self.message),
            )
            .with_hint("check audience_id, tag and tag_id against the audience in Mailchimp"),
            (ErrorClass::RateLimited, _) => err.with_hint(
                "another integration may be using the account's 10 connections; lower rate_limit.max_concurrency or run later",
            ),
            _ => err,
        }
    }
}

/// What one exchange came to.
enum Exchange {
    Answer {
        status: u16,
        body: Vec<u8>,
    },
    TimedOut(String),
    /// No answer (refused or dropped connection, a truncated body);
    /// `sent`: the request may have reached Mailchimp.
    Lost {
        why: String,
        sent: bool,
    },
    TooLarge(u16),
}

/// A client for one Mailchimp account.
pub struct MailchimpClient {
    http: reqwest::Client,
    root: BaseUrl,
    key: Secret,
    cap: Arc<ConnectionCap>,
    opts: ClientOptions,
}

impl fmt::Debug for MailchimpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailchimpClient")
            .field("root", &self.root.as_str())
            .field("key", &self.key)
            .field("max_concurrency", &self.cap.size())
            .finish_non_exhaustive()
    }
}

impl MailchimpClient {
    /// A client of the account behind `root` and `key`, sharing the
    /// process-wide connection cap of that account.
    pub fn new(
        root: BaseUrl,
        key: Secret,
        max_concurrency: usize,
        opts: ClientOptions,
    ) -> Result<MailchimpClient> {
        let http = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("audex/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        let cap = ConnectionCap::shared(root.as_str(), key.expose(), max_concurrency);
        Ok(MailchimpClient {
            http,
            root,
            key,
            cap,
            opts,
        })
    }

    /// The API root calls go to.
    pub fn root(&self) -> &BaseUrl {
        &self.root
    }

    /// The account's connection cap.
    pub fn cap(&self) -> &Arc<ConnectionCap> {
        &self.cap
    }

    /// Make a call; its JSON answer (`Null` for an empty one).
    pub(crate) async fn call(&self, req: &ApiRequest) -> Result<serde_json::Value> {
        self.send(req).await.map_err(|f| f.into_error(req))
    }

    /// Make a call, retrying what may pass; the failure as Mailchimp gave it.
    pub(crate) async fn send(
        &self,
        req: &ApiRequest,
    ) -> std::result::Result<serde_json::Value, Failure> {
        let backoff = &self.opts.backoff;
        let mut attempts = 0u32;
        let mut throttles = 0u32;
        loop {
            attempts += 1;
            let permit = self.cap.acquire(self.opts.abandon_hold).await;
            let exchange = self.exchange(req).await;
            let (verdict, status, problem, message, may_have_run, wait) = match exchange {
                Exchange::Answer { status, body } => {
                    permit.release();
                    match interpret(status, &body) {
                        Ok(v) => return Ok(v),
                        Err((verdict, problem, message)) => {
                            (verdict, Some(status), problem, message, true, None)
                        }
                    }
                }
                Exchange::TimedOut(why) => {
                    permit.hold_for(self.opts.timeout_hold);
                    let message = format!(
                        "no answer within {} s ({why}); the call may have run",
                        self.opts.request_timeout.as_secs()
                    );
                    (
                        Verdict::Retry,
                        None,
                        Problem::default(),
                        message,
                        true,
                        Some(self.opts.timeout_hold),
                    )
                }
                Exchange::Lost { why, sent } => {
                    permit.release();
                    let message = format!("no answer: {why}");
                    (
                        Verdict::Retry,
                        None,
                        Problem::default(),
                        message,
                        sent,
                        None,
                    )
                }
                Exchange::TooLarge(status) => {
                    permit.release();
                    let message =
                        format!("HTTP {status} with an answer over {MAX_BODY_BYTES} bytes");
                    let verdict = Verdict::Fatal(ErrorClass::Internal);
                    (
                        verdict,
                        Some(status),
                        Problem::default(),
                        message,
                        true,
                        None,
                    )
                }
            };
            tracing::debug!(
                op = req.op,
                attempt = attempts,
                ?verdict,
                "Mailchimp call failed"
            );
            let fail = |class: ErrorClass, message: String| Failure {
                class,
                status,
                problem: problem.clone(),
                message,
            };
            // Mailchimp refused it without running it: any call may be
            // made again. Otherwise only an idempotent one.
            let may_repeat = req.idempotent || !may_have_run;
            match verdict {
                Verdict::Throttled if throttles < self.opts.max_throttle_retries => {
                    throttles += 1;
                    attempts -= 1;
                    tracing::warn!(
                        op = req.op,
                        "Mailchimp is refusing connections (429); backing off"
                    );
                    tokio::time::sleep(backoff.delay(throttles - 1)).await;
                }
                Verdict::Throttled => {
                    return Err(fail(
                        ErrorClass::RateLimited,
                        format!(
                            "Mailchimp kept refusing the call for too many connections ({message})"
                        ),
                    ))
                }
                Verdict::Retry if may_repeat && backoff.may_retry(attempts) => {
                    let pause = backoff.delay(attempts - 1).max(wait.unwrap_or_default());
                    tokio::time::sleep(pause).await;
                }
                Verdict::Retry => {
                    let why = if may_repeat {
                        format!("gave up after {attempts} attempts")
                    } else {
                        "not repeated: it may have taken effect".to_string()
                    };
                    return Err(fail(ErrorClass::Transient, format!("{message} ({why})")));
                }
                Verdict::Fatal(class) => return Err(fail(class, message)),
            }
        }
    }

    async fn exchange(&self, req: &ApiRequest) -> Exchange {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self
            .http
            .request(method, self.root.join(&req.path))
            .basic_auth("audex", Some(self.key.expose()));
        if !req.query.is_empty() {
            builder = builder.query(&req.query);
        }
        if let Some(body) = &req.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.as_ref().clone());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return lost(e),
        };
        let status = response.status().as_u16();
        match read_body(response).await {
            Ok(Some(body)) => Exchange::Answer { status, body },
            Ok(None) => Exchange::TooLarge(status),
            Err(e) => lost(e),
        }
    }
}

fn lost(e: reqwest::Error) -> Exchange {
    let e = e.without_url();
    let why = describe(&e);
    if e.is_timeout() {
        Exchange::TimedOut(why)
    } else {
        // A refused connection never reached Mailchimp.
        let sent = !e.is_connect();
        Exchange::Lost { why, sent }
    }
}

/// The whole body, or `None` when it is longer than [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> reqwest::Result<Option<Vec<u8>>> {
    if response
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_BODY_BYTES))
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > MAX_BODY_BYTES.saturating_sub(body.len()) {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// An answer as JSON, or why not. Pure: it never panics, and no text it
/// takes from the answer keeps an email address.
pub(crate) fn interpret(
    status: u16,
    body: &[u8],
) -> std::result::Result<serde_json::Value, (Verdict, Problem, String)> {
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    match classify::http_status(status, has_body) {
        None if !has_body => Ok(serde_json::Value::Null),
        None => serde_json::from_slice(body).map_err(|_| {
            (
                Verdict::Fatal(ErrorClass::Internal),
                Problem::default(),
                format!("HTTP {status} with an answer that is not JSON"),
            )
        }),
        Some(verdict) => {
            let problem: Problem = serde_json::from_slice(body).unwrap_or_default();
            let said = problem.summary();
            let message = match (has_body, said.is_empty()) {
                (false, _) => format!("HTTP {status} with no body"),
                (true, true) => format!("HTTP {status} (not a problem document)"),
                (true, false) => format!("HTTP {status} {said}"),
            };
            Err((verdict, problem, message))
        }
    }
}

/// reqwest's error with its causes: "error sending request" alone says
/// nothing a person can act on.
fn describe(e: &reqwest::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_with_or_without_a_body() {
        assert_eq!(
            interpret(200, b"{\"a\":1}").ok(),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(interpret(204, b"").ok(), Some(serde_json::Value::Null));
        let (v, _, m) = interpret(429, b"").expect_err("throttled");
        assert_eq!(
            (v, m.as_str()),
            (Verdict::Throttled, "HTTP 429 with no body")
        );
        let (v, _, _) = interpret(403, b"").expect_err("throttled");
        assert_eq!(v, Verdict::Throttled);
        let (v, _, m) = interpret(403, br#"{"title":"Forbidden","detail":"x"}"#).expect_err("auth");
        assert_eq!(v, Verdict::Fatal(ErrorClass::Auth));
        assert_eq!(m, "HTTP 403 Forbidden: x");
        let (v, _, m) = interpret(502, b"<html>bad gateway</html>").expect_err("retry");
        assert_eq!(v, Verdict::Retry);
        assert_eq!(m, "HTTP 502 (not a problem document)");
        let (v, _, _) = interpret(200, b"<html>").expect_err("not json");
        assert_eq!(v, Verdict::Fatal(ErrorClass::Internal));
    }

    #[test]
    fn texts_from_answers_lose_their_addresses() {
        let (_, _, m) = interpret(
            400,
            br#"{"title":"Member In Compliance State","detail":"ann@example.com is in a compliance state"}"#,
        )
        .expect_err("refused");
        assert!(!m.contains('@'), "{m}");
    }

    proptest::proptest! {
        #[test]
        fn any_answer_is_classified_without_a_panic(
            status in 0u16..1000,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            if let Err((_, _, message)) = interpret(status, &body) {
                proptest::prop_assert!(!message.contains('@'), "{}", message);
            }
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let root = BaseUrl::parse("http://127.0.0.1:9/3.0").expect("root");
        let c = MailchimpClient::new(
            root,
            Secret::new("sekrit0123-us6"),
            10,
            ClientOptions::default(),
        )
        .expect("client");
        let shown = format!("{c:?}");
        assert!(!shown.contains("sekrit0123"), "{shown}");
    }
}
