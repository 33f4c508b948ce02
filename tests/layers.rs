//! The floors of src/, as CONTRIBUTING's layout names them: a file imports its own floor and
//! those below it, never one above (a floor that knows its caller cannot be changed without
//! it); and `cli/` is a leaf, parsing and nothing more: it imports only the foundations.

use crate::support::{src_dir, src_files};

/// From the bottom: the foundations, the transport, the lock, the report, the command line,
/// the plan, the commands, and `main` with what it alone calls.
const FLOORS: [&[&str]; 8] = [
    &[
        "clock", "duration", "exit", "outcome", "say", "out", "cmdline",
    ],
    &["lock::transport"],
    &["lock"],
    &["report"],
    &["cli"],
    &["settings", "plan"],
    &["run", "ops"],
    &["lib", "main", "generate"],
];

/// The floor of a module path (`lock::transport::conn`, `run`), by its longest known prefix.
fn floor(module: &str) -> usize {
    let mut best = (0, None);
    for (floor, names) in FLOORS.iter().enumerate() {
        for name in *names {
            let within = module == *name || module.starts_with(&format!("{name}::"));
            if within && name.len() > best.0 {
                best = (name.len(), Some(floor));
            }
        }
    }
    best.1.unwrap_or_else(|| {
        panic!("{module}: on no floor; add it to tests/layers.rs and CONTRIBUTING")
    })
}

/// The module paths a file's code (not its unit tests) names: `crate::a::b`, each of a group
/// `crate::{a, b::c}`, and `super::x` resolved from `module` (a `mod.rs` is its folder's module).
fn imports(module: &str, code: &str) -> Vec<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let path = |text: &str| -> String {
        let path: String = (text.chars())
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
            .collect();
        path.trim_end_matches(':').to_string()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = group.split('}').next().unwrap_or_default();
                found.extend(group.split(',').map(|item| path(item.trim())));
            }
            None => found.push(path(rest)),
        }
    }
    let parent = |module: &str| {
        module
            .rsplit_once("::")
            .map_or("", |(parent, _)| parent)
            .to_string()
    };
    for (at, _) in code.match_indices("super::") {
        // `super::super::x` climbs once more; the match at the second `super` is a suffix.
        if code[..at].ends_with("super::") {
            continue;
        }
        let mut base = parent(module);
        let mut named = path(&code[at + "super::".len()..]);
        while let Some(rest) = named.strip_prefix("super::") {
            base = parent(&base);
            named = rest.to_string();
        }
        found.push([base, named].join("::").trim_matches(':').to_string());
    }
    found.retain(|path| !path.is_empty());
    found
}

#[test]
fn no_file_imports_a_floor_above_its_own() {
    let root = src_dir();
    let mut wrong = Vec::new();
    for path in src_files("rs") {
        let relative = path.strip_prefix(&root).unwrap().with_extension("");
        let module = relative.to_string_lossy().replace('/', "::");
        let module = module.trim_end_matches("::mod").to_string();
        let own = floor(&module);
        let code = std::fs::read_to_string(&path).unwrap();
        for import in imports(&module, &code) {
            let theirs = floor(&import);
            let leaf = module.starts_with("cli") && theirs != 0 && theirs != own;
            if theirs > own || leaf {
                wrong.push(format!(
                    "{module} (floor {own}) imports {import} (floor {theirs})"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The check itself: a lock that reads the run's command line, and a parser that builds keys,
/// are what it exists to catch.
#[test]
fn the_floors_catch_an_import_from_above() {
    assert!(floor("lock::acquire") < floor("run::wait"));
    assert!(floor("lock::transport::conn") < floor("lock::keys"));
    let code = "use crate::cli::RunArgs;\nuse crate::{exit, lock::keys::Keys};\nuse super::Lock;";
    let found = imports("lock::transport::conn", code);
    assert_eq!(found, ["cli", "exit", "lock::keys", "lock::transport"]);
    // A `mod.rs` is its folder's module: its `super` is the folder above; so is a second one's.
    assert_eq!(
        imports("lock::transport", "use super::keys::Keys;"),
        ["lock::keys"]
    );
    let climbed = imports("lock::transport::conn", "use super::super::keys::Keys;");
    assert_eq!(climbed, ["lock::keys"]);
    assert!(floor(&climbed[0]) > floor("lock::transport::conn"));
    assert_eq!(
        imports("run::wait", "use super::supervise::Stop;"),
        ["run::supervise"]
    );
    assert!(floor("cli::run") > floor("lock"));
}
