//! The schema stage: the whole document against [`super::schema::document_schema`],
//! every error at once, each turned into a [`ConfigError`] with a dotted path.
//!
//! Messages are written here from the error's kind, never taken from the
//! validator: its messages embed the offending value, and that value may be
//! a client secret (`x-secret`) or an email address (`export_user`). No
//! message below contains an instance value; only keys and the schema's own
//! constants appear.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

use super::schema::{document_schema, resolve, NAME_PATTERN};
use crate::error::{join_path, ConfigError};

/// One schema error, rendered, with what coercion needs to know.
#[derive(Debug)]
pub(super) struct SchemaError {
    pub error: ConfigError,
    /// For a `type` error: the types the schema wanted.
    pub expected: Vec<JsonType>,
    /// For an `enum` error on a `type` key: the registry stage owns it.
    pub is_type_enum: bool,
}

struct Compiled {
    schema: Value,
    validator: Result<Validator, String>,
}

/// Plugins are linked in at build time, so the composed schema is the same
/// for the whole process.
fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schema = document_schema();
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string());
        Compiled { schema, validator }
    })
}

/// The composed document schema this process validates against.
pub(super) fn composed_schema() -> &'static Value {
    &compiled().schema
}

pub(super) fn check(doc: &Value) -> Vec<SchemaError> {
    let compiled = compiled();
    let validator = match &compiled.validator {
        Ok(v) => v,
        Err(e) => {
            // A plugin shipped a schema the validator cannot compile: a bug,
            // but one the user should see rather than a silent pass.
            return vec![SchemaError {
                error: ConfigError::new("", format!("internal: the config schema is invalid: {e}"))
                    .with_hint("report this; `audex schema` prints the schema"),
                expected: Vec::new(),
                is_type_enum: false,
            }];
        }
    };
    validator
        .iter_errors(doc)
        .flat_map(|e| render(&e, &compiled.schema))
        .collect()
}

