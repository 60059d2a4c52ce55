//! Members: upsert (`PUT`), create, read, update, archive, permanent
//! delete, tags and the audience's member list, and the member write that
//! batch subscribe shares (facts §2, §8).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::api::Ctx;
use crate::email::{self, Refusal};
use crate::merge;
use crate::render;
use crate::reply::{FieldError, Reply};
use crate::request::{paging, Req};
use crate::store::{now, Audience, SegKind, Status, Store};

/// What a member write carries.
#[derive(Debug, Default)]
pub(crate) struct Input {
    pub email: Option<String>,
    pub status: Option<Status>,
    pub status_if_new: Option<Status>,
    pub merge: Option<Map<String, Value>>,
    pub vip: Option<bool>,
    pub language: Option<String>,
    /// Batch subscribe only (`PUT` has no `tags` field and ignores one).
    pub tags: Option<Vec<String>>,
}

/// How a write treats an existing contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `PUT`: create or update.
    Upsert,
    /// `POST …/members`: create only.
    Create,
    /// `PATCH`: update only.
    Update,
    /// `POST /lists/{id}`: create, and update only with `update_existing`.
    Batch { update_existing: bool },
}

/// Why a write was refused.
#[derive(Debug)]
pub(crate) enum Refused {
    Email(Refusal, String),
    Forgotten(String),
    Compliance(String),
    Exists(String),
    Merge(Vec<FieldError>),
    NotFound,
}

impl Refused {
    /// The `PUT`/`PATCH`/`POST` answer.
    fn reply(self) -> Reply {
        match self {
            Refused::Email(r, e) => {
                Reply::problem(StatusCode::BAD_REQUEST, "Invalid Resource", &r.message(&e))
            }
            Refused::Forgotten(e) => Reply::problem(
                StatusCode::BAD_REQUEST,
                "Forgotten Email Not Subscribed",
                &forgotten(&e),
            ),
            Refused::Compliance(e) => Reply::problem(
                StatusCode::BAD_REQUEST,
                "Member In Compliance State",
                &compliance(&e),
            ),
            Refused::Exists(e) => Reply::problem(
                StatusCode::BAD_REQUEST,
                "Member Exists",
                &format!("{e} is already a list member. Use PUT to insert or update list members."),
            ),
            Refused::Merge(errors) => Reply::invalid("Your merge fields were invalid.", errors),
            Refused::NotFound => Reply::not_found(),
        }
    }

    /// The counter name of the refusal.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Refused::Email(Refusal::Invalid, _) => "invalid_email",
            Refused::Email(Refusal::Fake, _) => "fake_email",
            Refused::Forgotten(_) => "forgotten_email",
            Refused::Compliance(_) => "compliance_state",
            Refused::Exists(_) => "contact_exists",
            Refused::Merge(_) => "merge_fields",
            Refused::NotFound => "not_found",
        }
    }
}

pub(crate) fn compliance(email: &str) -> String {
    format!("{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.")
}

pub(crate) fn forgotten(email: &str) -> String {
    format!("{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.")
}

fn status_field(
    v: Option<&Value>,
    field: &str,
    allow_transactional: bool,
) -> Result<Option<Status>, Reply> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match Status::parse_write(s) {
            Some(Status::Transactional) if !allow_transactional => Err(bad_status(field)),
            Some(st) => Ok(Some(st)),
            None => Err(bad_status(field)),
        },
        Some(_) => Err(bad_status(field)),
    }
}

fn bad_status(field: &str) -> Reply {
    Reply::schema(
        field,
        "Value is not one of the allowed values: subscribed, unsubscribed, cleaned, pending, transactional.",
    )
}

