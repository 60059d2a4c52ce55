//! The shapes of Mailchimp's answers audex reads (facts §2–§5, §7), read
//! leniently (a missing field is its default, an unknown one is ignored),
//! and the scrubbing of every text taken from an answer.

use serde::{Deserialize, Deserializer};

/// The longest text taken from an answer into a message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `message` with every word that holds an `@` replaced, cut to
/// [`MAX_MESSAGE_CHARS`]: Mailchimp's texts repeat the address they are
/// about ("x@y.com looks fake or invalid…"), and no email may reach a
/// report or a log.
pub fn scrub(message: &str) -> String {
    let words: Vec<&str> = message
        .split_whitespace()
        .map(|w| if w.contains('@') { "<email>" } else { w })
        .collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// A string, or the default for null or any other JSON type.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// A list, or empty for null or any other JSON type.
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// A problem document (`application/problem+json`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Problem {
    #[serde(deserialize_with = "text")]
    pub title: String,
    #[serde(deserialize_with = "text")]
    pub detail: String,
    #[serde(deserialize_with = "list")]
    pub errors: Vec<FieldProblem>,
}

/// One field of a validation problem.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldProblem {
    #[serde(deserialize_with = "text")]
    pub field: String,
    #[serde(deserialize_with = "text")]
    pub message: String,
}

impl Problem {
    /// `title: detail (field: message; …)`, scrubbed.
    pub fn summary(&self) -> String {
        let mut out = scrub(&self.title);
        if !self.detail.is_empty() {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&scrub(&self.detail));
        }
        let fields: Vec<String> = self
            .errors
            .iter()
            .take(5)
            .map(|e| format!("{}: {}", scrub(&e.field), scrub(&e.message)))
            .collect();
        if !fields.is_empty() {
            out.push_str(&format!(" ({})", fields.join("; ")));
        }
        out
    }
}

/// A contact in an answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireMember {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub email_address: String,
    #[serde(deserialize_with = "text")]
    pub status: String,
}

/// One refused member of a batch subscribe.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemberError {
    #[serde(deserialize_with = "text")]
    pub email_address: String,
    #[serde(deserialize_with = "text")]
    pub error: String,
    #[serde(deserialize_with = "text")]
    pub error_code: String,
    #[serde(deserialize_with = "text")]
    pub field: String,
    #[serde(deserialize_with = "text")]
    pub field_message: String,
}

/// The answer of `POST /lists/{id}` (batch subscribe).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchSubscribeAnswer {
    #[serde(deserialize_with = "list")]
    pub new_members: Vec<WireMember>,
    #[serde(deserialize_with = "list")]
    pub updated_members: Vec<WireMember>,
    #[serde(deserialize_with = "list")]
    pub errors: Vec<MemberError>,
}

/// One grouped error of a segment batch: one message, many addresses.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupedError {
    #[serde(deserialize_with = "list")]
    pub email_addresses: Vec<String>,
    #[serde(deserialize_with = "text")]
    pub error: String,
}

/// The answer of `POST /lists/{id}/segments/{seg}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SegmentBatchAnswer {
    #[serde(deserialize_with = "list")]
    pub errors: Vec<GroupedError>,
}

/// A page of `GET /lists/{id}/segments/{seg}/members`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MembersPage {
    #[serde(deserialize_with = "list")]
    pub members: Vec<WireMember>,
    pub total_items: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_addresses_and_cuts_long_texts() {
        assert_eq!(
            scrub("ann@example.com looks fake or invalid, please enter a real email address."),
            "<email> looks fake or invalid, please enter a real email address."
        );
        assert_eq!(
            scrub("Your merge fields were invalid."),
            "Your merge fields were invalid."
        );
        let long = "é".repeat(1000);
        let cut = scrub(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn answers_of_any_shape_parse_leniently() {
        let a: BatchSubscribeAnswer = serde_json::from_value(serde_json::json!({
            "new_members": [{"email_address": "a@x.io", "status": "subscribed", "id": "abc"}, 7],
            "updated_members": null,
            "errors": [{"email_address": "b@x.io", "error": "x", "error_code": 5}],
        }))
        .expect("parses");
        assert_eq!(a.new_members.len(), 1);
        assert!(a.updated_members.is_empty());
        assert_eq!(a.errors[0].error_code, "5");
        let p: Problem = serde_json::from_slice(br#"{"title":"Invalid Resource","detail":"a@b.c is bad","errors":[{"field":"FNAME","message":"m"}]}"#)
            .expect("parses");
        assert_eq!(p.summary(), "Invalid Resource: <email> is bad (FNAME: m)");
    }
}
