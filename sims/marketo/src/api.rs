//! Marketo endpoints: routing and the Lead Database and Asset handlers.

use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::envelope::{
    asset_err, asset_none, asset_ok, lead_err, lead_ok, lead_page, skipped, Reply,
};
use crate::fields::FieldIx;
use crate::request::{decode_token, encode_token, SimRequest};
use crate::server::Ctx;
use crate::store::{fmt_secs, id_of, Action, ListRec, Lookup, Outcome, Store};

/// A recognised Marketo endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Identity,
    Describe,
    Describe2,
    LeadsByFilter,
    SyncLeads,
    DeleteLeads,
    LeadById(u64),
    Lists,
    ListById(u64),
    Members(u64),
    AddMembers(u64),
    RemoveMembers(u64),
    IsMember(u64),
    AssetStaticLists,
    AssetCreateList,
    AssetListById(u64),
    AssetUpdateList(u64),
    AssetDeleteList(u64),
    AssetListByName,
    AssetFolderByName,
    AssetSmartListById(u64),
    BulkImport,
    BulkStatus(u64),
    BulkFailures(u64),
    BulkWarnings(u64),
}

impl Route {
    /// A short operation name for counters.
    pub fn op(&self) -> &'static str {
        match self {
            Route::Identity => "identity",
            Route::Describe => "describe",
            Route::Describe2 => "describe2",
            Route::LeadsByFilter => "get_leads_by_filter",
            Route::SyncLeads => "sync_leads",
            Route::DeleteLeads => "delete_leads",
            Route::LeadById(_) => "get_lead_by_id",
            Route::Lists => "get_lists",
            Route::ListById(_) => "get_list_by_id",
            Route::Members(_) => "get_list_members",
            Route::AddMembers(_) => "add_to_list",
            Route::RemoveMembers(_) => "remove_from_list",
            Route::IsMember(_) => "is_member",
            Route::AssetStaticLists => "asset_get_static_lists",
            Route::AssetCreateList => "asset_create_static_list",
            Route::AssetListById(_) => "asset_get_static_list",
            Route::AssetUpdateList(_) => "asset_update_static_list",
            Route::AssetDeleteList(_) => "asset_delete_static_list",
            Route::AssetListByName => "asset_get_static_list_by_name",
            Route::AssetFolderByName => "asset_get_folder_by_name",
            Route::AssetSmartListById(_) => "asset_get_smart_list",
            Route::BulkImport => "bulk_import",
            Route::BulkStatus(_) => "bulk_import_status",
            Route::BulkFailures(_) => "bulk_import_failures",
            Route::BulkWarnings(_) => "bulk_import_warnings",
        }
    }

    pub fn is_asset(&self) -> bool {
        self.op().starts_with("asset_")
    }
}

/// Why a path did not resolve: 605 (method) or 610 (no such resource).
#[derive(Debug)]
pub struct NoRoute {
    pub code: &'static str,
    pub message: String,
}

fn id_json(seg: &str) -> Option<u64> {
    seg.strip_suffix(".json")?.parse().ok()
}

fn id_plain(seg: &str) -> Option<u64> {
    seg.parse().ok()
}

