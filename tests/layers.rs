//! The floors of src/, as CONTRIBUTING's layout names them: a file imports its own floor and
//! those below it, never one above (a floor that knows its caller cannot be changed without
//! it); and `cli/` is a leaf, parsing and nothing more: it imports only the foundations.

use std::path::{Path, PathBuf};

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

fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The `crate::a::b` paths a file's code (not its unit tests) names.
fn imports(code: &str) -> Vec<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let path: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':');
        if !path.is_empty() {
            found.push(path.to_string());
        }
    }
    found
}

#[test]
fn no_file_imports_a_floor_above_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    files(&root, &mut sources);
    let mut wrong = Vec::new();
    for path in sources {
        let relative = path.strip_prefix(&root).unwrap().with_extension("");
        let module = relative.to_string_lossy().replace('/', "::");
        let module = module.trim_end_matches("::mod").to_string();
        let own = floor(&module);
        let code = std::fs::read_to_string(&path).unwrap();
        for import in imports(&code) {
            let theirs = floor(&import);
            let leaf = module.starts_with("cli") && theirs != 0 && theirs != own;
            if theirs > own || leaf || code.contains("super::super::") {
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
    let code = "use crate::cli::RunArgs;\nfn f() { crate::lock::keys::Keys::new() }";
    assert_eq!(imports(code), ["cli", "lock::keys"]);
    assert!(floor("cli::run") > floor("lock"));
}
