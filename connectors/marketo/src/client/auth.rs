//! Client-credentials authentication against Marketo's Identity service
//! (facts §1). One token cache per LaunchPoint service (origin + client id),
//! shared by every client of that service in the process: Identity returns
//! the same token until it expires anyway, and fewer Identity calls mean
//! fewer chances to race a rotation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use audex_core::{Error, Result, Secret};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::service::{read_body, BodyError};
use super::wire::scrub;

/// Renew when this little life is left (marketorestpython does the same):
/// a token that expires while a request is in flight costs a 602 round trip.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The longest life a token is trusted for, whatever `expires_in` says:
/// Marketo's tokens last 3600 s, and a larger (or absurd) figure must not
/// make us hold on to one past its real expiry, nor overflow a deadline.
pub const MAX_TOKEN_LIFE: Duration = Duration::from_secs(3600);

/// The most of an Identity answer we read: a token answer is a few hundred
/// bytes.
pub const MAX_IDENTITY_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: Secret,
    pub(crate) expires_at: Instant,
    /// The API user owning the service (usually an email address: never
    /// printed).
    pub(crate) scope: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope.as_ref().map(|_| ".."))
            .finish()
    }
}

/// A cached access token for one LaunchPoint service.
pub struct TokenCache {
    http: reqwest::Client,
    identity_url: String,
    client_id: String,
    client_secret: Secret,
    /// Held across the Identity call, so concurrent callers wait for one
    /// fetch instead of each making their own.
    current: tokio::sync::Mutex<Option<Token>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("identity_url", &self.identity_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct IdentityOk {
    access_token: String,
    /// Read as any JSON value: see [`token_life`].
    #[serde(default)]
    expires_in: Option<Value>,
    /// Only displayed; a non-string is ignored rather than failing the token.
    #[serde(default)]
    scope: Option<Value>,
}

#[derive(Deserialize)]
struct IdentityErr {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    error_description: Option<Value>,
}

/// How long a token may be used, from Identity's `expires_in` (seconds of
/// *remaining* life). Clamped to [`MAX_TOKEN_LIFE`]; zero, negative, absent
/// or unreadable means "about to rotate": use it for this call and renew on
/// the next one. A number in a string is read too.
pub(crate) fn token_life(expires_in: Option<&Value>) -> Duration {
    let secs: f64 = match expires_in {
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                // Exact for every integer up to the clamp.
                u.min(MAX_TOKEN_LIFE.as_secs()) as f64
            } else {
                n.as_f64().unwrap_or(0.0)
            }
        }
        Some(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    };
    // NaN (from "NaN" in a string) and every non-positive value: expired.
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs.min(MAX_TOKEN_LIFE.as_secs_f64()))
        .unwrap_or(MAX_TOKEN_LIFE)
        .min(MAX_TOKEN_LIFE)
}

/// Whether a token can go in an `Authorization: Bearer` header as it is.
fn usable_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A JSON value for a message: a string as itself, anything else as JSON.
fn value_text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Identity's answer (`status`, `body`, read at `now`) as a token or a
/// classified error. Pure, so every answer can be tested: it never panics,
/// and its errors never carry `secret` or an email address.
pub(crate) fn parse_identity(
    status: u16,
    body: &[u8],
    now: Instant,
    secret: &Secret,
) -> Result<Token> {
    if (200..300).contains(&status) {
        let ok: IdentityOk = serde_json::from_slice(body)
            .map_err(|_| Error::internal("Marketo Identity answered with an unexpected body"))?;
        if !usable_token(&ok.access_token) {
            return Err(Error::internal(
                "Marketo Identity answered with an empty or malformed access token",
            ));
        }
        let life = token_life(ok.expires_in.as_ref());
        return Ok(Token {
            value: Secret::new(ok.access_token),
            expires_at: now.checked_add(life).unwrap_or(now),
            scope: ok.scope.and_then(|s| match s {
                Value::String(s) => Some(s),
                _ => None,
            }),
        });
    }
    let detail = serde_json::from_slice::<IdentityErr>(body)
        .ok()
        .and_then(|e| {
            match (
                e.error.and_then(value_text),
                e.error_description.and_then(value_text),
            ) {
                (Some(a), Some(b)) => Some(format!("{a}: {b}")),
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            }
        })
        .map(|d| {
            // The service's own error text: never let it echo the secret.
            let d = if secret.expose().is_empty() {
                d
            } else {
                d.replace(secret.expose(), "<redacted>")
            };
            scrub(&d)
        })
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        400 | 401 | 403 => Err(Error::auth(format!(
            "Marketo refused the client credentials ({detail})"
        ))
        .with_hint(
            "check client_id and client_secret against Admin > LaunchPoint > View Details of the custom service",
        )),
        429 => Err(Error::rate_limited(format!(
            "Marketo Identity is throttling ({detail})"
        ))),
        408 | 500..=599 => Err(Error::transient(format!(
            "Marketo Identity failed ({detail})"
        ))),
        _ => Err(Error::internal(format!(
            "Marketo Identity answered unexpectedly ({detail})"
        ))),
    }
}

