//! The Marketo REST endpoint as the user gives it, normalised.

use url::{Host, Url};

/// A validated endpoint: `https://HOST/rest` (or `http://` for a loopback
/// host). Paths are joined without ever producing `//`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme, host and port, no trailing slash: `https://123-ABC-456.mktorest.com`.
    origin: String,
}

impl Endpoint {
    /// Accepts `HOST`, `HOST/rest`, `https://HOST`, `https://HOST/rest` (with
    /// or without a trailing slash), and a port.
    pub fn parse(input: &str) -> Result<Endpoint, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("the endpoint is empty".to_string());
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| format!("not a valid URL: {e}"))?;
        let host = url
            .host()
            .ok_or_else(|| "the endpoint has no host".to_string())?;
        let loopback = match &host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err("plain http is allowed only for loopback hosts; use https".to_string())
            }
            other => return Err(format!("unsupported scheme {other:?}; use https")),
        }
        let path = url.path().trim_end_matches('/');
        if !(path.is_empty() || path == "/rest") {
            return Err(format!(
                "unexpected path {path:?}; give the host, optionally followed by /rest"
            ));
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err("the endpoint must not carry a query or credentials".to_string());
        }
        let mut origin = format!("{}://{}", url.scheme(), host);
        if let Some(port) = url.port() {
            origin.push_str(&format!(":{port}"));
        }
        Ok(Endpoint { origin })
    }

    /// `https://HOST`: identity and bulk paths hang off it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The REST base, `https://HOST/rest`.
    pub fn rest_base(&self) -> String {
        format!("{}/rest", self.origin)
    }

    /// A URL under the origin; `path` must start with `/`.
    pub fn url(&self, path: &str) -> String {
        debug_assert!(path.starts_with('/') && !path.contains("//"));
        format!("{}{}", self.origin, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_normalise_to_one_origin() {
        for input in [
            "123-ABC-456.mktorest.com",
            "123-ABC-456.mktorest.com/rest",
            "https://123-ABC-456.mktorest.com",
            "https://123-ABC-456.mktorest.com/",
            "https://123-ABC-456.mktorest.com/rest",
            "https://123-ABC-456.mktorest.com/rest/",
        ] {
            let e = Endpoint::parse(input).expect(input);
            assert_eq!(e.origin(), "https://123-abc-456.mktorest.com", "{input}");
            assert_eq!(e.rest_base(), "https://123-abc-456.mktorest.com/rest");
        }
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(Endpoint::parse("http://example.com").is_err());
        assert!(Endpoint::parse("http://example.com/rest").is_err());
        let e = Endpoint::parse("http://127.0.0.1:8080").expect("loopback");
        assert_eq!(e.origin(), "http://127.0.0.1:8080");
        assert!(Endpoint::parse("http://localhost:9000/rest").is_ok());
        assert!(Endpoint::parse("http://[::1]:9000").is_ok());
    }

    #[test]
    fn rejects_odd_shapes() {
        assert!(Endpoint::parse("").is_err());
        assert!(Endpoint::parse("ftp://x.mktorest.com").is_err());
        assert!(Endpoint::parse("https://x.mktorest.com/other").is_err());
        assert!(Endpoint::parse("https://u:p@x.mktorest.com").is_err());
    }

    #[test]
    fn never_emits_double_slashes() {
        let e = Endpoint::parse("https://x.mktorest.com/rest/").expect("valid");
        let u = e.url("/identity/oauth/token");
        assert!(!u["https://".len()..].contains("//"), "{u}");
    }
}
