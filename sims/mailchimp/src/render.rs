//! Resource shapes as Mailchimp returns them: audience, member, segment,
//! merge field, and the partial responses of `fields` / `exclude_fields`.

use serde_json::{json, Map, Value};

use crate::config::{MergeType, SimMergeField};
use crate::email;
use crate::faults::mix;
use crate::store::{iso, Audience, Include, SegKind, Segment};

/// An audience (`GET /lists/{id}`).
pub fn audience(a: &Audience, base: &str) -> Value {
    let counts = a.counts();
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    json!({
        "id": a.id,
        "web_id": a.web_id,
        "name": a.name,
        "contact": {
            "company": "audex sim", "address1": "1 Sim Street", "address2": "",
            "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US", "phone": ""
        },
        "permission_reminder": "You signed up on our website.",
        "use_archive_bar": true,
        "campaign_defaults": {"from_name": "audex sim", "from_email": "sim@audex.invalid", "subject": "", "language": "en"},
        "notify_on_subscribe": "",
        "notify_on_unsubscribe": "",
        "date_created": iso(a.created),
        "list_rating": 0,
        "email_type_option": false,
        "subscribe_url_short": "",
        "subscribe_url_long": "",
        "beamer_address": "",
        "visibility": "prv",
        "double_optin": a.double_optin,
        "has_welcome": false,
        "marketing_permissions": false,
        "modules": [],
        "stats": {
            "member_count": n("subscribed"),
            "total_contacts": n("subscribed") + n("unsubscribed") + n("cleaned") + n("pending") + n("transactional"),
            "unsubscribe_count": n("unsubscribed"),
            "cleaned_count": n("cleaned"),
            "member_count_since_send": n("subscribed"),
            "unsubscribe_count_since_send": n("unsubscribed"),
            "cleaned_count_since_send": n("cleaned"),
            "campaign_count": 0,
            "campaign_last_sent": "",
            "merge_field_count": a.fields.len(),
            "avg_sub_rate": 0, "avg_unsub_rate": 0, "target_sub_rate": 0,
            "open_rate": 0, "click_rate": 0,
            "last_sub_date": "", "last_unsub_date": ""
        },
        "_links": [link("self", "GET", &format!("{base}/lists/{}", a.id))],
    })
}

fn link(rel: &str, method: &str, href: &str) -> Value {
    json!({"rel": rel, "href": href, "method": method})
}

/// A merge field definition.
pub fn merge_field(list_id: &str, ix: usize, f: &SimMergeField) -> Value {
    let mut options = Map::new();
    match f.field_type {
        MergeType::Radio | MergeType::Dropdown => {
            options.insert("choices".into(), json!(f.choices));
        }
        MergeType::Date => {
            options.insert("date_format".into(), json!("YYYY-MM-DD"));
        }
        MergeType::Birthday => {
            options.insert("date_format".into(), json!("MM/DD"));
        }
        MergeType::Address => {
            options.insert("default_country".into(), json!(164));
        }
        MergeType::Phone => {
            options.insert("phone_format".into(), json!("none"));
        }
        MergeType::Text => {
            options.insert("size".into(), json!(25));
        }
        _ => {}
    }
    json!({
        "merge_id": ix + 1,
        "tag": f.tag,
        "name": f.name,
        "type": f.field_type.name(),
        "required": f.required,
        "default_value": f.default_value,
        "public": f.public,
        "display_order": ix + 2,
        "options": options,
        "help_text": "",
        "list_id": list_id,
    })
}

/// A member (contact) of an audience.
pub fn member(a: &Audience, id: u32, base: &str) -> Value {
    let Some(c) = a.contact(id) else {
        return Value::Null;
    };
    let hash = email::hash_hex(&c.email);
    let mut merge = Map::new();
    for (ix, f) in a.fields.iter().enumerate() {
        let v = c
            .merge
            .iter()
            .find(|(i, _)| usize::from(*i) == ix)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| Value::String(String::new()));
        merge.insert(f.tag.clone(), v);
    }
    let text = |tag: &str| {
        merge
            .get(tag)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let full_name = format!("{} {}", text("FNAME"), text("LNAME"))
        .trim()
        .to_string();
    let tags: Vec<Value> = a
        .tags_of(id)
        .into_iter()
        .map(|(sid, name)| json!({"id": sid, "name": name}))
        .collect();
    let seed = mix(u64::from(id) ^ (a.web_id << 32));
    json!({
        "id": hash,
        "email_address": c.email,
        "unique_email_id": format!("{:010x}", seed & 0xff_ffff_ffff),
        "contact_id": format!("{:032x}", u128::from(seed) << 64 | u128::from(mix(seed))),
        "full_name": full_name,
        "web_id": (seed >> 40) as u32,
        "email_type": "html",
        "status": c.status.name(),
        "consents_to_one_to_one_messaging": true,
        "merge_fields": merge,
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": "",
        "timestamp_signup": "",
        "ip_opt": "",
        "timestamp_opt": iso(c.created),
        "member_rating": 2,
        "last_changed": iso(c.changed),
        "language": c.language,
        "vip": c.vip,
        "email_client": "",
        "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": "", "region": ""},
        "source": "API - Generic",
        "tags_count": tags.len(),
        "tags": tags,
        "list_id": a.id,
        "_links": [link("self", "GET", &format!("{base}/lists/{}/members/{hash}", a.id))],
    })
}

