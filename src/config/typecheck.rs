//! Every type error of a file in one run. serde stops at the first error it meets; when it
//! does, this second pass walks the whole document against the JSON Schema generated from the
//! same Rust types (`samestack schema`), so the user sees every wrong type, unknown key and
//! missing key at once, each at its `file:line:column`. It covers the subset of JSON Schema
//! schemars emits (`$ref`, `type`, `properties`, `additionalProperties`, `required`, `items`,
//! `enum`/`const`/`oneOf`/`anyOf`, `minimum`/`maximum`), and reads scalars as leniently as the
//! loader does (`version: 15` is a string, `port: "80"` a number). Name patterns are left to
//! the semantic checks, which run once the types are right and say more.

use serde_json::Value;

use super::yaml::{Locations, Problem};

/// Type problems of `doc` against `schema` (a whole schema with `$defs`), in walk order.
pub fn check(doc: &Value, schema: &Value, loc: &Locations) -> Vec<Problem> {
    let mut out = Vec::new();
    Walker { root: schema, loc, out: &mut out }.walk(doc, schema, "");
    out.sort_by_key(|p| (p.at.line, p.at.column));
    out
}

struct Walker<'a> {
    root: &'a Value,
    loc: &'a Locations,
    out: &'a mut Vec<Problem>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// A schema constant or enum value as written in YAML: strings bare, anything else as JSON.
fn as_text(x: &Value) -> String {
    x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Null => "nothing".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => format!("`{other}`"),
    }
}

fn describe(ty: &str) -> &'static str {
    match ty {
        "string" => "a string",
        "integer" => "an integer",
        "non-negative integer" => "a non-negative integer",
        "number" => "a number",
        "boolean" => "true or false",
        "array" => "a list (`[a, b]` or `- item` lines)",
        "object" => "a mapping (`key: value` lines)",
        "null" => "nothing",
        _ => "a value",
    }
}

/// Whether `v` can be read as `ty` by the loader.
fn fits(v: &Value, ty: &str) -> bool {
    match (ty, v) {
        ("null", Value::Null) => true,
        ("string", Value::String(_) | Value::Number(_) | Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("integer", Value::String(s)) => s.trim().parse::<i64>().is_ok(),
        ("number", Value::Number(_)) => true,
        ("number", Value::String(s)) => s.trim().parse::<f64>().is_ok(),
        ("boolean", Value::Bool(_)) => true,
        ("boolean", Value::String(s)) => matches!(s.as_str(), "true" | "false"),
        ("array", Value::Array(_)) => true,
        ("object", Value::Object(_)) => true,
        _ => false,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Follows `$ref`s into `root`'s `$defs`.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/")) {
            Some(pointer) => schema = root.pointer(&format!("/{pointer}")).unwrap_or(&Value::Null),
            None => break,
        }
    }
    schema
}

impl<'a> Walker<'a> {
    fn problem(&mut self, path: &str, at_value: bool, message: String, fix: String) {
        let at = if at_value { self.loc.value_pos(path) } else { self.loc.pos(path) };
        self.out.push(Problem { at, message, fix });
    }

    /// `v` is none of the values the schema allows; `list` names them.
    fn not_one_of(&mut self, path: &str, v: &Value, list: &str) {
        self.problem(
            path,
            true,
            format!("unknown value {}, expected one of: {list}", shown(v)),
            format!("use one of: {list}"),
        );
    }

    /// How many problems `v` has against `schema`, without recording them.
    fn count(&self, v: &Value, schema: &'a Value, path: &str) -> usize {
        let mut scratch = Vec::new();
        Walker { root: self.root, loc: self.loc, out: &mut scratch }.walk(v, schema, path);
        scratch.len()
    }

