//! Field paths in a manifest and the `allowed_drift` patterns that match them
//! (`Kind:field.path`, `*`, `**`). Pure, and below both `profile` (which checks a profile's
//! patterns) and `render::parity` (which classifies differences with them).

use std::fmt::Write as _;

use serde::Serialize;

/// One step into a manifest: a mapping key, a list index, or a list item found by its `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Seg {
    Key(String),
    Index(usize),
    Named(String),
}

/// Renders a field path: `spec.template.spec.containers[api].env[LOG_LEVEL].value`.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
            Seg::Named(n) => {
                let _ = write!(s, "[{n}]");
            }
        }
    }
    s
}

/// A field pattern from `allowed_drift`: `Kind:field.path`, `*` for one segment (a key or a
/// list item), `**` for any number. `Deployment:spec.template.spec.containers[*].image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    kind: String,
    tokens: Vec<String>,
}

impl Pattern {
    /// Parses `Kind:path`; `None` when it is not of that form.
    pub fn parse(s: &str) -> Option<Pattern> {
        let (kind, path) = s.split_once(':')?;
        if kind.is_empty() || !(kind == "*" || kind.chars().all(|c| c.is_ascii_alphanumeric())) {
            return None;
        }
        let tokens: Vec<String> = path.split(['.', '[', ']']).filter(|t| !t.is_empty()).map(str::to_owned).collect();
        if tokens.is_empty() {
            return None;
        }
        Some(Pattern { kind: kind.to_owned(), tokens })
    }

    /// True when the pattern covers `path` of a resource of `kind`.
    pub fn matches(&self, kind: &str, path: &[Seg]) -> bool {
        (self.kind == "*" || self.kind == kind) && match_tokens(&self.tokens, path)
    }
}

fn seg_matches(token: &str, seg: &Seg) -> bool {
    token == "*"
        || match seg {
            Seg::Key(k) => k == token,
            Seg::Named(n) => n == token,
            Seg::Index(i) => i.to_string() == token,
        }
}

fn match_tokens(tokens: &[String], path: &[Seg]) -> bool {
    match tokens.split_first() {
        None => path.is_empty(),
        Some((t, rest)) if t == "**" => (0..=path.len()).any(|skip| match_tokens(rest, &path[skip..])),
        Some((t, rest)) => {
            path.split_first().is_some_and(|(seg, prest)| seg_matches(t, seg) && match_tokens(rest, prest))
        }
    }
}