/// Reads a member body. `need_status`: `status` or `status_if_new` required.
pub(crate) fn parse(
    v: &Value,
    need_email: bool,
    need_status: bool,
    patch: bool,
) -> Result<Input, Reply> {
    let Value::Object(m) = v else {
        return Err(Reply::bad_json());
    };
    let email = match m.get("email_address") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Reply::schema("email_address", "Value must be a string.")),
    };
    if need_email && email.is_none() {
        return Err(Reply::schema(
            "email_address",
            "This value should not be blank.",
        ));
    }
    let status = status_field(m.get("status"), "status", !patch)?;
    let status_if_new = status_field(m.get("status_if_new"), "status_if_new", true)?;
    if need_status && status.is_none() && status_if_new.is_none() {
        return Err(Reply::schema(
            "status",
            "The resource must have a status or status_if_new.",
        ));
    }
    let merge = match m.get("merge_fields") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => return Err(Reply::schema("merge_fields", "Value must be an object.")),
    };
    let vip = match m.get("vip") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(Reply::schema("vip", "Value must be a boolean.")),
    };
    // `ip_signup` and `ip_opt` must be IP addresses (facts §2).
    for k in ["ip_signup", "ip_opt"] {
        match m.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::String(ip)) if ip.is_empty() || ip.parse::<std::net::IpAddr>().is_ok() => {}
            Some(_) => return Err(Reply::schema(k, "This value is not a valid IP address.")),
        }
    }
    let language = m
        .get("language")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tags = match m.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut names = Vec::new();
            for t in a {
                match t.as_str() {
                    Some(n) if !n.trim().is_empty() => names.push(n.trim().to_string()),
                    _ => {
                        return Err(Reply::schema(
                            "tags",
                            "Each tag must be a non-empty string.",
                        ))
                    }
                }
            }
            Some(names)
        }
        Some(_) => return Err(Reply::schema("tags", "Value must be an array.")),
    };
    Ok(Input {
        email,
        status,
        status_if_new,
        merge,
        vip,
        language,
        tags,
    })
}

/// A write's result: the contact id and whether it was created.
type Written = (u32, bool);

/// Applies one member write to an audience.
pub(crate) fn write(
    a: &mut Audience,
    input: &Input,
    mode: Mode,
    existing: Option<u32>,
    skip_merge: bool,
    fake_domains: &[String],
) -> Result<Written, Refused> {
    let t = now();
    let found = match (mode, existing) {
        (Mode::Update, Some(id)) => Some(id),
        (Mode::Update, None) => return Err(Refused::NotFound),
        _ => {
            let e = input.email.as_deref().unwrap_or_default();
            email::check(e, fake_domains).map_err(|r| Refused::Email(r, e.to_string()))?;
            let h = email::hash(e);
            if a.is_forgotten(&h) {
                return Err(Refused::Forgotten(e.to_string()));
            }
            a.lookup(&h)
        }
    };
    let present = found
        .and_then(|id| a.contact(id))
        .map(|c| (c.status, c.email.to_string()));
    match (found, present) {
        (Some(id), Some((current, addr))) if current.is_present() => {
            let wanted = match mode {
                Mode::Batch { .. } => input.status.or(input.status_if_new),
                _ => input.status,
            };
            if wanted.is_some_and(|w| !current.may_become(w)) {
                return Err(Refused::Compliance(addr));
            }
            if matches!(
                mode,
                Mode::Create
                    | Mode::Batch {
                        update_existing: false
                    }
            ) {
                return Err(Refused::Exists(addr));
            }
            let values = merge::validate(&a.fields, input.merge.as_ref(), false, skip_merge)
                .map_err(Refused::Merge)?;
            a.set_merge(id, values);
            if let Some(c) = a.contact_mut(id) {
                if let Some(s) = input.status {
                    c.status = s;
                }
                apply_extras(c, input);
                c.changed = t;
            }
            a.touch();
            Ok((id, false))
        }
        (Some(id), Some(_)) => {
            // Archived: a status brings the contact back (facts §8); a PATCH
            // without one only updates its fields.
            let status = match mode {
                Mode::Update => input.status,
                _ => input.status.or(input.status_if_new),
            };
            let values = merge::validate(
                &a.fields,
                input.merge.as_ref(),
                status.is_some(),
                skip_merge,
            )
            .map_err(Refused::Merge)?;
            a.set_merge(id, values);
            if let Some(c) = a.contact_mut(id) {
                if let Some(s) = status {
                    c.status = s;
                }
                apply_extras(c, input);
                c.changed = t;
            }
            a.touch();
            Ok((id, status.is_some()))
        }
        _ => {
            let e = input.email.as_deref().unwrap_or_default();
            let status = input
                .status
                .or(input.status_if_new)
                .unwrap_or(Status::Subscribed);
            let values = merge::validate(&a.fields, input.merge.as_ref(), true, skip_merge)
                .map_err(Refused::Merge)?;
            let mut all = merge::defaults(&a.fields, &values);
            all.extend(values);
            all.sort_by_key(|(i, _)| *i);
            let id = a
                .insert(email::hash(e), e, status, all, t)
                .ok_or(Refused::NotFound)?;
            if let Some(c) = a.contact_mut(id) {
                apply_extras(c, input);
            }
            Ok((id, true))
        }
    }
}

