//! The loading pipeline, in the order of docs/configuration.md:
//!
//! 1. YAML syntax (stops here on failure: nothing else can run);
//! 2. `${VAR}` interpolation, then `AUDEX_…` overrides;
//! 3. registry lookup of every `type`;
//! 4. the whole document against the composed JSON Schema;
//! 5. typed deserialisation of each block the schema accepted (the plugins'
//!    `parse`);
//! 6. pure semantic checks (references between blocks, plugin `validate`,
//!    schedules, time zones).
//!
//! Every stage that can run does, and all their errors are reported
//! together, each with a dotted path and, where the key is written in the
//! file, its line. Nothing here touches the network or writes a file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::env::Environment;
use super::interpolate::interpolate_document;
use super::redact::Redactor;
use super::schema_check::{self, SchemaError};
use super::yaml::{self, LineIndex};
use super::{semantic, Config, SegmentConfig, DEFAULT_STATE_PATH};
use crate::error::{join_path, ConfigError, Error, Result};
use crate::registry::{self, DestinationConfig, PluginKind, SourceConfig};
use crate::source::SegmentQuery;

pub(super) fn load_file(path: &Path, env: &Environment) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(vec![ConfigError::new(
            "",
            format!("cannot read the config file {}: {e}", path.display()),
        )
        .with_hint("pass -c FILE, or set AUDEX_CONFIG")])
    })?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    load_str(&text, base, env)
}

pub(super) fn load_str(text: &str, base_dir: &Path, env: &Environment) -> Result<Config> {
    let mut doc = yaml::parse(text).map_err(|e| Error::config(vec![e]))?;
    let lines = LineIndex::build(text);
    let mut run = Run::default();

    let interpolated = interpolate_document(&mut doc, env);
    run.causes.extend(interpolated.errors);
    run.quiet.extend(interpolated.failed);
    run.coercible.extend(interpolated.paths);

    apply_overrides(&mut doc, env, &mut run);

    let type_paths = registry_lookup(&doc, &mut run);

    let schema_errors = schema_with_coercion(&mut doc, &run.coercible);
    let mut rejected = Rejected::default();
    for e in schema_errors {
        if e.is_type_enum && type_paths.contains(&e.error.path) {
            continue;
        }
        rejected.paths.insert(e.error.path.clone());
        run.errors.push(e.error);
    }

    let sources = parse_sources(&doc, &rejected, &mut run);
    let segments = parse_segments(&doc, &rejected);
    let destinations = parse_destinations(&doc, &rejected, &mut run);
    run.errors.extend(semantic::cross_references(&doc));

    let redactor = Redactor::for_document(&doc, schema_check::composed_schema());
    let errors = run.finish(&lines, &redactor);
    if !errors.is_empty() {
        return Err(Error::config(errors));
    }
    let state = doc
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_STATE_PATH);
    Ok(Config {
        base_dir: base_dir.to_path_buf(),
        state_path: base_dir.join(state),
        sources,
        segments,
        destinations,
    })
}

/// Paths the schema stage reported.
#[derive(Default)]
struct Rejected {
    paths: BTreeSet<String>,
}

impl Rejected {
    /// Whether the schema accepted everything in `block`.
    fn accepted(&self, block: &str) -> bool {
        !self
            .paths
            .iter()
            .any(|p| p.is_empty() || p == block || p.starts_with(&format!("{block}.")))
    }

    /// The rejected paths inside `block`, relative to it.
    fn under(&self, block: &str) -> Vec<String> {
        let prefix = format!("{block}.");
        self.paths
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }

    /// Keep the errors of a later stage that the schema stage did not
    /// already report at the same path.
    fn keep_new(&self, errors: Vec<ConfigError>, block: &str) -> Vec<ConfigError> {
        errors
            .into_iter()
            .map(|e| e.under(block))
            .filter(|e| !self.paths.contains(&e.path))
            .collect()
    }
}

/// What the stages found so far.
#[derive(Default)]
struct Run {
    /// Errors that make a path quiet (unset variables, bad overrides).
    causes: Vec<ConfigError>,
    /// Everything else.
    errors: Vec<ConfigError>,
    /// Paths that already failed in a way that makes later complaints about
    /// them noise (an unset variable, a bad override).
    quiet: BTreeSet<String>,
    /// Paths whose value came from the environment as text, so `"5"` may
    /// stand for the integer 5 where the schema wants one.
    coercible: BTreeSet<String>,
    /// Path -> the `AUDEX_…` variable that set it.
    overridden: BTreeMap<String, String>,
}

