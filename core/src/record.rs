//! The values that cross from the engine to a destination: records keyed by
//! our own normalised lookup key, and the destination's member ids.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Our own key of a record: the normalised value of the lookup field (for
/// Marketo, the trimmed, lowercased email).
///
/// `Debug` and `Display` show a short hash, never the value, so keys can be
/// logged and put in errors safely. [`RecordKey::as_str`] gives the value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordKey(String);

impl RecordKey {
    pub fn new(normalised: impl Into<String>) -> Self {
        RecordKey(normalised.into())
    }

    /// The key's value (an email address, for Marketo). Do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stable, non-reversible short form for logs and errors.
    pub fn masked(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        format!("key#{}", hex::encode(&digest[..6]))
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({})", self.masked())
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// The destination's own identity for a member: Marketo's lead id, the MD5
/// subscriber hash for Mailchimp, and so on. Opaque to the engine.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub String);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A list (audience, segment) in the destination, as the user configured it:
/// a YAML integer or string. The destination parses it into its own form
/// (Marketo: a positive integer).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ListId(pub String);

impl<'de> Deserialize<'de> for ListId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ListId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list id (integer or string)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ListId, E> {
                Ok(ListId(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ListId, E> {
                Ok(ListId(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ListId, E> {
                Ok(ListId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for ListId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ListId".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"] })
    }
}

impl fmt::Display for ListId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mapped, normalised value ready to send.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Text, and dates/timestamps already formatted as ISO 8601.
    Text(String),
}

impl fmt::Debug for FieldValue {
    /// Values are customer data: `Debug` shows only the kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Null => f.write_str("Null"),
            FieldValue::Bool(_) => f.write_str("Bool(..)"),
            FieldValue::Int(_) => f.write_str("Int(..)"),
            FieldValue::Float(_) => f.write_str("Float(..)"),
            FieldValue::Text(_) => f.write_str("Text(..)"),
        }
    }
}

/// One profile as the destination will receive it: its key and its values,
/// in the order of the field names its batch ([`Records`]) or mapping
/// carries (the lookup field first).
#[derive(Clone, PartialEq)]
pub struct Record {
    pub key: RecordKey,
    pub values: Vec<FieldValue>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("values", &self.values.len())
            .finish()
    }
}

/// A batch of records as it crosses to a destination: the destination
/// field names once, then each record's values in that order. A
/// destination serialises straight from it (no per-record map of names).
#[derive(Clone, Debug, PartialEq)]
pub struct Records {
    fields: Arc<[String]>,
    records: Vec<Record>,
}

impl Records {
    /// `records`, each with one value per name of `fields`, in order.
    pub fn new(fields: Arc<[String]>, records: Vec<Record>) -> Self {
        Records { fields, records }
    }

    /// The destination field names, in the order of every record's values.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Each record with its field names.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = RecordView<'_>> + '_ {
        self.records.iter().map(|record| RecordView {
            fields: &self.fields,
            record,
        })
    }

    /// The records, values only.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

/// One record of a [`Records`] batch, with its field names.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    fields: &'a [String],
    record: &'a Record,
}

impl<'a> RecordView<'a> {
    pub fn key(&self) -> &'a RecordKey {
        &self.record.key
    }

    /// `(field name, value)` in the batch's order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, &'a FieldValue)> + 'a {
        self.fields
            .iter()
            .map(String::as_str)
            .zip(self.record.values.iter())
    }

    /// The value of `field`, when the batch carries it.
    pub fn get(&self, field: &str) -> Option<&'a FieldValue> {
        let i = self.fields.iter().position(|f| f == field)?;
        self.record.values.get(i)
    }
}

/// A member of a list: our key and the destination's id for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    pub key: RecordKey,
    pub id: MemberId,
}

/// A member as read back from the destination (reconcile). The key is known
/// only when the destination returns the lookup field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RemoteMember {
    pub id: MemberId,
    pub key: Option<RecordKey>,
}

/// What a refusal means for the record, as the destination tells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The record's data was refused (a value the destination cannot
    /// take): reported; sent again on a later run while its row is in the
    /// segment, since the data may have been fixed.
    #[default]
    Invalid,
    /// Refused for good (a compliance state: unsubscribed, bounced,
    /// permanently deleted): reported with its reason, kept as a
    /// suppression in the state store and never sent again.
    ForGood,
    /// Not done now (throttled, a passing fault at the destination): the
    /// row counts as failed and the next run sends it again.
    RetryLater,
}

/// Why the destination refused one record or one membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The destination's own code, e.g. Marketo's `"1003"`.
    pub code: String,
    /// The destination's message. Must not contain the record's email.
    pub message: String,
    /// What the refusal means for the record.
    #[serde(default)]
    pub refusal: Refusal,
}

impl Rejection {
    /// The record's data was refused ([`Refusal::Invalid`]).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            code: code.into(),
            message: message.into(),
            refusal: Refusal::Invalid,
        }
    }

    /// Refused for good ([`Refusal::ForGood`]): never sent again.
    pub fn for_good(code: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            refusal: Refusal::ForGood,
            ..Rejection::new(code, message)
        }
    }

    /// Not done now ([`Refusal::RetryLater`]): sent again next run.
    pub fn retry_later(code: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            refusal: Refusal::RetryLater,
            ..Rejection::new(code, message)
        }
    }
}

/// The outcome for one record of an upsert, keyed by our record key (never by
/// position: destinations differ in how they report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOutcome {
    pub key: RecordKey,
    pub result: Result<MemberId, Rejection>,
}

/// The outcome for one member of an add or remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberOutcome {
    pub key: RecordKey,
    pub result: Result<(), Rejection>,
}