fn apply_extras(c: &mut crate::store::Contact, input: &Input) {
    if let Some(v) = input.vip {
        c.vip = v;
    }
    if let Some(l) = &input.language {
        c.language = l.as_str().into();
    }
}

/// Sets tags by name (creating static segments as needed); `sync` removes
/// the contact from every other static segment.
pub(crate) fn set_tags(store: &mut Store, list: &str, id: u32, names: &[String], sync: bool) {
    for name in names {
        let existing = store.audiences.get(list).and_then(|a| a.tag_by_name(name));
        let seg = match existing {
            Some(s) => Some(s),
            None => store.create_segment(list, name, SegKind::Static, BTreeSet::new()),
        };
        if let (Some(seg), Some(a)) = (seg, store.audiences.get_mut(list)) {
            if let Some(s) = a.segments.get_mut(&seg) {
                s.members.insert(id);
            }
            a.touch();
        }
    }
    if sync {
        if let Some(a) = store.audiences.get_mut(list) {
            for s in a.segments.values_mut() {
                if s.kind == SegKind::Static && !names.contains(&s.name) {
                    s.members.remove(&id);
                }
            }
            a.touch();
        }
    }
}

/// The contact a path's subscriber hash names, if present (archived included).
fn by_hash(a: &Audience, h: &str) -> Option<u32> {
    let hash = email::parse_hex(h)?;
    a.lookup(&hash)
}

/// `PUT /lists/{id}/members/{hash}`.
pub fn put(
    list: &str,
    h: &str,
    req: &Req,
    store: &mut Store,
    ctx: &Ctx<'_>,
) -> Result<Reply, Reply> {
    let body = req.json()?;
    let input = parse(&body, true, true, false)?;
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let e = input.email.clone().unwrap_or_default();
    if email::hash_hex(&e) != h {
        return Err(Reply::invalid(
            "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
            vec![FieldError::new(
                "email_address",
                "The subscriber hash in the URL does not match the email_address in the request body.",
            )],
        ));
    }
    let skip = req.flag("skip_merge_validation");
    let (id, _) = write(a, &input, Mode::Upsert, None, skip, &ctx.cfg.fake_domains)
        .map_err(Refused::reply)?;
    Ok(Reply::json(render::member(a, id, &ctx.base)).with_members(1))
}

/// `POST /lists/{id}/members`: create only.
pub fn create(list: &str, req: &Req, store: &mut Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let body = req.json()?;
    let input = parse(&body, true, false, false)?;
    if input.status.is_none() {
        return Err(Reply::schema("status", "This value should not be blank."));
    }
    let skip = req.flag("skip_merge_validation");
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let (id, _) = write(a, &input, Mode::Create, None, skip, &ctx.cfg.fake_domains)
        .map_err(Refused::reply)?;
    if let Some(names) = &input.tags {
        set_tags(store, list, id, names, false);
    }
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    Ok(Reply::json(render::member(a, id, &ctx.base)).with_members(1))
}

/// `PATCH /lists/{id}/members/{hash}`.
pub fn patch(
    list: &str,
    h: &str,
    req: &Req,
    store: &mut Store,
    ctx: &Ctx<'_>,
) -> Result<Reply, Reply> {
    let body = req.json()?;
    let input = parse(&body, false, false, true)?;
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let id = by_hash(a, h).ok_or_else(Reply::not_found)?;
    let skip = req.flag("skip_merge_validation");
    write(
        a,
        &input,
        Mode::Update,
        Some(id),
        skip,
        &ctx.cfg.fake_domains,
    )
    .map_err(Refused::reply)?;
    Ok(Reply::json(render::member(a, id, &ctx.base)).with_members(1))
}