impl Run {
    fn finish(self, lines: &LineIndex, redactor: &Redactor) -> Vec<ConfigError> {
        let Run {
            causes,
            errors,
            quiet,
            overridden,
            ..
        } = self;
        let under = |path: &str, root: &str| {
            root.is_empty() || path == root || path.starts_with(&format!("{root}."))
        };
        let mut seen = BTreeSet::new();
        let mut out: Vec<ConfigError> = Vec::new();
        let later = errors
            .into_iter()
            .filter(|e| !quiet.iter().any(|q| !q.is_empty() && under(&e.path, q)));
        for mut e in causes.into_iter().chain(later) {
            if let Some((_, var)) = overridden.iter().find(|(p, _)| under(&e.path, p)) {
                if !e.message.contains(var.as_str()) {
                    e.message = format!("{} (value from {var})", e.message);
                }
            } else if e.line.is_none() {
                e.line = lines.line_of(&e.path);
            }
            let e = redactor.scrub(e);
            if seen.insert((e.path.clone(), e.message.clone())) {
                out.push(e);
            }
        }
        // Reading order: the file's top to bottom, then what has no line.
        out.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        out
    }
}

/// Apply the `AUDEX_…` overrides. Each segment matches an existing key
/// exactly, else case-insensitively (environment names have no case, and
/// Marketo fields such as `firstName` do), else becomes a new lowercase key.
/// A numeric segment indexes into a list.
fn apply_overrides(doc: &mut Value, env: &Environment, run: &mut Run) {
    for ov in env.overrides() {
        match set_path(doc, &ov.path, Value::String(ov.value.clone())) {
            Ok(path) => {
                run.coercible.insert(path.clone());
                run.overridden.insert(path, ov.var.clone());
            }
            Err((path, why)) => {
                run.quiet.insert(path.clone());
                run.causes.push(
                    ConfigError::new(path, format!("cannot apply {}: {why}", ov.var))
                        .with_hint("unset the variable, or fix its name (`__` separates keys)"),
                );
            }
        }
    }
}

fn set_path(
    node: &mut Value,
    segments: &[String],
    value: Value,
) -> std::result::Result<String, (String, String)> {
    let Some((seg, rest)) = segments.split_first() else {
        *node = value;
        return Ok(String::new());
    };
    if node.is_null() {
        *node = Value::Object(Map::new());
    }
    let (key, child) = match node {
        Value::Object(map) => {
            let key = map
                .keys()
                .find(|k| *k == seg)
                .or_else(|| {
                    let mut ci = map.keys().filter(|k| k.eq_ignore_ascii_case(seg));
                    match (ci.next(), ci.next()) {
                        (Some(k), None) => Some(k),
                        _ => None,
                    }
                })
                .cloned()
                .unwrap_or_else(|| seg.clone());
            let child = map.entry(key.clone()).or_insert(Value::Null);
            (key, child)
        }
        Value::Array(items) => {
            let len = items.len();
            let Some(child) = seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) else {
                return Err((
                    String::new(),
                    format!("`{seg}` is not an index of this list (it has {len} items)"),
                ));
            };
            (seg.clone(), child)
        }
        _ => {
            return Err((
                String::new(),
                format!("this key holds a single value; it has no `{seg}` inside"),
            ))
        }
    };
    match set_path(child, rest, value) {
        Ok(p) => Ok(join_path(&key, &p)),
        Err((p, why)) => Err((join_path(&key, &p), why)),
    }
}

/// Stage 3: every `type` names a registered plugin of the right kind.
/// Returns the paths it reported, so the schema's own `enum` error on the
/// same key is not reported twice.
fn registry_lookup(doc: &Value, run: &mut Run) -> BTreeSet<String> {
    let mut reported = BTreeSet::new();
    for (section, kind) in [
        ("sources", PluginKind::Source),
        ("destinations", PluginKind::Destination),
    ] {
        for (name, block) in doc
            .get(section)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let Some(ty) = block.get("type").and_then(Value::as_str) else {
                continue;
            };
            let known: Vec<&str> = match kind {
                PluginKind::Source => registry::sources().iter().map(|p| p.name).collect(),
                PluginKind::Destination => {
                    registry::destinations().iter().map(|p| p.name).collect()
                }
            };
            if known.contains(&ty) {
                continue;
            }
            let path = format!("{section}.{name}.type");
            let other_kind = match kind {
                PluginKind::Source => registry::destination(ty).map(|_| PluginKind::Destination),
                PluginKind::Destination => registry::source(ty).map(|_| PluginKind::Source),
            };
            let hint = match (other_kind, known.is_empty()) {
                (Some(other), _) => format!(
                    "`{ty}` is a {other} type; {kind} types: {}",
                    backticked(&known)
                ),
                (None, true) => format!("no {kind} types are registered in this build"),
                (None, false) => format!("known {kind} types: {}", backticked(&known)),
            };
            run.errors.push(
                ConfigError::new(path.clone(), format!("unknown {kind} type `{ty}`"))
                    .with_hint(hint),
            );
            reported.insert(path);
        }
    }
    reported
}

