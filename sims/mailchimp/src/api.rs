//! Routing of `/3.0` paths, and the account, ping and audience handlers.
//! Members and segments live in their own modules.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::batch;
use crate::config::SimConfig;
use crate::members;
use crate::render;
use crate::reply::Reply;
use crate::request::{paging, Req};
use crate::segments;
use crate::store::Store;

/// What one call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Root,
    Ping,
    Lists,
    List(String),
    BatchSubscribe(String),
    MergeFields(String),
    Members(String),
    CreateMember(String),
    Member(String, String),
    PutMember(String, String),
    PatchMember(String, String),
    ArchiveMember(String, String),
    DeletePermanent(String, String),
    MemberTags(String, String),
    Segments(String),
    CreateSegment(String),
    Segment(String, u64),
    BatchSegment(String, u64),
    PatchSegment(String, u64),
    DeleteSegment(String, u64),
    SegmentMembers(String, u64),
    AddSegmentMember(String, u64),
    RemoveSegmentMember(String, u64, String),
}

impl Route {
    /// The counter name of the operation.
    pub fn op(&self) -> &'static str {
        match self {
            Route::Root => "root",
            Route::Ping => "ping",
            Route::Lists => "get_lists",
            Route::List(_) => "get_list",
            Route::BatchSubscribe(_) => "batch_subscribe",
            Route::MergeFields(_) => "get_merge_fields",
            Route::Members(_) => "get_members",
            Route::CreateMember(_) => "create_member",
            Route::Member(..) => "get_member",
            Route::PutMember(..) => "put_member",
            Route::PatchMember(..) => "patch_member",
            Route::ArchiveMember(..) => "archive_member",
            Route::DeletePermanent(..) => "delete_permanent",
            Route::MemberTags(..) => "member_tags",
            Route::Segments(_) => "get_segments",
            Route::CreateSegment(_) => "create_segment",
            Route::Segment(..) => "get_segment",
            Route::BatchSegment(..) => "batch_segment",
            Route::PatchSegment(..) => "update_segment",
            Route::DeleteSegment(..) => "delete_segment",
            Route::SegmentMembers(..) => "get_segment_members",
            Route::AddSegmentMember(..) => "add_segment_member",
            Route::RemoveSegmentMember(..) => "remove_segment_member",
        }
    }
}

/// Why a path has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// 404: nothing lives here.
    NotFound,
    /// 405: the path exists, not with this method.
    Method,
}

