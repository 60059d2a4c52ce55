//! The side channel under `/_sim/…`: not Mailchimp. Lets out-of-process
//! tests and benchmarks seed and inspect the simulator and read counters.
//! Never authenticated, never counted, never limited.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{FaultConfig, SimAudience};
use crate::seed::{self, SimContact};
use crate::server::{lock, Sim};
use crate::store::SegKind;

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

fn param(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

fn parsed<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// `{"emails": [...]}` or a bare array.
fn email_list(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Emails {
        Wrapped { emails: Vec<String> },
        Bare(Vec<String>),
    }
    match parsed::<Emails>(body)? {
        Emails::Wrapped { emails } | Emails::Bare(emails) => Ok(emails),
    }
}

/// Largest page of segment members served at once.
const MAX_PAGE: usize = 100_000;

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
    let result: Result<Response<Body>, String> = match segs.as_slice() {
        ["_sim", "state"] if get => {
            let store = lock(&sim.store);
            let audiences: Vec<Value> = store
                .audiences
                .values()
                .map(|a| {
                    let segments: Vec<Value> = a
                        .segments
                        .values()
                        .map(|s| json!({"id": s.id, "name": s.name, "type": s.kind.name(), "members": s.members.len()}))
                        .collect();
                    json!({"id": a.id, "name": a.name, "double_optin": a.double_optin, "contacts": a.counts(), "segments": segments})
                })
                .collect();
            Ok(ok(json!({"audiences": audiences})))
        }
        ["_sim", "counters"] if get => Ok(ok(
            serde_json::to_value(sim.counters()).unwrap_or(Value::Null)
        )),
        ["_sim", "counters", "reset"] if post => {
            sim.reset_counters();
            Ok(ok(json!({"ok": true})))
        }
        ["_sim", "faults"] if get => Ok(ok(
            serde_json::to_value(lock(&sim.faults).clone()).unwrap_or(Value::Null)
        )),
        ["_sim", "faults"] if post => parsed::<FaultConfig>(body).map(|f| {
            if (0.0..=1.0).contains(&f.rate) {
                *lock(&sim.faults) = f;
                ok(json!({"ok": true}))
            } else {
                bad("rate must be between 0 and 1")
            }
        }),
        ["_sim", "audiences"] if post => parsed::<SimAudience>(body).map(|a| {
            match seed::add_audience(&mut lock(&sim.store), &a) {
                Ok(()) => ok(json!({"id": a.id})),
                Err(e) => bad(&e),
            }
        }),
        ["_sim", "audiences", list, "contacts"] if post => {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Many {
                One(SimContact),
                Many(Vec<SimContact>),
            }
            parsed::<Many>(body).map(|m| {
                let items = match m {
                    Many::One(c) => vec![c],
                    Many::Many(v) => v,
                };
                match seed::contacts(&mut lock(&sim.store), list, items) {
                    Ok(n) => ok(json!({"seeded": n})),
                    Err(e) => bad(&e),
                }
            })
        }
        ["_sim", "audiences", list, "contacts"] if get => {
            let Some(email) = param(query, "email") else {
                return bad("expected ?email=");
            };
            // One lock for both looks (a second lock in the match would deadlock).
            let (found, forgotten) = {
                let store = lock(&sim.store);
                (
                    seed::contact(&store, list, &email),
                    seed::is_forgotten(&store, list, &email),
                )
            };
            match found {
                Some(c) => Ok(ok(serde_json::to_value(c).unwrap_or(Value::Null))),
                None => Ok(reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": "not found", "forgotten": forgotten}),
                )),
            }
        }
        ["_sim", "audiences", list, "contacts", "status"] if post => {
            #[derive(Deserialize)]
            struct NewStatus {
                email: String,
                status: crate::store::Status,
            }
            parsed::<NewStatus>(body).map(|n| {
                if seed::set_status(&mut lock(&sim.store), list, &n.email, n.status) {
                    ok(json!({"ok": true}))
                } else {
                    not_found()
                }
            })
        }
        ["_sim", "audiences", list, "forgotten"] if post => email_list(body).map(|emails| {
            match seed::forget(&mut lock(&sim.store), list, &emails) {
                Ok(()) => ok(json!({"forgotten": emails.len()})),
                Err(e) => bad(&e),
            }
        }),
        ["_sim", "audiences", list, "segments"] if post => {
            #[derive(Deserialize)]
            struct NewSegment {
                name: String,
                #[serde(default)]
                emails: Vec<String>,
                #[serde(default, rename = "type")]
                kind: Option<String>,
            }
            parsed::<NewSegment>(body).map(|n| {
                let kind = match n.kind.as_deref() {
                    None | Some("static") => SegKind::Static,
                    Some("saved") => SegKind::Saved,
                    Some(_) => return bad("type must be static or saved"),
                };
                match seed::segment(&mut lock(&sim.store), list, &n.name, kind, &n.emails) {
                    Ok(id) => ok(json!({"id": id})),
                    Err(e) => bad(&e),
                }
            })
        }
        ["_sim", "audiences", list, "segments", seg, "members"] => {
            let Ok(seg) = seg.parse::<u64>() else {
                return not_found();
            };
            if method == Method::DELETE {
                email_list(body).map(|emails| {
                    match seed::remove_from_segment(&mut lock(&sim.store), list, seg, &emails) {
                        Ok(n) => ok(json!({"removed": n})),
                        Err(e) => bad(&e),
                    }
                })
            } else if post {
                email_list(body).map(|emails| {
                    match seed::add_to_segment(&mut lock(&sim.store), list, seg, &emails) {
                        Ok(n) => ok(json!({"added": n})),
                        Err(e) => bad(&e),
                    }
                })
            } else if get {
                let offset = param(query, "offset")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(0);
                let limit = param(query, "limit")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(10_000usize)
                    .clamp(1, MAX_PAGE);
                match seed::segment_members(&lock(&sim.store), list, seg, offset, limit) {
                    Some((emails, total)) => Ok(ok(
                        json!({"segment_id": seg, "total": total, "offset": offset, "emails": emails}),
                    )),
                    None => Ok(not_found()),
                }
            } else {
                Ok(not_found())
            }
        }
        _ => Ok(not_found()),
    };
    result.unwrap_or_else(|e| bad(&e))
}
