//! Property tests: every answer a server can give (any status, any bytes,
//! any JSON, the right envelope with wrong field types, huge and negative
//! numbers, HTML, truncated bodies) goes through the very functions the
//! client parses answers with, and comes out as a reply, a classified
//! failure or a rejected record. Never a panic, never the secret or an
//! email address in a message.

use std::collections::BTreeMap;
use std::time::Duration;

use audex_core::{ErrorClass, Secret};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Map, Number, Value};
use tokio::time::Instant;

use super::api::{
    first_name, parse_describe, parse_job, parse_leads, parse_members_page, parse_membership,
    parse_upsert, UpsertResult,
};
use super::auth::{parse_identity, token_life, MAX_TOKEN_LIFE};
use super::classify::{self, Verdict};
use super::request::{Expect, Method};
use super::service::{interpret, Attempt, Reply};
use super::wire::{Envelope, MAX_MESSAGE_CHARS};
use super::MembershipResult;

const SECRET: &str = "Zq9-client-secret-7Hk";

/// Numbers at and past every edge: huge, negative, fractional, ±0.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |f| {
            Number::from_f64(f).map(Value::Number)
        }),
        (0u64..5_000).prop_map(Value::from),
        prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(-0.0)),
            Just(json!(1e20)),
            Just(json!(-1e20)),
            Just(json!(1.7e308)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(i64::MAX)),
            Just(json!(3599.999)),
        ],
    ]
}

/// Strings Marketo uses, strings it should not send, and anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("created"),
            Just("updated"),
            Just("skipped"),
            Just("added"),
            Just("removed"),
            Just("memberof"),
            Just("Queued"),
            Just("Importing"),
            Just("Complete"),
            Just("Failed"),
            Just("Cancelled"),
            Just("601"),
            Just("602"),
            Just("606"),
            Just("607"),
            Just("615"),
            Just("702"),
            Just("1004"),
            Just("1015"),
            Just("ada@example.com"),
            Just("Lead 'ada@example.com' already exists"),
            Just("<html><body>Bad gateway</body></html>"),
            Just("3600"),
            Just("-3600"),
            Just("1e20"),
            Just("NaN"),
            Just("inf"),
            Just(""),
            Just(SECRET),
        ]
        .prop_map(str::to_string),
        ".{0,40}",
        // Long enough to be cut in a message.
        "[a-z@ ]{290,400}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("id"),
            Just("status"),
            Just("reasons"),
            Just("reason"),
            Just("code"),
            Just("message"),
            Just("email"),
            Just("name"),
            Just("rest"),
            Just("readOnly"),
            Just("dataType"),
            Just("length"),
            Just("batchId"),
            Just("importId"),
            Just("numOfLeadsProcessed"),
            Just("numOfRowsFailed"),
            Just("numOfRowsWithWarning"),
            Just("success"),
            Just("result"),
            Just("errors"),
            Just("warnings"),
            Just("nextPageToken"),
            Just("moreResult"),
            Just("requestId"),
        ]
        .prop_map(str::to_string),
        "[a-zA-Z_]{0,8}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ]
}

/// Any JSON value, nested a few levels, with Marketo's keys favoured.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..6).prop_map(object),
        ]
    })
}

fn object(m: BTreeMap<String, Value>) -> Value {
    Value::Object(m.into_iter().collect::<Map<String, Value>>())
}

/// A reason object: right shape, any field types.
fn reason() -> impl Strategy<Value = Value> {
    (
        prop_oneof![text().prop_map(Value::String), scalar()],
        scalar(),
    )
        .prop_map(|(code, message)| json!({"code": code, "message": message}))
}

/// A result item: Marketo's keys with values of the right type or not.
fn item() -> impl Strategy<Value = Value> {
    let id = prop_oneof![number(), scalar()];
    let status = prop_oneof![text().prop_map(Value::String), scalar()];
    let reasons = prop_oneof![vec(reason(), 0..3).prop_map(Value::Array), json_value()];
    (
        proptest::option::of(id),
        proptest::option::of(status),
        proptest::option::of(reasons),
        btree_map(key(), json_value(), 0..4),
    )
        .prop_map(|(id, status, reasons, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in [("id", id), ("status", status), ("reasons", reasons)] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            Value::Object(m)
        })
}

