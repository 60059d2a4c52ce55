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
use tokio::time::Instant;

/// Renew when this little life is left (marketorestpython does the same):
/// a token that expires while a request is in flight costs a 602 round trip.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Token {
    value: Secret,
    expires_at: Instant,
    /// The API user owning the service, shown by `audex check`.
    scope: Option<String>,
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
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct IdentityErr {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// What a successful authentication tells a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthInfo {
    pub scope: Option<String>,
    pub expires_in: Duration,
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
            if t.expires_at > Instant::now() + RENEW_BEFORE {
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
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            Error::transient(format!(
                "reading the Identity answer failed: {}",
                e.without_url()
            ))
        })?;
        if status.is_success() {
            let ok: IdentityOk = serde_json::from_slice(&body).map_err(|_| {
                Error::internal("Marketo Identity answered with an unexpected body")
            })?;
            // `expires_in` is the *remaining* life, and 0 means "about to
            // rotate": treat it as already expired.
            let secs = ok.expires_in.unwrap_or(0).max(0) as u64;
            return Ok(Token {
                value: Secret::new(ok.access_token),
                expires_at: Instant::now() + Duration::from_secs(secs),
                scope: ok.scope,
            });
        }
        let detail = serde_json::from_slice::<IdentityErr>(&body)
            .ok()
            .and_then(|e| match (e.error, e.error_description) {
                (Some(a), Some(b)) => Some(format!("{a}: {b}")),
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            })
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        match status.as_u16() {
            400 | 401 | 403 => Err(Error::auth(format!(
                "Marketo refused the client credentials ({detail})"
            ))
            .with_hint(
                "check client_id and client_secret against Admin > LaunchPoint > View Details of the custom service",
            )),
            s if s >= 500 => Err(Error::transient(format!(
                "Marketo Identity failed ({detail})"
            ))),
            _ => Err(Error::internal(format!(
                "Marketo Identity answered unexpectedly ({detail})"
            ))),
        }
    }
}
