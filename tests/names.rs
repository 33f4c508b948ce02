//! Every key and channel name comes from `src/lock/keys.rs` and reaches the scripts as KEYS or
//! ARGV: a name built twice drifts apart (a `--key` holder once missed its take-over notice,
//! published by acquire.lua on `KEY:control` while it listened on `{KEY}:control`). This reads
//! the string literals of the sources for a piece of a name anywhere else.

use std::path::{Path, PathBuf};

use crate::support::src_files;

/// The words a lock's companions and places are named with, after a `:` (keys.rs).
const COMPANIONS: [&str; 10] = [
    "control", "holder", "fence", "released", "waiters", "limit", "history", "slot", "readers",
    "writers",
];

/// Reads a string literal from just after its opening quote `quote`, escapes kept as the
/// escaped character: the literal and what follows it.
fn quoted(text: &str, quote: char) -> (String, &str) {
    let mut literal = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => literal.extend(chars.next().map(|(_, c)| match c {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                c => c,
            })),
            c if c == quote => return (literal, &text[at + c.len_utf8()..]),
            c => literal.push(c),
        }
    }
    (literal, "")
}

/// The string literals of Rust code: comments, char literals and lifetimes skipped, raw
/// strings read to their closing `"#`.
fn rust_literals(mut code: &str) -> Vec<String> {
    let mut found = Vec::new();
    while let Some(at) = code.find(['/', '"', '\'', 'r']) {
        let rest = &code[at..];
        if let Some(comment) = rest.strip_prefix("//") {
            code = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            code = comment.split_once("*/").map_or("", |(_, after)| after);
        } else if let Some(literal) = rest.strip_prefix('"') {
            let (literal, after) = quoted(literal, '"');
            found.push(literal);
            code = after;
        } else if let Some(quoted_char) = rest.strip_prefix('\'') {
            // A char literal ('x', '\'', '"') or a lifetime ('a): skip either.
            let skip = match quoted_char.strip_prefix('\\') {
                Some(escaped) => 2 + escaped.find('\'').map_or(0, |end| end + 1),
                None if quoted_char.chars().nth(1) == Some('\'') => {
                    1 + quoted_char.chars().next().map_or(0, char::len_utf8) + 1
                }
                None => 1,
            };
            code = &rest[skip.min(rest.len())..];
        } else if let Some(raw) = rest.strip_prefix('r').filter(|raw| {
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            raw[hashes..].starts_with('"')
                && !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        }) {
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            let body = &raw[hashes + 1..];
            let end = format!("\"{}", "#".repeat(hashes));
            let (literal, after) = body.split_once(end.as_str()).unwrap_or((body, ""));
            found.push(literal.to_string());
            code = after;
        } else {
            code = &rest[1..];
        }
    }
    found
}

