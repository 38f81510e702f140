//! `.dockerignore` parsing and matching with Docker's semantics: patterns are relative to the
//! context root (a leading `/` is dropped), `#` starts a comment line, `!` re-includes, the last
//! matching pattern wins, `*` and `?` stay inside one path segment, `**` spans any number of
//! directories, and a pattern that matches a parent directory excludes everything below it.

/// The parsed rules of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    tokens: Vec<Token>,
    exception: bool,
    /// The line as written (for messages that say which rule decided).
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters except `/`.
    Star,
    /// `?`: one character except `/`.
    Any,
    /// `[...]`: one character from a set (ranges allowed), possibly negated with `^`.
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    /// `**` at the end of a pattern: anything, across directories.
    StarStarEnd,
    /// `**` (or `**/`) elsewhere: zero or more whole directories.
    StarStarDirs,
}

impl IgnoreRules {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Self {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (exception, raw) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let cleaned = clean(raw);
                (!cleaned.is_empty()).then(|| Pattern { tokens: tokenize(&cleaned), exception, text: line.to_string() })
            })
            .collect();
        IgnoreRules { patterns }
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some `!` pattern exists: an excluded directory may still hold included files,
    /// so the walk must descend into it.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// True when `path` (relative to the context root, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.excluded_by(path).is_some()
    }

    /// The pattern (as written) that excludes `path`, or None when the path is included.
    pub fn excluded_by(&self, path: &str) -> Option<&str> {
        let path = path.trim_start_matches("./").trim_matches('/');
        let mut decided: Option<&Pattern> = None;
        for pattern in &self.patterns {
            if pattern.matches_or_parent(path) {
                decided = Some(pattern);
            }
        }
        decided.filter(|p| !p.exception).map(|p| p.text.as_str())
    }

    /// Parses a `.gitignore` into the same rules. Git differs from Docker in one way that
    /// matters here: a pattern without a `/` before its end matches at any depth, so it becomes
    /// `**/pattern`; a leading `/` anchors it at the root, as in Docker. A trailing `/` (git's
    /// "directories only") is kept as a match of the directory and everything below it, so a
    /// plain file of that name is dropped too (rare, and only ever over-ignores).
    pub fn parse_gitignore(text: &str) -> Self {
        let mut rules = IgnoreRules::default();
        for line in text.lines() {
            // Git keeps trailing spaces escaped with a backslash; plain ones are dropped.
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line.strip_prefix('\\').unwrap_or(line)),
            };
            let body = raw.trim_end_matches('/');
            let anchored = body.contains('/');
            let pattern = if anchored { body.to_string() } else { format!("**/{body}") };
            let cleaned = clean(&pattern);
            if !cleaned.is_empty() {
                rules.patterns.push(Pattern { tokens: tokenize(&cleaned), exception, text: line.to_string() });
            }
        }
        rules
    }
}

impl Pattern {
    fn matches_or_parent(&self, path: &str) -> bool {
        if matches(&self.tokens, &path.chars().collect::<Vec<_>>()) {
            return true;
        }
        // A pattern matching a parent directory excludes everything inside it.
        let mut prefix_end = 0;
        let segments: Vec<&str> = path.split('/').collect();
        for segment in &segments[..segments.len().saturating_sub(1)] {
            prefix_end += segment.len();
            let parent: Vec<char> = path[..prefix_end].chars().collect();
            if matches(&self.tokens, &parent) {
                return true;
            }
            prefix_end += 1;
        }
        false
    }
}

/// Go's `filepath.Clean` for relative slash paths, then the leading `/` Docker strips.
fn clean(raw: &str) -> String {
    let absolute = raw.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out.join("/")
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() { Token::StarStarEnd } else { Token::StarStarDirs });
                continue;
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Any),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                tokens.push(Token::Literal(chars[i]));
            }
            '[' => {
                if let Some((class, next)) = parse_class(&chars, i) {
                    tokens.push(class);
                    i = next;
                    continue;
                }
                tokens.push(Token::Literal('['));
            }
            c => tokens.push(Token::Literal(c)),
        }
        i += 1;
    }
    tokens
}

/// Parses `[...]` starting at `start`; returns the class and the index after `]`.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    // Docker compiles patterns to Go regular expressions: `^` negates, `!` is a plain character.
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class { negated, items }, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *chars.get(i)?
        } else {
            c
        };
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let mut hi = chars[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *chars.get(i)?;
                i += 1;
            }
            items.push((lo, hi));
        } else {
            items.push((lo, lo));
        }
    }
}