fn backticked(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stage 4, with values from the environment read as what the schema wants:
/// `AUDEX_…__MAX_PROFILES=5000` or `max_profiles: ${MAX}` is the integer.
fn schema_with_coercion(doc: &mut Value, coercible: &BTreeSet<String>) -> Vec<SchemaError> {
    // Each pass fixes every coercible error it sees; two passes cover an
    // error hidden behind another, a third is a safety margin.
    for _ in 0..3 {
        let errors = schema_check::check(doc);
        let mut changed = false;
        for e in &errors {
            if e.expected.is_empty() || !coercible.contains(&e.error.path) {
                continue;
            }
            let Some(slot) = doc.pointer_mut(&pointer(&e.error.path)) else {
                continue;
            };
            if let Some(new) = slot.as_str().and_then(|s| coerce(s, &e.expected)) {
                *slot = new;
                changed = true;
            }
        }
        if !changed {
            return errors;
        }
    }
    schema_check::check(doc)
}

fn pointer(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    path.split('.')
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn coerce(s: &str, expected: &[jsonschema::JsonType]) -> Option<Value> {
    use jsonschema::JsonType as T;
    let t = s.trim();
    for ty in expected {
        let v = match ty {
            T::Boolean => match t {
                "true" | "True" | "TRUE" => Some(Value::Bool(true)),
                "false" | "False" | "FALSE" => Some(Value::Bool(false)),
                _ => None,
            },
            T::Integer => t
                .parse::<u64>()
                .map(Value::from)
                .or_else(|_| t.parse::<i64>().map(Value::from))
                .ok(),
            T::Number => t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            T::Null => matches!(t, "" | "~" | "null").then_some(Value::Null),
            _ => None,
        };
        if v.is_some() {
            return v;
        }
    }
    None
}

fn blocks<'a>(doc: &'a Value, section: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    doc.get(section)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

// A block the schema rejected is still parsed: when serde accepts it (an
// unknown key, a value out of range), the plugin's own checks still find
// their problems, so one run reports everything. When serde fails too, the
// block is repaired (see [`repaired`]) and checked again, so a wrong type in
// one key does not hide a missing mapping in another; only the checks'
// errors come from that pass, never a config.
fn parse_sources(
    doc: &Value,
    rejected: &Rejected,
    run: &mut Run,
) -> BTreeMap<String, Box<dyn SourceConfig>> {
    let plugin = |ty: &str| registry::source(ty).map(|p| (p.parse, p.example));
    parse_plugins(doc, "sources", plugin, rejected, run, |cfg| cfg.validate())
}

fn parse_segments(doc: &Value, rejected: &Rejected) -> BTreeMap<String, SegmentConfig> {
    let mut out = BTreeMap::new();
    for (name, block) in blocks(doc, "segments") {
        if !rejected.accepted(&format!("segments.{name}")) {
            continue;
        }
        let text = |k: &str| block.get(k).and_then(Value::as_str).map(str::to_string);
        let query = match (text("table"), text("query")) {
            (Some(t), None) => SegmentQuery::Table(t),
            (None, Some(q)) => SegmentQuery::Sql(q),
            // The schema's oneOf has reported it.
            _ => continue,
        };
        let Some(source) = text("source") else {
            continue;
        };
        out.insert(name.clone(), SegmentConfig { source, query });
    }
    out
}

fn parse_destinations(
    doc: &Value,
    rejected: &Rejected,
    run: &mut Run,
) -> BTreeMap<String, Box<dyn DestinationConfig>> {
    let plugin = |ty: &str| registry::destination(ty).map(|p| (p.parse, p.example));
    parse_plugins(doc, "destinations", plugin, rejected, run, |cfg| {
        let mut errors = cfg.validate();
        errors.extend(semantic::export_settings(cfg.settings(), &cfg.exports()));
        errors
    })
}

/// Every block of `section` whose `type` names a plugin (`plugin` gives its
/// parse function and example), parsed and checked by [`parse_block`].
fn parse_plugins<T: ?Sized>(
    doc: &Value,
    section: &str,
    plugin: impl Fn(&str) -> Option<(registry::ParseFn<T>, &'static str)>,
    rejected: &Rejected,
    run: &mut Run,
    checks: impl Fn(&T) -> Vec<ConfigError>,
) -> BTreeMap<String, Box<T>> {
    let mut out = BTreeMap::new();
    for (name, block) in blocks(doc, section) {
        let Some((parse, example)) = block.get("type").and_then(Value::as_str).and_then(&plugin)
        else {
            continue;
        };
        let path = format!("{section}.{name}");
        if let Some(cfg) = parse_block(block, &path, parse, example, rejected, run, &checks) {
            out.insert(name.clone(), cfg);
        }
    }
    out
}

/// Typed parse of one plugin block and its pure checks. Returns the config
/// only when the block parsed as written.
fn parse_block<T: ?Sized>(
    block: &Value,
    path: &str,
    parse: registry::ParseFn<T>,
    example: &str,
    rejected: &Rejected,
    run: &mut Run,
    checks: impl Fn(&T) -> Vec<ConfigError>,
) -> Option<Box<T>> {
    match parse(block.clone()) {
        Ok(cfg) => {
            run.errors.extend(rejected.keep_new(checks(&cfg), path));
            Some(cfg)
        }
        Err(es) if rejected.accepted(path) => {
            run.errors.extend(es.into_iter().map(|e| e.under(path)));
            None
        }
        Err(_) => {
            // serde's error repeats the schema's; check the rest anyway.
            let repairs = rejected.under(path);
            let cfg = parse(repaired(block, &repairs, example)?).ok()?;
            let errors = checks(&cfg)
                .into_iter()
                .filter(|e| !repairs.iter().any(|r| related(&e.path, r)));
            run.errors.extend(rejected.keep_new(errors.collect(), path));
            None
        }
    }
}

/// `block` with every value the schema rejected (paths relative to the
/// block) replaced by the plugin example's value at the same place (a list
/// item by the example's first item), or removed where the example has
/// none, so a default applies. `None` when a path cannot be repaired that
/// way.
fn repaired(block: &Value, paths: &[String], example: &str) -> Option<Value> {
    let example = yaml::parse(example).ok()?;
    let mut fixed = block.clone();
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        match example_at(&example, &segments) {
            Some(value) => *slot(&mut fixed, &segments)? = value.clone(),
            None => {
                let (last, parent) = segments.split_last()?;
                slot(&mut fixed, parent)?.as_object_mut()?.remove(*last);
            }
        }
    }
    Some(fixed)
}

/// The example's value at `segments`, reading any list index as the first.
fn example_at<'a>(example: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    segments.iter().try_fold(example, |node, seg| match node {
        Value::Object(map) => map.get(*seg),
        Value::Array(items) => seg.parse::<usize>().ok().and(items.first()),
        _ => None,
    })
}