/// `GET /lists/{id}/members/{hash}`: archived contacts too, not deleted ones.
pub fn get(list: &str, h: &str, store: &Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    let id = by_hash(a, h).ok_or_else(Reply::not_found)?;
    Ok(Reply::json(render::member(a, id, &ctx.base)).with_members(1))
}

/// `DELETE /lists/{id}/members/{hash}`: archive, 204. An archived contact is
/// not found (a retried archive answers 404).
pub fn archive(list: &str, h: &str, store: &mut Store) -> Result<Reply, Reply> {
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let id = by_hash(a, h).ok_or_else(Reply::not_found)?;
    let c = a.contact_mut(id).ok_or_else(Reply::not_found)?;
    if !c.status.is_present() {
        return Err(Reply::not_found());
    }
    c.status = Status::Archived;
    c.changed = now();
    a.touch();
    Ok(Reply::no_content().with_members(1))
}

/// `POST …/actions/delete-permanent`: 204; the email can never come back.
pub fn delete_permanent(list: &str, h: &str, store: &mut Store) -> Result<Reply, Reply> {
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let id = by_hash(a, h).ok_or_else(Reply::not_found)?;
    if a.delete_permanently(id) {
        Ok(Reply::no_content().with_members(1))
    } else {
        Err(Reply::not_found())
    }
}

/// `POST /lists/{id}/members/{hash}/tags`: only the named tags change; 204.
pub fn tags(list: &str, h: &str, req: &Req, store: &mut Store) -> Result<Reply, Reply> {
    let body = req.json()?;
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    let id = by_hash(a, h).ok_or_else(Reply::not_found)?;
    if !a.contact(id).is_some_and(|c| c.status.is_present()) {
        return Err(Reply::not_found());
    }
    let Some(Value::Array(items)) = body.get("tags") else {
        return Err(Reply::schema("tags", "This value should not be blank."));
    };
    let mut changes = Vec::new();
    for t in items {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        let active = match t.get("status").and_then(Value::as_str) {
            Some("active") => true,
            Some("inactive") => false,
            _ => {
                return Err(Reply::schema(
                    "tags.status",
                    "Value is not one of the allowed values: active, inactive.",
                ))
            }
        };
        if name.is_empty() {
            return Err(Reply::schema(
                "tags.name",
                "This value should not be blank.",
            ));
        }
        changes.push((name.to_string(), active));
    }
    for (name, active) in &changes {
        if *active {
            set_tags(store, list, id, std::slice::from_ref(name), false);
        } else if let Some(a) = store.audiences.get_mut(list) {
            if let Some(seg) = a.tag_by_name(name) {
                if let Some(s) = a.segments.get_mut(&seg) {
                    s.members.remove(&id);
                }
                a.touch();
            }
        }
    }
    Ok(Reply::no_content().with_members(1))
}

/// `GET /lists/{id}/members`: `count` ≤ 1000, `offset`, `status` (archived
/// included only when asked for). Creation order.
pub fn list(list: &str, req: &Req, store: &mut Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let (count, offset) = paging(req, ctx.cfg.max_count)?;
    let filter = match req.param("status") {
        None => None,
        Some(s) => Some(Status::parse_any(s).ok_or_else(|| {
            Reply::schema("status", "Value is not one of the allowed values: subscribed, unsubscribed, cleaned, pending, transactional, archived.")
        })?),
    };
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let key = filter.map_or(0, |s| s as u64 + 1);
    let (ids, total) = a.page_contacts(
        |st| match filter {
            Some(f) => st == f,
            None => st.is_present(),
        },
        key,
        offset,
        count,
    );
    let members: Vec<Value> = ids
        .iter()
        .map(|id| render::member(a, *id, &ctx.base))
        .collect();
    let n = members.len();
    Ok(Reply::json(json!({
        "members": members,
        "list_id": a.id,
        "total_items": total,
        "_links": [],
    }))
    .with_members(n))
}
