//! The YAML stage: text to a JSON value, and an index from dotted paths to
//! the lines they are written on.
//!
//! Values come from serde_yaml (YAML 1.2 scalars, anchors, `<<` merge keys);
//! lines come from a second, event-level pass with saphyr-parser, which keeps
//! positions. The two agree on every document serde_yaml accepts; where the
//! index has no entry, errors fall back to the nearest ancestor's line.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser};
use serde_json::Value;

use crate::error::{join_path, ConfigError};

/// Parse the document. An empty file is an empty mapping.
pub(super) fn parse(text: &str) -> Result<Value, ConfigError> {
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let mut err = ConfigError::new("", format!("invalid YAML: {e}"));
        err.line = e.location().map(|l| l.line());
        err.with_hint("check the indentation and quoting around this line")
    })?;
    if yaml.is_null() {
        return Ok(Value::Object(Default::default()));
    }
    yaml.apply_merge().map_err(|e| {
        ConfigError::new("", format!("invalid YAML merge key (`<<`): {e}"))
            .with_hint("`<<` takes a mapping or a list of mappings")
    })?;
    serde_json::to_value(&yaml).map_err(|e| {
        ConfigError::new("", format!("unsupported YAML: {e}"))
            .with_hint("keys must be strings; tags (`!tag`) are not supported")
    })
}

/// Dotted path -> 1-based line of its key (or of its item, in a list).
#[derive(Debug, Default, Clone)]
pub(super) struct LineIndex {
    lines: BTreeMap<String, usize>,
}

impl LineIndex {
    pub fn build(text: &str) -> LineIndex {
        let mut builder = Builder::default();
        for event in Parser::new_from_str(text) {
            match event {
                Ok((ev, span)) => {
                    if builder.on_event(ev, span.start.line()).is_break() {
                        break;
                    }
                }
                // serde_yaml has reported it already; keep what we have.
                Err(_) => break,
            }
        }
        LineIndex {
            lines: builder.lines,
        }
    }

    /// The line of `path`, or of its nearest ancestor written in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            if p.is_empty() {
                return None;
            }
            p = p.rfind('.').map_or("", |i| &p[..i]);
        }
    }

    /// The line of exactly `path`, if it is written in the file.
    #[cfg(test)]
    pub fn exact(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }
}

/// Where the walk is: inside a mapping (waiting for a key or for the value of
/// `key`) or inside a sequence. A `None` path means "under a complex key":
/// nothing below it is indexed.
#[derive(Debug)]
enum Frame {
    Map {
        path: Option<String>,
        key: Option<Option<String>>,
    },
    Seq {
        path: Option<String>,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    lines: BTreeMap<String, usize>,
    documents: usize,
}

impl Builder {
    fn on_event(&mut self, ev: Event<'_>, line: usize) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow;
        match ev {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return ControlFlow::Break(());
                }
            }
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                    if key.is_none() {
                        let child = path.as_ref().map(|p| join_path(p, &value));
                        if let Some(c) = &child {
                            self.lines.entry(c.clone()).or_insert(line);
                        }
                        *key = Some(child);
                        return ControlFlow::Continue(());
                    }
                }
                self.value_path(line);
            }
            Event::Alias(_) => {
                self.value_path(line);
            }
            Event::MappingStart(..) => {
                let path = self.value_path(line);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(line);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// A value starts at `line`: return its path and advance the parent (a
    /// mapping goes back to waiting for a key; a sequence counts the item).
    /// A mapping or sequence used as a key gets no path.
    fn value_path(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key, .. }) => match key.take() {
                Some(child) => child,
                // A complex key: neither it nor its value is indexed.
                None => {
                    *key = Some(None);
                    None
                }
            },
            Some(Frame::Seq { path, next }) => {
                let child = path.as_ref().map(|p| join_path(p, &next.to_string()));
                *next += 1;
                if let Some(c) = &child {
                    self.lines.entry(c.clone()).or_insert(line);
                }
                child
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# a comment
state: .audex/state.db
destinations:
  m:
    type: marketo
    mapping:
      email: email
    exports:
      - segment: a
      - segment: b
        list_id: 7
    flow: {x: 1, y: [1, 2]}
";

    #[test]
    fn indexes_keys_and_items_by_line() {
        let idx = LineIndex::build(DOC);
        assert_eq!(idx.exact("state"), Some(2));
        assert_eq!(idx.exact("destinations.m"), Some(4));
        assert_eq!(idx.exact("destinations.m.mapping.email"), Some(7));
        assert_eq!(idx.exact("destinations.m.exports.0"), Some(9));
        assert_eq!(idx.exact("destinations.m.exports.0.segment"), Some(9));
        assert_eq!(idx.exact("destinations.m.exports.1.list_id"), Some(11));
        assert_eq!(idx.exact("destinations.m.flow.y.1"), Some(12));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let idx = LineIndex::build(DOC);
        assert_eq!(idx.line_of("destinations.m.mapping.firstName"), Some(6));
        assert_eq!(idx.line_of("sources.crm"), None);
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").expect_err("unclosed flow sequence");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        assert!(err.line.is_some(), "{err:?}");
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        assert_eq!(parse("# nothing\n").ok(), Some(serde_json::json!({})));
    }

    #[test]
    fn merge_keys_apply() {
        let v = parse("base: &b {mode: append}\nd:\n  <<: *b\n  list_id: 3\n").expect("valid");
        assert_eq!(v["d"]["mode"], "append");
        assert_eq!(v["d"]["list_id"], 3);
    }
}
