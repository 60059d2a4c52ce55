//! The real client against a tiny HTTP server that answers what Marketo
//! never should: absurd token lifetimes, HTML with status 200, bodies cut
//! short or announced at a terabyte, ids that are not lead ids. Each ends as
//! a working call or a classified error, never a panic.
//!
//! The server is a few lines over a TCP socket rather than axum, so it can
//! also send what a well-behaved HTTP library will not (a body shorter than
//! its Content-Length). Each test starts its own on a free port, so it has
//! its own token cache and limiter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use audex_core::{Destination, ErrorClass, FieldValue, Record, RecordKey, Records};
use audex_marketo::client::retry::Backoff;
use audex_marketo::client::ClientOptions;
use audex_marketo::{MarketoConfig, MarketoDestination};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "hostile-test-secret-93";

/// A raw HTTP/1.1 answer.
fn answer(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_ok(body: &serde_json::Value) -> Vec<u8> {
    answer("200 OK", "application/json", &body.to_string())
}

fn token(expires_in: serde_json::Value) -> Vec<u8> {
    json_ok(&json!({
        "access_token": "cdf01657-110d-4155-99a7-f986b2ff13a0:int",
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": "apiuser",
    }))
}

fn describe_ok() -> Vec<u8> {
    json_ok(&json!({
        "requestId": "e42b#14272d07d78",
        "success": true,
        "result": [{"id": 2, "displayName": "Email", "dataType": "email", "length": 255,
                    "rest": {"name": "email", "readOnly": false}}],
    }))
}

struct Server {
    origin: String,
    identity_calls: Arc<AtomicUsize>,
    api_calls: Arc<AtomicUsize>,
}

/// Serve `identity` to every Identity call and `api` to every other call.
async fn serve(identity: Vec<u8>, api: Vec<u8>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let identity_calls = Arc::new(AtomicUsize::new(0));
    let api_calls = Arc::new(AtomicUsize::new(0));
    let (ic, ac) = (identity_calls.clone(), api_calls.clone());
    let (identity, api) = (Arc::new(identity), Arc::new(api));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (identity, api, ic, ac) = (identity.clone(), api.clone(), ic.clone(), ac.clone());
            tokio::spawn(async move {
                let Some(path) = read_request(&mut stream).await else {
                    return;
                };
                let reply = if path.starts_with("/identity/") {
                    ic.fetch_add(1, Ordering::SeqCst);
                    identity
                } else {
                    ac.fetch_add(1, Ordering::SeqCst);
                    api
                };
                let _ = stream.write_all(&reply).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server {
        origin: format!("http://{addr}"),
        identity_calls,
        api_calls,
    }
}

/// Read one request (head and Content-Length body); its path.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        match stream.read(&mut chunk).await.ok()? {
            0 => return None,
            n => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await.ok()? {
            0 => return None,
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    head.split_whitespace().nth(1).map(str::to_string)
}

fn config(origin: &str) -> MarketoConfig {
    serde_json::from_value(json!({
        "type": "marketo",
        "display_name": "Hostile",
        "endpoint": origin,
        "client_id": "hostile-client",
        "client_secret": SECRET,
        "data_privacy_consent": true,
        "export_user": "tester",
        "mapping": {"email": "email"},
        "list_id": 1001,
        "exports": [{"segment": "all"}],
    }))
    .expect("valid config")
}

/// No waiting between retries: these tests count attempts, not time.
fn options() -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
            max_attempts: 3,
        },
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        timeout_hold: Duration::ZERO,
        max_throttle_retries: 2,
    }
}

fn destination(server: &Server) -> MarketoDestination {
    MarketoDestination::with_options(&config(&server.origin), options()).expect("builds")
}

fn assert_clean(e: &audex_core::Error) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(SECRET), "the secret leaked: {shown}");
    assert!(!shown.contains('@'), "an email leaked: {shown}");
}

