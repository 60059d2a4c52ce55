//! `${VAR}` interpolation in string values.
//!
//! Syntax: `${NAME}` is the variable's value; `${NAME:-default}` falls back to
//! `default` when the variable is unset or empty; `$${` is a literal `${`. A
//! `$` not followed by `{` is kept as is. Keys are never interpolated.
//!
//! Interpolation works on parsed values, not on the file's text, so a value
//! holding `:` or `#` cannot change the document's structure.

use std::collections::BTreeSet;

use serde_json::Value;

use super::env::Environment;
use crate::error::{join_path, ConfigError};

/// What interpolation did to a document.
#[derive(Debug, Default)]
pub(super) struct Interpolated {
    pub errors: Vec<ConfigError>,
    /// Paths of values that contained at least one `${…}`.
    pub paths: BTreeSet<String>,
    /// Paths whose value could not be interpolated; later stages stay quiet
    /// about them.
    pub failed: BTreeSet<String>,
}

pub(super) fn interpolate_document(doc: &mut Value, env: &Environment) -> Interpolated {
    let mut out = Interpolated::default();
    walk(doc, "", env, &mut out);
    out
}

fn walk(value: &mut Value, path: &str, env: &Environment, out: &mut Interpolated) {
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return;
            }
            match expand(s, env) {
                Ok(Some(expanded)) => {
                    *s = expanded;
                    out.paths.insert(path.to_string());
                }
                Ok(None) => {}
                Err(problems) => {
                    out.failed.insert(path.to_string());
                    out.errors.extend(problems.into_iter().map(|p| p.at(path)));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &join_path(path, &i.to_string()), env, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, &join_path(path, k), env, out);
            }
        }
        _ => {}
    }
}

/// One problem in one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem {
    Missing(String),
    BadName(String),
    Unterminated,
}

impl Problem {
    fn at(self, path: &str) -> ConfigError {
        match self {
            Problem::Missing(name) => ConfigError::new(
                path,
                format!("environment variable `{name}` is not set"),
            )
            .with_hint(format!(
                "set {name} in the environment, or give a default with `${{{name}:-default}}`"
            )),
            Problem::BadName(name) => ConfigError::new(
                path,
                format!("`${{{name}}}` is not a valid variable reference"),
            )
            .with_hint(
                "names are letters, digits and _ and do not start with a digit; write `$${` for a literal `${`",
            ),
            Problem::Unterminated => ConfigError::new(path, "`${` without a closing `}`")
                .with_hint("write `$${` for a literal `${`"),
        }
    }
}

/// Expand one string. `Ok(None)` when it holds no reference (only literal
/// `$`), so untouched values stay untouched.
pub(super) fn expand(input: &str, env: &Environment) -> Result<Option<String>, Vec<Problem>> {
    let mut out = String::with_capacity(input.len());
    let mut problems = Vec::new();
    let mut changed = false;
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            changed = true;
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            changed = true;
            let Some(end) = tail.find('}') else {
                problems.push(Problem::Unterminated);
                break;
            };
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !is_valid_name(name) {
                problems.push(Problem::BadName(name.to_string()));
            } else {
                match (env.var(name), default) {
                    (Some(""), Some(d)) => out.push_str(d),
                    (Some(v), _) => out.push_str(v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => problems.push(Problem::Missing(name.to_string())),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(changed.then_some(out))
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment::from_vars([("A", "alpha"), ("EMPTY", ""), ("B_2", "beta")])
    }

    fn ok(s: &str) -> Option<String> {
        expand(s, &env()).expect("expands")
    }

    #[test]
    fn replaces_references() {
        assert_eq!(ok("${A}"), Some("alpha".into()));
        assert_eq!(ok("x-${A}-${B_2}-y"), Some("x-alpha-beta-y".into()));
        assert_eq!(ok("${A:-d}"), Some("alpha".into()));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(ok("${NOPE:-sim-secret}"), Some("sim-secret".into()));
        assert_eq!(ok("${EMPTY:-fallback}"), Some("fallback".into()));
        assert_eq!(ok("${NOPE:-}"), Some(String::new()));
        // Set but empty, without a default, is what the user asked for.
        assert_eq!(ok("${EMPTY}"), Some(String::new()));
    }

    #[test]
    fn escapes_and_lone_dollars_are_literal() {
        assert_eq!(ok("$${A}"), Some("${A}".into()));
        assert_eq!(ok("price $5"), None);
        assert_eq!(ok("a$"), None);
        assert_eq!(ok("$$"), None);
    }

    #[test]
    fn missing_variables_are_errors_never_empty_strings() {
        assert_eq!(
            expand("${MISSING} and ${ALSO_MISSING}", &env()),
            Err(vec![
                Problem::Missing("MISSING".into()),
                Problem::Missing("ALSO_MISSING".into())
            ])
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(expand("${A", &env()), Err(vec![Problem::Unterminated]));
        assert_eq!(
            expand("${1A}", &env()),
            Err(vec![Problem::BadName("1A".into())])
        );
        assert_eq!(
            expand("${}", &env()),
            Err(vec![Problem::BadName(String::new())])
        );
    }

    #[test]
    fn document_walk_reports_paths() {
        let mut doc = serde_json::json!({
            "destinations": {"m": {"client_secret": "${SECRET}", "exports": [{"segment": "${A}"}]}}
        });
        let out = interpolate_document(&mut doc, &env());
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].path, "destinations.m.client_secret");
        assert!(out.errors[0].message.contains("`SECRET`"));
        assert!(out.failed.contains("destinations.m.client_secret"));
        assert!(out.paths.contains("destinations.m.exports.0.segment"));
        assert_eq!(doc["destinations"]["m"]["exports"][0]["segment"], "alpha");
    }
}
