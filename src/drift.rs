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
    /// Parses `Kind:path`; `None` when it is not of that form (see [`Pattern::check`]).
    pub fn parse(s: &str) -> Option<Pattern> {
        Pattern::check(s).ok()
    }

    /// Parses `Kind:path` strictly, saying what is wrong: a kind (letters and digits, or `*`),
    /// then segments separated by `.` or written as `[item]`, each a key, `*` or `**` (a
    /// bracketed item may hold dots and slashes: `labels[app.kubernetes.io/name]`). Empty
    /// segments, unbalanced brackets and partial wildcards (`rep*`) are refused: they would
    /// silently match nothing.
    pub fn check(s: &str) -> Result<Pattern, String> {
        let Some((kind, path)) = s.split_once(':') else {
            return Err("expected `Kind:field.path`".into());
        };
        if kind.is_empty() || !(kind == "*" || kind.chars().all(|c| c.is_ascii_alphanumeric())) {
            return Err(format!("kind `{kind}` must be a Kubernetes kind (letters and digits) or `*`"));
        }
        let mut tokens = Vec::new();
        let mut rest = path;
        let mut first = true;
        while !rest.is_empty() || first {
            let token = if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| format!("`[` without `]` in `{path}`"))?;
                let item = &after[..end];
                if item.is_empty() || item.contains('[') {
                    return Err(format!("empty or nested `[]` in `{path}`"));
                }
                rest = &after[end + 1..];
                item
            } else {
                if !first {
                    rest = rest
                        .strip_prefix('.')
                        .ok_or_else(|| format!("expected `.` or `[` in `{path}` before `{rest}`"))?;
                }
                let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
                let key = &rest[..end];
                if key.is_empty() {
                    return Err(format!("empty segment in `{path}` (two dots, or a dot at an end)"));
                }
                rest = &rest[end..];
                if rest.starts_with(']') {
                    return Err(format!("`]` without `[` in `{path}`"));
                }
                key
            };
            if token.contains('*') && token != "*" && token != "**" {
                return Err(format!("`{token}`: a wildcard is a whole segment, `*` or `**`"));
            }
            if token.chars().any(|c| c.is_whitespace() || c == ':') {
                return Err(format!("`{token}` contains a space or `:`"));
            }
            tokens.push(token.to_owned());
            first = false;
        }
        Ok(Pattern { kind: kind.to_owned(), tokens })
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