/// Resolve method + path. The template (with `{id}`) is returned for counters.
pub fn route(method: &Method, path: &str) -> Result<(Route, String), NoRoute> {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let m = method;
    let get = m == Method::GET;
    let post = m == Method::POST;
    let del = m == Method::DELETE;
    let not_found = || NoRoute {
        code: "610",
        message: "Requested resource not found".to_string(),
    };
    let bad_method = || NoRoute {
        code: "605",
        message: format!("Request method '{m}' not supported"),
    };
    let pick = |ok: bool, r: Route| if ok { Ok(r) } else { Err(bad_method()) };
    let r = match segs.as_slice() {
        ["identity", "oauth", "token"] => pick(get || post, Route::Identity)?,
        ["rest", "v1", "leads.json"] => match () {
            _ if get => Route::LeadsByFilter,
            _ if post => Route::SyncLeads,
            _ if del => Route::DeleteLeads,
            _ => return Err(bad_method()),
        },
        ["rest", "v1", "leads", "describe.json"] => pick(get, Route::Describe)?,
        ["rest", "v1", "leads", "describe2.json"] => pick(get, Route::Describe2)?,
        ["rest", "v1", "leads", "delete.json"] => pick(post || del, Route::DeleteLeads)?,
        ["rest", "v1", "lead", id] => {
            pick(get, Route::LeadById(id_json(id).ok_or_else(not_found)?))?
        }
        ["rest", "v1", "lists.json"] => pick(get, Route::Lists)?,
        ["rest", "v1", "lists", id] => {
            pick(get, Route::ListById(id_json(id).ok_or_else(not_found)?))?
        }
        ["rest", "v1", "lists" | "list", id, "leads.json"] => {
            let id = id_plain(id).ok_or_else(not_found)?;
            match () {
                _ if get => Route::Members(id),
                _ if post => Route::AddMembers(id),
                _ if del => Route::RemoveMembers(id),
                _ => return Err(bad_method()),
            }
        }
        ["rest", "v1", "lists" | "list", id, "leads", "ismember.json"] => {
            pick(get, Route::IsMember(id_plain(id).ok_or_else(not_found)?))?
        }
        ["rest", "asset", "v1", "staticLists.json"] => match () {
            _ if get => Route::AssetStaticLists,
            _ if post => Route::AssetCreateList,
            _ => return Err(bad_method()),
        },
        ["rest", "asset", "v1", "staticList", "byName.json"] => pick(get, Route::AssetListByName)?,
        ["rest", "asset", "v1", "staticList", id] => {
            let id = id_json(id).ok_or_else(not_found)?;
            match () {
                _ if get => Route::AssetListById(id),
                _ if post => Route::AssetUpdateList(id),
                _ => return Err(bad_method()),
            }
        }
        ["rest", "asset", "v1", "staticList", id, "delete.json"] => pick(
            post,
            Route::AssetDeleteList(id_plain(id).ok_or_else(not_found)?),
        )?,
        ["rest", "asset", "v1", "folder", "byName.json"] => pick(get, Route::AssetFolderByName)?,
        ["rest", "asset", "v1", "smartList", id] => pick(
            get,
            Route::AssetSmartListById(id_json(id).ok_or_else(not_found)?),
        )?,
        ["bulk", "v1", "leads.json"] => pick(post, Route::BulkImport)?,
        ["bulk", "v1", "leads", "batch", id] => {
            pick(get, Route::BulkStatus(id_json(id).ok_or_else(not_found)?))?
        }
        ["bulk", "v1", "leads", "batch", id, "failures.json"] => pick(
            get,
            Route::BulkFailures(id_plain(id).ok_or_else(not_found)?),
        )?,
        ["bulk", "v1", "leads", "batch", id, "warnings.json"] => pick(
            get,
            Route::BulkWarnings(id_plain(id).ok_or_else(not_found)?),
        )?,
        _ => return Err(not_found()),
    };
    let template: Vec<String> = segs
        .iter()
        .map(|s| {
            if id_plain(s).is_some() {
                "{id}".to_string()
            } else if id_json(s).is_some() {
                "{id}.json".to_string()
            } else {
                (*s).to_string()
            }
        })
        .collect();
    Ok((r, format!("{m} /{}", template.join("/"))))
}