/// The known instance: an `expires_in` that overflowed `Instant + Duration`.
/// Now it is trusted for an hour at most, and the token is reused.
#[tokio::test]
async fn absurd_expires_in_is_clamped_to_an_hour_and_the_token_reused() {
    for expires_in in [
        json!(1e20),
        json!(u64::MAX),
        json!(i64::MAX),
        json!(1.7e308),
        json!("99999999999999999999"),
    ] {
        let server = serve(token(expires_in.clone()), describe_ok()).await;
        let dest = destination(&server);
        let info = dest.client().authenticate().await.expect("authenticates");
        assert!(
            info.expires_in <= Duration::from_secs(3600)
                && info.expires_in > Duration::from_secs(3500),
            "{expires_in}: {:?}",
            info.expires_in
        );
        for _ in 0..2 {
            let fields = dest.fields().await.expect("describe works");
            assert_eq!(fields.len(), 1);
        }
        assert_eq!(
            server.identity_calls.load(Ordering::SeqCst),
            1,
            "{expires_in}: one token for every call"
        );
        assert_eq!(server.api_calls.load(Ordering::SeqCst), 2);
    }
}

/// A token said to be already expired is used once and renewed on the next
/// call: never a loop of Identity calls, never a failed call.
#[tokio::test]
async fn expired_on_arrival_tokens_are_renewed_once_a_call() {
    for expires_in in [
        json!(0),
        json!(-5),
        json!(i64::MIN),
        json!(-1e20),
        json!("soon"),
    ] {
        let server = serve(token(expires_in.clone()), describe_ok()).await;
        let dest = destination(&server);
        for _ in 0..3 {
            dest.fields().await.expect("describe works");
        }
        assert_eq!(
            server.identity_calls.load(Ordering::SeqCst),
            3,
            "{expires_in}"
        );
        assert_eq!(server.api_calls.load(Ordering::SeqCst), 3, "{expires_in}");
    }
}

/// A captive portal or a proxy's error page with status 200: not an
/// envelope, so an internal error, without retrying.
#[tokio::test]
async fn html_with_status_200_is_an_internal_error() {
    let html = answer(
        "200 OK",
        "text/html",
        "<!DOCTYPE html><html><body><h1>Service unavailable</h1><p>ops@example.com</p></body></html>",
    );
    let server = serve(token(json!(3600)), html).await;
    let err = destination(&server)
        .fields()
        .await
        .expect_err("HTML is no answer");
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    assert_clean(&err);
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 1);
}

/// Identity answering HTML with 200, or refusing with a description that
/// echoes the secret: classified, and the secret never shown.
#[tokio::test]
async fn identity_html_and_echoing_refusals_are_classified() {
    let html = answer("200 OK", "text/html", "<html><body>Sign in</body></html>");
    let server = serve(html, describe_ok()).await;
    let err = destination(&server).fields().await.expect_err("no token");
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 0);

    let refusal = answer(
        "401 Unauthorized",
        "application/json",
        &json!({"error": "unauthorized",
                "error_description": format!("Bad client credentials {SECRET} of ops@example.com")})
        .to_string(),
    );
    let server = serve(refusal, describe_ok()).await;
    let err = destination(&server).fields().await.expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
    assert!(err.message().contains("Bad client credentials"), "{err}");
    assert_clean(&err);
}

/// A body cut short of its Content-Length: a transport fault, retried (the
/// read is idempotent), then transient.
#[tokio::test]
async fn truncated_body_is_retried_then_transient() {
    let cut = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"success\":true,\"result\":[{\"id\":".to_vec();
    let server = serve(token(json!(3600)), cut).await;
    let err = destination(&server)
        .fields()
        .await
        .expect_err("never a whole body");
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 3, "max_attempts");
}

/// A body announced at a terabyte is refused before it is read.
#[tokio::test]
async fn an_answer_too_large_to_hold_is_an_internal_error() {
    let huge = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\nConnection: close\r\n\r\n{\"success\":true".to_vec();
    let server = serve(token(json!(3600)), huge).await;
    let err = destination(&server).fields().await.expect_err("too large");
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    assert!(err.message().contains("more than"), "{err}");
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 1);
}