/// The place at `segments` in `node`: an existing list item, or an object
/// key (created when missing, so a required key can be filled in).
fn slot<'a>(node: &'a mut Value, segments: &[&str]) -> Option<&'a mut Value> {
    segments.iter().try_fold(node, |node, seg| match node {
        Value::Object(map) => Some(map.entry(seg.to_string()).or_insert(Value::Null)),
        Value::Array(items) => items.get_mut(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Whether an error at `path` may be caused by the repair at `repair`: at
/// or under it, or at a key holding it.
fn related(path: &str, repair: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|r| r.starts_with('.'))
    };
    under(path, repair) || (!path.is_empty() && under(repair, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_match_keys_case_insensitively_and_index_lists() {
        let mut doc =
            json!({"d": {"m": {"mapping": {"firstName": "fn"}, "exports": [{"segment": "a"}]}}});
        assert_eq!(
            set_path(
                &mut doc,
                &["d".into(), "m".into(), "mapping".into(), "firstname".into()],
                json!("first")
            ),
            Ok("d.m.mapping.firstName".to_string())
        );
        assert_eq!(
            set_path(
                &mut doc,
                &[
                    "d".into(),
                    "m".into(),
                    "exports".into(),
                    "0".into(),
                    "list_id".into()
                ],
                json!("9")
            ),
            Ok("d.m.exports.0.list_id".to_string())
        );
        assert_eq!(
            set_path(&mut doc, &["d".into(), "new".into()], json!("x")),
            Ok("d.new".to_string())
        );
        assert_eq!(doc["d"]["m"]["mapping"]["firstName"], "first");
        assert_eq!(doc["d"]["m"]["exports"][0]["list_id"], "9");
        assert!(set_path(
            &mut doc,
            &["d".into(), "m".into(), "exports".into(), "5".into()],
            json!(1)
        )
        .is_err());
        let err = set_path(
            &mut doc,
            &["d".into(), "new".into(), "deeper".into()],
            json!(1),
        );
        assert_eq!(err.map_err(|(p, _)| p), Err("d.new".to_string()));
    }

    #[test]
    fn coercion_reads_text_as_the_wanted_type() {
        use jsonschema::JsonType as T;
        assert_eq!(coerce("5000", &[T::Integer]), Some(json!(5000)));
        assert_eq!(coerce("true", &[T::Boolean]), Some(json!(true)));
        assert_eq!(coerce("0.5", &[T::Number]), Some(json!(0.5)));
        assert_eq!(coerce("abc", &[T::Integer]), None);
        assert_eq!(coerce("yes", &[T::Boolean]), None);
    }

    #[test]
    fn pointers_escape_segments() {
        assert_eq!(pointer("a.b/c.0"), "/a/b~1c/0");
        assert_eq!(pointer(""), "");
    }
}