/// Dispatch a non-bulk, non-identity route.
pub fn handle(route: Route, req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    match route {
        Route::Describe => ctx.with_store(|s| lead_ok(rid, s.cat.describe())),
        Route::Describe2 => ctx.with_store(|s| lead_ok(rid, vec![s.cat.describe2()])),
        Route::SyncLeads => sync_leads(req, ctx),
        Route::LeadsByFilter => leads_by_filter(req, ctx),
        Route::DeleteLeads => delete_leads(req, ctx),
        Route::LeadById(id) => lead_by_id(id, req, ctx),
        Route::Lists => lists(req, ctx),
        Route::ListById(id) => ctx.with_store(|s| match s.static_list(id) {
            Some(l) => lead_ok(rid, vec![list_item(l)]),
            None => lead_err(rid, "1013", "Static list not found"),
        }),
        Route::Members(id) => members(id, req, ctx),
        Route::AddMembers(id) | Route::RemoveMembers(id) | Route::IsMember(id) => membership(route, id, req, ctx),
        Route::AssetStaticLists => asset_lists(req, ctx),
        Route::AssetCreateList => asset_create(req, ctx),
        Route::AssetListById(id) => ctx.with_store(|s| match s.static_list(id) {
            Some(l) => asset_ok(rid, vec![asset_item(l)]),
            None => asset_none(rid),
        }),
        Route::AssetUpdateList(id) => asset_update(id, req, ctx),
        Route::AssetDeleteList(id) => asset_delete(id, ctx),
        Route::AssetListByName => {
            let Some(name) = req.param("name").filter(|n| !n.is_empty()) else {
                return asset_err(rid, "701", "name cannot be blank");
            };
            ctx.with_store(|s| match s.list_by_name(name) {
                Some(l) => asset_ok(rid, vec![asset_item(l)]),
                None => asset_none(rid),
            })
        }
        Route::AssetFolderByName => {
            let Some(name) = req.param("name").filter(|n| !n.is_empty()) else {
                return asset_err(rid, "701", "name cannot be blank");
            };
            ctx.with_store(|s| match s.folders.iter().find(|f| f.name == name) {
                Some(f) => asset_ok(
                    rid,
                    vec![json!({
                        "id": f.id, "name": f.name, "description": null,
                        "folderId": {"id": f.id, "type": "Folder"}, "folderType": "Folder",
                        "isArchive": false, "isSystem": false, "workspace": "Default",
                    })],
                ),
                None => asset_none(rid),
            })
        }
        Route::AssetSmartListById(id) => ctx.with_store(|s| match s.lists.get(&id).filter(|l| !l.static_list) {
            Some(l) => asset_ok(
                rid,
                vec![json!({
                    "id": l.id, "name": l.name, "createdAt": asset_time(l.created),
                    "updatedAt": asset_time(l.updated), "folder": {"id": l.folder_id, "type": "Folder"},
                    "workspace": "Default",
                })],
            ),
            None => asset_none(rid),
        }),
        Route::Identity
        | Route::BulkImport
        | Route::BulkStatus(_)
        | Route::BulkFailures(_)
        | Route::BulkWarnings(_) => lead_err(rid, "610", "Requested resource not found"),
    }
}

fn batch_too_big(rid: &str, max: usize) -> Reply {
    lead_err(
        rid,
        "1003",
        &format!("Batch size exceeds the maximum of {max}"),
    )
}

fn sync_leads(req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    if !req.is_json() {
        return lead_err(rid, "612", "Invalid Content Type");
    }
    let body = match req.json() {
        Ok(Some(Value::Object(m))) => m,
        Ok(_) | Err(_) => return lead_err(rid, "609", "Invalid JSON"),
    };
    let input: Vec<Map<String, Value>> = match body.get("input") {
        Some(Value::Array(a)) if !a.is_empty() => {
            let mut out = Vec::with_capacity(a.len());
            for v in a {
                match v {
                    Value::Object(o) => out.push(o.clone()),
                    _ => {
                        return lead_err(
                            rid,
                            "1003",
                            "Invalid input: each record must be an object",
                        )
                    }
                }
            }
            out
        }
        _ => return lead_err(rid, "701", "input cannot be blank"),
    };
    let n = input.len();
    if n > ctx.cfg.max_batch {
        return batch_too_big(rid, ctx.cfg.max_batch).with_records(n);
    }
    let action = match body.get("action") {
        None | Some(Value::Null) => Action::CreateOrUpdate,
        Some(Value::String(a)) => match Action::parse(a) {
            Some(a) => a,
            None => return lead_err(rid, "1003", &format!("Invalid action '{a}'")).with_records(n),
        },
        Some(_) => return lead_err(rid, "1003", "Invalid action").with_records(n),
    };
    let lookup = match body.get("lookupField") {
        None | Some(Value::Null) => Lookup::Email,
        Some(Value::String(f)) => match Lookup::parse(f) {
            Some(l) => l,
            None => {
                return lead_err(
                    rid,
                    "1011",
                    &format!("Field '{f}' not supported for lookup"),
                )
                .with_records(n)
            }
        },
        Some(_) => return lead_err(rid, "1011", "Invalid lookupField").with_records(n),
    };
    if let Some(p) = body.get("partitionName").filter(|p| !p.is_null()) {
        if action == Action::UpdateOnly {
            return lead_err(rid, "1010", "Partition update not allowed").with_records(n);
        }
        if p.as_str() != Some("Default") {
            return lead_err(rid, "1003", "Invalid partition name").with_records(n);
        }
    }
    let async_processing = body
        .get("asyncProcessing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    ctx.with_store(|s| {
        // Unknown fields fail the whole request, nothing written (facts §6 [RUD]: 1006 in errors[0]).
        for rec in &input {
            if let Some(name) = rec.keys().find(|k| s.cat.lookup(k).is_none()) {
                return lead_err(rid, "1006", &format!("Field '{name}' not found")).with_records(n);
            }
        }
        let results = s.sync(action, lookup, &input);
        let mut codes = Vec::new();
        let out: Vec<Value> = results
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Created(id) => json!({"id": id, "status": "created"}),
                Outcome::Updated(id) => json!({"id": id, "status": "updated"}),
                Outcome::Skipped(code, msg) => {
                    codes.push(*code);
                    skipped(None, code, msg)
                }
            })
            .collect();
        let mut reply = if async_processing {
            // The async response shape is undocumented: the work is done, the
            // per-record results are not returned.
            Reply::json(json!({"requestId": rid, "success": true}))
        } else {
            lead_ok(rid, out)
        };
        reply.record_codes = codes;
        reply.with_records(n)
    })
}