/// Maps a method and a path under `/3.0` to a route and its template.
pub fn route(method: &Method, path: &str) -> Result<(Route, String), NoRoute> {
    let rest = path
        .strip_prefix("/3.0")
        .ok_or(NoRoute::NotFound)?
        .trim_end_matches('/');
    let segs: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.strip_prefix('/')
            .ok_or(NoRoute::NotFound)?
            .split('/')
            .collect()
    };
    if segs.iter().any(|s| s.is_empty()) {
        return Err(NoRoute::NotFound);
    }
    let m = |allowed: &[Method]| {
        if allowed.contains(method) {
            Ok(())
        } else {
            Err(NoRoute::Method)
        }
    };
    let s = |x: &str| x.to_string();
    let seg_id = |x: &str| x.parse::<u64>().map_err(|_| NoRoute::NotFound);
    use Method as M;
    let r = match segs.as_slice() {
        [] => {
            m(&[M::GET])?;
            (Route::Root, "/3.0/")
        }
        ["ping"] => {
            m(&[M::GET])?;
            (Route::Ping, "/3.0/ping")
        }
        ["lists"] => {
            m(&[M::GET])?;
            (Route::Lists, "/3.0/lists")
        }
        ["lists", id] => {
            m(&[M::GET, M::POST])?;
            let r = if method == M::GET {
                Route::List(s(id))
            } else {
                Route::BatchSubscribe(s(id))
            };
            (r, "/3.0/lists/{list_id}")
        }
        ["lists", id, "merge-fields"] => {
            m(&[M::GET])?;
            (
                Route::MergeFields(s(id)),
                "/3.0/lists/{list_id}/merge-fields",
            )
        }
        ["lists", id, "members"] => {
            m(&[M::GET, M::POST])?;
            let r = if method == M::GET {
                Route::Members(s(id))
            } else {
                Route::CreateMember(s(id))
            };
            (r, "/3.0/lists/{list_id}/members")
        }
        ["lists", id, "members", h] => {
            m(&[M::GET, M::PUT, M::PATCH, M::DELETE])?;
            let (id, h) = (s(id), s(h));
            let r = match *method {
                M::GET => Route::Member(id, h),
                M::PUT => Route::PutMember(id, h),
                M::PATCH => Route::PatchMember(id, h),
                _ => Route::ArchiveMember(id, h),
            };
            (r, "/3.0/lists/{list_id}/members/{subscriber_hash}")
        }
        ["lists", id, "members", h, "tags"] => {
            m(&[M::POST])?;
            (
                Route::MemberTags(s(id), s(h)),
                "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            )
        }
        ["lists", id, "members", h, "actions", "delete-permanent"] => {
            m(&[M::POST])?;
            (
                Route::DeletePermanent(s(id), s(h)),
                "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            )
        }
        ["lists", id, "segments"] => {
            m(&[M::GET, M::POST])?;
            let r = if method == M::GET {
                Route::Segments(s(id))
            } else {
                Route::CreateSegment(s(id))
            };
            (r, "/3.0/lists/{list_id}/segments")
        }
        ["lists", id, "segments", seg] => {
            let seg = seg_id(seg)?;
            m(&[M::GET, M::POST, M::PATCH, M::DELETE])?;
            let id = s(id);
            let r = match *method {
                M::GET => Route::Segment(id, seg),
                M::POST => Route::BatchSegment(id, seg),
                M::PATCH => Route::PatchSegment(id, seg),
                _ => Route::DeleteSegment(id, seg),
            };
            (r, "/3.0/lists/{list_id}/segments/{segment_id}")
        }
        ["lists", id, "segments", seg, "members"] => {
            let seg = seg_id(seg)?;
            m(&[M::GET, M::POST])?;
            let r = if method == M::GET {
                Route::SegmentMembers(s(id), seg)
            } else {
                Route::AddSegmentMember(s(id), seg)
            };
            (r, "/3.0/lists/{list_id}/segments/{segment_id}/members")
        }
        ["lists", id, "segments", seg, "members", h] => {
            let seg = seg_id(seg)?;
            m(&[M::DELETE])?;
            (
                Route::RemoveSegmentMember(s(id), seg, s(h)),
                "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
            )
        }
        _ => return Err(NoRoute::NotFound),
    };
    Ok((r.0, r.1.to_string()))
}

/// What a handler needs besides the request.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub cfg: &'a SimConfig,
    /// `http://127.0.0.1:PORT/3.0`, for `_links`.
    pub base: String,
}

/// Runs one routed call against the store.
pub fn handle(route: &Route, req: &Req, store: &mut Store, ctx: &Ctx<'_>) -> Reply {
    let reply = match route {
        Route::Root => Ok(root(store, ctx)),
        Route::Ping => Ok(Reply::json(
            json!({"health_status": "Everything's Chimpy!"}),
        )),
        Route::Lists => lists(req, store, ctx),
        Route::List(id) => match store.audiences.get(id) {
            Some(a) => Ok(Reply::json(render::audience(a, &ctx.base))),
            None => Err(Reply::not_found()),
        },
        Route::MergeFields(id) => merge_fields(id, req, store, ctx),
        Route::BatchSubscribe(id) => batch::subscribe(id, req, store, ctx),
        Route::Members(id) => members::list(id, req, store, ctx),
        Route::CreateMember(id) => members::create(id, req, store, ctx),
        Route::Member(id, h) => members::get(id, h, store, ctx),
        Route::PutMember(id, h) => members::put(id, h, req, store, ctx),
        Route::PatchMember(id, h) => members::patch(id, h, req, store, ctx),
        Route::ArchiveMember(id, h) => members::archive(id, h, store),
        Route::DeletePermanent(id, h) => members::delete_permanent(id, h, store),
        Route::MemberTags(id, h) => members::tags(id, h, req, store),
        Route::Segments(id) => segments::list(id, req, store, ctx),
        Route::CreateSegment(id) => segments::create(id, req, store, ctx),
        Route::Segment(id, seg) => segments::get(id, *seg, req, store, ctx),
        Route::BatchSegment(id, seg) => segments::batch(id, *seg, req, store, ctx),
        Route::PatchSegment(id, seg) => segments::patch(id, *seg, req, store, ctx),
        Route::DeleteSegment(id, seg) => segments::delete(id, *seg, store),
        Route::SegmentMembers(id, seg) => segments::members(id, *seg, req, store, ctx),
        Route::AddSegmentMember(id, seg) => segments::add_member(id, *seg, req, store, ctx),
        Route::RemoveSegmentMember(id, seg, h) => segments::remove_member(id, *seg, h, store),
    };
    let reply = reply.unwrap_or_else(|e| e);
    // Partial responses apply to JSON answers only.
    match reply.payload {
        crate::reply::Payload::Json(v) if reply.status == StatusCode::OK => {
            let fields = req.list("fields");
            let exclude = req.list("exclude_fields");
            let v = if fields.is_empty() && exclude.is_empty() {
                v
            } else {
                render::partial(v, &fields, &exclude)
            };
            Reply {
                payload: crate::reply::Payload::Json(v),
                ..reply
            }
        }
        _ => reply,
    }
}

