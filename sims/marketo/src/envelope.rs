//! Response shapes. Lead Database answers carry only `requestId`, `result`
//! and `success` (plus `nextPageToken`); Asset answers always carry `errors`
//! and `warnings`, with string warnings and no `result` when nothing is found
//! (facts §5).

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub enum Payload {
    Json(Value),
    /// Delimited text (bulk failures/warnings files).
    Text {
        content_type: &'static str,
        text: String,
    },
    /// What the gateway answers for HTTP-level errors.
    Html(String),
    /// OAuth-style Identity answers, with no-store cache headers.
    Identity(Value),
}

/// A finished answer plus what the counters and the request log need.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub payload: Payload,
    /// Response-level error code, when `success:false`.
    pub code: Option<String>,
    /// Records (or ids) the call carried: drives latency and counters.
    pub records: u64,
    /// Record-level reason codes of skipped records.
    pub record_codes: Vec<&'static str>,
}

impl Reply {
    pub fn json(v: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            payload: Payload::Json(v),
            code: None,
            records: 0,
            record_codes: Vec::new(),
        }
    }

    pub fn with_records(mut self, n: usize) -> Reply {
        self.records = n as u64;
        self
    }

    pub fn http(status: StatusCode) -> Reply {
        let reason = status.canonical_reason().unwrap_or("Error");
        let code = status.as_u16();
        Reply {
            status,
            payload: Payload::Html(format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )),
            code: Some(code.to_string()),
            records: 0,
            record_codes: Vec::new(),
        }
    }
}

/// Lead DB success.
pub fn lead_ok(rid: &str, result: Vec<Value>) -> Reply {
    Reply::json(json!({"requestId": rid, "result": result, "success": true}))
}

/// Lead DB success with a paging cursor.
pub fn lead_page(rid: &str, result: Vec<Value>, next: Option<String>) -> Reply {
    let mut m = Map::new();
    m.insert("requestId".into(), json!(rid));
    m.insert("result".into(), Value::Array(result));
    m.insert("success".into(), json!(true));
    if let Some(t) = next {
        m.insert("nextPageToken".into(), json!(t));
    }
    Reply::json(Value::Object(m))
}

/// Lead DB and bulk failure: HTTP 200, `success:false`, a string code, no `result`.
pub fn lead_err(rid: &str, code: &str, message: &str) -> Reply {
    let mut r = Reply::json(json!({
        "requestId": rid,
        "success": false,
        "errors": [{"code": code, "message": message}],
    }));
    r.code = Some(code.to_string());
    r
}

pub fn asset_ok(rid: &str, result: Vec<Value>) -> Reply {
    Reply::json(
        json!({"success": true, "errors": [], "requestId": rid, "warnings": [], "result": result}),
    )
}

pub const NO_ASSETS: &str = "No assets found for the given search criteria.";

/// Asset "not found": success with a string warning and no `result`.
pub fn asset_none(rid: &str) -> Reply {
    Reply::json(json!({"success": true, "errors": [], "requestId": rid, "warnings": [NO_ASSETS]}))
}

pub fn asset_err(rid: &str, code: &str, message: &str) -> Reply {
    let mut r = Reply::json(json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "requestId": rid,
        "warnings": [],
    }));
    r.code = Some(code.to_string());
    r
}

/// A record-level skipped entry.
pub fn skipped(id: Option<u64>, code: &str, message: &str) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    m.insert("status".into(), json!("skipped"));
    m.insert(
        "reasons".into(),
        json!([{"code": code, "message": message}]),
    );
    Value::Object(m)
}
