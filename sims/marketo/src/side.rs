//! The side channel under `/_sim/…`: not Marketo. Lets out-of-process tests
//! and the benchmark inspect and steer the simulator. Never authenticated,
//! never counted, never rate limited.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::config::FaultConfig;
use crate::server::{lock, Sim};

fn reply(status: StatusCode, v: Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn ok(v: Value) -> Response<Body> {
    reply(StatusCode::OK, v)
}

fn bad(msg: &str) -> Response<Body> {
    reply(StatusCode::BAD_REQUEST, json!({"error": msg}))
}

fn not_found() -> Response<Body> {
    reply(StatusCode::NOT_FOUND, json!({"error": "not found"}))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

/// Largest page of member ids served at once.
const MAX_MEMBER_PAGE: usize = 100_000;

pub(crate) fn handle(
    sim: &Sim,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response<Body> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let json_body = || serde_json::from_slice::<Value>(body);
    match segs.as_slice() {
        ["_sim", "state"] if get => sim.with_world(|w| {
            let lists: Vec<Value> = w
                .store
                .lists
                .values()
                .map(|l| json!({"id": l.id, "name": l.name, "static": l.static_list, "members": l.members.len()}))
                .collect();
            ok(json!({
                "leads": w.store.lead_count(),
                "lists": lists,
                "bulk_jobs": w.bulk.job_count(),
            }))
        }),
        ["_sim", "counters"] if get => match serde_json::to_value(sim.counters()) {
            Ok(v) => ok(v),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": e.to_string()})),
        },
        ["_sim", "counters", "reset"] if post => {
            sim.reset_counters();
            ok(json!({"ok": true}))
        }
        ["_sim", "quota", "reset"] if post => {
            lock(&sim.gate).reset_quota();
            ok(json!({"ok": true}))
        }
        ["_sim", "tokens", "expire"] if post => {
            lock(&sim.gate).expire_all(tokio::time::Instant::now());
            ok(json!({"ok": true}))
        }
        ["_sim", "faults"] if get => ok(serde_json::to_value(lock(&sim.faults).clone()).unwrap_or(Value::Null)),
        ["_sim", "faults"] if post => match serde_json::from_slice::<FaultConfig>(body) {
            Ok(f) if (0.0..=1.0).contains(&f.rate) => {
                *lock(&sim.faults) = f;
                ok(json!({"ok": true}))
            }
            Ok(_) => bad("rate must be between 0 and 1"),
            Err(e) => bad(&format!("expected {{\"seed\":1,\"rate\":0.1,\"kinds\":[\"http_502\",…]}}: {e}")),
        },
        ["_sim", "lists", id, "members"] => {
            let Ok(list_id) = id.parse::<u64>() else {
                return not_found();
            };
            if post {
                let ids: Vec<u64> = match json_body() {
                    Ok(v) => v
                        .get("ids")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default(),
                    Err(e) => return bad(&e.to_string()),
                };
                return sim.with_world(|w| {
                    if !w.store.lists.contains_key(&list_id) {
                        return not_found();
                    }
                    for id in &ids {
                        w.store.force_member(list_id, *id);
                    }
                    ok(json!({"added": ids.len()}))
                });
            }
            if !get {
                return not_found();
            }
            let after = query_param(query, "after").and_then(|a| a.parse::<u64>().ok());
            let limit = query_param(query, "limit")
                .and_then(|a| a.parse::<usize>().ok())
                .unwrap_or(10_000)
                .clamp(1, MAX_MEMBER_PAGE);
            let with_emails = query_param(query, "emails").as_deref() == Some("true");
            sim.with_world(|w| {
                let Some(list) = w.store.lists.get(&list_id) else {
                    return not_found();
                };
                let count = list.members.len();
                let (ids, more) = w.store.members_page(list_id, after, limit);
                let next = if more { ids.last().copied() } else { None };
                let mut page = json!({"list_id": list_id, "count": count, "members": ids, "next_after": next});
                if with_emails {
                    // The benchmark compares a list with its segment by email.
                    let emails: Vec<Value> = ids
                        .iter()
                        .map(|id| {
                            w.store
                                .lead(*id)
                                .and_then(|l| l.email(&w.store.cat))
                                .map_or(Value::Null, |e| Value::String(e.to_string()))
                        })
                        .collect();
                    page["emails"] = Value::Array(emails);
                }
                ok(page)
            })
        }
        ["_sim", "leads"] if get => {
            let Some(email) = query_param(query, "email") else {
                return sim.with_world(|w| ok(json!({"count": w.store.lead_count()})));
            };
            sim.with_world(|w| {
                let Some(id) = w.store.ids_by_email(&email).into_iter().min() else {
                    return not_found();
                };
                match w.store.lead(id) {
                    Some(l) => ok(json!({"id": id, "fields": w.store.lead_fields(l)})),
                    None => not_found(),
                }
            })
        }
        ["_sim", "leads", id] if get => {
            let Ok(id) = id.parse::<u64>() else {
                return not_found();
            };
            sim.with_world(|w| match w.store.lead(id) {
                Some(l) => ok(json!({"id": id, "fields": w.store.lead_fields(l)})),
                None => not_found(),
            })
        }
        ["_sim", "leads"] if post => {
            let leads = match json_body() {
                Ok(Value::Array(a)) => a,
                Ok(v @ Value::Object(_)) => vec![v],
                Ok(_) => return bad("expected a JSON object or an array of objects"),
                Err(e) => return bad(&e.to_string()),
            };
            let mut ids = Vec::with_capacity(leads.len());
            for (i, l) in leads.iter().enumerate() {
                match sim.try_insert_lead(l) {
                    Ok(id) => ids.push(id),
                    Err(e) => return bad(&format!("lead {i}: {e}")),
                }
            }
            ok(json!({"ids": ids}))
        }
        _ => not_found(),
    }
}