fn root(store: &Store, ctx: &Ctx<'_>) -> Reply {
    let total: u64 = store
        .audiences
        .values()
        .map(|a| a.counts().get("subscribed").copied().unwrap_or(0))
        .sum();
    Reply::json(json!({
        "account_id": "0a1b2c3d4e5f60718293a4b5c",
        "login_id": "100001",
        "account_name": "audex sim",
        "email": "owner@audex.invalid",
        "first_name": "Sim",
        "last_name": "Owner",
        "username": "audex-sim",
        "avatar_url": "",
        "role": "owner",
        "member_since": "2020-01-01T00:00:00+00:00",
        "pricing_plan_type": "monthly",
        "first_payment": "2020-01-01T00:00:00+00:00",
        "account_timezone": "UTC",
        "account_industry": "Software",
        "contact": {"company": "audex sim", "addr1": "1 Sim Street", "addr2": "", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
        "pro_enabled": false,
        "last_login": "",
        "total_subscribers": total,
        "industry_stats": {"open_rate": 0, "bounce_rate": 0, "click_rate": 0},
        "_links": [{"rel": "self", "href": format!("{}/", ctx.base), "method": "GET"}],
    }))
}

fn lists(req: &Req, store: &Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let (count, offset) = paging(req, ctx.cfg.max_count)?;
    let lists: Vec<Value> = store
        .audiences
        .values()
        .skip(offset)
        .take(count)
        .map(|a| render::audience(a, &ctx.base))
        .collect();
    Ok(Reply::json(json!({
        "lists": lists,
        "total_items": store.audiences.len(),
        "constraints": {"may_create": true, "max_instances": 100, "current_total_instances": store.audiences.len()},
        "_links": [],
    })))
}

fn merge_fields(id: &str, req: &Req, store: &Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let a = store.audiences.get(id).ok_or_else(Reply::not_found)?;
    let (count, offset) = paging(req, ctx.cfg.max_count)?;
    let want_type = req.param("type");
    let want_required = req
        .param("required")
        .map(|v| v.eq_ignore_ascii_case("true"));
    let matching: Vec<(usize, &crate::config::SimMergeField)> = a
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| want_type.is_none_or(|t| f.field_type.name() == t))
        .filter(|(_, f)| want_required.is_none_or(|r| f.required == r))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(count)
        .map(|(ix, f)| render::merge_field(&a.id, *ix, f))
        .collect();
    Ok(Reply::json(json!({
        "merge_fields": page,
        "list_id": a.id,
        "total_items": matching.len(),
        "_links": [],
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_refusals() {
        let r = route(&Method::PUT, "/3.0/lists/abc/members/0123");
        assert_eq!(
            r,
            Ok((
                Route::PutMember("abc".into(), "0123".into()),
                "/3.0/lists/{list_id}/members/{subscriber_hash}".into()
            ))
        );
        assert_eq!(route(&Method::GET, "/3.0/").map(|r| r.0), Ok(Route::Root));
        assert_eq!(route(&Method::GET, "/3.0").map(|r| r.0), Ok(Route::Root));
        assert_eq!(route(&Method::POST, "/3.0/ping"), Err(NoRoute::Method));
        assert_eq!(route(&Method::GET, "/3.0/nope"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/3.0//lists"), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::GET, "/3.0/lists/a/segments/x"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(route(&Method::GET, "/3.00/lists"), Err(NoRoute::NotFound));
    }
}
