//! Batch subscribe, `POST /lists/{id}`: up to 500 members per call, HTTP
//! 200 even when some fail, per-member errors with Mailchimp's texts
//! (facts §4, §8).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::api::Ctx;
use crate::email;
use crate::members::{compliance, forgotten, parse, set_tags, write, Mode, Refused};
use crate::render;
use crate::reply::Reply;
use crate::request::Req;
use crate::store::Store;

/// `POST /lists/{id}`: batch subscribe, ≤ 500 members; HTTP 200 even when
/// some members fail.
pub fn subscribe(list: &str, req: &Req, store: &mut Store, ctx: &Ctx<'_>) -> Result<Reply, Reply> {
    let body = req.json()?;
    if !store.audiences.contains_key(list) {
        return Err(Reply::not_found());
    }
    let Some(Value::Array(items)) = body.get("members") else {
        return Err(Reply::schema("members", "This value should not be blank."));
    };
    if items.len() > ctx.cfg.max_batch {
        return Err(Reply::schema(
            "members",
            &format!(
                "Schema describes array, maximum {} items, but {} were provided.",
                ctx.cfg.max_batch,
                items.len()
            ),
        ));
    }
    let flag = |k: &str| match body.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Reply::schema(k, "Value must be a boolean.")),
    };
    let update_existing = flag("update_existing")?;
    let sync_tags = flag("sync_tags")? && update_existing;
    // Every member must be well formed, or nothing is done (a schema error).
    let mut inputs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let input = parse(item, true, true, false).map_err(|_| {
            Reply::schema(
                &format!("members.item:{i}"),
                "Each member needs an email_address (a string) and a valid status or status_if_new.",
            )
        })?;
        inputs.push(input);
    }
    let skip_merge = req.flag("skip_merge_validation");
    let skip_dups = req.flag("skip_duplicate_check");
    let mut seen = HashSet::new();
    let mut created = Vec::new();
    let mut updated = Vec::new();
    let mut errors = Vec::new();
    let mut kinds = Vec::new();
    for input in &inputs {
        let e = input.email.clone().unwrap_or_default();
        if !seen.insert(email::hash(&e)) {
            if !skip_dups {
                errors.push(json!({
                    "email_address": e,
                    "error": format!("{e} was found more than once in this request."),
                    "error_code": "ERROR_GENERIC",
                    "field": "",
                    "field_message": "",
                }));
                kinds.push("duplicate");
            }
            continue;
        }
        let Some(a) = store.audiences.get_mut(list) else {
            break;
        };
        match write(
            a,
            input,
            Mode::Batch { update_existing },
            None,
            skip_merge,
            &ctx.cfg.fake_domains,
        ) {
            Ok((id, was_created)) => {
                if let Some(names) = &input.tags {
                    set_tags(store, list, id, names, sync_tags);
                }
                if was_created {
                    created.push(id);
                } else {
                    updated.push(id);
                }
            }
            Err(r) => {
                kinds.push(r.kind());
                errors.push(batch_error(&e, r));
            }
        }
    }
    let a = store.audiences.get(list).ok_or_else(Reply::not_found)?;
    let fields = req.list("fields");
    let render_all = |ids: &[u32], key: &str| render::members_for(a, ids, key, &fields, &ctx.base);
    let mut reply = Reply::json(json!({
        "new_members": render_all(&created, "new_members"),
        "updated_members": render_all(&updated, "updated_members"),
        "errors": errors,
        "total_created": created.len(),
        "total_updated": updated.len(),
        "error_count": errors.len(),
        "_links": [],
    }))
    .with_members(inputs.len());
    reply.record_errors = kinds;
    Ok(reply)
}

/// One `errors[]` entry of a batch subscribe answer.
fn batch_error(e: &str, r: Refused) -> Value {
    let (error, code, field, field_message) = match r {
        Refused::Email(k, _) => (k.message(e), "ERROR_GENERIC", String::new(), String::new()),
        Refused::Forgotten(_) => (forgotten(e), "ERROR_GENERIC", String::new(), String::new()),
        Refused::Compliance(_) => (compliance(e), "ERROR_GENERIC", String::new(), String::new()),
        Refused::Exists(_) => (
            format!("{e} is already a list member, do you want to update? please provide update_existing:true in the request body"),
            "ERROR_CONTACT_EXISTS",
            String::new(),
            String::new(),
        ),
        Refused::Merge(errs) => {
            let first = errs.into_iter().next();
            (
                "Your merge fields were invalid.".to_string(),
                "ERROR_GENERIC",
                first.as_ref().map(|f| f.field.clone()).unwrap_or_default(),
                first.map(|f| f.message).unwrap_or_default(),
            )
        }
        Refused::NotFound => ("The requested resource could not be found.".to_string(), "ERROR_GENERIC", String::new(), String::new()),
    };
    json!({"email_address": e, "error": error, "error_code": code, "field": field, "field_message": field_message})
}
