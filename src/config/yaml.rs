//! Strict YAML reading shared by the project file and profiles: size and content checks,
//! budgets against alias bombs, duplicate keys rejected, and every problem turned into a
//! `file:line:column` message with what was found, what was expected and how to fix it.
//! Also a key-path → location index so semantic checks can point at the offending line.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::granit_parser::{Event, Parser};
use serde_saphyr::{DefaultMessageFormatter, MessageFormatter};

/// Project files and profiles are small; anything larger is almost certainly not one.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// A position in a YAML file, 1-based, displayed as `path:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.path)
        } else {
            write!(f, "{}:{}:{}", self.path, self.line, self.column)
        }
    }
}

/// One problem in a YAML file: where, what (found vs expected), and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Pos,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, clip_text(&self.message))?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", clip_text(&self.fix))?;
        }
        Ok(())
    }
}

pub use crate::error::{MAX_ECHO, clip, clip_text};

/// Several problems, reported together so one run shows everything to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Checks raw bytes before parsing: not empty, not binary, not huge, valid UTF-8.
pub fn check_text(path: &str, bytes: &[u8], what: &str) -> Result<String, Problem> {
    let at = Pos { path: path.to_owned(), line: 0, column: 0 };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Problem {
            at,
            message: format!("the file is {} bytes; a {what} is at most {MAX_FILE_BYTES} bytes", bytes.len()),
            fix: format!("check that {path} is the right file"),
        });
    }
    if let Some(nul) = bytes.iter().position(|b| *b == 0) {
        let (line, column) = line_col(bytes, nul);
        return Err(Problem {
            at: Pos { line, column, ..at },
            message: format!("the file contains binary data (NUL bytes), expected a YAML {what}"),
            fix: format!("check that {path} is the right file; a {what} is UTF-8 YAML text"),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = line_col(bytes, e.valid_up_to());
            return Err(Problem {
                at: Pos { line, column, ..at },
                message: format!("the file is not valid UTF-8 text (binary data?), expected a YAML {what}"),
                fix: "save the file as UTF-8".into(),
            });
        }
    };
    let meaningful = text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && t != "---" && t != "..."
    });
    if !meaningful {
        return Err(Problem {
            at,
            message: format!("the file is empty, expected a YAML {what}"),
            fix: if what == "project file" {
                "run `samestack init` to write one, or see docs/reference.md".into()
            } else {
                format!("write the {what} (see docs/reference.md) or delete the file")
            },
        });
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_owned())
}

fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_depth: 64,
            max_recorded_anchor_events: 50_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 20_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 200,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    }
}

/// Parses one YAML document into `T`, turning any parser or type error into a [`Problem`].
/// YAML tags (`!secret x`, `!!python/name:os.system`) are refused first, each with its
/// location: samestack gives no tag a meaning, and silently dropping one (or turning its value
/// into null) would hide what the author meant.
pub fn parse<T: DeserializeOwned>(path: &str, text: &str) -> Result<T, Vec<Problem>> {
    let tags = check_tags(path, text);
    if !tags.is_empty() {
        return Err(tags);
    }
    serde_saphyr::from_str_with_options::<T>(text, options()).map_err(|e| vec![problem_from(path, text, &e)])
}

/// Like [`parse`], but when serde stops at a type error (a wrong type, an unknown or missing
/// key), the whole document is checked against `T`'s JSON Schema (see
/// [`super::typecheck`]) and every such problem is returned, in file order.
pub fn parse_all<T: DeserializeOwned + schemars::JsonSchema>(path: &str, text: &str) -> Result<T, Vec<Problem>> {
    let tags = check_tags(path, text);
    if !tags.is_empty() {
        return Err(tags);
    }
    let err = match serde_saphyr::from_str_with_options::<T>(text, options()) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let first = problem_from(path, text, &err);
    // Only a document that is valid YAML can be walked; a syntax error stays the one problem.
    let Ok(doc) = serde_saphyr::from_str_with_options::<serde_json::Value>(text, options()) else {
        return Err(vec![first]);
    };
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    // serde's own problem is kept; the walk adds the ones on other lines.
    let mut all = super::typecheck::check(&doc, &schema, &Locations::index(path, text));
    all.retain(|p| p.at.line != first.at.line);
    all.push(first);
    all.sort_by_key(|p| (p.at.line, p.at.column));
    Err(all)
}

