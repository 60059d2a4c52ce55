//! Answers: JSON resources, `application/problem+json` errors (RFC 9457, as
//! Mailchimp sends them), empty 204s, and the bodiless or HTML answers of
//! the edge in front of the API.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// Where Mailchimp's problem documents point (`type`).
pub const PROBLEM_TYPE: &str = "https://mailchimp.com/developer/marketing/docs/errors/";

/// What an answer carries.
#[derive(Debug)]
pub enum Payload {
    /// `application/json; charset=utf-8`.
    Json(Value),
    /// `application/problem+json; charset=utf-8`.
    Problem(Value),
    /// No body at all (204, and 429/403 faults).
    Empty,
    /// `text/html` (the CDN's 502).
    Html(String),
}

/// A finished answer plus what the counters and the request log need.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub payload: Payload,
    /// The problem title of an error answer.
    pub title: Option<String>,
    /// Members the call carried: drives latency and counters.
    pub members: u64,
    /// Per-record errors of a batch answer, by error text kind.
    pub record_errors: Vec<&'static str>,
}

impl Reply {
    /// HTTP 200 with a JSON body.
    pub fn json(v: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            payload: Payload::Json(v),
            title: None,
            members: 0,
            record_errors: Vec::new(),
        }
    }

    /// HTTP 204, no body.
    pub fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            payload: Payload::Empty,
            title: None,
            members: 0,
            record_errors: Vec::new(),
        }
    }

    /// A status with no body at all.
    pub fn bare(status: StatusCode) -> Reply {
        Reply {
            status,
            payload: Payload::Empty,
            title: None,
            members: 0,
            record_errors: Vec::new(),
        }
    }

    /// The CDN's HTML answer.
    pub fn html(status: StatusCode) -> Reply {
        let code = status.as_u16();
        let reason = status.canonical_reason().unwrap_or("Error");
        Reply {
            status,
            payload: Payload::Html(format!(
                "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1><p>The server did not answer in time. Please try again.</p></body></html>\n"
            )),
            title: None,
            members: 0,
            record_errors: Vec::new(),
        }
    }

    /// A problem document.
    pub fn problem(status: StatusCode, title: &str, detail: &str) -> Reply {
        Reply {
            status,
            payload: Payload::Problem(json!({
                "type": PROBLEM_TYPE,
                "title": title,
                "status": status.as_u16(),
                "detail": detail,
                "instance": "",
            })),
            title: Some(title.to_string()),
            members: 0,
            record_errors: Vec::new(),
        }
    }

    /// A validation problem with `errors[{field, message}]`.
    pub fn invalid(detail: &str, errors: Vec<FieldError>) -> Reply {
        let mut r = Reply::problem(StatusCode::BAD_REQUEST, "Invalid Resource", detail);
        if let Payload::Problem(Value::Object(m)) = &mut r.payload {
            let list: Vec<Value> = errors
                .into_iter()
                .map(|e| json!({"field": e.field, "message": e.message}))
                .collect();
            m.insert("errors".into(), Value::Array(list));
        }
        r
    }

    /// 400 "Invalid Resource" about the body's schema.
    pub fn schema(field: &str, message: &str) -> Reply {
        Reply::invalid(
            "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
            vec![FieldError::new(field, message)],
        )
    }

    /// 404 "Resource Not Found".
    pub fn not_found() -> Reply {
        Reply::problem(
            StatusCode::NOT_FOUND,
            "Resource Not Found",
            "The requested resource could not be found.",
        )
    }

    /// 400 "JSON Parse Exception".
    pub fn bad_json() -> Reply {
        Reply::problem(
            StatusCode::BAD_REQUEST,
            "JSON Parse Exception",
            "We encountered an unspecified JSON parsing error.",
        )
    }

    /// Sets the number of members the call carried.
    pub fn with_members(mut self, n: usize) -> Reply {
        self.members = n as u64;
        self
    }

    /// Fills the problem's `instance` with the call's request id.
    pub fn set_instance(&mut self, rid: &str) {
        if let Payload::Problem(Value::Object(m)) = &mut self.payload {
            m.insert("instance".into(), Value::String(rid.to_string()));
        }
    }
}

/// One entry of a problem's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: &str, message: &str) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}
