//! What a Dockerfile builds from: the external base images named by its `FROM` lines, with
//! `ARG` defaults and build arguments substituted. Their image ids go into the image tag, so a
//! moved base tag (a rebuilt base image) rebuilds the service even when its context did not change.

use std::collections::{BTreeMap, HashMap};

/// External images the Dockerfile's stages start from, in order, without duplicates. Stage
/// names (`FROM builder`) and `scratch` are not images.
pub fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let mut seen_from = false;
    for line in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        match instruction.to_ascii_uppercase().as_str() {
            // Only ARGs before the first FROM are in scope for FROM lines.
            "ARG" if !seen_from => {
                for decl in words {
                    let (name, default) = match decl.split_once('=') {
                        Some((n, d)) => (n, Some(unquote(d))),
                        None => (decl, None),
                    };
                    let value = build_args.get(name).cloned().or(default).unwrap_or_default();
                    args.insert(name.to_string(), value);
                }
            }
            "FROM" => {
                seen_from = true;
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let Some(raw) = rest.first() else { continue };
                let image = substitute(raw, &args);
                let is_stage = stages.contains(&image.to_ascii_lowercase());
                if !image.is_empty() && image != "scratch" && !is_stage && !images.contains(&image) {
                    images.push(image);
                }
                if let (Some(as_kw), Some(name)) = (rest.get(1), rest.get(2))
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.push(name.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    images
}

/// Joins `\`-continued lines and drops comments and blank lines.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').trim_matches('\'').to_string()
}

/// `$NAME`, `${NAME}` and `${NAME:-default}` substitution, as Docker does in FROM lines.
fn substitute(word: &str, args: &HashMap<String, String>) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            let Some(end) = chars[i..].iter().position(|c| *c == '}') else {
                out.extend(&chars[i..]);
                break;
            };
            let inner: String = chars[i + 2..i + end].iter().collect();
            let value = match inner.split_once(":-") {
                Some((name, default)) => {
                    args.get(name).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| default.to_string())
                }
                None => args.get(&inner).cloned().unwrap_or_default(),
            };
            out.push_str(&value);
            i += end + 1;
        } else {
            let name: String = chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').collect();
            out.push_str(args.get(&name).map(String::as_str).unwrap_or_default());
            i += 1 + name.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn arg_defaults_and_build_args_resolve_the_base() {
        let file = "# comment\nARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\nRUN true\n";
        assert_eq!(base_images(file, &args(&[])), vec!["python:3.12-slim"]);
        assert_eq!(
            base_images(file, &args(&[("BASE_IMAGE", "samestack-test/python:latest")])),
            vec!["samestack-test/python:latest"]
        );
        assert_eq!(base_images("ARG V\nFROM img:$V\n", &args(&[("V", "2")])), vec!["img:2"]);
        assert_eq!(base_images("FROM ${X:-alpine}\n", &args(&[])), vec!["alpine"]);
    }

    #[test]
    fn stages_scratch_and_flags_are_not_images() {
        let file = "FROM --platform=linux/amd64 golang:1.22 AS build\nRUN go build\nFROM scratch\nCOPY --from=build /x /x\nFROM build AS test\nFROM debian:12\n";
        assert_eq!(base_images(file, &args(&[])), vec!["golang:1.22", "debian:12"]);
    }

    #[test]
    fn continuation_lines_are_joined() {
        assert_eq!(base_images("FROM \\\n  busybox\n", &args(&[])), vec!["busybox"]);
    }
}