fn dotted(location: &Location) -> String {
    location
        .segments()
        .map(|s| match s {
            LocationSegment::Property(p) => p.into_owned(),
            LocationSegment::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn plain(error: ConfigError) -> SchemaError {
    SchemaError {
        error,
        expected: Vec::new(),
        is_type_enum: false,
    }
}

fn render(e: &ValidationError<'_>, schema: &Value) -> Vec<SchemaError> {
    let path = dotted(e.instance_path());
    let schema_path = e.schema_path().as_str().to_string();
    let at = |msg: String| plain(ConfigError::new(path.clone(), msg));
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let allowed = allowed_keys(schema, &schema_path);
            unexpected
                .iter()
                .map(|key| {
                    let mut err = ConfigError::new(join_path(&path, key), "unknown key");
                    err = match closest(key, &allowed) {
                        Some(near) => err.with_hint(format!("did you mean `{near}`?")),
                        None if !allowed.is_empty() => err.with_hint(format!(
                            "allowed keys: {}",
                            allowed
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                        None => err,
                    };
                    plain(err)
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            vec![plain(ConfigError::new(
                join_path(&path, key),
                "is required",
            ))]
        }
        ValidationErrorKind::Type { kind } => {
            let expected: Vec<JsonType> = match kind {
                TypeKind::Single(t) => vec![*t],
                TypeKind::Multiple(set) => set.iter().collect(),
            };
            let wanted = expected
                .iter()
                .map(|t| type_name(*t))
                .collect::<Vec<_>>()
                .join(" or ");
            let found = value_type_name(e.instance());
            vec![SchemaError {
                error: ConfigError::new(path, format!("expected {wanted}, found {found}")),
                expected,
                is_type_enum: false,
            }]
        }
        ValidationErrorKind::Enum { options } => {
            let list = options
                .as_array()
                .map(|a| a.iter().map(constant).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            vec![SchemaError {
                error: ConfigError::new(path.clone(), format!("must be one of: {list}")),
                expected: Vec::new(),
                is_type_enum: path.ends_with(".type"),
            }]
        }
        ValidationErrorKind::Constant { expected_value } => {
            vec![at(format!("must be {}", constant(expected_value)))]
        }
        ValidationErrorKind::Minimum { limit } => vec![at(format!("must be at least {limit}"))],
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            vec![at(format!("must be greater than {limit}"))]
        }
        ValidationErrorKind::Maximum { limit } => vec![at(format!("must be at most {limit}"))],
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            vec![at(format!("must be less than {limit}"))]
        }
        ValidationErrorKind::MinLength { limit: 1 } => vec![at("must not be empty".into())],
        ValidationErrorKind::MinLength { limit } => {
            vec![at(format!("must be at least {limit} characters long"))]
        }
        ValidationErrorKind::MaxLength { limit } => {
            vec![at(format!("must be at most {limit} characters long"))]
        }
        ValidationErrorKind::MinItems { limit: 1 } => {
            vec![at("must list at least one item".into())]
        }
        ValidationErrorKind::MinItems { limit } => {
            vec![at(format!("must list at least {limit} items"))]
        }
        ValidationErrorKind::MaxItems { limit } => {
            vec![at(format!("must list at most {limit} items"))]
        }
        ValidationErrorKind::MinProperties { limit } => {
            vec![at(format!("must have at least {limit} entries"))]
        }
        ValidationErrorKind::MaxProperties { limit } => {
            vec![at(format!("must have at most {limit} entries"))]
        }
        ValidationErrorKind::Pattern { pattern } => {
            vec![at(format!("does not match the pattern `{pattern}`"))]
        }
        ValidationErrorKind::PropertyNames { error } => {
            // The inner instance is the key itself: a name, not a value.
            let key = error.instance().as_str().unwrap_or_default().to_string();
            let mut err = ConfigError::new(join_path(&path, &key), "is not a valid name");
            if matches!(error.kind(), ValidationErrorKind::Pattern { pattern } if pattern == NAME_PATTERN)
            {
                err = err.with_hint("names use letters, digits, `_` and `-`");
            }
            vec![plain(err)]
        }
        ValidationErrorKind::OneOfNotValid { .. } => {
            let msg = match (
                required_alternatives(schema, &schema_path),
                constant_alternatives(schema, &schema_path),
            ) {
                (Some(keys), _) => format!("needs one of {}", keys.join(" or ")),
                (None, Some(values)) => format!("must be one of: {}", values.join(", ")),
                (None, None) => "does not match any of the allowed forms".to_string(),
            };
            vec![at(msg)]
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            let msg = match required_alternatives(schema, &schema_path) {
                Some(keys) => format!("has both {}; give only one", keys.join(" and ")),
                None => "matches more than one of the allowed forms".to_string(),
            };
            vec![at(msg)]
        }
        ValidationErrorKind::AnyOf { .. } => {
            vec![at("does not match any of the allowed forms".into())]
        }
        ValidationErrorKind::Format { format } => vec![at(format!("is not a valid {format}"))],
        ValidationErrorKind::UniqueItems => vec![at("must not contain duplicates".into())],
        ValidationErrorKind::FalseSchema | ValidationErrorKind::Not { .. } => {
            vec![at("is not allowed here".into())]
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            vec![at(format!("must be a multiple of {multiple_of}"))]
        }
        other => vec![at(format!("is invalid ({})", other.keyword()))],
    }
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "a list",
        JsonType::Boolean => "true or false",
        JsonType::Integer => "an integer",
        JsonType::Null => "nothing",
        JsonType::Number => "a number",
        JsonType::Object => "a mapping",
        JsonType::String => "a string",
    }
}

fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A schema constant, as it would be written in YAML.
fn constant(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// The keys the object at a failing `additionalProperties` may have.
fn allowed_keys(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .rsplit_once('/')
        .map(|(p, _)| p)
        .unwrap_or_default();
    resolve(schema, parent)
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

/// When a `oneOf`'s alternatives are each `{required: [key]}`, those keys.
fn required_alternatives(schema: &Value, schema_path: &str) -> Option<Vec<String>> {
    let alternatives = resolve(schema, schema_path)?.as_array()?;
    alternatives
        .iter()
        .map(|alt| {
            let obj = alt.as_object()?;
            let req = obj.get("required")?.as_array()?;
            match (obj.len(), req.as_slice()) {
                (1, [Value::String(k)]) => Some(format!("`{k}`")),
                _ => None,
            }
        })
        .collect()
}

/// When a `oneOf`'s alternatives are each a constant (an enum whose
/// variants carry doc comments), those constants.
fn constant_alternatives(schema: &Value, schema_path: &str) -> Option<Vec<String>> {
    let alternatives = resolve(schema, schema_path)?.as_array()?;
    alternatives
        .iter()
        .map(|alt| {
            let value =
                alt.get("const")
                    .or_else(|| match alt.get("enum")?.as_array()?.as_slice() {
                        [one] => Some(one),
                        _ => None,
                    })?;
            Some(constant(value))
        })
        .collect()
}

/// The allowed key nearest to a mistyped one, if it is near enough to be a typo.
fn closest<'a>(key: &str, allowed: &'a [String]) -> Option<&'a str> {
    let key_l = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&key_l, &a.to_ascii_lowercase()), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let allowed: Vec<String> = ["endpoint", "client_id", "client_secret", "mapping"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(closest("endpiont", &allowed), Some("endpoint"));
        assert_eq!(closest("client_secert", &allowed), Some("client_secret"));
        assert_eq!(closest("Mapping", &allowed), Some("mapping"));
        assert_eq!(closest("zzzzzz", &allowed), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn segment_errors_are_specific_and_echo_no_values() {
        let doc = serde_json::json!({
            "segments": {
                "both": {"source": "crm", "table": "t", "query": "SELECT 1"},
                "neither": {"source": "crm"},
                "bad name": {"source": "crm", "table": "t"},
                "typo": {"source": "crm", "tabel": "t", "table": "t"},
            },
            "stat": "x",
        });
        let errs: Vec<String> = check(&doc)
            .into_iter()
            .map(|e| e.error.to_string())
            .collect();
        assert!(
            errs.contains(
                &"segments.both: has both `table` and `query`; give only one".to_string()
            ),
            "{errs:#?}"
        );
        assert!(
            errs.contains(&"segments.neither: needs one of `table` or `query`".to_string()),
            "{errs:#?}"
        );
        assert!(errs.contains(&"segments.bad name: is not a valid name (hint: names use letters, digits, `_` and `-`)".to_string()), "{errs:#?}");
        assert!(
            errs.contains(
                &"segments.typo.tabel: unknown key (hint: did you mean `table`?)".to_string()
            ),
            "{errs:#?}"
        );
        assert!(
            errs.contains(&"stat: unknown key (hint: did you mean `state`?)".to_string()),
            "{errs:#?}"
        );
        assert!(errs.iter().all(|e| !e.contains("SELECT 1")), "{errs:#?}");
    }

    #[test]
    fn type_errors_name_both_types() {
        let doc = serde_json::json!({"state": 5});
        let errs = check(&doc);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].error.to_string(),
            "state: expected a string, found an integer"
        );
        assert_eq!(errs[0].expected, vec![JsonType::String]);
    }
}
