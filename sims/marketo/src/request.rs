//! A Marketo call as the handlers see it: method after the `_method`
//! override, query and form parameters, the raw body. Every parameter form in
//! use is accepted (facts §3, §8, "Must-get-right" 5).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use serde_json::Value;

#[derive(Debug)]
pub struct SimRequest {
    /// The method the call means: POST with `_method=GET|DELETE` (query or
    /// form body) counts as that method.
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    /// Media type without parameters, lowercased.
    pub content_type: String,
    pub body: Bytes,
    pub headers: HeaderMap,
}

/// The body was not valid JSON (609).
#[derive(Debug)]
pub struct BadJson;

impl SimRequest {
    pub fn new(method: Method, query: Option<&str>, headers: HeaderMap, body: Bytes) -> SimRequest {
        let query: Vec<(String, String)> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let form: Vec<(String, String)> = if content_type == "application/x-www-form-urlencoded" {
            url::form_urlencoded::parse(&body).into_owned().collect()
        } else {
            Vec::new()
        };
        let mut req = SimRequest {
            method: method.clone(),
            query,
            form,
            content_type,
            body,
            headers,
        };
        if method == Method::POST {
            match req.param("_method").map(str::to_ascii_uppercase).as_deref() {
                Some("GET") => req.method = Method::GET,
                Some("DELETE") => req.method = Method::DELETE,
                _ => {}
            }
        }
        req
    }

    /// First value of a parameter, from the query string, then the form body.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(self.form.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter, repeated or comma-separated, from both places.
    pub fn list_param(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .chain(self.form.iter())
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn is_json(&self) -> bool {
        self.content_type == "application/json" || self.content_type.ends_with("+json")
    }

    /// The JSON body, if one was sent with a JSON content type.
    pub fn json(&self) -> Result<Option<Value>, BadJson> {
        if !self.is_json() || self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|_| BadJson)
    }

    /// The token from `Authorization: Bearer …`.
    pub fn bearer(&self) -> Option<&str> {
        let v = self
            .headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Paging tokens look like Marketo's: padded base32 (facts §10).
pub fn encode_token(plain: &str) -> String {
    let bytes = plain.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(B32[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn decode_token(token: &str) -> Option<String> {
    let clean = token.trim().trim_end_matches('=');
    let mut bits: u64 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in clean.bytes() {
        let v = B32.iter().position(|b| *b == c.to_ascii_uppercase())? as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push(((bits >> nbits) & 0xff) as u8);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        for s in ["m:1001:42", "f:0", "abcdefghij", "x"] {
            let t = encode_token(s);
            assert!(t.len().is_multiple_of(8), "{t}");
            assert_eq!(decode_token(&t).as_deref(), Some(s));
        }
        assert_eq!(decode_token("!!"), None);
    }

    #[test]
    fn method_override_and_params() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .expect("header"),
        );
        headers.insert(
            axum::http::header::AUTHORIZATION,
            "Bearer tok:int".parse().expect("header"),
        );
        let r = SimRequest::new(
            Method::POST,
            Some("id=1,2&id=3"),
            headers,
            Bytes::from_static(b"_method=GET&filterType=email&filterValues=a%40b.com"),
        );
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.param("filterValues"), Some("a@b.com"));
        assert_eq!(r.list_param("id"), ["1", "2", "3"]);
        assert_eq!(r.bearer(), Some("tok:int"));
    }
}