/// Every YAML tag in `text`, as a problem at its node. Syntax errors are left to [`parse`].
pub fn check_tags(path: &str, text: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let tag = match &event {
            Event::Scalar(_, _, _, tag) | Event::SequenceStart(_, _, tag) | Event::MappingStart(_, _, tag) => tag,
            _ => continue,
        };
        if let Some(tag) = tag {
            let written = format!("{}{}", tag.original_handle(), tag.suffix());
            // The event's span starts at the node's content; point at the tag before it.
            let (line, mut column) = (span.start.line(), span.start.col() + 1);
            if let Some(text_line) = text.lines().nth(line.saturating_sub(1)) {
                let before: String = text_line.chars().take(column.saturating_sub(1)).collect();
                if let Some(i) = before.rfind(&written) {
                    column = before[..i].chars().count() + 1;
                }
            }
            out.push(Problem {
                at: Pos { path: path.to_owned(), line, column },
                message: format!("YAML tag `{written}` is not allowed: samestack files use plain YAML values"),
                fix: format!(
                    "remove `{written}` (write the value itself; a secret is declared under `secrets:` with `env` or `file`)"
                ),
            });
        }
    }
    out
}

fn problem_from(path: &str, text: &str, err: &serde_saphyr::Error) -> Problem {
    use serde_saphyr::Error as E;
    let mut inner = err.without_snippet();
    if let E::AliasError { error, .. } = inner {
        inner = error.as_ref().without_snippet();
    }
    let location = inner.location().or_else(|| err.location());
    let (line, column) = location.map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((0, 0));
    let at = Pos { path: path.to_owned(), line, column };
    let raw = DefaultMessageFormatter.format_message(inner).into_owned();
    let line_text = if line > 0 { text.lines().nth(line - 1).unwrap_or("") } else { "" };
    let (message, fix): (String, String) = match inner {
        E::SerdeUnknownField { field, expected, .. } => (
            format!("unknown key `{field}`, expected one of: {}", expected.join(", ")),
            "remove the key or fix its spelling (docs/reference.md lists every key; `samestack schema` gives editors completion)".into(),
        ),
        E::SerdeUnknownVariant { variant, expected, .. } => (
            format!("unknown value `{variant}`, expected one of: {}", expected.join(", ")),
            format!("use one of: {}", expected.join(", ")),
        ),
        E::SerdeInvalidType { unexpected, expected, .. } => (
            format!("wrong type: found {unexpected}, expected {expected}"),
            format!("write {expected} here"),
        ),
        E::SerdeInvalidValue { unexpected, expected, .. } => (
            format!("invalid value: found {unexpected}, expected {expected}"),
            format!("write {expected} here"),
        ),
        E::SerdeMissingField { field, .. } => (
            format!("missing required key `{field}`"),
            format!("add `{field}:` to this mapping (see docs/reference.md)"),
        ),
        E::DuplicateMappingKey { key, .. } => (
            format!("duplicate key `{}`: each key may appear only once in a mapping", key.as_deref().unwrap_or("?")),
            "remove or rename one of the two entries".into(),
        ),
        E::InvalidScalar { ty, .. } => {
            let found = scalar_at(line_text, column);
            (format!("wrong type: found `{found}`, expected {}", describe_ty(ty)), format!("write {} here", describe_ty(ty)))
        }
        E::Unexpected { expected, .. } => {
            let want = match *expected {
                e if e.contains("sequence") => "a list (`[a, b]` or `- item` lines)".to_owned(),
                e if e.contains("mapping") => "a mapping (`key: value` lines)".to_owned(),
                e if e.contains("string") || e.contains("scalar") => "a single value (a string or number)".to_owned(),
                e => e.to_owned(),
            };
            let found = describe_node(line_text, column);
            (format!("wrong type: found {found}, expected {want}"), format!("write {want} here"))
        }
        E::NullIntoString { .. } => ("found an empty value, expected a string".into(), "write a value, or quote an empty string: \"\"".into()),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::RecursiveReferencesRequireWeakTypes { .. } => (
            format!("YAML aliases expand too much (an alias bomb or recursive alias?): {raw}"),
            "expand the aliases by hand; a project file needs few, if any, anchors".into(),
        ),
        E::UnknownAnchor { .. } => (format!("alias refers to an anchor that is not defined before it: {raw}"), "define the anchor (&name) before using *name".into()),
        E::Budget { .. } => (
            format!("the file exceeds the parsing limits (too deep, too many nodes or aliases): {raw}"),
            "simplify the file; a project file needs few anchors and little nesting".into(),
        ),
        E::MultipleDocuments { .. } => ("found more than one YAML document (`---`), expected one".into(), "keep a single document in the file".into()),
        E::Eof { .. } => ("unexpected end of file, expected a mapping".into(), "write the top-level keys (see docs/reference.md)".into()),
        _ => {
            let fix = if line_text.contains('\t') || raw.to_lowercase().contains("tab") {
                "YAML indentation must use spaces, not tabs: replace the tab characters on this line".to_owned()
            } else if raw.contains("flow") || line_text.contains(['[', '{']) {
                "a bracket or brace is not closed, or a flow collection is malformed: check `[` `]` `{` `}` and quotes near here".to_owned()
            } else {
                "check the YAML syntax near here (indentation, `key: value`, quotes)".to_owned()
            };
            (format!("invalid YAML: {raw}"), fix)
        }
    };
    Problem { at, message, fix }
}

