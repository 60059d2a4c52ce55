//! Marketo's JSON envelope (facts §5): `success`, `result`, `errors` with
//! string codes, `nextPageToken`. Lead Database answers omit `errors` and
//! `warnings` on success; Asset answers carry them always.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Envelope {
    /// Only ever shown, never relied on: any JSON type is accepted.
    #[serde(default, rename = "requestId", deserialize_with = "lenient_string")]
    pub request_id: Option<String>,
    /// Required: a body without it is not an envelope (an HTML error page,
    /// a bulk file).
    pub success: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub result: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub errors: Vec<ApiError>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub warnings: Vec<Value>,
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

/// A response-level (or record-level) error: `code` is a quoted string in
/// Marketo's JSON, but clients must not break if it ever comes as a number.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    #[serde(deserialize_with = "code_string")]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Any JSON value as an optional string: `null` is `None`, a string itself,
/// anything else its JSON text. For fields we only display.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

fn code_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    })
}

impl Envelope {
    pub fn first_error(&self) -> Option<&ApiError> {
        self.errors.first()
    }
}

/// The longest text taken from an answer into an error message or a
/// rejection, in characters: a server may send megabytes where a sentence
/// was expected.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Remove anything that looks like an email address from a message Marketo
/// wrote, before it reaches a report or a log: messages are not documented
/// never to echo input values. Messages longer than [`MAX_MESSAGE_CHARS`]
/// are cut (on a character boundary) and end with `…`.
pub fn scrub(message: &str) -> String {
    let scrubbed = message
        .split(' ')
        .map(|word| {
            if word.contains('@') {
                "<redacted>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    match scrubbed.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &scrubbed[..cut]),
        None => scrubbed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_db_success_without_errors_key() {
        let e: Envelope = serde_json::from_str(
            r#"{"requestId":"b562#1743e2b46fe","result":[{"id":2149,"status":"created"}],"success":true}"#,
        )
        .expect("parses");
        assert!(e.success);
        assert_eq!(e.result.len(), 1);
        assert!(e.errors.is_empty());
    }

    #[test]
    fn failure_with_string_or_numeric_code() {
        let e: Envelope = serde_json::from_str(
            r#"{"requestId":"x","success":false,"errors":[{"code":"601","message":"Unauthorized"}]}"#,
        )
        .expect("parses");
        assert_eq!(e.first_error().map(|e| e.code.as_str()), Some("601"));
        let e: Envelope =
            serde_json::from_str(r#"{"success":false,"errors":[{"code":606}],"result":null}"#)
                .expect("parses");
        assert_eq!(e.errors[0].code, "606");
    }

    #[test]
    fn asset_warnings_are_strings() {
        let e: Envelope = serde_json::from_str(
            r#"{"success":true,"errors":[],"requestId":"x","warnings":["No assets found for the given search criteria."]}"#,
        )
        .expect("parses");
        assert!(e.result.is_empty());
        assert_eq!(e.warnings.len(), 1);
    }

    #[test]
    fn scrub_removes_email_like_words() {
        assert_eq!(
            scrub("Lead 'a.b@example.com' already exists"),
            "Lead <redacted> already exists"
        );
        assert_eq!(
            scrub("Invalid value for field 'email'"),
            "Invalid value for field 'email'"
        );
    }

    #[test]
    fn scrub_cuts_long_messages_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let cut = scrub(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
        let exact = "a".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(scrub(&exact), exact);
    }

    #[test]
    fn request_id_of_any_type_does_not_fail_the_envelope() {
        let e: Envelope =
            serde_json::from_str(r#"{"requestId":12345,"success":true}"#).expect("parses");
        assert_eq!(e.request_id.as_deref(), Some("12345"));
        let e: Envelope =
            serde_json::from_str(r#"{"requestId":null,"success":true}"#).expect("parses");
        assert_eq!(e.request_id, None);
    }
}
