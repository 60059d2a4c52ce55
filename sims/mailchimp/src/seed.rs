//! Seeding and inspection without the API, shared by `SimHandle` and the
//! side channel: audiences, contacts in any status, forgotten emails, static
//! and saved segments, a segment's members in every status.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::SimAudience;
use crate::email;
use crate::merge;
use crate::store::{now, SegKind, Status, Store};

/// A contact as seeded or inspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimContact {
    pub email: String,
    pub status: Status,
    /// Merge values by tag; checked against the audience's fields (required
    /// ones are not enforced when seeding).
    #[serde(default)]
    pub merge_fields: Map<String, Value>,
    /// Tag (static segment) names; unknown ones are created.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl SimContact {
    /// A contact with no merge values and no tags.
    pub fn new(email: &str, status: Status) -> SimContact {
        SimContact {
            email: email.to_string(),
            status,
            merge_fields: Map::new(),
            tags: Vec::new(),
        }
    }

    /// The same contact with a merge value.
    pub fn with_merge(mut self, tag: &str, value: Value) -> SimContact {
        self.merge_fields.insert(tag.to_string(), value);
        self
    }

    /// The same contact with a tag.
    pub fn with_tag(mut self, name: &str) -> SimContact {
        self.tags.push(name.to_string());
        self
    }
}

/// Creates or replaces an audience.
pub fn add_audience(store: &mut Store, a: &SimAudience) -> Result<(), String> {
    if a.id.is_empty() || !a.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "audience id '{}' must be non-empty and alphanumeric",
            a.id
        ));
    }
    let mut tags = BTreeSet::new();
    for f in &a.merge_fields {
        if !tags.insert(f.tag.as_str()) {
            return Err(format!("merge tag '{}' appears twice", f.tag));
        }
    }
    store.add_audience(a);
    Ok(())
}

/// Seeds contacts into an audience; stops at the first refused one
/// (unknown audience, invalid or duplicate email, bad merge value).
pub fn contacts(
    store: &mut Store,
    list: &str,
    items: impl IntoIterator<Item = SimContact>,
) -> Result<usize, String> {
    let t = now();
    let mut n = 0;
    for (i, c) in items.into_iter().enumerate() {
        let a = store
            .audiences
            .get_mut(list)
            .ok_or_else(|| format!("no audience '{list}'"))?;
        email::check(&c.email, &[])
            .map_err(|_| format!("contact {i}: invalid email '{}'", c.email))?;
        if c.status == Status::Deleted {
            a.forget(&c.email);
            n += 1;
            continue;
        }
        let h = email::hash(&c.email);
        if a.lookup(&h).is_some() {
            return Err(format!(
                "contact {i}: '{}' is already in the audience",
                c.email
            ));
        }
        let values =
            merge::validate(&a.fields, Some(&c.merge_fields), false, true).map_err(|errs| {
                let list: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                format!("contact {i}: {}", list.join("; "))
            })?;
        let id = a
            .insert(h, &c.email, c.status, values, t)
            .ok_or("too many contacts")?;
        for name in &c.tags {
            let a = store.audiences.get_mut(list).ok_or("audience vanished")?;
            let seg = match a.tag_by_name(name) {
                Some(s) => s,
                None => store
                    .create_segment(list, name, SegKind::Static, BTreeSet::new())
                    .ok_or("audience vanished")?,
            };
            if let Some(s) = store
                .audiences
                .get_mut(list)
                .and_then(|a| a.segments.get_mut(&seg))
            {
                s.members.insert(id);
            }
        }
        n += 1;
    }
    Ok(n)
}

/// Records emails as permanently deleted (present contacts are deleted).
pub fn forget(store: &mut Store, list: &str, emails: &[String]) -> Result<(), String> {
    let a = store
        .audiences
        .get_mut(list)
        .ok_or_else(|| format!("no audience '{list}'"))?;
    for e in emails {
        a.forget(e);
    }
    Ok(())
}