fn describe_ty(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "bool" => "true or false".into(),
        "f32" | "f64" => "a number".into(),
        other => other.into(),
    }
}

fn describe_node(line: &str, column: usize) -> String {
    let text = scalar_at(line, column);
    match text.chars().next() {
        Some('[') | Some('-') => "a list".into(),
        Some('{') => "a mapping".into(),
        Some('*') => format!("the alias `{text}`"),
        None => "nothing".into(),
        _ => format!("`{text}`"),
    }
}

fn scalar_at(line: &str, column: usize) -> String {
    let rest: String = line.chars().skip(column.saturating_sub(1)).collect();
    let rest = rest.trim();
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    rest[..end].trim().to_owned()
}

/// Where each key or sequence item of a (valid) YAML document sits, by dotted path:
/// `services.api.build.context`, `cluster.ports[1].host`.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    path: String,
    map: HashMap<String, (usize, usize)>,
    /// Where each value starts (for a mapping entry, the value after the key).
    values: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Indexes `text`; a document that does not parse yields an empty index (errors come from [`parse`]).
    pub fn index(path: &str, text: &str) -> Self {
        enum Frame {
            Map { key: Option<String> },
            Seq { index: usize },
        }
        let mut map = HashMap::new();
        let mut values = HashMap::new();
        let mut stack: Vec<(String, Frame)> = Vec::new();
        // Returns the path for the node starting now, and advances the parent frame.
        fn node_path(stack: &mut [(String, Frame)]) -> Option<String> {
            let (prefix, frame) = stack.last_mut()?;
            match frame {
                Frame::Map { key } => key.take().map(|k| if prefix.is_empty() { k } else { format!("{prefix}.{k}") }),
                Frame::Seq { index } => {
                    let p = format!("{prefix}[{index}]");
                    *index += 1;
                    Some(p)
                }
            }
        }
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = (span.start.line(), span.start.col() + 1);
            let expecting_key = matches!(stack.last(), Some((_, Frame::Map { key: None })));
            match event {
                Event::Scalar(value, ..) if expecting_key => {
                    let (prefix, _) = stack.last().expect("checked");
                    let full = if prefix.is_empty() { value.to_string() } else { format!("{prefix}.{value}") };
                    map.entry(full).or_insert(pos);
                    if let Some((_, Frame::Map { key })) = stack.last_mut() {
                        *key = Some(value.into_owned());
                    }
                }
                Event::Scalar(..) | Event::Alias(..) => {
                    if let Some(p) = node_path(&mut stack) {
                        values.entry(p.clone()).or_insert(pos);
                        map.entry(p).or_insert(pos);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let p = if stack.is_empty() {
                        Some(String::new())
                    } else if expecting_key {
                        None // complex keys are not indexed
                    } else {
                        node_path(&mut stack)
                    };
                    let p = p.unwrap_or_else(|| "<complex key>".into());
                    values.entry(p.clone()).or_insert(pos);
                    map.entry(p.clone()).or_insert(pos);
                    stack.push((p, if is_map { Frame::Map { key: None } } else { Frame::Seq { index: 0 } }));
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Locations { path: path.to_owned(), map, values }
    }

    /// Where the value at `key_path` starts (else where its key is, see [`Locations::pos`]).
    pub fn value_pos(&self, key_path: &str) -> Pos {
        match self.values.get(key_path) {
            Some(&(line, column)) => Pos { path: self.path.clone(), line, column },
            None => self.pos(key_path),
        }
    }

    /// The position of `key_path`, or of its nearest indexed ancestor, or the file itself.
    pub fn pos(&self, key_path: &str) -> Pos {
        let mut p = key_path.to_owned();
        loop {
            if let Some(&(line, column)) = self.map.get(&p) {
                return Pos { path: self.path.clone(), line, column };
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return Pos { path: self.path.clone(), line: 0, column: 0 },
            }
        }
    }

    /// Builds a problem located at `key_path`.
    pub fn problem(&self, key_path: &str, message: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem { at: self.pos(key_path), message: message.into(), fix: fix.into() }
    }

    /// The displayed file path.
    pub fn file(&self) -> &str {
        &self.path
    }
}

/// Reads a file for [`check_text`]; `None` when it does not exist.
pub fn read(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_index_keys_and_items() {
        let text = "name: x\nservices:\n  api:\n    ports:\n      - port: 1\n      - {port: 2}\n";
        let l = Locations::index("f.yaml", text);
        assert_eq!(l.pos("name").to_string(), "f.yaml:1:1");
        assert_eq!(l.pos("services.api").to_string(), "f.yaml:3:3");
        assert_eq!(l.pos("services.api.ports[1].port").to_string(), "f.yaml:6:10");
        assert_eq!(l.pos("services.api.ports[0]").to_string(), "f.yaml:5:9");
        assert_eq!(l.pos("services.api.nothing").to_string(), "f.yaml:3:3");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(1_000_000);
        let msg = clip_text(&format!("`{long}` is not valid, and neither is {long}"));
        assert!(msg.len() < 400, "{} bytes", msg.len());
        assert!(msg.contains("(1000000 bytes in all)` is not valid"), "{msg}");
        assert_eq!(clip_text("short `value` stays"), "short `value` stays");
        let spaced = vec!["word"; 300_000].join(" ");
        assert!(clip_text(&spaced).len() < 4096 + 100);
        let multibyte = "é".repeat(5000);
        assert!(clip_text(&multibyte).starts_with(&"é".repeat(60)));
    }

    #[test]
    fn check_text_rejects_empty_and_binary() {
        assert!(check_text("f", b"  \n# c\n", "project file").unwrap_err().message.contains("empty"));
        assert!(check_text("f", b"a\0b", "project file").unwrap_err().message.contains("binary"));
        assert!(check_text("f", &[0xff, 0xfe, 0x41], "project file").unwrap_err().message.contains("UTF-8"));
    }
}
