//! Where the API lives: the data centre taken from the API key, and the
//! base URL (the default from the data centre, or the user's, which must be
//! https unless its host is a loopback address).

use url::{Host, Url};

/// The data centre of a key of the form `<key>-<dc>`: the part after the
/// last `-` (`us6`), when it is a plausible data centre name (ASCII letters
/// and digits). Never returns or echoes the rest of the key.
pub fn data_centre(api_key: &str) -> Option<&str> {
    let (_, dc) = api_key.trim().rsplit_once('-')?;
    let plausible =
        !dc.is_empty() && dc.len() <= 16 && dc.bytes().all(|b| b.is_ascii_alphanumeric());
    plausible.then_some(dc)
}

/// The default API root for a data centre: `https://<dc>.api.mailchimp.com/3.0`.
pub fn default_base_url(dc: &str) -> String {
    format!("https://{}.api.mailchimp.com/3.0", dc.to_ascii_lowercase())
}

/// A validated API root, without a trailing slash:
/// `https://us6.api.mailchimp.com/3.0` or `http://127.0.0.1:8081/3.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Accepts an absolute `https` URL (or `http` for a loopback host) with
    /// no query, fragment or credentials. The messages never repeat the
    /// input: a mistyped key pasted here must not reach a log.
    pub fn parse(input: &str) -> Result<BaseUrl, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("the base URL is empty".to_string());
        }
        let url = Url::parse(trimmed).map_err(|e| {
            format!("not an absolute URL ({e}); write e.g. https://us6.api.mailchimp.com/3.0")
        })?;
        let host = url
            .host()
            .ok_or_else(|| "the base URL has no host".to_string())?;
        let loopback = match &host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(
                    "plain http is allowed only for loopback hosts; use https (Mailchimp refuses plain HTTP)"
                        .to_string(),
                )
            }
            _ => return Err("unsupported scheme; use https".to_string()),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the base URL must not carry a query or a fragment".to_string());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the base URL must not carry credentials; the key goes in api_key".to_string(),
            );
        }
        let mut root = format!("{}://{}", url.scheme(), host);
        if let Some(port) = url.port() {
            root.push_str(&format!(":{port}"));
        }
        root.push_str(url.path().trim_end_matches('/'));
        Ok(BaseUrl(root))
    }

    /// The root every API path hangs off, no trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `root + path`; `path` starts with `/`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }
}

/// The API root for a config: `base_url` when given, else the default of
/// the key's data centre.
pub fn resolve(api_key: &str, base_url: Option<&str>) -> Result<BaseUrl, (&'static str, String)> {
    match base_url {
        Some(u) => BaseUrl::parse(u).map_err(|e| ("base_url", e)),
        None => match data_centre(api_key) {
            Some(dc) => BaseUrl::parse(&default_base_url(dc)).map_err(|e| ("api_key", e)),
            None => Err((
                "api_key",
                "the key does not end in `-<dc>` (its data centre, e.g. -us6), so the API host is unknown"
                    .to_string(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_centre_is_the_suffix_after_the_last_dash() {
        assert_eq!(data_centre("0123abcd-us6"), Some("us6"));
        assert_eq!(data_centre("a-b-us21"), Some("us21"));
        assert_eq!(data_centre("nodash"), None);
        assert_eq!(data_centre("key-"), None);
        assert_eq!(data_centre("key-us 6"), None);
    }

    #[test]
    fn default_root_comes_from_the_key() {
        let root = resolve("abc-us6", None).expect("resolves");
        assert_eq!(root.as_str(), "https://us6.api.mailchimp.com/3.0");
        assert_eq!(
            root.join("/lists/x"),
            "https://us6.api.mailchimp.com/3.0/lists/x"
        );
        let err = resolve("no-data-centre-here!", None).expect_err("no dc");
        assert_eq!(err.0, "api_key");
        assert!(!err.1.contains("here!"), "{}", err.1);
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(BaseUrl::parse("http://example.com/3.0").is_err());
        assert!(BaseUrl::parse("http://us6.api.mailchimp.com/3.0").is_err());
        let local = BaseUrl::parse("http://127.0.0.1:8081/3.0/").expect("loopback");
        assert_eq!(local.as_str(), "http://127.0.0.1:8081/3.0");
        assert!(BaseUrl::parse("http://localhost:9/3.0").is_ok());
        assert!(BaseUrl::parse("http://[::1]:9/3.0").is_ok());
        assert!(BaseUrl::parse("https://us6.api.mailchimp.com/3.0").is_ok());
    }

    #[test]
    fn odd_shapes_are_refused_without_echoing_them() {
        for bad in [
            "",
            "us6.api.mailchimp.com",
            "ftp://x/3.0",
            "https://u:secretpw@x/3.0",
            "https://x/3.0?apikey=secretpw",
        ] {
            let e = BaseUrl::parse(bad).expect_err(bad);
            assert!(!e.contains("secretpw"), "{e}");
        }
    }
}
