//! Segments; static segments are tags (facts §5): list, create, read,
//! batch add/remove (≤ 500 each), replace (`PATCH`), delete, and the
//! members read with its `include_*` flags.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::api::Ctx;
use crate::email;
use crate::render;
use crate::reply::Reply;
use crate::request::{paging, Req};
use crate::store::{now, Audience, Include, SegKind, Store};

fn include(req: &Req) -> Include {
    Include {
        cleaned: req.flag("include_cleaned"),
        transactional: req.flag("include_transactional"),
        unsubscribed: req.flag("include_unsubscribed"),
    }
}

/// An array of email strings, at most `max`.
fn emails(body: &Value, field: &str, max: usize) -> Result<Option<Vec<String>>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => {
            if a.len() > max {
                return Err(Reply::schema(
                    field,
                    &format!(
                        "Schema describes array, maximum {max} items, but {} were provided.",
                        a.len()
                    ),
                ));
            }
            a.iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        Reply::schema(field, "Each item must be an email address string.")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Some(_) => Err(Reply::schema(field, "Value must be an array.")),
    }
}

/// The ids of present contacts among `emails` (others are ignored).
fn present_ids(a: &Audience, emails: &[String]) -> BTreeSet<u32> {
    emails
        .iter()
        .filter_map(|e| a.lookup_email(e))
        .filter(|id| a.contact(*id).is_some_and(|c| c.status.is_present()))
        .collect()
}

fn static_only(seg: u64) -> Reply {
    Reply::problem(
        StatusCode::BAD_REQUEST,
        "Invalid Resource",
        &format!("A Static Segment with an id of {seg} does not exist"),
    )
}

/// `GET /lists/{id}/segments`: `type` (static, saved, fuzzy), `count`, `offset`.
pub fn list(list: &str, req: &Req, store: &Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let (count, offset) = paging(req, ctx.cfg.max_count)?;
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    let kind = match req.param("type") {
        None => None,
        Some("static") => Some(SegKind::Static),
        Some("saved") => Some(SegKind::Saved),
        Some("fuzzy") => {
            return Ok(Reply::json(
                json!({"segments": [], "list_id": a.id, "total_items": 0, "_links": []}),
            ))
        }
        Some(_) => {
            return Err(Reply::schema(
                "type",
                "Value is not one of the allowed values: saved, static, fuzzy.",
            ))
        }
    };
    let inc = include(req);
    let matching: Vec<_> = a
        .segments
        .values()
        .filter(|s| kind.is_none_or(|k| s.kind == k))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(count)
        .map(|s| render::segment(a, s, inc, &ctx.base))
        .collect();
    Ok(Reply::json(json!({
        "segments": page,
        "list_id": a.id,
        "total_items": matching.len(),
        "_links": [],
    })))
}

/// `POST /lists/{id}/segments`: `{name, static_segment:[emails]}` makes a
/// tag (emails not in the audience are ignored), `{name, options}` a saved
/// segment; neither is refused, and so is a name already in use.
pub fn create(list: &str, req: &Req, store: &mut Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let body = req.json()?;
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
        _ => return Err(Reply::schema("name", "This value should not be blank.")),
    };
    let statics = emails(&body, "static_segment", ctx.cfg.max_batch)?;
    let options = body.get("options").filter(|o| o.is_object());
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    if a.segment_named(&name).is_some() {
        return Err(Reply::problem(
            StatusCode::BAD_REQUEST,
            "Invalid Resource",
            &format!("A segment or tag named \"{name}\" already exists in this audience."),
        ));
    }
    let (kind, members, carried) = match (statics, options) {
        (Some(list_emails), _) => (
            SegKind::Static,
            present_ids(a, &list_emails),
            list_emails.len(),
        ),
        (None, Some(_)) => (SegKind::Saved, BTreeSet::new(), 0),
        (None, None) => {
            return Err(Reply::schema(
                "static_segment",
                "Either static_segment or options is required.",
            ));
        }
    };
    let id = store
        .create_segment(list, &name, kind, members)
        .ok_or_else(Reply::not_found)?;
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    let s = a.segments.get(&id).ok_or_else(Reply::not_found)?;
    Ok(Reply::json(render::segment(a, s, Include::default(), &ctx.base)).with_members(carried))
}