const DEFAULT_LEAD_FIELDS: &[&str] = &["email", "firstName", "lastName", "updatedAt", "createdAt"];
const DEFAULT_MEMBER_FIELDS: &[&str] =
    &["email", "firstName", "lastName", "createdAt", "updatedAt"];

/// The `fields` parameter resolved against describe, or a 1006 reply.
fn fields_param(
    req: &SimRequest,
    s: &Store,
    defaults: &[&str],
    rid: &str,
) -> Result<Vec<FieldIx>, Reply> {
    let names = req.list_param("fields");
    let names: Vec<String> = if names.is_empty() {
        defaults.iter().map(|s| (*s).to_string()).collect()
    } else {
        names
    };
    names
        .iter()
        .map(|n| {
            s.cat
                .lookup(n)
                .ok_or_else(|| lead_err(rid, "1006", &format!("Field '{n}' not found")))
        })
        .collect()
}

fn batch_size(req: &SimRequest, max: usize, rid: &str) -> Result<usize, Reply> {
    match req.param("batchSize") {
        None | Some("") => Ok(max),
        Some(b) => match b.trim().parse::<usize>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(lead_err(
                rid,
                "1003",
                &format!("Invalid batchSize '{b}': 1 to {max}"),
            )),
        },
    }
}

fn leads_by_filter(req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let max = ctx.cfg.max_batch;
    let Some(filter) = req.param("filterType").filter(|f| !f.is_empty()) else {
        return lead_err(rid, "701", "filterType cannot be blank");
    };
    let Some(lookup) = Lookup::parse(filter) else {
        return lead_err(
            rid,
            "1011",
            &format!("Field '{filter}' not supported for filter"),
        );
    };
    let values = req.list_param("filterValues");
    if values.is_empty() {
        return lead_err(rid, "701", "filterValues cannot be blank");
    }
    if values.len() > max {
        return batch_too_big(rid, max).with_records(values.len());
    }
    let size = match batch_size(req, max, rid) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let offset = match req.param("nextPageToken") {
        None | Some("") => 0,
        Some(t) => match decode_token(t)
            .and_then(|p| p.strip_prefix("f:").and_then(|o| o.parse::<usize>().ok()))
        {
            Some(o) => o,
            None => return lead_err(rid, "1003", "Invalid nextPageToken"),
        },
    };
    let n = values.len();
    ctx.with_store(|s| {
        let fields = match fields_param(req, s, DEFAULT_LEAD_FIELDS, rid) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let mut ids: Vec<u64> = Vec::new();
        for v in &values {
            match lookup {
                Lookup::Email => ids.extend(s.ids_by_email(v)),
                Lookup::Id => {
                    if let Ok(id) = v.parse::<u64>() {
                        if s.lead(id).is_some() {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > ctx.cfg.max_filter_matches {
            return lead_err(rid, "1003", "Too many results match the filter");
        }
        let page: Vec<Value> = ids
            .iter()
            .skip(offset)
            .take(size)
            .filter_map(|id| s.lead(*id).map(|l| s.lead_json(l, &fields)))
            .collect();
        let next =
            (offset + size < ids.len()).then(|| encode_token(&format!("f:{}", offset + size)));
        lead_page(rid, page, next).with_records(n)
    })
}

fn lead_by_id(id: u64, req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    ctx.with_store(|s| {
        let fields = match fields_param(req, s, DEFAULT_LEAD_FIELDS, rid) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let result: Vec<Value> = s
            .lead(id)
            .map(|l| s.lead_json(l, &fields))
            .into_iter()
            .collect();
        lead_ok(rid, result)
    })
}

/// Lead ids from `id` parameters (repeated or comma-separated) or a JSON
/// body `{"input":[{"id":…}]}`.
fn ids_param(req: &SimRequest, rid: &str) -> Result<Vec<u64>, Reply> {
    let raw = req.list_param("id");
    if !raw.is_empty() {
        return raw
            .iter()
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| lead_err(rid, "1003", &format!("Invalid lead id '{s}'")))
            })
            .collect();
    }
    let body = match req.json() {
        Ok(b) => b,
        Err(_) => return Err(lead_err(rid, "609", "Invalid JSON")),
    };
    let Some(input) = body
        .as_ref()
        .and_then(|b| b.get("input"))
        .and_then(Value::as_array)
    else {
        if !req.body.is_empty() && !req.is_json() && req.form.is_empty() {
            return Err(lead_err(rid, "612", "Invalid Content Type"));
        }
        return Err(lead_err(rid, "701", "id cannot be blank"));
    };
    input
        .iter()
        .map(|v| {
            v.get("id")
                .and_then(id_of)
                .ok_or_else(|| lead_err(rid, "1003", "Invalid lead id in input"))
        })
        .collect()
}

fn membership(route: Route, list_id: u64, req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let ids = match ids_param(req, rid) {
        Ok(ids) if ids.is_empty() => return lead_err(rid, "701", "id cannot be blank"),
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let n = ids.len();
    if n > ctx.cfg.max_batch {
        return batch_too_big(rid, ctx.cfg.max_batch).with_records(n);
    }
    ctx.with_store(|s| {
        // Smart and unknown lists are refused as a whole: membership calls
        // work on static lists only (facts §8); the exact code is unconfirmed.
        if s.static_list(list_id).is_none() {
            return lead_err(rid, "1013", "Static list not found").with_records(n);
        }
        let (outcomes, ok_status) = match route {
            Route::AddMembers(_) => (s.add_members(list_id, &ids), "added"),
            Route::RemoveMembers(_) => (s.remove_members(list_id, &ids), "removed"),
            _ => {
                let members = s.lists.get(&list_id).map(|l| &l.members);
                let out: Vec<Value> = ids
                    .iter()
                    .map(|id| {
                        if s.lead(*id).is_none() {
                            skipped(Some(*id), "1004", "Lead not found")
                        } else if members.is_some_and(|m| m.contains(id)) {
                            json!({"id": id, "status": "memberof"})
                        } else {
                            json!({"id": id, "status": "notmemberof"})
                        }
                    })
                    .collect();
                return lead_ok(rid, out).with_records(n);
            }
        };
        let mut codes = Vec::new();
        let out: Vec<Value> = ids
            .iter()
            .zip(outcomes)
            .map(|(id, o)| match o {
                Outcome::Skipped(code, msg) => {
                    codes.push(code);
                    skipped(Some(*id), code, &msg)
                }
                _ => json!({"id": id, "status": ok_status}),
            })
            .collect();
        let mut reply = lead_ok(rid, out).with_records(n);
        reply.record_codes = codes;
        reply
    })
}

fn members(list_id: u64, req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let size = match batch_size(req, ctx.cfg.max_batch, rid) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let after = match req.param("nextPageToken") {
        None | Some("") => None,
        Some(t) => {
            let parsed = decode_token(t).and_then(|p| {
                let rest = p.strip_prefix("m:")?;
                let (list, after) = rest.split_once(':')?;
                (list.parse::<u64>().ok()? == list_id).then_some(())?;
                after.parse::<u64>().ok()
            });
            match parsed {
                Some(a) => Some(a),
                None => return lead_err(rid, "1003", "Invalid nextPageToken"),
            }
        }
    };
    ctx.with_store(|s| {
        if s.static_list(list_id).is_none() {
            return lead_err(rid, "1013", "Static list not found");
        }
        let fields = match fields_param(req, s, DEFAULT_MEMBER_FIELDS, rid) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let (ids, _more) = s.members_page(list_id, after, size);
        // A full page always carries a cursor, even when it happens to be the
        // last one; the next call then returns an empty result and no cursor
        // (clients must stop on either, facts §8).
        let next = (ids.len() == size).then(|| {
            ids.last()
                .map(|l| encode_token(&format!("m:{list_id}:{l}")))
        });
        let page: Vec<Value> = ids
            .iter()
            .filter_map(|id| s.lead(*id).map(|l| s.lead_json(l, &fields)))
            .collect();
        let n = page.len();
        lead_page(rid, page, next.flatten()).with_records(n)
    })
}

fn delete_leads(req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let ids = match ids_param(req, rid) {
        Ok(ids) if ids.is_empty() => return lead_err(rid, "701", "id cannot be blank"),
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let n = ids.len();
    if n > ctx.cfg.max_batch {
        return batch_too_big(rid, ctx.cfg.max_batch).with_records(n);
    }
    ctx.with_store(|s| {
        let mut codes = Vec::new();
        let out: Vec<Value> = ids
            .iter()
            .zip(s.delete(&ids))
            .map(|(id, o)| match o {
                Outcome::Skipped(code, msg) => {
                    codes.push(code);
                    skipped(Some(*id), code, &msg)
                }
                _ => json!({"id": id, "status": "deleted"}),
            })
            .collect();
        let mut reply = lead_ok(rid, out).with_records(n);
        reply.record_codes = codes;
        reply
    })
}

pub fn list_item(l: &ListRec) -> Value {
    let mut v = json!({
        "id": l.id,
        "name": l.name,
        "workspaceName": "Default",
        "createdAt": fmt_secs(l.created),
        "updatedAt": fmt_secs(l.updated),
    });
    if let (Some(d), Some(o)) = (&l.description, v.as_object_mut()) {
        o.insert("description".into(), json!(d));
    }
    v
}

/// Asset API timestamps end in `Z+0000` (facts §8).
fn asset_time(secs: i64) -> String {
    format!("{}+0000", fmt_secs(secs))
}

pub fn asset_item(l: &ListRec) -> Value {
    json!({
        "id": l.id,
        "name": l.name,
        "description": l.description,
        "createdAt": asset_time(l.created),
        "updatedAt": asset_time(l.updated),
        "folder": {"id": l.folder_id, "type": "Folder"},
        "computedUrl": format!("https://app-sim.marketo.com/#ST{}A1", l.id),
        "workspace": "Default",
    })
}

fn lists(req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let size = match batch_size(req, ctx.cfg.max_batch, rid) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut ids = Vec::new();
    for raw in req.list_param("id") {
        match raw.parse::<u64>() {
            Ok(i) => ids.push(i),
            Err(_) => return lead_err(rid, "1003", &format!("Invalid list id '{raw}'")),
        }
    }
    let names = req.list_param("name");
    let after = match req.param("nextPageToken") {
        None | Some("") => None,
        Some(t) => match decode_token(t)
            .and_then(|p| p.strip_prefix("l:").and_then(|a| a.parse::<u64>().ok()))
        {
            Some(a) => Some(a),
            None => return lead_err(rid, "1003", "Invalid nextPageToken"),
        },
    };
    let workspace_ok = req.param("workspaceName").is_none_or(|w| w == "Default");
    let program_ok = req.param("programName").is_none();
    ctx.with_store(|s| {
        let start = after.map(|a| a.saturating_add(1)).unwrap_or(0);
        let page: Vec<&ListRec> = s
            .lists
            .range(start..)
            .map(|(_, l)| l)
            .filter(|l| l.static_list && workspace_ok && program_ok)
            .filter(|l| ids.is_empty() || ids.contains(&l.id))
            .filter(|l| names.is_empty() || names.contains(&l.name))
            .take(size)
            .collect();
        let next =
            (page.len() == size).then(|| page.last().map(|l| encode_token(&format!("l:{}", l.id))));
        lead_page(
            rid,
            page.into_iter().map(list_item).collect(),
            next.flatten(),
        )
    })
}

fn asset_lists(req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let folder = match req.param("folder") {
        None | Some("") => None,
        Some(f) => match serde_json::from_str::<Value>(f)
            .ok()
            .and_then(|v| v.get("id").and_then(id_of))
        {
            Some(id) => Some(id),
            None => return asset_err(rid, "701", "folder is invalid"),
        },
    };
    let offset: usize = req
        .param("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let max_return: usize = match req.param("maxReturn") {
        None | Some("") => 20,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => return asset_err(rid, "1003", "maxReturn must be between 1 and 200"),
        },
    };
    ctx.with_store(|s| {
        let items: Vec<Value> = s
            .lists
            .values()
            .filter(|l| l.static_list && folder.is_none_or(|f| l.folder_id == f))
            .skip(offset)
            .take(max_return)
            .map(asset_item)
            .collect();
        if items.is_empty() {
            asset_none(rid)
        } else {
            asset_ok(rid, items)
        }
    })
}

fn asset_create(req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    if !req.body.is_empty() && req.content_type != "application/x-www-form-urlencoded" {
        return asset_err(rid, "612", "Invalid Content Type");
    }
    let Some(name) = req.param("name").map(str::trim).filter(|n| !n.is_empty()) else {
        return asset_err(rid, "701", "name cannot be blank");
    };
    let Some(folder_raw) = req.param("folder").filter(|f| !f.is_empty()) else {
        return asset_err(rid, "701", "folder cannot be blank");
    };
    let Some(folder_id) = serde_json::from_str::<Value>(folder_raw)
        .ok()
        .and_then(|v| v.get("id").and_then(id_of))
    else {
        return asset_err(
            rid,
            "1003",
            "folder must be JSON like {\"id\":12,\"type\":\"Folder\"}",
        );
    };
    let description = req.param("description").map(str::to_string);
    ctx.with_store(|s| {
        if !s.folders.iter().any(|f| f.id == folder_id) {
            return asset_err(rid, "710", "Parent folder not found");
        }
        // The duplicate-name error is unconfirmed; refuse it as a business rule.
        if s.lists.values().any(|l| l.name == name) {
            return asset_err(
                rid,
                "709",
                &format!("Static List with name '{name}' already exists"),
            );
        }
        let id = s.create_list(name, description, folder_id);
        match s.lists.get(&id) {
            Some(l) => asset_ok(rid, vec![asset_item(l)]),
            None => asset_err(rid, "611", "System error"),
        }
    })
}

fn asset_update(id: u64, req: &SimRequest, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    let name = req
        .param("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let description = req.param("description").map(str::to_string);
    ctx.with_store(|s| {
        if let Some(n) = &name {
            if s.lists.values().any(|l| &l.name == n && l.id != id) {
                return asset_err(
                    rid,
                    "709",
                    &format!("Static List with name '{n}' already exists"),
                );
            }
        }
        let Some(l) = s.lists.get_mut(&id).filter(|l| l.static_list) else {
            return asset_err(rid, "702", "Static List not found");
        };
        if let Some(n) = name {
            l.name = n;
        }
        if description.is_some() {
            l.description = description;
        }
        l.updated = crate::store::now_secs();
        let item = asset_item(l);
        asset_ok(rid, vec![item])
    })
}

fn asset_delete(id: u64, ctx: &Ctx) -> Reply {
    let rid = ctx.rid.as_str();
    ctx.with_world(|w| {
        if w.store.static_list(id).is_none() {
            return asset_err(rid, "702", "Static List not found");
        }
        if w.bulk.list_busy(id, ctx.now) {
            return asset_err(rid, "709", "Static List is in use by an import");
        }
        w.store.lists.remove(&id);
        asset_ok(rid, vec![json!({"id": id})])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_templates() {
        let (r, t) = route(&Method::POST, "/rest/v1/lists/1001/leads.json").expect("route");
        assert_eq!(r, Route::AddMembers(1001));
        assert_eq!(t, "POST /rest/v1/lists/{id}/leads.json");
        let (r, _) = route(&Method::GET, "/rest/v1/list/7/leads.json").expect("legacy");
        assert_eq!(r, Route::Members(7));
        assert_eq!(
            route(&Method::PUT, "/rest/v1/leads.json")
                .err()
                .map(|e| e.code),
            Some("605")
        );
        assert_eq!(
            route(&Method::GET, "/rest/v1//leads.json")
                .err()
                .map(|e| e.code),
            Some("610")
        );
        assert_eq!(
            route(&Method::GET, "/rest/v1/nothing.json")
                .err()
                .map(|e| e.code),
            Some("610")
        );
        let (r, t) = route(&Method::GET, "/bulk/v1/leads/batch/3404.json").expect("bulk");
        assert_eq!(r, Route::BulkStatus(3404));
        assert_eq!(t, "GET /bulk/v1/leads/batch/{id}.json");
    }
}
