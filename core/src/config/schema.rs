//! The JSON Schema of the whole document, composed from the document's own
//! shape and every registered plugin's schema.
//!
//! Each plugin block is selected by its `type` with `if`/`then`, so an error
//! inside a block is reported against that plugin's schema ("unknown key
//! `endpiont`") rather than as "did not match any variant".

use serde_json::{json, Map, Value};

use crate::registry::{self, PluginKind};

/// Names of sources, segments and destinations: they appear in dotted paths,
/// in `AUDEX_…` variable names and on the command line.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// `$defs` key of a plugin's schema in the document schema.
pub fn plugin_def_name(kind: PluginKind, name: &str) -> String {
    format!("{kind}.{name}")
}

/// The JSON Schema of an `audex.yaml` document (draft 2020-12).
pub fn document_schema() -> Value {
    let mut defs = Map::new();
    let sources: Vec<_> = registry::sources()
        .into_iter()
        .map(|p| (p.name, (p.schema)()))
        .collect();
    let destinations: Vec<_> = registry::destinations()
        .into_iter()
        .map(|p| (p.name, (p.schema)()))
        .collect();
    let source = block_schema(
        PluginKind::Source,
        "A source of profiles; `type` selects the plugin and the other keys are its own.",
        &sources,
        &mut defs,
    );
    defs.insert("source".into(), source);
    let destination = block_schema(
        PluginKind::Destination,
        "A destination; `type` selects the plugin and the other keys are its own.",
        &destinations,
        &mut defs,
    );
    defs.insert("destination".into(), destination);
    defs.insert("segment".into(), segment_schema());

    let named_map = |description: &str, item: &str| {
        json!({
            "description": description,
            "type": "object",
            "propertyNames": { "pattern": NAME_PATTERN },
            "additionalProperties": { "$ref": format!("#/$defs/{item}") },
        })
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "audex configuration",
        "description": "Sources of customer profiles, the segments selected from them, and the destinations they are exported to.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "state": {
                "description": "Path of the SQLite state store, relative to the config file's folder (default `.audex/state.db`).",
                "type": "string",
                "minLength": 1,
            },
            "sources": named_map("Sources of profiles, by name.", "source"),
            "segments": named_map("Segments, by name: a table or a query of one source.", "segment"),
            "destinations": named_map("Destinations, by name, each with the segments it exports.", "destination"),
        },
        "$defs": Value::Object(defs),
    })
}

/// The schema of one registered plugin's block, as the plugin declares it.
pub fn plugin_schema(name: &str) -> Option<(PluginKind, Value)> {
    if let Some(p) = registry::destination(name) {
        return Some((PluginKind::Destination, (p.schema)().to_value()));
    }
    registry::source(name).map(|p| (PluginKind::Source, (p.schema)().to_value()))
}

fn segment_schema() -> Value {
    json!({
        "description": "Profiles selected from one source: every row of a `table`, or the rows of a SQL `query`.",
        "type": "object",
        "additionalProperties": false,
        "required": ["source"],
        "properties": {
            "source": {
                "description": "Name of a source declared under `sources`.",
                "type": "string",
                "minLength": 1,
            },
            "table": {
                "description": "A table of the source; the segment is every row of it.",
                "type": "string",
                "minLength": 1,
            },
            "query": {
                "description": "A SQL query run by the source (DataFusion for files, the database for PostgreSQL).",
                "type": "string",
                "minLength": 1,
            },
            "description": {
                "description": "What the segment is, for people.",
                "type": "string",
            },
        },
        "oneOf": [
            { "required": ["table"] },
            { "required": ["query"] },
        ],
    })
}

