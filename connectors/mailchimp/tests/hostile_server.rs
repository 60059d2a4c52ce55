//! The client against a server that answers badly: bodies that are not
//! JSON or not the expected shape, lies about lengths, bare statuses,
//! connections dropped mid-answer. Every one ends in a classified error or
//! a lenient result, never a panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use audex_core::{Destination, ErrorClass, FieldValue, ListId, Record, RecordKey, Records};
use audex_mailchimp::client::Backoff;
use audex_mailchimp::{ClientOptions, MailchimpConfig, MailchimpDestination, TagRef};
use futures::TryStreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A 200 with a JSON body of the right length.
fn json_200(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A server answering every request with `answer` (raw HTTP), counting them.
async fn serve(answer: impl Into<Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let answer: Arc<[u8]> = answer.into().into();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("an address");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                // Read the head and whatever body came with it.
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = sock.write_all(&answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/3.0"), count)
}

fn destination(root: &str) -> MailchimpDestination {
    let cfg: MailchimpConfig = serde_json::from_value(json!({
        "type": "mailchimp",
        "display_name": "Hostile",
        "api_key": "0123456789abcdef0123456789abcdef-us6",
        "base_url": root,
        "audience_id": "a1b2c3d4e5",
        "status_if_new": "subscribed",
        "data_privacy_consent": true,
        "export_user": "tester",
        "mapping": {"email": "email"},
        "tag_id": 7,
        "exports": [{"segment": "all"}],
    }))
    .expect("a config");
    let opts = ClientOptions {
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
            max_attempts: 3,
        },
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        timeout_hold: Duration::from_millis(10),
        abandon_hold: Duration::ZERO,
        max_throttle_retries: 3,
    };
    MailchimpDestination::with_options(&cfg, opts).expect("builds")
}

fn one_record() -> Records {
    Records::new(
        vec!["email".to_string()].into(),
        vec![Record {
            key: RecordKey::new("ann@example.com"),
            values: vec![FieldValue::Text("ann@example.com".into())],
        }],
    )
}

async fn upsert_class(answer: &'static [u8]) -> (Option<ErrorClass>, usize) {
    let (root, count) = serve(answer).await;
    let result = destination(&root).upsert(&one_record()).await;
    (
        result.err().map(|e| e.class()),
        count.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn a_200_that_is_not_json_is_an_internal_error() {
    let (class, calls) = upsert_class(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\n\r\n<html>",
    )
    .await;
    assert_eq!((class, calls), (Some(ErrorClass::Internal), 1));
}

#[tokio::test]
async fn an_answer_of_the_wrong_shape_names_nobody() {
    for body in [r#"{"new_members":"x","errors":[1,{"a":null}]}"#, "[]", "{}"] {
        let (root, _) = serve(json_200(body)).await;
        let out = destination(&root)
            .upsert(&one_record())
            .await
            .expect("lenient");
        assert!(
            out.is_empty(),
            "a record the answer does not name has no outcome"
        );
    }
    let (root, _) = serve(json_200("null")).await;
    let err = destination(&root)
        .upsert(&one_record())
        .await
        .expect_err("no answer");
    assert_eq!(err.class(), ErrorClass::Internal);
}

#[tokio::test]
async fn bare_statuses_are_classified() {
    let (class, calls) =
        upsert_class(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
    assert_eq!((class, calls), (Some(ErrorClass::Auth), 1));
    let (class, calls) = upsert_class(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await;
    assert_eq!((class, calls), (Some(ErrorClass::RateLimited), 4));
    let (class, calls) =
        upsert_class(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 5\r\n\r\n<h1/>").await;
    assert_eq!((class, calls), (Some(ErrorClass::Transient), 3));
    let (class, _) = upsert_class(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
    assert_eq!(class, Some(ErrorClass::Rejected));
}

#[tokio::test]
async fn lies_about_length_and_dropped_answers_are_transient_or_refused() {
    // Promises more than it sends, then closes.
    let (class, calls) = upsert_class(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"new_",
    )
    .await;
    assert_eq!((class, calls), (Some(ErrorClass::Transient), 3));
    // Announces more than audex reads at all.
    let (class, _) = upsert_class(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 99999999999\r\n\r\n{}",
    )
    .await;
    assert_eq!(class, Some(ErrorClass::Internal));
    // Closes without a word.
    let (class, _) = upsert_class(b"").await;
    assert_eq!(class, Some(ErrorClass::Transient));
}

#[tokio::test]
async fn a_read_back_of_an_odd_page_ends() {
    let (root, _) = serve(json_200(
        r#"{"members":[{"id":7,"email_address":null},{"email_address":"x"}]}"#,
    ))
    .await;
    let dest = destination(&root);
    let list: ListId = TagRef::Id(7).list_id();
    let pages: Vec<_> = dest.read_members(&list).try_collect().await.expect("reads");
    let members: Vec<_> = pages.into_iter().flatten().collect();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.key.is_none()));
}
