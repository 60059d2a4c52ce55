//! The last line of defence: whatever a stage or a plugin wrote, no secret
//! value and no email address from the document leaves the loader.
//!
//! Secrets are the string values whose schema carries `x-secret`; email
//! addresses are the string values that contain `@`. Every message and hint
//! has each of them replaced by `***`.

use serde_json::Value;

use super::schema::resolve;
use crate::error::ConfigError;

/// Values shorter than this are not scrubbed: replacing every `a` in a
/// message would make it unreadable, and the messages themselves never echo
/// values (this is the second line, not the first).
const MIN_SCRUB_LEN: usize = 4;

#[derive(Debug, Default)]
pub(super) struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// Collect the values to hide from `doc`, using the composed `schema` to
    /// find the `x-secret` fields of each plugin block.
    pub fn for_document(doc: &Value, schema: &Value) -> Redactor {
        let mut values = Vec::new();
        collect_emails(doc, &mut values);
        for (section, kind) in [("sources", "source"), ("destinations", "destination")] {
            for block in doc
                .get(section)
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.values())
            {
                let Some(ty) = block.get("type").and_then(Value::as_str) else {
                    continue;
                };
                let pointer = format!("/$defs/{}", escape(&format!("{kind}.{ty}")));
                if let Some(node) = resolve(schema, &pointer) {
                    collect_secrets(block, node, schema, &mut values);
                }
            }
        }
        values.retain(|v| v.len() >= MIN_SCRUB_LEN);
        // Longest first, so a secret that contains another is hidden whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    pub fn scrub(&self, mut error: ConfigError) -> ConfigError {
        error.message = self.scrub_str(&error.message);
        error.hint = error.hint.map(|h| self.scrub_str(&h));
        error
    }

    fn scrub_str(&self, s: &str) -> String {
        let mut out = s.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn collect_emails(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains('@') => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_emails(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_emails(x, out)),
        _ => {}
    }
}

fn collect_secrets(value: &Value, node: &Value, root: &Value, out: &mut Vec<String>) {
    let node = follow(root, node);
    if node.get("x-secret").and_then(Value::as_bool) == Some(true) {
        match value {
            Value::String(s) => out.push(s.clone()),
            // A secret given as a number or list is still a secret.
            other => out.push(other.to_string()),
        }
        return;
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_secrets(value, sub, root, out);
        }
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let sub = node
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(sub) = sub {
                    collect_secrets(v, sub, root, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = node.get("items").filter(|i| i.is_object()) {
                for v in items {
                    collect_secrets(v, sub, root, out);
                }
            }
        }
        _ => {}
    }
}

fn follow<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => resolve(root, &r[1..]).unwrap_or(node),
        _ => node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hides_secret_fields_and_emails() {
        let schema = json!({
            "$defs": {
                "destination.x": {
                    "properties": {
                        "client_secret": {"type": "string", "x-secret": true},
                        "nested": {"$ref": "#/$defs/destination.x.N"},
                    }
                },
                "destination.x.N": {"properties": {"token": {"x-secret": true}}},
            }
        });
        let doc = json!({
            "destinations": {"d": {
                "type": "x",
                "client_secret": "hunter2-long",
                "nested": {"token": 123456},
                "export_user": "maria@contoso.com",
                "display_name": "not secret",
            }}
        });
        let r = Redactor::for_document(&doc, &schema);
        let e = r.scrub(
            ConfigError::new(
                "p",
                "hunter2-long and 123456 and maria@contoso.com and not secret",
            )
            .with_hint("hunter2-long"),
        );
        assert_eq!(e.message, "*** and *** and *** and not secret");
        assert_eq!(e.hint.as_deref(), Some("***"));
    }
}