/// `GET /lists/{id}/segments/{seg}`.
pub fn get(list: &str, seg: u64, req: &Req, store: &Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    let s = a.segments.get(&seg).ok_or_else(Reply::not_found)?;
    Ok(Reply::json(render::segment(a, s, include(req), &ctx.base)))
}

/// `DELETE /lists/{id}/segments/{seg}`: 204.
pub fn delete(list: &str, seg: u64, store: &mut Store) -> Result<Reply, Reply> {
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    a.segments.remove(&seg).ok_or_else(Reply::not_found)?;
    a.touch();
    Ok(Reply::no_content())
}

/// `PATCH /lists/{id}/segments/{seg}`: `name`, and `static_segment` replaces
/// every member.
pub fn patch(
    list: &str,
    seg: u64,
    req: &Req,
    store: &mut Store,
    ctx: &Ctx<'_>,
) -> Result<Reply, Reply> {
    let body = req.json()?;
    let statics = emails(&body, "static_segment", ctx.cfg.max_batch)?;
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if !n.trim().is_empty() => Some(n.trim().to_string()),
        Some(_) => return Err(Reply::schema("name", "This value should not be blank.")),
    };
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let kind = a.segments.get(&seg).ok_or_else(Reply::not_found)?.kind;
    if statics.is_some() && kind != SegKind::Static {
        return Err(static_only(seg));
    }
    if let Some(n) = &name {
        if a.segment_named(n).is_some_and(|other| other != seg) {
            return Err(Reply::problem(
                StatusCode::BAD_REQUEST,
                "Invalid Resource",
                &format!("A segment or tag named \"{n}\" already exists in this audience."),
            ));
        }
    }
    let members = statics.as_ref().map(|e| present_ids(a, e));
    let carried = statics.map_or(0, |e| e.len());
    let s = a.segments.get_mut(&seg).ok_or_else(Reply::not_found)?;
    if let Some(n) = name {
        s.name = n;
    }
    if let Some(m) = members {
        s.members = m;
    }
    s.updated = now();
    a.touch();
    let s = a.segments.get(&seg).ok_or_else(Reply::not_found)?;
    Ok(Reply::json(render::segment(a, s, Include::default(), &ctx.base)).with_members(carried))
}

/// `POST /lists/{id}/segments/{seg}`: `members_to_add`, `members_to_remove`
/// (≤ 500 each). Contacts not in the audience, adds of members and removes
/// of non-members are ignored; malformed addresses come back in `errors`,
/// grouped by message.
pub fn batch(
    list: &str,
    seg: u64,
    req: &Req,
    store: &mut Store,
    ctx: &Ctx<'_>,
) -> Result<Reply, Reply> {
    let body = req.json()?;
    let max = ctx.cfg.max_batch;
    let adds = emails(&body, "members_to_add", max)?.unwrap_or_default();
    let removes = emails(&body, "members_to_remove", max)?.unwrap_or_default();
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    match a.segments.get(&seg).map(|s| s.kind) {
        None => return Err(Reply::not_found()),
        Some(SegKind::Saved) => return Err(static_only(seg)),
        Some(SegKind::Static) => {}
    }
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut resolve = |list: &[String], a: &Audience| -> Vec<u32> {
        let mut ids = Vec::new();
        for e in list {
            if let Err(r) = email::check(e, &[]) {
                errors.entry(r.message(e)).or_default().push(e.clone());
                continue;
            }
            if let Some(id) = a
                .lookup_email(e)
                .filter(|id| a.contact(*id).is_some_and(|c| c.status.is_present()))
            {
                ids.push(id);
            }
        }
        ids
    };
    let add_ids = resolve(&adds, a);
    let remove_ids = resolve(&removes, a);
    let s = a.segments.get_mut(&seg).ok_or_else(Reply::not_found)?;
    let added: Vec<u32> = add_ids
        .into_iter()
        .filter(|id| s.members.insert(*id))
        .collect();
    let removed: Vec<u32> = remove_ids
        .into_iter()
        .filter(|id| s.members.remove(id))
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        s.updated = now();
        a.touch();
    }
    let fields = req.list("fields");
    let render_all = |ids: &[u32], key: &str| render::members_for(a, ids, key, &fields, &ctx.base);
    let errs: Vec<Value> = errors
        .into_iter()
        .map(|(error, emails)| json!({"email_addresses": emails, "error": error}))
        .collect();
    let error_count: usize = errs
        .iter()
        .map(|e| e["email_addresses"].as_array().map_or(0, Vec::len))
        .sum();
    let mut reply = Reply::json(json!({
        "members_added": render_all(&added, "members_added"),
        "members_removed": render_all(&removed, "members_removed"),
        "errors": errs,
        "total_added": added.len(),
        "total_removed": removed.len(),
        "error_count": error_count,
        "_links": [],
    }))
    .with_members(adds.len() + removes.len());
    reply.record_errors = vec!["invalid_email"; error_count];
    Ok(reply)
}

