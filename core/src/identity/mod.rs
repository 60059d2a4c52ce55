//! How a destination identifies a person: the rule that turns a raw lookup
//! value into the key audex dedupes on, keys its state by and sends
//! ([`crate::RecordKey`]). One normalisation feeds all three, so a person
//! is never two keys.
//!
//! The destination declares its rule ([`crate::Destination::key_rule`]);
//! core applies it. [`EmailKey`] is the common one (trim, lowercase,
//! validate), with the destination's own restrictions on top; a destination
//! that keys by something else (a phone number, a customer id) writes its
//! own [`KeyRule`].

use std::borrow::Cow;
use std::fmt;

mod email;

pub use email::{EmailKey, INVALID_EMAIL, MAX_EMAIL_LEN};

/// Reject code: the lookup value is null or blank.
pub const MISSING_KEY: &str = "missing_key";
/// Reject code: the lookup value is longer than its field allows.
pub const KEY_TOO_LONG: &str = "key_too_long";

/// Turns a raw lookup value into a key, or says why it cannot be one.
pub trait KeyRule: Send + Sync + fmt::Debug {
    /// What the key is, for messages: "email", "phone number".
    fn noun(&self) -> &str;

    /// The normalised key of `raw` (as the source gave it, untrimmed).
    /// Normalising a key again must give it back unchanged.
    fn normalise(&self, raw: &str) -> Result<String, KeyProblem>;
}

/// Why a lookup value cannot be a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyProblem {
    /// A stable code for the rejects file: [`MISSING_KEY`] for a blank
    /// value, [`KEY_TOO_LONG`], or the rule's own (e.g. [`INVALID_EMAIL`]).
    pub code: Cow<'static, str>,
    /// Why, for a person. Must not repeat the value: it goes to logs and
    /// reports.
    pub message: String,
}

impl KeyProblem {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        KeyProblem {
            code: code.into(),
            message: message.into(),
        }
    }
}
