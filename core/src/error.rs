//! Errors as data: every error has a class that says what the caller should do
//! about it, a message a person can act on, and optionally a hint.
//!
//! Messages never contain secrets or email addresses: whoever builds an error
//! from user data masks it first (see [`crate::RecordKey`]).

use std::fmt;

/// What kind of failure this is, and so what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The configuration is wrong; fix it and try again (exit 78).
    Config,
    /// Credentials were refused, or the account lacks a permission.
    Auth,
    /// The destination asked us to slow down and retries ran out.
    RateLimited,
    /// A daily quota or the configured call budget is spent; a later run resumes (exit 75).
    QuotaExhausted,
    /// A fault that may pass (timeouts, 5xx, closed connections) and retries ran out.
    Transient,
    /// The destination refused the request itself (bad data in the whole call).
    Rejected,
    /// A bug or an unexpected state in audex or its environment.
    Internal,
    /// A safety guard of audex stopped the run before anything was sent
    /// (the mirror guard against mass removal): a person must decide.
    Guard,
}

/// What the engine does when a destination call ends in an error. Decided
/// by the error's class, here and nowhere else
/// (see [`ErrorClass::reaction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reaction {
    /// Make the same call again after a backoff, a few times within the
    /// run; when those fail too, its rows count as failed (the next run
    /// sends them) and the call counts towards the failures in a row that
    /// stop the run.
    Retry,
    /// Stop sending: the run ends `paused`, and a later run resumes.
    Pause,
    /// Stop the run: it ends `failed`.
    Fail,
    /// The destination refused the call's records: each is rejected with
    /// the error's reason (the rejects file), never retried within the run.
    /// A refusal is an answer, not an outage: it does not count towards the
    /// failures in a row.
    Reject,
}

impl ErrorClass {
    /// Whether the same call may succeed if simply made again later.
    pub fn is_retryable(self) -> bool {
        self.reaction() == Reaction::Retry
    }

    /// The engine's reaction to a call that ended in this class (after the
    /// destination's own handling: a destination renews its credentials
    /// once before it reports `auth`, and may retry within a call).
    pub fn reaction(self) -> Reaction {
        match self {
            ErrorClass::Transient | ErrorClass::RateLimited => Reaction::Retry,
            ErrorClass::QuotaExhausted => Reaction::Pause,
            ErrorClass::Rejected => Reaction::Reject,
            ErrorClass::Auth | ErrorClass::Config | ErrorClass::Internal | ErrorClass::Guard => {
                Reaction::Fail
            }
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorClass::Config => "config",
            ErrorClass::Auth => "auth",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::Transient => "transient",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Internal => "internal",
            ErrorClass::Guard => "guard",
        };
        f.write_str(s)
    }
}

/// One problem in a configuration, located by its path in the document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `destinations.marketo_prod.mapping.email`.
    /// Empty for the document root.
    pub path: String,
    /// What is wrong. Never contains a secret value.
    pub message: String,
    /// What to do about it, when there is something specific to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// 1-based line in the YAML file, where it could be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            hint: None,
            line: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefix the path with `prefix` (used when a plugin reports paths relative
    /// to its own block).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

/// Join two dotted paths, either of which may be empty.
pub fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{rest}"),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        match self.line {
            Some(line) => write!(f, "{path} (line {line}): {}", self.message)?,
            None => write!(f, "{path}: {}", self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error type of audex-core and of the plugin traits.
///
/// Opaque on purpose: match on [`Error::class`] and the predicates, not on
/// the message.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    class: ErrorClass,
    message: String,
    hint: Option<String>,
    config_errors: Vec<ConfigError>,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            class,
            message: message.into(),
            hint: None,
            config_errors: Vec::new(),
            source: None,
        }
    }

    /// A configuration error carrying every problem found.
    pub fn config(errors: Vec<ConfigError>) -> Self {
        let message = match errors.len() {
            1 => "1 configuration error".to_string(),
            n => format!("{n} configuration errors"),
        };
        Error {
            config_errors: errors,
            ..Error::new(ErrorClass::Config, message)
        }
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Auth, message)
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Transient, message)
    }
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::RateLimited, message)
    }
    pub fn quota_exhausted(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::QuotaExhausted, message)
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Rejected, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorClass::Internal, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach the underlying cause. The caller is responsible for the cause's
    /// `Display` not containing secrets or email addresses.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn class(&self) -> ErrorClass {
        self.class
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    pub fn config_errors(&self) -> &[ConfigError] {
        &self.config_errors
    }
    pub fn is_config(&self) -> bool {
        self.class == ErrorClass::Config
    }
    pub fn is_quota_exhausted(&self) -> bool {
        self.class == ErrorClass::QuotaExhausted
    }
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for e in &self.config_errors {
            write!(f, "\n  {e}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
