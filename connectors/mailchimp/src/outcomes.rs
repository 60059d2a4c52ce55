//! Mailchimp's answers as audex outcomes, keyed by email (never by
//! position): batch subscribe (`new_members`, `updated_members`, `errors`)
//! and segment batches (grouped `errors`). Every message is scrubbed of
//! email addresses.

use std::collections::HashMap;

use audex_core::{Member, MemberId, MemberOutcome, RecordKey, RecordOutcome, Records, Rejection};
use md5::{Digest, Md5};

use crate::client::wire::{scrub, BatchSubscribeAnswer, MemberError, SegmentBatchAnswer};

/// Code of a contact Mailchimp will not subscribe: unsubscribed, cleaned
/// (bounced) or under compliance review.
pub const COMPLIANCE_STATE: &str = "compliance_state";
/// Code of a permanently deleted contact, which cannot be imported again.
pub const FORGOTTEN_EMAIL: &str = "forgotten_email";

/// The subscriber hash: the hex MD5 of the key (already trimmed and
/// lowercased by the key rule).
pub fn subscriber_hash(key: &RecordKey) -> MemberId {
    MemberId(hex::encode(Md5::digest(key.as_str().as_bytes())))
}

/// What a Mailchimp error text means for the contact.
fn refusal_of(text: &str, code: &str, detail: impl FnOnce() -> String) -> Rejection {
    let lower = text.to_ascii_lowercase();
    if lower.contains("compliance") {
        Rejection::for_good(
            COMPLIANCE_STATE,
            "the contact is unsubscribed, bounced or under compliance review in Mailchimp and cannot be subscribed; audex does not send it again",
        )
    } else if lower.contains("permanently deleted") || lower.contains("forgotten") {
        Rejection::for_good(
            FORGOTTEN_EMAIL,
            "the contact was permanently deleted from the audience and cannot be imported again; only the person can sign up again",
        )
    } else {
        let code = if code.trim().is_empty() {
            "ERROR_GENERIC"
        } else {
            code.trim()
        };
        Rejection::new(scrub(code), detail())
    }
}

fn member_error(e: &MemberError) -> Rejection {
    refusal_of(&e.error, &e.error_code, || {
        let mut message = scrub(&e.error);
        if !e.field.is_empty() {
            message.push_str(&format!(" (merge field {}", scrub(&e.field)));
            if !e.field_message.is_empty() {
                message.push_str(&format!(": {}", scrub(&e.field_message)));
            }
            message.push(')');
        }
        message
    })
}

/// A contact the upsert did not leave subscribed, pending or transactional
/// is refused for good: audex never subscribes it again.
fn status_refusal(status: &str) -> Option<Rejection> {
    let status = status.trim().to_ascii_lowercase();
    match status.as_str() {
        "unsubscribed" | "cleaned" | "archived" => Some(Rejection::for_good(
            status.clone(),
            format!("the contact is {status} in Mailchimp; audex does not subscribe it again"),
        )),
        _ => None,
    }
}

/// One outcome per record the answer names; a record it does not name gets
/// none (the engine counts it failed, and the next run sends it again).
pub fn upsert(records: &Records, answer: &BatchSubscribeAnswer) -> Vec<RecordOutcome> {
    let mut by_email: HashMap<String, Result<(), Rejection>> = HashMap::new();
    for m in answer.new_members.iter().chain(&answer.updated_members) {
        let result = match status_refusal(&m.status) {
            Some(r) => Err(r),
            None => Ok(()),
        };
        by_email.insert(m.email_address.trim().to_lowercase(), result);
    }
    for e in &answer.errors {
        by_email.insert(e.email_address.trim().to_lowercase(), Err(member_error(e)));
    }
    records
        .iter()
        .filter_map(|r| {
            let key = r.key();
            let result = by_email.get(key.as_str())?.clone();
            Some(RecordOutcome {
                key: key.clone(),
                result: result.map(|()| subscriber_hash(key)),
            })
        })
        .collect()
}