/// The string literals of Lua code: comments (`--`, `--[[ ]]`) skipped.
fn lua_literals(mut code: &str) -> Vec<String> {
    let mut found = Vec::new();
    while let Some(at) = code.find(['-', '"', '\'', '[']) {
        let rest = &code[at..];
        if let Some(comment) = rest.strip_prefix("--[[") {
            code = comment.split_once("]]").map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("--") {
            code = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(long) = rest.strip_prefix("[[") {
            let (literal, after) = long.split_once("]]").unwrap_or((long, ""));
            found.push(literal.to_string());
            code = after;
        } else if let Some(quote @ ('"' | '\'')) = rest.chars().next() {
            let (literal, after) = quoted(&rest[1..], quote);
            found.push(literal);
            code = after;
        } else {
            code = &rest[1..];
        }
    }
    found
}

/// A companion's word against a `:`, as a name has it (`:control`, `slot:3`, a format's
/// `%s:control`), not as prose has it (`the history: ...`).
fn a_companion(literal: &str) -> bool {
    COMPANIONS.iter().any(|word| {
        literal.match_indices(word).any(|(at, _)| {
            let before = literal[..at].chars().next_back();
            let after = &literal[at + word.len()..];
            // `{holder:#}` is a format argument, not a name.
            before == Some(':')
                || (before != Some('{')
                    && after
                        .strip_prefix(':')
                        .is_some_and(|rest| rest.chars().next().is_none_or(|c| !c.is_whitespace())))
        })
    })
}

/// A piece of a name: a companion's word, a separator alone (`k .. ':' .. 'control'`,
/// `.join(":")`), the hash tag's braces beside one as the language writes them (`tag`), or
/// Redis's keyspace channel.
fn names_a_key(literal: &str, tag: [&str; 2]) -> bool {
    a_companion(literal)
        || literal == ":"
        || tag.iter().any(|brace| literal.contains(brace))
        || literal.contains("__keyspace")
}

/// In Lua: `:{`, `}:`.
fn names_a_key_in_lua(literal: &str) -> bool {
    names_a_key(literal, [":{", "}:"])
}

/// In Rust, the braces escaped in a format string: `:{{`, `}}:` (`{host}:{port}` is an
/// address).
fn names_a_key_in_rust(literal: &str) -> bool {
    names_a_key(literal, [":{{", "}}:"])
}

fn offenders(
    files: &[PathBuf],
    literals: fn(&str) -> Vec<String>,
    names_a_key: fn(&str) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    let keys_rs = Path::new("src").join("lock").join("keys.rs");
    for path in files.iter().filter(|path| !path.ends_with(&keys_rs)) {
        let text = std::fs::read_to_string(path).expect("a readable source");
        // A file's unit tests give names as input (a user's `--key`) and build none: the
        // module that ends a file is left out, not anything after a test attribute elsewhere.
        let code = text
            .find("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |at| &text[..at]);
        for literal in literals(code) {
            if names_a_key(&literal) {
                found.push(format!("{}: {literal:?}", path.display()));
            }
        }
    }
    found
}

#[test]
fn no_script_builds_a_name() {
    let found = offenders(&src_files("lua"), lua_literals, names_a_key_in_lua);
    assert!(found.is_empty(), "names built in Lua: {found:#?}");
}

#[test]
fn no_name_is_built_outside_keys_rs() {
    let found = offenders(&src_files("rs"), rust_literals, names_a_key_in_rust);
    assert!(found.is_empty(), "names built outside keys.rs: {found:#?}");
}

#[test]
fn the_check_sees_the_names_it_looks_for() {
    // A check that cannot fail is no check: the forms that drift are caught.
    let lua = "local c = lock .. ':control' -- ':holder' in a comment\n\
               local d = string.format('%s:waiters', k) .. ':' .. \"x\" --[[ ':fence' ]]";
    assert_eq!(lua_literals(lua), [":control", "%s:waiters", ":", "x"]);
    let rust = "let a = '\"'; let b: &'static str = \"{base}:holder\"; // \":fence\"\n\
                let c = r#\"x\":slot:\"#; /* \":limit\" */ let d = [\"a\", \"b\"].join(\":\");";
    assert_eq!(
        rust_literals(rust),
        ["{base}:holder", "x\":slot:", "a", "b", ":"]
    );
    for name in [
        ":control",
        "%s:waiters",
        ":",
        "lock:{tenant}",
        "redlock:slot:",
    ] {
        assert!(names_a_key_in_lua(name), "{name:?}");
    }
    for name in [
        "{base}:holder",
        "{}:{{{pattern}}}*",
        "__keyspace@{}__:{key}",
        "{lock}:slot:{n}",
    ] {
        assert!(names_a_key_in_rust(name), "{name:?}");
    }
    for text in [
        ",\"end_ms\":",
        "gave up after {}: ",
        "{host}:{port}",
        "https:",
        "fence",
        "not in this history: {error}",
        "contains {c:?}: braces and control characters",
        "{name}\t{holder:#}\tfor {age}",
        "the runs of the history:\n",
    ] {
        assert!(!names_a_key_in_rust(text), "{text:?}");
        assert!(!names_a_key_in_lua(text) || text.contains("}:"), "{text:?}");
    }
}