/// What a successful authentication tells a person.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// The API user, usually an email address: never printed.
    pub scope: Option<String>,
    pub expires_in: Duration,
}

impl std::fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthInfo")
            .field("scope", &self.scope.as_ref().map(|_| ".."))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl TokenCache {
    pub fn new(
        http: reqwest::Client,
        identity_url: String,
        client_id: String,
        client_secret: Secret,
    ) -> TokenCache {
        TokenCache {
            http,
            identity_url,
            client_id,
            client_secret,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The cache for this service, shared process-wide. Keyed by the secret
    /// too, so a rotated secret in one config never gets a token fetched with
    /// the other.
    pub fn shared(
        http: &reqwest::Client,
        origin: &str,
        identity_url: String,
        client_id: &str,
        client_secret: &Secret,
    ) -> Arc<TokenCache> {
        type Key = (String, String, String);
        static CACHES: OnceLock<Mutex<HashMap<Key, Arc<TokenCache>>>> = OnceLock::new();
        let caches = CACHES.get_or_init(Default::default);
        let key = (
            origin.to_ascii_lowercase(),
            client_id.to_string(),
            client_secret.expose().to_string(),
        );
        let mut map = caches.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                Arc::new(TokenCache::new(
                    http.clone(),
                    identity_url,
                    client_id.to_string(),
                    client_secret.clone(),
                ))
            })
            .clone()
    }

    /// A token with more than [`RENEW_BEFORE`] of life left, fetched if needed.
    pub async fn token(&self) -> Result<Secret> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref() {
            if t.expires_at.saturating_duration_since(Instant::now()) > RENEW_BEFORE {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.fetch().await?;
        let value = fresh.value.clone();
        *current = Some(fresh);
        Ok(value)
    }

    /// Forget `stale` after Marketo refused it (601/602). A token another
    /// caller already replaced is left alone.
    pub async fn invalidate(&self, stale: &Secret) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| &t.value == stale) {
            *current = None;
        }
    }

    /// Authenticate now (for `audex check`), reporting what Identity said.
    pub async fn authenticate(&self) -> Result<AuthInfo> {
        let mut current = self.current.lock().await;
        let fresh = self.fetch().await?;
        let info = AuthInfo {
            scope: fresh.scope.clone(),
            expires_in: fresh.expires_at.saturating_duration_since(Instant::now()),
        };
        *current = Some(fresh);
        Ok(info)
    }

    async fn fetch(&self) -> Result<Token> {
        // Form body, never the query: URLs end up in logs and error
        // messages, the body does not.
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        let attempt = || async {
            self.http
                .post(&self.identity_url)
                .form(&form)
                .send()
                .await
                .map_err(|e| e.without_url())
        };
        // Identity calls are free (not counted), so one quick retry of a
        // transport fault costs nothing.
        let response = match attempt().await {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() => attempt().await.map_err(|e| {
                Error::transient(format!("cannot reach Marketo Identity: {e}"))
                    .with_hint("check the endpoint host and your network")
            })?,
            Err(e) => {
                return Err(Error::transient(format!(
                    "cannot reach Marketo Identity: {e}"
                )))
            }
        };
        let status = response.status().as_u16();
        let body = read_body(response, MAX_IDENTITY_BODY)
            .await
            .map_err(|e| match e {
                BodyError::Transport(e) => Error::transient(format!(
                    "reading the Identity answer failed: {}",
                    e.without_url()
                )),
                BodyError::TooLarge(limit) => Error::internal(format!(
                    "Marketo Identity answered with more than {limit} bytes"
                )),
            })?;
        parse_identity(status, &body, Instant::now(), &self.client_secret)
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn the_api_user_never_prints() {
        let info = AuthInfo {
            scope: Some("apiuser@example.com".into()),
            expires_in: Duration::from_secs(60),
        };
        assert!(!format!("{info:?}").contains('@'));
        let token = Token {
            value: Secret::new("tok"),
            expires_at: Instant::now(),
            scope: Some("apiuser@example.com".into()),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains('@') && !shown.contains("tok\""), "{shown}");
    }
}