fn block_schema(
    kind: PluginKind,
    description: &str,
    plugins: &[(&'static str, schemars::Schema)],
    defs: &mut Map<String, Value>,
) -> Value {
    let mut type_schema = json!({
        "description": format!("The {kind} plugin: one of `audex connectors`."),
        "type": "string",
    });
    if !plugins.is_empty() {
        type_schema["enum"] = plugins.iter().map(|(n, _)| json!(n)).collect();
    }
    let selectors: Vec<Value> = plugins
        .iter()
        .map(|(name, schema)| {
            let def = plugin_def_name(kind, name);
            hoist(&def, schema.clone().to_value(), defs);
            json!({
                "if": {
                    "properties": { "type": { "const": name } },
                    "required": ["type"],
                },
                "then": { "$ref": format!("#/$defs/{def}") },
            })
        })
        .collect();
    let mut block = json!({
        "description": description,
        "type": "object",
        "required": ["type"],
        "properties": { "type": type_schema },
    });
    if !selectors.is_empty() {
        block["allOf"] = Value::Array(selectors);
    }
    block
}

/// Move a plugin's schema into the document's `$defs` under `def`, with its
/// own `$defs` renamed `def.X` and every `$ref` rewritten to match.
fn hoist(def: &str, mut schema: Value, defs: &mut Map<String, Value>) {
    let own_defs = schema
        .as_object_mut()
        .and_then(|o| {
            o.remove("$schema");
            o.remove("$defs")
        })
        .and_then(|d| match d {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let rename = |r: &str| -> Option<String> {
        if r == "#" {
            Some(format!("#/$defs/{def}"))
        } else {
            r.strip_prefix("#/$defs/")
                .map(|rest| format!("#/$defs/{def}.{rest}"))
        }
    };
    rewrite_refs(&mut schema, &rename);
    for (name, mut sub) in own_defs {
        rewrite_refs(&mut sub, &rename);
        defs.insert(format!("{def}.{name}"), sub);
    }
    defs.insert(def.to_string(), schema);
}

fn rewrite_refs(value: &mut Value, rename: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "$ref" {
                    if let Some(new) = v.as_str().and_then(rename) {
                        *v = Value::String(new);
                    }
                } else {
                    rewrite_refs(v, rename);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, rename)),
        _ => {}
    }
}

/// Resolve a JSON pointer in `root`, following `$ref`s met on the way.
pub(super) fn resolve<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = root;
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        node = follow_ref(root, node);
        // Evaluation paths name the `$ref` they went through.
        if seg == "$ref" {
            continue;
        }
        node = match node {
            Value::Object(m) => m.get(&seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(follow_ref(root, node))
}

fn follow_ref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    // Bounded: a cycle of `$ref`s must not hang validation.
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with("#/") => match root.pointer(&r[1..]) {
                Some(target) => node = target,
                None => break,
            },
            _ => break,
        }
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hoisting_renames_defs_and_refs() {
        let mut defs = Map::new();
        hoist(
            "destination.x",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "properties": {"a": {"$ref": "#/$defs/A"}, "me": {"$ref": "#"}},
                "$defs": {"A": {"properties": {"b": {"$ref": "#/$defs/B"}}}, "B": {"type": "string"}},
            }),
            &mut defs,
        );
        assert_eq!(
            defs["destination.x"]["properties"]["a"]["$ref"],
            "#/$defs/destination.x.A"
        );
        assert_eq!(
            defs["destination.x"]["properties"]["me"]["$ref"],
            "#/$defs/destination.x"
        );
        assert_eq!(
            defs["destination.x.A"]["properties"]["b"]["$ref"],
            "#/$defs/destination.x.B"
        );
        assert!(defs["destination.x"].get("$schema").is_none());
    }

    #[test]
    fn resolve_follows_refs() {
        let root = json!({
            "properties": {"a": {"$ref": "#/$defs/A"}},
            "$defs": {"A": {"properties": {"b": {"type": "string"}}}},
        });
        assert_eq!(
            resolve(&root, "/properties/a/properties/b"),
            Some(&json!({"type": "string"})),
        );
        assert_eq!(resolve(&root, "/properties/zzz"), None);
    }

    #[test]
    fn document_schema_is_a_valid_schema() {
        let schema = document_schema();
        assert!(jsonschema::validator_for(&schema).is_ok());
    }
}