/// Creates a segment. A static one holds the present contacts among
/// `emails` (others are ignored); a saved one is empty.
pub fn segment(
    store: &mut Store,
    list: &str,
    name: &str,
    kind: SegKind,
    emails: &[String],
) -> Result<u64, String> {
    let a = store
        .audiences
        .get(list)
        .ok_or_else(|| format!("no audience '{list}'"))?;
    if a.segment_named(name).is_some() {
        return Err(format!("a segment named '{name}' exists"));
    }
    let members: BTreeSet<u32> = emails
        .iter()
        .filter_map(|e| a.lookup_email(e))
        .filter(|id| a.contact(*id).is_some_and(|c| c.status.is_present()))
        .collect();
    store
        .create_segment(list, name, kind, members)
        .ok_or_else(|| format!("no audience '{list}'"))
}

/// Adds contacts to a static segment by id order without the API (seeding
/// large segments). Returns how many were added.
pub fn add_to_segment(
    store: &mut Store,
    list: &str,
    seg: u64,
    emails: &[String],
) -> Result<usize, String> {
    let a = store
        .audiences
        .get_mut(list)
        .ok_or_else(|| format!("no audience '{list}'"))?;
    let ids: Vec<u32> = emails.iter().filter_map(|e| a.lookup_email(e)).collect();
    let s = a
        .segments
        .get_mut(&seg)
        .ok_or_else(|| format!("no segment {seg}"))?;
    let added = ids.into_iter().filter(|id| s.members.insert(*id)).count();
    a.touch();
    Ok(added)
}

/// A segment's members in every status, as emails in contact order, from
/// `offset`, at most `limit`; plus the total.
pub fn segment_members(
    store: &Store,
    list: &str,
    seg: u64,
    offset: usize,
    limit: usize,
) -> Option<(Vec<String>, usize)> {
    let a = store.audiences.get(list)?;
    let s = a.segments.get(&seg)?;
    let emails = s
        .members
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|id| a.contact(*id).map(|c| c.email.to_string()))
        .collect();
    Some((emails, s.members.len()))
}

/// A contact by email (case-insensitive), in any present or archived status.
pub fn contact(store: &Store, list: &str, email_address: &str) -> Option<SimContact> {
    let a = store.audiences.get(list)?;
    let id = a.lookup_email(email_address)?;
    let c = a.contact(id)?;
    let mut merge_fields = Map::new();
    for (ix, v) in c.merge.iter() {
        if let Some(f) = a.fields.get(usize::from(*ix)) {
            merge_fields.insert(f.tag.clone(), v.clone());
        }
    }
    Some(SimContact {
        email: c.email.to_string(),
        status: c.status,
        merge_fields,
        tags: a
            .tags_of(id)
            .into_iter()
            .map(|(_, n)| n.to_string())
            .collect(),
    })
}

/// Changes a contact's status as a person or a marketer would outside the
/// API (`Deleted` deletes it permanently). False if there is no such contact.
pub fn set_status(store: &mut Store, list: &str, email_address: &str, status: Status) -> bool {
    let Some(a) = store.audiences.get_mut(list) else {
        return false;
    };
    let Some(id) = a.lookup_email(email_address) else {
        return false;
    };
    if status == Status::Deleted {
        return a.delete_permanently(id);
    }
    if let Some(c) = a.contact_mut(id) {
        c.status = status;
        c.changed = now();
    }
    a.touch();
    true
}

/// Removes contacts from a segment without the API (a marketer untagging by
/// hand). Returns how many were members.
pub fn remove_from_segment(
    store: &mut Store,
    list: &str,
    seg: u64,
    emails: &[String],
) -> Result<usize, String> {
    let a = store
        .audiences
        .get_mut(list)
        .ok_or_else(|| format!("no audience '{list}'"))?;
    let ids: Vec<u32> = emails.iter().filter_map(|e| a.lookup_email(e)).collect();
    let s = a
        .segments
        .get_mut(&seg)
        .ok_or_else(|| format!("no segment {seg}"))?;
    let removed = ids.into_iter().filter(|id| s.members.remove(id)).count();
    a.touch();
    Ok(removed)
}

/// Whether an email is recorded as permanently deleted.
pub fn is_forgotten(store: &Store, list: &str, email_address: &str) -> bool {
    store
        .audiences
        .get(list)
        .is_some_and(|a| a.is_forgotten(&email::hash(email_address)))
}
