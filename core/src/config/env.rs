//! The environment a config is loaded in: variables for `${VAR}` and the
//! `AUDEX_…` overrides.
//!
//! Loading takes an explicit [`Environment`] so that tests never touch the
//! process environment; the CLI passes [`Environment::process`].

use std::collections::BTreeMap;
use std::fmt;

use figment::providers::Env;

/// Prefix of the environment variables that override config keys.
pub const OVERRIDE_PREFIX: &str = "AUDEX_";

/// Separator between key segments in an override variable's name.
pub const OVERRIDE_SEPARATOR: &str = "__";

/// The top-level keys an override may start with. Every other `AUDEX_…`
/// variable belongs to the CLI or the tests (`AUDEX_CONFIG`, `AUDEX_LOG`,
/// `AUDEX_TEST_…`) and never becomes a config key.
pub const OVERRIDABLE_ROOTS: [&str; 4] = ["state", "sources", "segments", "destinations"];

/// One `AUDEX_…` variable that sets a config key.
#[derive(Clone, PartialEq, Eq)]
pub struct Override {
    /// The variable's name, for messages.
    pub var: String,
    /// Key segments, lowercased (environment names carry no case).
    pub path: Vec<String>,
    /// The raw value. Taken literally: no `${}` interpolation.
    pub value: String,
}

impl fmt::Debug for Override {
    // The value may be a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Override")
            .field("var", &self.var)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Variables for interpolation, and the overrides.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    overrides: Vec<Override>,
}

impl fmt::Debug for Environment {
    // Names only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl Environment {
    /// No variables and no overrides.
    pub fn empty() -> Self {
        Environment::default()
    }

    /// The process environment. Overrides are read with figment's `Env`
    /// provider (prefix `AUDEX_`, `__` between segments, keys lowercased).
    pub fn process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let overrides = Env::prefixed(OVERRIDE_PREFIX)
            .split(OVERRIDE_SEPARATOR)
            .iter()
            .filter_map(|(key, value)| {
                let path: Vec<String> = key.as_str().split('.').map(str::to_string).collect();
                let var = format!(
                    "{OVERRIDE_PREFIX}{}",
                    path.join(OVERRIDE_SEPARATOR).to_ascii_uppercase()
                );
                is_override_path(&path).then_some(Override { var, path, value })
            })
            .collect();
        Environment { vars, overrides }
    }

    /// An environment from explicit variables, with the same override rules
    /// as [`Environment::process`]. For tests and embedding.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let overrides = vars
            .iter()
            .filter_map(|(name, value)| {
                let rest = strip_prefix_ignore_case(name, OVERRIDE_PREFIX)?;
                let path: Vec<String> = rest
                    .split(OVERRIDE_SEPARATOR)
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect();
                if path.iter().any(String::is_empty) || !is_override_path(&path) {
                    return None;
                }
                Some(Override {
                    var: name.clone(),
                    path,
                    value: value.clone(),
                })
            })
            .collect();
        Environment { vars, overrides }
    }

    /// A variable's value, if set.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The `AUDEX_…` variables that set config keys, sorted by variable name
    /// so that a deeper key applied later wins over a shallower one.
    pub fn overrides(&self) -> Vec<&Override> {
        let mut v: Vec<&Override> = self.overrides.iter().collect();
        v.sort_by(|a, b| (a.path.len(), &a.var).cmp(&(b.path.len(), &b.var)));
        v
    }
}

fn is_override_path(path: &[String]) -> bool {
    path.first()
        .is_some_and(|root| OVERRIDABLE_ROOTS.contains(&root.as_str()))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_document_roots_become_overrides() {
        let env = Environment::from_vars([
            ("AUDEX_CONFIG", "x.yaml"),
            ("AUDEX_LOG", "debug"),
            ("AUDEX_TEST_PG", "1"),
            ("AUDEX_STATE", "/tmp/s.db"),
            ("AUDEX_DESTINATIONS__MARKETO_PROD__CLIENT_SECRET", "s3cret"),
            ("AUDEX_SEGMENTS____X", "bad: empty segment"),
            ("OTHER", "1"),
        ]);
        let paths: Vec<Vec<String>> = env.overrides().iter().map(|o| o.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec!["state".to_string()],
                vec![
                    "destinations".to_string(),
                    "marketo_prod".to_string(),
                    "client_secret".to_string()
                ],
            ]
        );
        assert_eq!(env.var("OTHER"), Some("1"));
    }

    #[test]
    fn debug_shows_no_values() {
        let env =
            Environment::from_vars([("AUDEX_DESTINATIONS__M__CLIENT_SECRET", "s3cret-value")]);
        let shown = format!("{env:?}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
        assert!(shown.contains("AUDEX_DESTINATIONS__M__CLIENT_SECRET"));
    }
}