/// A bulk job status item: the documented keys, any values.
fn job() -> impl Strategy<Value = Value> {
    (
        prop_oneof![number(), scalar()],
        prop_oneof![text().prop_map(Value::String), scalar()],
        number(),
        number(),
        prop_oneof![number(), scalar()],
    )
        .prop_map(|(batch, status, processed, failed, warned)| {
            json!({"batchId": batch, "status": status, "numOfLeadsProcessed": processed,
                   "numOfRowsFailed": failed, "numOfRowsWithWarning": warned})
        })
}

/// An object shaped like Marketo's envelope, every field optional and of
/// the right type or not.
fn envelope_value() -> BoxedStrategy<Value> {
    let success = prop_oneof![
        4 => Just(Value::Bool(true)),
        2 => Just(Value::Bool(false)),
        1 => scalar(),
    ];
    let result = prop_oneof![
        4 => vec(item(), 0..8).prop_map(Value::Array),
        1 => vec(job(), 0..2).prop_map(Value::Array),
        1 => json_value(),
    ];
    let errors = prop_oneof![
        3 => vec(reason(), 0..3).prop_map(Value::Array),
        1 => json_value(),
    ];
    (
        proptest::option::weighted(0.9, success),
        proptest::option::weighted(0.9, result),
        proptest::option::of(errors),
        proptest::option::of(prop_oneof![text().prop_map(Value::String), scalar()]),
        proptest::option::of(scalar()),
    )
        .prop_map(|(success, result, errors, token, request_id)| {
            let mut m = Map::new();
            for (k, v) in [
                ("success", success),
                ("result", result),
                ("errors", errors),
                ("nextPageToken", token),
                ("requestId", request_id),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

/// An Identity answer: the token fields, any values.
fn identity_value() -> BoxedStrategy<Value> {
    (
        proptest::option::of(prop_oneof![text().prop_map(Value::String), scalar()]),
        proptest::option::of(prop_oneof![number(), scalar()]),
        proptest::option::of(scalar()),
        proptest::option::of(text().prop_map(Value::String)),
        proptest::option::of(text().prop_map(Value::String)),
    )
        .prop_map(|(token, expires, scope, error, description)| {
            let mut m = Map::new();
            for (k, v) in [
                ("access_token", token),
                ("expires_in", expires),
                ("scope", scope),
                ("error", error),
                ("error_description", description),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

/// A body: JSON of the given shape, cut anywhere or whole, HTML, any bytes.
fn body(shaped: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
    let whole = shaped.clone().prop_map(|v| v.to_string().into_bytes());
    let truncated = (shaped, any::<prop::sample::Index>()).prop_map(|(v, at)| {
        let bytes = v.to_string().into_bytes();
        let cut = at.index(bytes.len() + 1);
        bytes[..cut].to_vec()
    });
    prop_oneof![
        4 => whole,
        2 => truncated,
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => Just(b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>".to_vec()),
        1 => Just(Vec::new()),
        1 => vec(any::<u8>(), 0..256),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        1 => prop::sample::select(vec![201u16, 204, 400, 401, 403, 404, 408, 413, 414, 429, 500, 502, 503]),
        1 => any::<u16>(),
    ]
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![3 => Just(Expect::Envelope), 1 => Just(Expect::Text)]
}

/// What a message taken from an answer must never hold: an email address.
fn assert_no_email(what: &str, message: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.contains('@'), "{what} keeps an email: {message:?}");
    Ok(())
}

/// Nor, from Identity (the one service that sees it), the client secret.
fn assert_clean(what: &str, message: &str) -> Result<(), TestCaseError> {
    assert_no_email(what, message)?;
    prop_assert!(!message.contains(SECRET), "{what} keeps the secret");
    Ok(())
}

/// Every parser the operations apply to a successful envelope; all must
/// end in a value or a classified error.
fn parse_everything(env: &Envelope, n: usize, ids: &[u64]) -> Result<(), TestCaseError> {
    match parse_upsert("sync_leads", n, env) {
        Ok(results) => {
            prop_assert_eq!(results.len(), n);
            for r in results {
                if let UpsertResult::Skipped(rej) = r {
                    assert_no_email("a rejection code", &rej.code)?;
                    assert_no_email("a rejection", &rej.message)?;
                    prop_assert!(rej.message.chars().count() <= MAX_MESSAGE_CHARS + 1);
                }
            }
        }
        Err(e) => {
            prop_assert_eq!(e.class(), ErrorClass::Internal);
            assert_no_email("an upsert error", &e.to_string())?;
        }
    }
    for method in [Method::Post, Method::Delete] {
        match parse_membership("add_to_list", method, ids, env) {
            Ok(out) => {
                for id in ids {
                    prop_assert!(out.contains_key(id), "no outcome for {id}");
                }
                for r in out.values() {
                    if let MembershipResult::Skipped(rej) = r {
                        assert_no_email("a rejection", &rej.message)?;
                    }
                }
            }
            Err(e) => {
                prop_assert_eq!(e.class(), ErrorClass::Internal);
                assert_no_email("a membership error", &e.to_string())?;
            }
        }
    }
    let page = parse_members_page(env.clone());
    prop_assert!(page.next.is_none() || !page.items.is_empty());
    prop_assert!(parse_leads(env).len() <= env.result.len());
    prop_assert!(parse_describe(env).len() <= env.result.len());
    let _ = first_name(env);
    match parse_job("bulk_import_status", env.clone()) {
        Ok(job) => {
            let _ = (job.is_finished(), job.is_known());
        }
        Err(e) => prop_assert_eq!(e.class(), ErrorClass::Internal),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    /// Any status and body through the answer classifier, and every
    /// successful envelope through every operation's parser.
    #[test]
    fn any_answer_is_a_reply_or_a_classified_failure(
        status in status(),
        body in body(envelope_value()),
        expect in expect(),
        n in 0usize..=300,
        ids in vec(any::<u64>(), 0..5),
    ) {
        let parsed = serde_json::from_slice::<Envelope>(&body).ok();
        match interpret(status, &body, expect) {
            Attempt::Done(Reply::Envelope(env)) => {
                prop_assert!(classify::http_status(status).is_none());
                prop_assert!(env.success);
                prop_assert!(parsed.as_ref().is_some_and(|p| p.success));
                // The ids in the answer as well as others: both paths.
                let mut ids = ids;
                ids.extend(env.result.iter().filter_map(|i| i.get("id").and_then(Value::as_u64)).take(3));
                parse_everything(&env, n.min(env.result.len() + 1), &ids)?;
                parse_everything(&env, env.result.len(), &ids)?;
            }
            Attempt::Done(Reply::Text(_)) => {
                prop_assert_eq!(expect, Expect::Text);
                prop_assert!(classify::http_status(status).is_none());
                prop_assert!(parsed.is_none());
            }
            Attempt::Failed { verdict, message, .. } => {
                assert_no_email("a failure", &message)?;
                match classify::http_status(status) {
                    Some(v) => prop_assert_eq!(verdict, v),
                    None => match &parsed {
                        Some(env) => prop_assert!(!env.success),
                        None => {
                            prop_assert_eq!(expect, Expect::Envelope);
                            prop_assert_eq!(verdict, Verdict::Fatal(ErrorClass::Internal));
                        }
                    },
                }
            }
        }
    }

    /// Any Identity answer is a usable token that lives at most an hour, or
    /// an auth / rate / transient / internal error without the secret.
    #[test]
    fn any_identity_answer_is_a_token_or_a_classified_error(
        status in status(),
        body in body(identity_value()),
    ) {
        let now = Instant::now();
        match parse_identity(status, &body, now, &Secret::new(SECRET)) {
            Ok(token) => {
                prop_assert!((200..300).contains(&status));
                prop_assert!(token.expires_at >= now);
                prop_assert!(token.expires_at.duration_since(now) <= MAX_TOKEN_LIFE);
                let t = token.value.expose();
                prop_assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
            }
            Err(e) => {
                prop_assert!(matches!(
                    e.class(),
                    ErrorClass::Auth | ErrorClass::RateLimited | ErrorClass::Transient | ErrorClass::Internal
                ), "{:?}", e.class());
                assert_clean("an Identity error", &e.to_string())?;
                assert_clean("an Identity error's Debug", &format!("{e:?}"))?;
            }
        }
    }

    #[test]
    fn any_expires_in_is_a_life_of_at_most_an_hour(v in proptest::option::of(json_value())) {
        let life = token_life(v.as_ref());
        prop_assert!(life <= MAX_TOKEN_LIFE);
        if let Some(f) = v.as_ref().and_then(Value::as_f64) {
            if f <= 0.0 {
                prop_assert_eq!(life, Duration::ZERO);
            }
        }
    }
}

/// The known instance: an `expires_in` past what a deadline can hold.
#[test]
fn huge_negative_and_odd_expires_in() {
    let hour = MAX_TOKEN_LIFE;
    for (v, want) in [
        (json!(1e20), hour),
        (json!(u64::MAX), hour),
        (json!(i64::MAX), hour),
        (json!(1.7e308), hour),
        (json!("1e400"), hour),
        (json!(3600), hour),
        (json!(3599), Duration::from_secs(3599)),
        (json!(2.5), Duration::from_millis(2500)),
        (json!("120"), Duration::from_secs(120)),
        (json!(0), Duration::ZERO),
        (json!(-1), Duration::ZERO),
        (json!(i64::MIN), Duration::ZERO),
        (json!(-1e20), Duration::ZERO),
        (json!("NaN"), Duration::ZERO),
        (json!("soon"), Duration::ZERO),
        (json!(null), Duration::ZERO),
        (json!({"secs": 5}), Duration::ZERO),
    ] {
        assert_eq!(token_life(Some(&v)), want, "{v}");
    }
    assert_eq!(token_life(None), Duration::ZERO);

    let now = Instant::now();
    let secret = Secret::new(SECRET);
    let token = parse_identity(
        200,
        br#"{"access_token":"abc:ab","expires_in":9223372036854775807,"scope":"x"}"#,
        now,
        &secret,
    )
    .expect("a token");
    assert_eq!(token.expires_at, now + hour);
    let token = parse_identity(
        200,
        br#"{"access_token":"abc:ab","expires_in":-30,"scope":7}"#,
        now,
        &secret,
    )
    .expect("a token, already expired");
    assert_eq!(token.expires_at, now);
    assert_eq!(token.scope, None);
}

#[test]
fn identity_errors_are_classified_and_never_echo_the_secret() {
    let now = Instant::now();
    let secret = Secret::new(SECRET);
    let body = format!(
        r#"{{"error":"unauthorized","error_description":"Bad client credentials {SECRET} for ops@example.com"}}"#
    );
    let err = parse_identity(401, body.as_bytes(), now, &secret).expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Auth);
    let text = err.to_string();
    assert!(!text.contains(SECRET) && !text.contains('@'), "{text}");
    assert!(text.contains("Bad client credentials"), "{text}");

    for (status, class) in [
        (429, ErrorClass::RateLimited),
        (503, ErrorClass::Transient),
        (404, ErrorClass::Internal),
    ] {
        let err = parse_identity(status, b"<html>nope</html>", now, &secret).expect_err("error");
        assert_eq!(err.class(), class, "HTTP {status}");
    }
    for body in [
        &b"<html><body>Sign in</body></html>"[..],
        br#"{"access_token":"","expires_in":3600}"#,
        br#"{"access_token":"a b\n","expires_in":3600}"#,
        br#"{"access_token":42}"#,
        br#"{"access_tok"#,
    ] {
        let err = parse_identity(200, body, now, &secret).expect_err("unusable");
        assert_eq!(err.class(), ErrorClass::Internal);
    }
}
