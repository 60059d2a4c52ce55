//! A `/3.0` call as the handlers see it: method, query parameters, headers
//! and the raw body, with the API key read from `Authorization`.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method};
use base64::Engine as _;
use serde_json::Value;

use crate::reply::Reply;

/// One call.
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// Parses the query string.
    pub fn new(method: Method, query: Option<&str>, headers: HeaderMap, body: Bytes) -> Req {
        let query = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Req {
            method,
            query,
            headers,
            body,
        }
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter (`true`/`false`, default false).
    pub fn flag(&self, name: &str) -> bool {
        self.param(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// A comma-separated query parameter (`fields`, `exclude_fields`).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The body as JSON; an empty body is an empty object. Bad JSON, or JSON
    /// that is not an object, is Mailchimp's "JSON Parse Exception".
    pub fn json(&self) -> Result<Value, Reply> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Reply::bad_json()),
        }
    }

    /// The key presented: the Basic password (any user name) or the Bearer
    /// token. `None` when there is no usable `Authorization` header.
    pub fn api_key(&self) -> Option<String> {
        let v = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = v.trim().split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.to_string());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (_, key) = text.split_once(':')?;
            return Some(key.to_string());
        }
        None
    }

    /// The `X-Trigger-Error` header's value.
    pub fn trigger_error(&self) -> Option<&str> {
        self.headers
            .get("x-trigger-error")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// Paging: `count` (default 10, at most `max`) and `offset` (default 0).
/// A count over the maximum or a non-number is refused, not clamped.
pub fn paging(req: &Req, max: usize) -> Result<(usize, usize), Reply> {
    let count = match req.param("count") {
        None => 10,
        Some(c) => match c.trim().parse::<usize>() {
            Ok(n) if n <= max => n,
            _ => {
                return Err(Reply::schema(
                    "count",
                    &format!("count must be an integer between 0 and {max}."),
                ))
            }
        },
    };
    let offset = match req.param("offset") {
        None => 0,
        Some(o) => o
            .trim()
            .parse::<usize>()
            .map_err(|_| Reply::schema("offset", "offset must be a non-negative integer."))?,
    };
    Ok((count, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn req(auth: &str, query: &str) -> Req {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(auth).unwrap_or(HeaderValue::from_static("")),
        );
        Req::new(Method::GET, Some(query), h, Bytes::new())
    }

    #[test]
    fn basic_and_bearer() {
        // "user:k-us6"
        assert_eq!(
            req("Basic dXNlcjprLXVzNg==", "").api_key().as_deref(),
            Some("k-us6")
        );
        assert_eq!(req("Bearer k-us6", "").api_key().as_deref(), Some("k-us6"));
        assert_eq!(req("Basic !!", "").api_key(), None);
        assert_eq!(req("Digest x", "").api_key(), None);
    }

    #[test]
    fn paging_refuses_over_max() {
        assert_eq!(paging(&req("", ""), 1000).ok(), Some((10, 0)));
        assert_eq!(
            paging(&req("", "count=1000&offset=5"), 1000).ok(),
            Some((1000, 5))
        );
        assert!(paging(&req("", "count=1001"), 1000).is_err());
        assert!(paging(&req("", "offset=-1"), 1000).is_err());
    }
}
