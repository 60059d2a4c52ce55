//! The YAML stage: text to a JSON value, and an index from dotted paths to
//! the lines they are written on.
//!
//! Values come from serde-saphyr (YAML 1.2 core scalars, anchors and aliases,
//! `<<` merge keys; duplicate keys and tags are errors). Lines come from a
//! second, event-level pass with granit-parser, the parser serde-saphyr is
//! built on, taken from its re-export so the two always read the same
//! grammar. Where the index has no entry, errors fall back to the nearest
//! ancestor's line.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};
use serde_saphyr::{
    DuplicateKeyPolicy, Error as YamlError, MergeKeyPolicy, MessageFormatter, NonFiniteFloatPolicy,
    Options, UserMessageFormatter,
};

use crate::error::{join_path, ConfigError};

/// How the document is read.
fn options() -> Options {
    serde_saphyr::options! {
        // Errors never quote the file: a line of it may hold a secret.
        with_snippet: false,
        // A key written twice is a mistake (which one did the user mean?).
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: MergeKeyPolicy::Merge,
        // YAML 1.2 core scalars only: `yes`, `no`, `on`, `off` (and `NO`,
        // Norway's country code) are text, and so are `0755` and `1_000`.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        // `.inf` and `.nan` stay what was written, for the schema to judge.
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        // A tag would be dropped silently; say so instead.
        reject_unsupported_tags: true,
    }
}

/// Parse the document. An empty file is an empty mapping.
pub(super) fn parse(text: &str) -> Result<Value, ConfigError> {
    let value: Value = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| syntax_error(text, e.without_snippet()))?;
    if value.is_null() {
        return Ok(Value::Object(Default::default()));
    }
    Ok(value)
}

/// The error for a document that does not parse: the parser's message, its
/// 1-based line and column, the flow collection it happened in if any, and a
/// hint for the kind of mistake.
fn syntax_error(text: &str, e: &YamlError) -> ConfigError {
    let location = e.location().filter(|l| l.line() > 0);
    let line = location.and_then(|l| usize::try_from(l.line()).ok());
    let mut message = format!("invalid YAML: {}", UserMessageFormatter.format_message(e));
    if let Some(l) = location {
        message.push_str(&format!(" at line {}, column {}", l.line(), l.column()));
    }
    let open = line.and_then(|line| open_flow_at_error(text, line));
    if let Some(open) = &open {
        message.push_str(&format!(
            ", inside the flow {} (`{}`) opened at line {}, column {}",
            open.kind(),
            open.bracket,
            open.line,
            open.column
        ));
    }
    let hint = match e {
        YamlError::DuplicateMappingKey { .. } => {
            "a key may appear once in a mapping: remove or rename one of them".to_string()
        }
        YamlError::UnsupportedTag { .. } => {
            "tags (`!tag`) are not supported: remove the tag, or quote the value".to_string()
        }
        YamlError::MergeValueNotMapOrSeqOfMaps { .. } => {
            "`<<` takes a mapping or a list of mappings".to_string()
        }
        YamlError::MultipleDocuments { .. } => {
            "the file holds one document: remove the `---` line and what follows it".to_string()
        }
        YamlError::UnknownAnchor { .. } => {
            "define the anchor (`&name`) before the alias (`*name`) that uses it".to_string()
        }
        YamlError::RecursiveReferencesRequireWeakTypes { .. } => {
            "an alias (`*name`) cannot refer to a value that contains it".to_string()
        }
        YamlError::NullIntoString { .. } | YamlError::Unexpected { .. } => {
            "keys must be strings: quote a `~` or `null` key; a list or mapping cannot be a key"
                .to_string()
        }
        _ => match &open {
            Some(open) => format!(
                "close the `{}` of line {} with `{}`, or quote the value if the `{}` is text",
                open.bracket,
                open.line,
                open.closing(),
                open.bracket
            ),
            None => "check the indentation and quoting around this line".to_string(),
        },
    };
    let mut err = ConfigError::new("", message).with_hint(hint);
    err.line = line;
    err
}

/// A flow collection (`[…]` or `{…}`) still open where the parser failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenFlow {
    bracket: char,
    /// 1-based.
    line: usize,
    /// 1-based.
    column: usize,
}

impl OpenFlow {
    fn kind(&self) -> &'static str {
        if self.bracket == '[' {
            "sequence"
        } else {
            "mapping"
        }
    }

    fn closing(&self) -> char {
        if self.bracket == '[' {
            ']'
        } else {
            '}'
        }
    }
}