/// Backtracking match of the whole of `text` against `tokens`.
fn matches(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Literal(c) => text.first() == Some(c) && matches(rest, &text[1..]),
        Token::Any => text.first().is_some_and(|c| *c != '/') && matches(rest, &text[1..]),
        Token::Class { negated, items } => {
            text.first().is_some_and(|c| *c != '/' && items.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && matches(rest, &text[1..])
        }
        Token::Star => {
            let run = text.iter().take_while(|c| **c != '/').count();
            (0..=run).any(|n| matches(rest, &text[n..]))
        }
        Token::StarStarEnd => true,
        // `(.*/)?`: nothing, or anything ending with a `/`.
        Token::StarStarDirs => {
            matches(rest, text) || (0..text.len()).any(|i| text[i] == '/' && matches(rest, &text[i + 1..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &str, path: &str) -> bool {
        IgnoreRules::parse(rules).is_excluded(path)
    }

    #[test]
    fn plain_names_match_at_the_root_only_and_exclude_their_contents() {
        assert!(excluded("node_modules", "node_modules"));
        assert!(excluded("node_modules", "node_modules/a/b.js"));
        assert!(!excluded("node_modules", "src/node_modules"));
        assert!(!excluded("node_modules", "node_modules2"));
    }

    #[test]
    fn leading_slash_and_dot_segments_are_cleaned() {
        assert!(excluded("/build", "build/out.o"));
        assert!(excluded("./build/", "build/out.o"));
        assert!(excluded("a/../b", "b"));
    }

    #[test]
    fn star_and_question_mark_stay_inside_one_segment() {
        assert!(excluded("*.pyc", "x.pyc"));
        assert!(!excluded("*.pyc", "pkg/x.pyc"));
        assert!(excluded("*/*.pyc", "pkg/x.pyc"));
        assert!(excluded("file?.txt", "file1.txt"));
        assert!(!excluded("file?.txt", "file10.txt"));
    }

    #[test]
    fn double_star_spans_directories() {
        assert!(excluded("**/*.pyc", "x.pyc"));
        assert!(excluded("**/*.pyc", "a/b/c/x.pyc"));
        assert!(excluded("**/__pycache__", "app/__pycache__/m.cpython-311.pyc"));
        assert!(excluded("docs/**", "docs/a/b.md"));
        assert!(excluded("a/**/z", "a/z"));
        assert!(excluded("a/**/z", "a/b/c/z"));
        assert!(!excluded("a/**/z", "b/z"));
    }

    #[test]
    fn exceptions_reinclude_and_the_last_match_wins() {
        let rules = "*.md\n!README.md\n";
        assert!(excluded(rules, "CHANGES.md"));
        assert!(!excluded(rules, "README.md"));
        let rules = "docs\n!docs/keep.txt\n";
        assert!(excluded(rules, "docs/other.txt"));
        assert!(!excluded(rules, "docs/keep.txt"));
        assert!(IgnoreRules::parse(rules).has_exceptions());
        // A later exclusion overrides an earlier exception.
        assert!(excluded("!keep\nkeep", "keep"));
    }

    #[test]
    fn comments_blank_lines_and_whitespace_are_ignored() {
        let rules = IgnoreRules::parse("# a comment\n\n   \n  secret.env  \n");
        assert!(rules.is_excluded("secret.env"));
        assert!(!rules.is_excluded("# a comment"));
        assert!(IgnoreRules::parse("# only\n").is_empty());
    }

    #[test]
    fn the_deciding_pattern_is_named() {
        let rules = IgnoreRules::parse("*.md\n!README.md\n**/*.pyc\n");
        assert_eq!(rules.excluded_by("CHANGES.md"), Some("*.md"));
        assert_eq!(rules.excluded_by("README.md"), None);
        assert_eq!(rules.excluded_by("a/b.pyc"), Some("**/*.pyc"));
        assert_eq!(rules.excluded_by("app.py"), None);
    }

    #[test]
    fn gitignore_patterns_without_a_slash_match_at_any_depth() {
        let rules = IgnoreRules::parse_gitignore("# c\n*.log\nbuild/\n/root-only\ndocs/*.tmp\n!keep.log\n");
        assert_eq!(rules.excluded_by("a.log"), Some("*.log"));
        assert_eq!(rules.excluded_by("x/y/a.log"), Some("*.log"));
        assert_eq!(rules.excluded_by("x/keep.log"), None);
        assert_eq!(rules.excluded_by("build/out.o"), Some("build/"));
        assert_eq!(rules.excluded_by("src/build/out.o"), Some("build/"));
        assert_eq!(rules.excluded_by("root-only"), Some("/root-only"));
        assert_eq!(rules.excluded_by("sub/root-only"), None);
        assert_eq!(rules.excluded_by("docs/a.tmp"), Some("docs/*.tmp"));
        assert_eq!(rules.excluded_by("x/docs/a.tmp"), None);
        assert_eq!(rules.excluded_by("src/main.rs"), None);
    }

    #[test]
    fn character_classes_and_escapes() {
        assert!(excluded("log[0-9].txt", "log7.txt"));
        assert!(!excluded("log[0-9].txt", "logx.txt"));
        assert!(excluded("log[^0-9].txt", "logx.txt"));
        assert!(!excluded("log[!0-9].txt", "logx.txt"));
        assert!(excluded("log[!0-9].txt", "log!.txt"));
        assert!(excluded(r"a\*b", "a*b"));
        assert!(!excluded(r"a\*b", "axb"));
    }
}