/// A batch of one record, `email` alone.
fn record(email: &str) -> Records {
    Records::new(
        vec!["email".to_string()].into(),
        vec![Record {
            key: RecordKey::new(email),
            values: vec![FieldValue::Text(email.to_string())],
        }],
    )
}

/// Sync Leads results whose ids are not lead ids (negative, huge, text):
/// the call fails as internal rather than inventing members; a skipped
/// record with a malformed reason is a rejected record.
#[tokio::test]
async fn upsert_results_with_impossible_ids_are_classified() {
    for id in [json!(-1), json!(1e20), json!("2149"), json!(null)] {
        let body = json_ok(&json!({
            "requestId": 7,
            "success": true,
            "result": [{"id": id, "status": "created"}],
        }));
        let server = serve(token(json!(3600)), body).await;
        let err = destination(&server)
            .upsert(&record("ada@example.com"))
            .await
            .expect_err("no usable id");
        assert_eq!(err.class(), ErrorClass::Internal, "{id}: {err}");
        assert_clean(&err);
    }

    let body = json_ok(&json!({
        "success": true,
        "result": [{"status": "skipped", "reasons": "ada@example.com is odd"}],
    }));
    let server = serve(token(json!(3600)), body).await;
    let out = destination(&server)
        .upsert(&record("ada@example.com"))
        .await
        .expect("one rejected record");
    let rejection = out[0].result.clone().expect_err("rejected");
    assert_eq!(rejection.code, "skipped");
    assert!(!rejection.message.contains('@'));
}

/// A members read whose token never moves ends with an error instead of
/// paging forever.
#[tokio::test]
async fn a_page_token_that_never_moves_is_an_error() {
    use futures::TryStreamExt;
    let page = json_ok(&json!({
        "success": true,
        "result": [{"id": 1, "email": "a@example.com"}],
        "nextPageToken": "SAME===",
    }));
    let server = serve(token(json!(3600)), page).await;
    let dest = destination(&server);
    let list = audex_core::ListId("1001".into());
    // The bound turns a regression (paging forever) into a failure, not a hang.
    let read: Result<Vec<_>, _> = tokio::time::timeout(
        Duration::from_secs(30),
        dest.read_members(&list).try_collect(),
    )
    .await
    .expect("the read ends");
    let err = read.expect_err("the token did not move");
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 2);
}

/// A bulk job in a state Marketo does not document ends the wait with an
/// error after one poll, instead of polling forever.
#[tokio::test]
async fn an_unknown_import_status_ends_the_wait() {
    let status = json_ok(&json!({
        "success": true,
        "result": [{"batchId": 3404, "importId": "3404", "status": "Cancelled"}],
    }));
    let server = serve(token(json!(3600)), status).await;
    let dest = destination(&server);
    let waited = tokio::time::timeout(
        Duration::from_secs(30),
        dest.client().wait_for_import(3404, Duration::ZERO),
    )
    .await
    .expect("the wait ends");
    let err = waited.expect_err("not a state to wait in");
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 1);

    // A batchId that is no id at all is an error too.
    let status =
        json_ok(&json!({"success": true, "result": [{"batchId": -7, "status": "Queued"}]}));
    let server = serve(token(json!(3600)), status).await;
    let err = destination(&server)
        .client()
        .import_status(1)
        .await
        .expect_err("no such batch id");
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
}

/// A window no duration can hold is a config error, not a panic.
#[test]
fn an_endless_rate_window_is_a_config_error() {
    let mut cfg = config("http://127.0.0.1:9");
    cfg.rate_limit.window_secs = 1e20;
    let err = MarketoDestination::from_config(&cfg).expect_err("no such window");
    assert!(err.is_config(), "{err}");
}