/// The members `ids` of an answer's `key` array (`new_members`,
/// `members_added`…), rendered only as far as the request's `fields` can
/// show them: none when `fields` leaves `key` out, the identity alone
/// (`id`, `email_address`, `status`) when that is all it asks for, whole
/// otherwise. The partial response filter then applies as for any answer;
/// this only spares building what it would drop.
pub fn members_for(
    a: &Audience,
    ids: &[u32],
    key: &str,
    fields: &[String],
    base: &str,
) -> Vec<Value> {
    if fields.is_empty() {
        return ids.iter().map(|id| member(a, *id, base)).collect();
    }
    let prefix = format!("{key}.");
    let mut asked = fields
        .iter()
        .filter(|f| f.as_str() == key || f.starts_with(&prefix))
        .peekable();
    if asked.peek().is_none() {
        return Vec::new();
    }
    let light = asked.all(|f| {
        matches!(
            f.strip_prefix(&prefix),
            Some("id" | "email_address" | "status")
        )
    });
    ids.iter()
        .map(|id| {
            if !light {
                return member(a, *id, base);
            }
            match a.contact(*id) {
                Some(c) => json!({
                    "id": email::hash_hex(&c.email),
                    "email_address": c.email,
                    "status": c.status.name(),
                }),
                None => Value::Null,
            }
        })
        .collect()
}

/// A segment; `member_count` counts the members a default read shows.
pub fn segment(a: &Audience, s: &Segment, include: Include, base: &str) -> Value {
    let options = match s.kind {
        SegKind::Static => Value::Null,
        SegKind::Saved => json!({"match": "any", "conditions": []}),
    };
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "member_count": a.segment_count(s, include),
        "type": s.kind.name(),
        "created_at": iso(s.created),
        "updated_at": iso(s.updated),
        "list_id": a.id,
        "_links": [link("self", "GET", &format!("{base}/lists/{}/segments/{}", a.id, s.id))],
    });
    if let (Value::Object(m), false) = (&mut v, options.is_null()) {
        m.insert("options".into(), options);
    }
    v
}

/// Applies `fields` / `exclude_fields` (dotted paths; a path into an array
/// applies to each element), as Mailchimp's partial responses do.
pub fn partial(v: Value, fields: &[String], exclude: &[String]) -> Value {
    let mut v = if fields.is_empty() {
        v
    } else {
        let paths: Vec<Vec<&str>> = fields.iter().map(|f| f.split('.').collect()).collect();
        keep(&v, &paths)
    };
    for f in exclude {
        let path: Vec<&str> = f.split('.').collect();
        drop_path(&mut v, &path);
    }
    v
}

fn keep(v: &Value, paths: &[Vec<&str>]) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| keep(i, paths)).collect()),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let here: Vec<Vec<&str>> = paths
                    .iter()
                    .filter(|p| p.first() == Some(&k.as_str()))
                    .map(|p| p.get(1..).map(<[&str]>::to_vec).unwrap_or_default())
                    .collect();
                if here.is_empty() {
                    continue;
                }
                if here.iter().any(Vec::is_empty) {
                    out.insert(k.clone(), child.clone());
                } else {
                    out.insert(k.clone(), keep(child, &here));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn drop_path(v: &mut Value, path: &[&str]) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| drop_path(i, path)),
        Value::Object(m) => match path {
            [] => {}
            [last] => {
                m.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = m.get_mut(*first) {
                    drop_path(child, rest);
                }
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_responses() {
        let v = json!({"members": [{"id": "1", "email_address": "a@b.co", "status": "x"}], "total_items": 1, "_links": []});
        let got = partial(
            v.clone(),
            &["members.email_address".into(), "total_items".into()],
            &[],
        );
        assert_eq!(
            got,
            json!({"members": [{"email_address": "a@b.co"}], "total_items": 1})
        );
        let got = partial(v, &[], &["_links".into(), "members.status".into()]);
        assert_eq!(
            got,
            json!({"members": [{"id": "1", "email_address": "a@b.co"}], "total_items": 1})
        );
    }
}