    fn walk(&mut self, v: &Value, schema: &'a Value, path: &str) {
        let root = self.root;
        let schema = resolve(root, schema);
        let alternatives = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array);
        if let Some(alts) = alternatives {
            if alts.iter().any(|a| self.count(v, a, path) == 0) {
                return;
            }
            let consts: Vec<&str> = alts
                .iter()
                .map(|a| resolve(root, a))
                .flat_map(|a| {
                    a.get("const").into_iter().chain(a.get("enum").and_then(Value::as_array).into_iter().flatten())
                })
                .filter_map(Value::as_str)
                .collect();
            if !consts.is_empty() {
                self.not_one_of(path, v, &consts.join(", "));
                return;
            }
            // Report against the alternative that is not `null` (an optional value).
            let main = alts.iter().find(|a| resolve(root, a).get("type").and_then(Value::as_str) != Some("null"));
            if let Some(main) = main {
                self.walk(v, main, path);
            }
            return;
        }
        if let Some(c) = schema.get("const") {
            if as_text(c) != as_text(v) {
                self.problem(
                    path,
                    true,
                    format!("found {}, expected `{}`", shown(v), as_text(c)),
                    format!("write `{}`", as_text(c)),
                );
            }
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.iter().any(|e| as_text(e) == as_text(v)) {
                let list: Vec<String> = values.iter().map(as_text).collect();
                self.not_one_of(path, v, &list.join(", "));
            }
            return;
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| fits(v, t)) {
            let mut want = types.iter().find(|t| **t != "null").copied().unwrap_or("null");
            if want == "integer" && schema.get("minimum").and_then(Value::as_f64).is_some_and(|m| m >= 0.0) {
                want = "non-negative integer";
            }
            // The loader names an empty value as such.
            let message = if v.is_null() && want == "string" {
                "found an empty value, expected a string".to_owned()
            } else {
                format!("wrong type: found {}, expected {}", shown(v), describe(want))
            };
            self.problem(path, true, message, format!("write {} here", describe(want)));
            return;
        }
        if let Some(n) = as_number(v).filter(|_| types.iter().any(|t| matches!(*t, "integer" | "number"))) {
            let min = schema.get("minimum").and_then(Value::as_f64);
            let max = schema.get("maximum").and_then(Value::as_f64);
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                let range = format!(
                    "{}..{}",
                    min.map(|m| m.to_string()).unwrap_or_default(),
                    max.map(|m| m.to_string()).unwrap_or_default()
                );
                self.problem(
                    path,
                    true,
                    format!("invalid value: found {}, expected a number in {range}", shown(v)),
                    format!("write a number in {range}"),
                );
            }
        }
        match v {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                if let Some(required) = schema.get("required").and_then(Value::as_array) {
                    for key in required.iter().filter_map(Value::as_str) {
                        if !map.contains_key(key) {
                            self.problem(
                                path,
                                true,
                                format!("missing required key `{key}`"),
                                format!("add `{key}:` to this mapping (see docs/reference.md)"),
                            );
                        }
                    }
                }
                for (key, child) in map {
                    let child_path = join(path, key);
                    match props.and_then(|p| p.get(key)) {
                        Some(s) => self.walk(child, s, &child_path),
                        None => match schema.get("additionalProperties") {
                            Some(Value::Bool(false)) => {
                                let expected: Vec<&str> =
                                    props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                                self.problem(
                                    &child_path,
                                    false,
                                    format!("unknown key `{key}`, expected one of: {}", expected.join(", ")),
                                    "remove the key or fix its spelling (docs/reference.md lists every key; `samestack schema` gives editors completion)".into(),
                                );
                            }
                            Some(s @ Value::Object(_)) => self.walk(child, s, &child_path),
                            _ => {}
                        },
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item, item_schema, &format!("{path}[{i}]"));
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let doc: Value = serde_saphyr::from_str(text).unwrap();
        let schema: Value = serde_json::from_str(&crate::config::json_schema()).unwrap();
        let loc = Locations::index("f.yaml", text);
        check(&doc, &schema, &loc).iter().map(|p| p.to_string().lines().next().unwrap().to_owned()).collect()
    }

    #[test]
    fn a_valid_file_has_no_type_problems() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/guestbook/samestack.yaml")).unwrap();
        assert_eq!(problems(&text), Vec::<String>::new());
        // Read as leniently as the loader: a number where a string goes, a quoted number.
        assert_eq!(
            problems(
                "name: x\nservices:\n  web:\n    image: a:1\n    ports: [{ port: \"80\" }]\n    env: { A: 1 }\ndatabase: { version: 15, password_secret: pw }\n"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_type_problem_of_a_file_is_found() {
        let got = problems(
            "name: x\ncluster:\n  provider: minikube\n  servers: many\nregistry:\n  host_port: 70000\nservices:\n  web:\n    image: a:1\n    ports: [{ port: eighty }, { name: h }]\n    command: 5\n    helth: {}\n",
        );
        assert_eq!(
            got,
            [
                "f.yaml:3:13: unknown value `minikube`, expected one of: auto, docker, kind, k3d, existing",
                "f.yaml:4:12: wrong type: found `many`, expected a non-negative integer",
                "f.yaml:6:14: invalid value: found `70000`, expected a number in 1..65535",
                "f.yaml:10:21: wrong type: found `eighty`, expected a non-negative integer",
                "f.yaml:10:31: missing required key `port`",
                "f.yaml:11:14: wrong type: found `5`, expected a list (`[a, b]` or `- item` lines)",
                "f.yaml:12:5: unknown key `helth`, expected one of: build, command, depends_on, deploy, env, health, image, image_name, ingress, on_change, ports, secrets, sync",
            ]
        );
    }
}