/// `GET /lists/{id}/segments/{seg}/members`: `count` ≤ 1000, `offset`;
/// unsubscribed, cleaned and transactional members only when asked for.
pub fn members(
    list: &str,
    seg: u64,
    req: &Req,
    store: &mut Store,
    ctx: &Ctx<'_>,
) -> Result<Reply, Reply> {
    let (count, offset) = paging(req, ctx.cfg.max_count)?;
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let (ids, total) = a
        .page_segment(seg, include(req), offset, count)
        .ok_or_else(Reply::not_found)?;
    let members: Vec<Value> = ids
        .iter()
        .map(|id| render::member(a, *id, &ctx.base))
        .collect();
    let n = members.len();
    Ok(
        Reply::json(json!({"members": members, "total_items": total, "_links": []}))
            .with_members(n),
    )
}

/// `POST /lists/{id}/segments/{seg}/members {email_address}`: one add.
pub fn add_member(
    list: &str,
    seg: u64,
    req: &Req,
    store: &mut Store,
    ctx: &Ctx<'_>,
) -> Result<Reply, Reply> {
    let body = req.json()?;
    let Some(e) = body.get("email_address").and_then(Value::as_str) else {
        return Err(Reply::schema(
            "email_address",
            "This value should not be blank.",
        ));
    };
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    match a.segments.get(&seg).map(|s| s.kind) {
        None => return Err(Reply::not_found()),
        Some(SegKind::Saved) => return Err(static_only(seg)),
        Some(SegKind::Static) => {}
    }
    let id = a
        .lookup_email(e)
        .filter(|id| a.contact(*id).is_some_and(|c| c.status.is_present()))
        .ok_or_else(Reply::not_found)?;
    if let Some(s) = a.segments.get_mut(&seg) {
        s.members.insert(id);
        s.updated = now();
    }
    a.touch();
    Ok(Reply::json(render::member(a, id, &ctx.base)).with_members(1))
}

/// `DELETE /lists/{id}/segments/{seg}/members/{hash}`: 204; 404 when the
/// contact is not in the segment.
pub fn remove_member(list: &str, seg: u64, h: &str, store: &mut Store) -> Result<Reply, Reply> {
    let a = store.audiences.get_mut(list).ok_or_else(Reply::not_found)?;
    let hash = email::parse_hex(h).ok_or_else(Reply::not_found)?;
    let id = a.lookup(&hash).ok_or_else(Reply::not_found)?;
    let s = a.segments.get_mut(&seg).ok_or_else(Reply::not_found)?;
    if s.kind != SegKind::Static {
        return Err(static_only(seg));
    }
    if !s.members.remove(&id) {
        return Err(Reply::not_found());
    }
    s.updated = now();
    a.touch();
    Ok(Reply::no_content().with_members(1))
}
