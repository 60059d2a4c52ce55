//! Building one HTTP request from an API call: the URL (never a `//`), the
//! body, and the switch to `POST` + `_method=GET` when a read's URL would
//! pass Marketo's 8 KB limit (facts §3, HTTP 414).

use serde::Serialize;
use url::form_urlencoded;

use super::retry::Idempotency;

/// Marketo refuses URIs over 8 KB. Switch well before it: the request line
/// also carries the method and version, and proxies may add a little.
pub const MAX_URL_BYTES: usize = 7 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

/// What goes in the body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    None,
    /// Serialized once, however often the call is retried.
    Json(JsonBody),
    /// A multipart upload of one file plus text fields (bulk import).
    File {
        field: &'static str,
        filename: String,
        content_type: &'static str,
        bytes: Vec<u8>,
    },
}

/// A JSON body, serialized. Its `Debug` shows only its size: bodies carry
/// people's emails.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonBody(Vec<u8>);

impl JsonBody {
    /// Serialize `value`. The bodies this client sends (maps with string
    /// keys, numbers, strings) always serialize; were one ever to fail, the
    /// body is `null`, which Marketo refuses with a visible error (609).
    pub fn new(value: &impl Serialize) -> JsonBody {
        JsonBody(serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonBody({} bytes)", self.0.len())
    }
}

/// What the answer's body is expected to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A JSON envelope (`success`, `result`, `errors`).
    Envelope,
    /// Delimited text (bulk failures and warnings), or an error envelope.
    Text,
}

/// One call to the Marketo API, before it is turned into HTTP.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    /// Short operation name for logs and errors (`sync_leads`).
    pub op: &'static str,
    pub method: Method,
    /// Path under the origin, starting with `/`, e.g. `/rest/v1/leads.json`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    pub idempotency: Idempotency,
    pub expect: Expect,
    /// Identity calls are free; everything else counts against the limits.
    pub counted: bool,
}

impl ApiRequest {
    pub fn get(op: &'static str, path: impl Into<String>) -> ApiRequest {
        ApiRequest {
            op,
            method: Method::Get,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            idempotency: Idempotency::Idempotent,
            expect: Expect::Envelope,
            counted: true,
        }
    }

    pub fn post_json(
        op: &'static str,
        path: impl Into<String>,
        body: &impl Serialize,
    ) -> ApiRequest {
        ApiRequest {
            method: Method::Post,
            body: Body::Json(JsonBody::new(body)),
            ..ApiRequest::get(op, path)
        }
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> ApiRequest {
        self.query.push((key.to_string(), value.into()));
        self
    }
}

/// A request ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub method: Method,
    pub url: String,
    /// Form fields sent as `application/x-www-form-urlencoded`, when a GET
    /// became a POST.
    pub form: Option<String>,
}

fn encode(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `origin` + `path`, with every run of slashes in the path collapsed, so a
/// stray empty segment never becomes the deprecated `//` (facts §2).
pub fn join(origin: &str, path: &str) -> String {
    let mut out = String::with_capacity(origin.len() + path.len() + 1);
    out.push_str(origin.trim_end_matches('/'));
    let mut prev_slash = false;
    if !path.starts_with('/') {
        out.push('/');
        prev_slash = true;
    }
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out
}

impl ApiRequest {
    /// The URL and method to use. A GET whose URL would be too long (or that
    /// Marketo already refused with 414, `force_post`) goes as a POST with
    /// its parameters and `_method=GET` in a form body.
    pub fn prepare(&self, origin: &str, force_post: bool) -> Prepared {
        let base = join(origin, &self.path);
        let query = encode(&self.query);
        let url = if query.is_empty() {
            base.clone()
        } else {
            format!("{base}?{query}")
        };
        let path_and_query = url.len() - origin.trim_end_matches('/').len();
        if self.method == Method::Get && (force_post || path_and_query > MAX_URL_BYTES) {
            let mut pairs = self.query.clone();
            pairs.push(("_method".to_string(), "GET".to_string()));
            return Prepared {
                method: Method::Post,
                url: base,
                form: Some(encode(&pairs)),
            };
        }
        Prepared {
            method: self.method,
            url,
            form: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_never_emits_double_slashes() {
        for (origin, path, want) in [
            (
                "https://h.mktorest.com",
                "/rest/v1/leads.json",
                "https://h.mktorest.com/rest/v1/leads.json",
            ),
            (
                "https://h.mktorest.com/",
                "/rest/v1/leads.json",
                "https://h.mktorest.com/rest/v1/leads.json",
            ),
            (
                "https://h.mktorest.com",
                "rest//v1/lists/1001.json",
                "https://h.mktorest.com/rest/v1/lists/1001.json",
            ),
            (
                "http://127.0.0.1:9",
                "//bulk/v1/leads.json",
                "http://127.0.0.1:9/bulk/v1/leads.json",
            ),
        ] {
            let url = join(origin, path);
            assert_eq!(url, want);
            assert!(!url["https://".len()..].contains("//"), "{url}");
        }
    }

    #[test]
    fn short_get_stays_a_get_with_query() {
        let r = ApiRequest::get("members", "/rest/v1/lists/1001/leads.json")
            .query("fields", "id,email")
            .query("batchSize", "300");
        let p = r.prepare("https://h.mktorest.com", false);
        assert_eq!(p.method, Method::Get);
        assert_eq!(
            p.url,
            "https://h.mktorest.com/rest/v1/lists/1001/leads.json?fields=id%2Cemail&batchSize=300"
        );
        assert_eq!(p.form, None);
    }

    /// 300 long emails would make a ~9 KB URL: the request goes as a POST
    /// with `_method=GET` and the same parameters in the body.
    #[test]
    fn long_get_switches_to_post_with_method_get() {
        let emails: Vec<String> = (0..300)
            .map(|i| format!("someone.with.a.long.name{i:04}@example.com"))
            .collect();
        let r = ApiRequest::get("leads_by_filter", "/rest/v1/leads.json")
            .query("filterType", "email")
            .query("filterValues", emails.join(","));
        let p = r.prepare("https://h.mktorest.com", false);
        assert_eq!(p.method, Method::Post);
        assert_eq!(p.url, "https://h.mktorest.com/rest/v1/leads.json");
        let form = p.form.expect("form body");
        assert!(form.starts_with("filterType=email&filterValues="));
        assert!(form.ends_with("&_method=GET"));
        let decoded: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(decoded[1].1, emails.join(","));
    }

    #[test]
    fn the_switch_happens_exactly_past_the_limit() {
        let origin = "https://h.mktorest.com";
        let path = "/rest/v1/leads.json";
        let fixed = path.len() + "?v=".len();
        let at_limit = ApiRequest::get("x", path).query("v", "a".repeat(MAX_URL_BYTES - fixed));
        assert_eq!(at_limit.prepare(origin, false).method, Method::Get);
        let over = ApiRequest::get("x", path).query("v", "a".repeat(MAX_URL_BYTES - fixed + 1));
        assert_eq!(over.prepare(origin, false).method, Method::Post);
    }

    #[test]
    fn forced_post_after_414_and_non_get_untouched() {
        let r = ApiRequest::get("x", "/rest/v1/leads.json").query("a", "b");
        let p = r.prepare("https://h", true);
        assert_eq!(p.method, Method::Post);
        assert_eq!(p.form.as_deref(), Some("a=b&_method=GET"));
        let post = ApiRequest::post_json("x", "/rest/v1/leads.json", &serde_json::json!({}));
        assert_eq!(post.prepare("https://h", true).method, Method::Post);
        assert_eq!(post.prepare("https://h", true).form, None);
    }
}