/// One outcome per member of `adds` and `removes`: Mailchimp names only
/// the addresses it refused (a current member added again, or a
/// non-member removed, is reported nowhere), so every other one is done.
pub fn segment(
    adds: &[Member],
    removes: &[Member],
    answer: &SegmentBatchAnswer,
) -> Vec<MemberOutcome> {
    let mut refused: HashMap<String, Rejection> = HashMap::new();
    for group in &answer.errors {
        let rejection = refusal_of(&group.error, "", || scrub(&group.error));
        let rejection = if rejection.code == "ERROR_GENERIC" {
            Rejection::new("segment_error", rejection.message)
        } else {
            rejection
        };
        for email in &group.email_addresses {
            refused.insert(email.trim().to_lowercase(), rejection.clone());
        }
    }
    adds.iter()
        .chain(removes)
        .map(|m| MemberOutcome {
            key: m.key.clone(),
            result: match refused.get(m.key.as_str()) {
                Some(r) => Err(r.clone()),
                None => Ok(()),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use audex_core::{FieldValue, Record, Refusal};
    use serde_json::json;
    use std::sync::Arc;

    fn records(keys: &[&str]) -> Records {
        let fields: Arc<[String]> = vec!["email".to_string()].into();
        Records::new(
            fields,
            keys.iter()
                .map(|k| Record {
                    key: RecordKey::new(*k),
                    values: vec![FieldValue::Text((*k).into())],
                })
                .collect(),
        )
    }

    #[test]
    fn the_subscriber_hash_is_the_md5_of_the_key() {
        assert_eq!(
            subscriber_hash(&RecordKey::new("test@example.com")).0,
            "55502f40dc8b7c769880b10874abc9d0"
        );
    }

    #[test]
    fn upsert_outcomes_are_keyed_by_email_not_position() {
        let answer: BatchSubscribeAnswer = serde_json::from_value(json!({
            "new_members": [{"email_address": "New@x.io", "status": "subscribed"}],
            "updated_members": [
                {"email_address": "old@x.io", "status": "pending"},
                {"email_address": "gone@x.io", "status": "unsubscribed"},
            ],
            "errors": [
                {"email_address": "comp@x.io", "error": "comp@x.io is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", "error_code": "ERROR_GENERIC"},
                {"email_address": "del@x.io", "error": "del@x.io was permanently deleted and cannot be re-imported.", "error_code": "ERROR_GENERIC"},
                {"email_address": "fake@gmil.com", "error": "fake@gmil.com looks fake or invalid, please enter a real email address.", "error_code": "ERROR_GENERIC"},
                {"email_address": "mf@x.io", "error": "Your merge fields were invalid.", "error_code": "ERROR_GENERIC", "field": "BDAY", "field_message": "Please enter a valid date"},
            ],
        }))
        .expect("answer");
        let recs = records(&[
            "missing@x.io",
            "mf@x.io",
            "fake@gmil.com",
            "del@x.io",
            "comp@x.io",
            "gone@x.io",
            "old@x.io",
            "new@x.io",
        ]);
        let out = upsert(&recs, &answer);
        let by: HashMap<&str, &Result<MemberId, Rejection>> =
            out.iter().map(|o| (o.key.as_str(), &o.result)).collect();
        assert_eq!(out.len(), 7, "the missing record gets no outcome");
        assert!(!by.contains_key("missing@x.io"));
        assert_eq!(
            by["new@x.io"],
            &Ok(subscriber_hash(&RecordKey::new("new@x.io")))
        );
        assert!(by["old@x.io"].is_ok());
        let refusal = |k: &str| by[k].as_ref().err().map(|r| (r.code.as_str(), r.refusal));
        assert_eq!(
            refusal("gone@x.io"),
            Some(("unsubscribed", Refusal::ForGood))
        );
        assert_eq!(
            refusal("comp@x.io"),
            Some((COMPLIANCE_STATE, Refusal::ForGood))
        );
        assert_eq!(
            refusal("del@x.io"),
            Some((FORGOTTEN_EMAIL, Refusal::ForGood))
        );
        assert_eq!(
            refusal("fake@gmil.com"),
            Some(("ERROR_GENERIC", Refusal::Invalid))
        );
        let mf = by["mf@x.io"].as_ref().expect_err("refused");
        assert!(mf.message.contains("BDAY"), "{}", mf.message);
        for o in &out {
            if let Err(r) = &o.result {
                assert!(!r.message.contains('@'), "{}", r.message);
            }
        }
    }

    #[test]
    fn segment_outcomes_treat_every_unnamed_member_as_done() {
        let member = |k: &str| Member {
            key: RecordKey::new(k),
            id: subscriber_hash(&RecordKey::new(k)),
        };
        let answer: SegmentBatchAnswer = serde_json::from_value(json!({
            "errors": [{"email_addresses": ["Bad@x.io", "worse@x.io"], "error": "Please provide a valid email address."}],
        }))
        .expect("answer");
        let out = segment(
            &[member("a@x.io"), member("bad@x.io")],
            &[member("worse@x.io")],
            &answer,
        );
        assert_eq!(out.len(), 3);
        assert!(out[0].result.is_ok());
        let r = out[1].result.as_ref().expect_err("refused");
        assert_eq!(
            (r.code.as_str(), r.refusal),
            ("segment_error", Refusal::Invalid)
        );
        assert!(out[2].result.is_err());
    }
}
