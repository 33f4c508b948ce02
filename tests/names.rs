//! Every key and channel name comes from `src/lock/keys.rs` and reaches the scripts as KEYS or
//! ARGV: a name built twice drifts apart (a `--key` holder once missed its take-over notice,
//! published by acquire.lua on `KEY:control` while it listened on `{KEY}:control`). This reads
//! the sources for names built anywhere else.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            sources(&path, extension, found);
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
}

fn src(extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        extension,
        &mut found,
    );
    assert!(!found.is_empty(), "no .{extension} file in src/");
    found
}

/// The string literals of a line of code (its comment left out), between quotes `quote`.
fn literals(code: &str, quote: char) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    let mut escaped = false;
    for c in code.chars() {
        let Some(text) = &mut current else {
            if c == quote {
                current = Some(String::new());
            }
            continue;
        };
        if escaped {
            text.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            found.extend(current.take());
        } else {
            text.push(c);
        }
    }
    found
}

/// A companion's or a place's suffix (`:control`, `:slot:`), which is appended to a name.
fn a_suffix(literal: &str) -> bool {
    literal
        .strip_prefix(':')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// A piece of a name as Lua would build it: a suffix, a prefix (`'redlock:' .. name`), the hash
/// tag's braces beside a separator, or Redis's keyspace channel.
fn names_a_key_in_lua(literal: &str) -> bool {
    let a_prefix = literal
        .strip_suffix(':')
        .is_some_and(|rest| rest.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '}'));
    a_suffix(literal)
        || a_prefix
        || literal.contains(":{")
        || literal.contains("}:")
        || literal.contains("__keyspace")
}

/// A piece of a name as Rust would build it: a suffix, alone or after a format argument
/// (`{base}:holder`), a hash tag in a format string (`:{{`, `}}:`), or Redis's keyspace channel.
fn names_a_key_in_rust(literal: &str) -> bool {
    a_suffix(literal)
        || literal
            .split("}:")
            .skip(1)
            .any(|after| after.starts_with(|c: char| c.is_ascii_alphabetic()))
        || literal.contains(":{{")
        || literal.contains("}}:")
        || literal.contains("__keyspace")
}

fn code_of(line: &str, comment: &str) -> String {
    match line.find(comment) {
        // A comment marker inside a literal (`"a -- b"`) is rare enough in these sources to
        // cut the line there: the check then sees less, never more.
        Some(at) => line[..at].to_string(),
        None => line.to_string(),
    }
}

fn offenders(
    files: &[PathBuf],
    comment: &str,
    quotes: &[char],
    skip: Option<&str>,
    names_a_key: fn(&str) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for path in files
        .iter()
        .filter(|p| skip.is_none_or(|skip| !p.ends_with(skip)))
    {
        let text = std::fs::read_to_string(path).expect("a readable source");
        // A file's unit tests, at its end, give names as input (a user's `--key`), build none.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let code = code_of(line, comment);
            for quote in quotes {
                for literal in literals(&code, *quote) {
                    if names_a_key(&literal) {
                        found.push(format!("{}:{}: {literal:?}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_script_builds_a_name() {
    let found = offenders(&src("lua"), "--", &['\'', '"'], None, names_a_key_in_lua);
    assert!(found.is_empty(), "names built in Lua: {found:#?}");
}

#[test]
fn no_name_is_built_outside_keys_rs() {
    let found = offenders(
        &src("rs"),
        "//",
        &['"'],
        Some("lock/keys.rs"),
        names_a_key_in_rust,
    );
    assert!(found.is_empty(), "names built outside keys.rs: {found:#?}");
}

#[test]
fn the_check_sees_the_names_it_looks_for() {
    // A check that cannot fail is no check: the forms that once drifted are caught.
    assert_eq!(literals("local c = lock .. ':control'", '\''), [":control"]);
    assert!(names_a_key_in_lua(":control"));
    assert!(names_a_key_in_lua("redlock:"));
    assert!(!names_a_key_in_lua(",\"end_ms\":"));
    assert!(!names_a_key_in_lua("\"outcome\":\""));
    assert!(names_a_key_in_rust("{base}:holder"));
    assert!(names_a_key_in_rust("{}:{{{pattern}}}*"));
    assert!(names_a_key_in_rust("__keyspace@{}__:{key}"));
    assert!(!names_a_key_in_rust("gave up after {}: "));
    assert!(!names_a_key_in_rust("https:"));
}
