//! The environment a config is loaded in: variables for `${VAR}` and the
//! `AUDEX_…` overrides.
//!
//! Loading takes an explicit [`Environment`] so that tests never touch the
//! process environment; the CLI passes [`Environment::process`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

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

    /// The process environment. Variables whose name or value is not
    /// UTF-8 are left out; the rest go through [`Environment::from_vars`], so
    /// the overrides follow the same rules in tests and in the CLI.
    pub fn process() -> Self {
        Environment::from_os_vars(std::env::vars_os())
    }

    /// An environment from explicit variables, with the override rules of
    /// docs/configuration.md: every variable is available to `${VAR}`, and
    /// `AUDEX_<ROOT>__<KEY>…` with a root of [`OVERRIDABLE_ROOTS`] sets a key.
    /// [`Environment::process`] goes through here too. For tests and
    /// embedding.
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
        let overrides = overrides_in(&vars);
        Environment { vars, overrides }
    }

    /// [`Environment::from_vars`] over OS strings, leaving out any variable
    /// whose name or value is not UTF-8 (it cannot be written in the
    /// document, nor name a key).
    fn from_os_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        Environment::from_vars(
            vars.into_iter()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
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

/// The one reader of `AUDEX_…` overrides. A variable is an override when its
/// name is `AUDEX_` (in any case) then key segments separated by `__`, none
/// of them empty, the first one of [`OVERRIDABLE_ROOTS`]. Segments are
/// trimmed and lowercased; the variable keeps its name for messages.
fn overrides_in(vars: &BTreeMap<String, String>) -> Vec<Override> {
    vars.iter()
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
        .collect()
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

    /// `process()` is `from_os_vars(std::env::vars_os())`: the same variables
    /// give the same environment through both constructors, and variables
    /// that are not UTF-8 are left out.
    #[test]
    fn process_and_from_vars_read_the_same_overrides() {
        let vars = [
            ("AUDEX_CONFIG", "x.yaml"),
            ("AUDEX_LOG", "debug"),
            ("AUDEX_TEST_PG", "1"),
            ("audex_state", "/tmp/s.db"),
            ("AUDEX_DESTINATIONS__M__MAPPING__FIRSTNAME", "first_name"),
            ("AUDEX_DESTINATIONS__M__EXPORTS__1__LIST_ID", "2002"),
            ("AUDEX_SEGMENTS____X", "empty segment"),
            ("AUDEX_SEGMENTS__", "empty segment"),
            ("AUDEX_", "no key"),
            ("AUDEX_OTHER__X", "not a root"),
            ("MARKETO_CLIENT_SECRET", "s3cret"),
        ];
        let explicit = Environment::from_vars(vars);
        #[allow(unused_mut)]
        let mut os: Vec<(OsString, OsString)> = vars
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            os.push((
                OsString::from_vec(b"AUDEX_STATE\xff".to_vec()),
                OsString::from("x"),
            ));
            os.push((
                OsString::from("AUDEX_SOURCES__CRM__URL"),
                OsString::from_vec(b"\xffpostgres://".to_vec()),
            ));
        }
        let process = Environment::from_os_vars(os);
        assert_eq!(process.vars, explicit.vars);
        assert_eq!(process.overrides(), explicit.overrides());
        let read: Vec<(&str, Vec<&str>)> = explicit
            .overrides()
            .into_iter()
            .map(|o| (o.var.as_str(), o.path.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            read,
            vec![
                ("audex_state", vec!["state"]),
                (
                    "AUDEX_DESTINATIONS__M__MAPPING__FIRSTNAME",
                    vec!["destinations", "m", "mapping", "firstname"]
                ),
                (
                    "AUDEX_DESTINATIONS__M__EXPORTS__1__LIST_ID",
                    vec!["destinations", "m", "exports", "1", "list_id"]
                ),
            ]
        );
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
