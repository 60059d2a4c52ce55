//! Minimal loader (to be replaced by the full figment + JSON Schema pipeline):
//! YAML -> JSON value -> registry lookup -> typed plugin configs.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, SegmentConfig, DEFAULT_STATE_PATH};
use crate::error::{ConfigError, Error, Result};
use crate::registry;
use crate::source::SegmentQuery;

pub(super) fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(vec![ConfigError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )])
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    load_str(&text, base)
}

pub(super) fn load_str(text: &str, base_dir: &Path) -> Result<Config> {
    let doc: serde_json::Value = serde_yaml::from_str(text)
        .map_err(|e| Error::config(vec![ConfigError::new("", format!("invalid YAML: {e}"))]))?;
    let mut errors = Vec::new();
    let state_path = base_dir.join(
        doc.get("state")
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_STATE_PATH),
    );
    let mut sources = BTreeMap::new();
    for (name, block) in doc
        .get("sources")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
    {
        let path = format!("sources.{name}");
        let ty = block.get("type").and_then(|v| v.as_str()).unwrap_or("");
        match registry::source(ty) {
            Some(p) => match (p.parse)(block.clone()) {
                Ok(c) => {
                    sources.insert(name.clone(), c);
                }
                Err(es) => errors.extend(es.into_iter().map(|e| e.under(&path))),
            },
            None => errors.push(ConfigError::new(
                format!("{path}.type"),
                format!("unknown source type {ty:?}"),
            )),
        }
    }
    let mut segments = BTreeMap::new();
    for (name, block) in doc
        .get("segments")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
    {
        let source = block
            .get("source")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let query = match (
            block.get("table").and_then(|v| v.as_str()),
            block.get("query").and_then(|v| v.as_str()),
        ) {
            (Some(t), None) => SegmentQuery::Table(t.to_string()),
            (None, Some(q)) => SegmentQuery::Sql(q.to_string()),
            _ => {
                errors.push(ConfigError::new(
                    format!("segments.{name}"),
                    "exactly one of table or query is required",
                ));
                continue;
            }
        };
        segments.insert(name.clone(), SegmentConfig { source, query });
    }
    let mut destinations = BTreeMap::new();
    for (name, block) in doc
        .get("destinations")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
    {
        let path = format!("destinations.{name}");
        let ty = block.get("type").and_then(|v| v.as_str()).unwrap_or("");
        match registry::destination(ty) {
            Some(p) => match (p.parse)(block.clone()) {
                Ok(c) => {
                    errors.extend(c.validate().into_iter().map(|e| e.under(&path)));
                    destinations.insert(name.clone(), c);
                }
                Err(es) => errors.extend(es.into_iter().map(|e| e.under(&path))),
            },
            None => errors.push(ConfigError::new(
                format!("{path}.type"),
                format!("unknown destination type {ty:?}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Error::config(errors));
    }
    Ok(Config {
        base_dir: base_dir.to_path_buf(),
        state_path,
        sources,
        segments,
        destinations,
    })
}