/// The innermost flow collection open when the parser fails on `line`, if
/// the innermost collection then is a flow one.
fn open_flow_at_error(text: &str, line: usize) -> Option<OpenFlow> {
    let mut open: Vec<Option<OpenFlow>> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (ev, span) = match event {
            Ok(ok) => ok,
            Err(e) if e.marker().line() == line => return open.last().copied().flatten(),
            Err(_) => return None,
        };
        let flow = |style: StructureStyle, bracket: char| {
            (style == StructureStyle::Flow).then(|| OpenFlow {
                bracket,
                line: span.start.line(),
                column: span.start.col() + 1,
            })
        };
        match ev {
            Event::SequenceStart(style, ..) => open.push(flow(style, '[')),
            Event::MappingStart(style, ..) => open.push(flow(style, '{')),
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop();
            }
            _ => {}
        }
    }
    None
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
                // `parse` has reported it already; keep what we have.
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
            Event::DocumentStart(..) => {
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

    #[test]
    fn merges_keep_written_keys_and_the_first_source() {
        let v = parse(
            "a: &a {mode: append, x: 1}\n\
             b: &b {x: 2, y: 2}\n\
             over: {mode: mirror, <<: *a}\n\
             both: {<<: [*a, *b]}\n\
             items: [*a, *a]\n",
        )
        .expect("valid");
        assert_eq!(v["over"], serde_json::json!({"mode": "mirror", "x": 1}));
        assert_eq!(
            v["both"],
            serde_json::json!({"mode": "append", "x": 1, "y": 2})
        );
        assert_eq!(v["items"][1]["x"], 1);
        let err = parse("d:\n  <<: 5\n").expect_err("`<<` of a scalar");
        assert_eq!(err.line, Some(2), "{err:?}");
        assert!(err.hint.is_some_and(|h| h.contains("`<<`")));
    }

    #[test]
    fn duplicate_keys_are_errors_with_a_line() {
        let err = parse("a: 1\nb:\n  c: 2\n  c: 3\n").expect_err("duplicate key");
        assert_eq!(err.line, Some(4), "{err:?}");
        assert!(err.message.contains("`c`"), "{err}");
        // An integer key written two ways is the same key.
        assert!(parse("0xB: a\n11: b\n").is_err());
    }

    #[test]
    fn scalars_are_yaml_1_2_core() {
        let v = parse("a: yes\nb: NO\nc: on\nd: 0755\ne: 1_000\nf: .inf\ng: 0x1F\nh: true\ni: ~\n")
            .expect("valid");
        assert_eq!(
            v,
            serde_json::json!({
                "a": "yes", "b": "NO", "c": "on", "d": "0755", "e": "1_000",
                "f": ".inf", "g": 31, "h": true, "i": null
            })
        );
        // Numeric and boolean keys are their text.
        assert_eq!(
            parse("1: x\ntrue: y\n").ok(),
            Some(serde_json::json!({"1": "x", "true": "y"}))
        );
    }

    #[test]
    fn keys_must_be_strings() {
        for text in ["~: x\n", "a: 1\n? [a, b]\n: c\n"] {
            let err = parse(text).expect_err("not a string key");
            assert!(err.line.is_some(), "{err:?}");
            assert!(err
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("keys must be strings")));
        }
    }

    #[test]
    fn tags_and_extra_documents_are_errors() {
        let err = parse("a: 1\nb: !secret x\n").expect_err("a tag");
        assert_eq!(err.line, Some(2), "{err:?}");
        assert!(err.message.contains("`!secret`"), "{err}");
        let err = parse("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert_eq!(err.line, Some(3), "{err:?}");
        let err = parse("a: *nope\n").expect_err("unknown alias");
        assert_eq!(err.line, Some(1), "{err:?}");
    }

    #[test]
    fn errors_in_flow_collections_say_where_they_opened() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").expect_err("unclosed");
        assert_eq!(err.line, Some(3), "{err:?}");
        assert!(
            err.message
                .contains("inside the flow sequence (`[`) opened at line 2, column 4"),
            "{err}"
        );
        assert!(err
            .hint
            .is_some_and(|h| h.contains("close the `[` of line 2")));
    }

    #[test]
    fn errors_never_quote_the_document() {
        let err = parse("client_secret: \"Sup3r-Secret\" junk\n").expect_err("trailing text");
        assert_eq!(err.line, Some(1), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("Sup3r"), "{err:?}");
    }

    #[test]
    fn any_input_is_a_value_or_an_error() {
        for text in [
            "\u{feff}a: 1",
            "a: \"\\x\"",
            "&a [*a]",
            "a: &x [*x]\n",
            "{",
            "]",
            "- - - -",
            "\t",
            "? ",
            "a:\n\tb: 1\n",
            ":",
            "'",
            "!!binary x",
            "%YAML 9\n---\n",
            "a: [}\n",
        ] {
            let _ = parse(text);
            let _ = LineIndex::build(text);
        }
    }
}
