//! The connection test behind `audex check`: it walks the write path one
//! step at a time (reach the account, the audience, the status new
//! contacts get, each tag, the mapped merge fields) and reports every step
//! with a reason a person can act on. The key never appears.

use audex_core::{CheckResult, Error, ListId};

use crate::config::{StatusIfNew, TagRef, EMAIL_FIELD};
use crate::destination::MailchimpDestination;

fn explain(e: &Error) -> String {
    let mut out = e.message().to_string();
    for c in e.config_errors() {
        out.push_str(&format!("; {}", c.message));
        if let Some(h) = &c.hint {
            out.push_str(&format!(" (hint: {h})"));
        }
    }
    if let Some(h) = e.hint() {
        out.push_str(&format!(" (hint: {h})"));
    }
    out
}

/// Run every step; never fails as a whole.
pub async fn run(
    dest: &MailchimpDestination,
    lists: &[ListId],
    mapped_fields: &[String],
) -> Vec<CheckResult> {
    let client = dest.client();
    let audience_id = dest.audience();
    let mut out = Vec::new();

    let reached = match client.ping().await {
        Ok(()) => {
            out.push(CheckResult::ok(
                "authenticate",
                format!("the API key works at {}", client.root().as_str()),
            ));
            true
        }
        Err(e) => {
            out.push(CheckResult::failed("authenticate", explain(&e)));
            false
        }
    };
    let audience_step = format!("audience {audience_id}");
    if !reached {
        out.push(CheckResult::failed(
            audience_step,
            "not checked: the key was refused",
        ));
        return out;
    }
    let audience = match client.audience(audience_id).await {
        Ok(a) => {
            let optin = if a.double_optin {
                "double opt-in"
            } else {
                "single opt-in"
            };
            out.push(CheckResult::ok(
                audience_step,
                format!("{:?} ({optin})", a.name),
            ));
            Some(a)
        }
        Err(e) => {
            out.push(CheckResult::failed(audience_step, explain(&e)));
            None
        }
    };

    let status = match (dest.status_if_new(), &audience) {
        (StatusIfNew::Auto, Some(a)) if a.double_optin => Some("pending"),
        (StatusIfNew::Auto, Some(_)) => Some("subscribed"),
        (StatusIfNew::Auto, None) => None,
        (StatusIfNew::Subscribed, _) => Some("subscribed"),
        (StatusIfNew::Pending, _) => Some("pending"),
        (StatusIfNew::Transactional, _) => Some("transactional"),
    };
    out.push(match status {
        Some("pending") => CheckResult::ok(
            "new contacts",
            "new contacts get status pending: Mailchimp sends every new contact a confirmation email, and they join only once they confirm",
        ),
        Some(s) => CheckResult::ok("new contacts", format!("new contacts get status {s}; existing contacts keep theirs")),
        None => CheckResult::failed("new contacts", "not checked: the audience could not be read"),
    });

    for list in lists {
        let step = TagRef::parse(list).map_or_else(|| list.0.clone(), |t| t.to_string());
        if audience.is_none() {
            out.push(CheckResult::failed(
                step,
                "not checked: the audience could not be read",
            ));
            continue;
        }
        out.push(check_tag(dest, list, step).await);
    }

    let merge_tags: Vec<&String> = mapped_fields.iter().filter(|f| *f != EMAIL_FIELD).collect();
    if !mapped_fields.iter().any(|f| f == EMAIL_FIELD) {
        out.push(CheckResult::failed(
            "merge fields",
            "email is not mapped: map it to the column holding each profile's address",
        ));
    }
    if audience.is_none() {
        out.push(CheckResult::failed(
            "merge fields",
            "not checked: the audience could not be read",
        ));
        return out;
    }
    out.push(match client.merge_fields(audience_id).await {
        Ok(fields) => {
            let missing: Vec<&str> = merge_tags
                .iter()
                .filter(|t| !fields.iter().any(|f| f.tag == ***t))
                .map(|t| t.as_str())
                .collect();
            if missing.is_empty() {
                let shown: Vec<&str> = merge_tags.iter().map(|t| t.as_str()).collect();
                CheckResult::ok(
                    "merge fields",
                    if shown.is_empty() {
                        "only email is mapped".to_string()
                    } else {
                        format!("email and {} exist in the audience", shown.join(", "))
                    },
                )
            } else {
                let known: Vec<&str> = fields.iter().map(|f| f.tag.as_str()).collect();
                CheckResult::failed(
                    "merge fields",
                    format!(
                        "the audience has no merge field {} (it has: {}); merge tags are case-sensitive: fix the mapping or add the fields in Mailchimp",
                        missing.join(", "),
                        known.join(", ")
                    ),
                )
            }
        }
        Err(e) => CheckResult::failed("merge fields", explain(&e)),
    });
    out
}

async fn check_tag(dest: &MailchimpDestination, list: &ListId, step: String) -> CheckResult {
    let client = dest.client();
    match TagRef::parse(list) {
        None => CheckResult::failed(step, "not a Mailchimp tag"),
        Some(TagRef::Id(id)) => match client.segment(dest.audience(), id).await {
            Ok(s) if s.is_static() => CheckResult::ok(
                step,
                format!("the tag {:?}{}", s.name, count(s.member_count)),
            ),
            Ok(s) => CheckResult::failed(
                step,
                format!(
                    "segment {id} ({:?}) is a {} segment, not a tag; audex fills tags (static segments) only",
                    s.name, s.kind
                ),
            ),
            Err(e) => CheckResult::failed(step, explain(&e)),
        },
        Some(TagRef::Name(name)) => match dest.segment_id(list, false).await {
            Ok(Some(id)) => CheckResult::ok(step, format!("found, segment id {id}")),
            Ok(None) if dest.creates_tags() => CheckResult::ok(
                step,
                format!("no tag {name:?} yet: the first run creates it (create_tag: true)"),
            ),
            Ok(None) => CheckResult::failed(
                step,
                format!("the audience has no tag {name:?}; create it in Mailchimp, or set create_tag: true"),
            ),
            Err(e) => CheckResult::failed(step, explain(&e)),
        },
    }
}

fn count(n: Option<u64>) -> String {
    n.map(|n| format!(", {n} subscribed or pending contacts"))
        .unwrap_or_default()
}
