//! The connection test behind `audex check`: it walks the write path one
//! step at a time (authenticate, each list, each mapped field) and reports
//! every step with a reason a person can act on. The secret never appears.

use audex_core::{CheckResult, Error, ErrorClass, FieldType, ListId};

use crate::client::{ListLookup, MarketoClient};
use crate::destination::fields_by_name;

fn explain(e: &Error) -> String {
    match e.hint() {
        Some(h) => format!("{} (hint: {h})", e.message()),
        None => e.message().to_string(),
    }
}

fn type_name(t: &FieldType) -> String {
    match t {
        FieldType::Other(s) => s.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".to_string()),
    }
}

/// Run every step; never fails as a whole.
pub async fn run(
    client: &MarketoClient,
    lists: &[ListId],
    mapped_fields: &[String],
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let auth = client.authenticate().await;
    let auth_ok = match &auth {
        Ok(info) => {
            // Marketo names the API-only user by an email address, which
            // audex never prints.
            let who = match info.scope.as_deref() {
                Some(s) if s.contains('@') => " as its API-only user".to_string(),
                Some(s) => format!(" as API user {s}"),
                None => String::new(),
            };
            out.push(CheckResult::ok(
                "authenticate",
                format!(
                    "got an access token from {}{who}",
                    client.endpoint().origin()
                ),
            ));
            true
        }
        Err(e) => {
            out.push(CheckResult::failed("authenticate", explain(e)));
            false
        }
    };
    let not_checked = "not checked: authentication failed";

    for list in lists {
        let name = format!("list {list}");
        if !auth_ok {
            out.push(CheckResult::failed(name, not_checked));
            continue;
        }
        let Some(id) = crate::list_id(list) else {
            out.push(CheckResult::failed(
                name,
                format!("{:?} is not a Marketo list id (a positive integer)", list.0),
            ));
            continue;
        };
        out.push(match client.get_list(id).await {
            Ok(ListLookup::Static(info)) => {
                CheckResult::ok(name, format!("static list {:?}", info.name))
            }
            Ok(ListLookup::Smart { name: smart }) => CheckResult::failed(
                name,
                format!(
                    "{id} is the smart list {smart:?}; audex fills static lists only (create a static list and use its id)"
                ),
            ),
            Ok(ListLookup::Missing) => CheckResult::failed(
                name,
                format!(
                    "no static list with id {id} is visible to this API user; open the list in Marketo and take the number from its URL (#ST{id}A1), and check the user's workspace"
                ),
            ),
            Err(e) => CheckResult::failed(name, explain(&e)),
        });
    }

    if mapped_fields.is_empty() {
        return out;
    }
    if !auth_ok {
        for f in mapped_fields {
            out.push(CheckResult::failed(format!("field {f}"), not_checked));
        }
        return out;
    }
    let described = match client.describe().await {
        Ok(fields) => fields_by_name(fields),
        Err(e) => {
            let why = if e.class() == ErrorClass::Auth {
                explain(&e)
            } else {
                format!("cannot read the lead fields (describe): {}", explain(&e))
            };
            for f in mapped_fields {
                out.push(CheckResult::failed(format!("field {f}"), why.clone()));
            }
            return out;
        }
    };
    for f in mapped_fields {
        let name = format!("field {f}");
        out.push(match described.get(f.as_str()) {
            Some(spec) if spec.writable => {
                let len = spec
                    .max_length
                    .map(|n| format!(", up to {n} characters"))
                    .unwrap_or_default();
                CheckResult::ok(name, format!("{}{len}, writable", type_name(&spec.data_type)))
            }
            Some(_) => CheckResult::failed(
                name,
                format!("{f} is read-only in Marketo; remove it from mapping"),
            ),
            None => {
                let similar = described
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(f))
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                CheckResult::failed(
                    name,
                    format!(
                        "Marketo has no lead field with the REST name {f:?}{similar}; use the REST API name from Admin > Field Management, or remove it from mapping"
                    ),
                )
            }
        });
    }
    out
}
