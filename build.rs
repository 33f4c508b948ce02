//! Prepares the lock's Lua scripts at build time: each script is put together from its files
//! in `src/lock/scripts/` (the functions it shares with others first), its comment lines left
//! out (they are for people), and hashed (SHA1, the name `EVALSHA` runs it by). Done on each
//! run, this took about 5% of a `redlock run -- true` (BENCHMARKS.md, issue 26: the stripping,
//! and SHA1 over 10 kB, on every run). `src/lock/scripts.rs` includes the result.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

/// Each script, and the files it is made of, in order.
const SCRIPTS: [(&str, &[&str]); 10] = [
    (
        "ACQUIRE",
        &["lock_type", "notify", "history", "readers", "acquire"],
    ),
    ("EXTEND", &["readers", "extend"]),
    ("RELEASE", &["notify", "history", "readers", "release"]),
    ("FENCE", &["fence"]),
    ("LEAVE", &["history", "leave"]),
    ("VIEW", &["lock_type", "readers", "view_fn", "view"]),
    ("VIEWS", &["lock_type", "readers", "view_fn", "views"]),
    ("BREAK", &["notify", "readers", "break"]),
    ("ASK", &["notify", "readers", "ask"]),
    ("LIMIT", &["limit"]),
];

fn main() {
    let dir = Path::new("src/lock/scripts");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut out = String::new();
    for (name, files) in SCRIPTS {
        let mut source = String::new();
        for file in files {
            let path = dir.join(format!("{file}.lua"));
            println!("cargo::rerun-if-changed={}", path.display());
            source += &fs::read_to_string(&path).expect("a script's file");
        }
        let code = source
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let hash = sha1_smol::Sha1::from(&code).digest().to_string();
        writeln!(
            out,
            "static {name}: Script = Script::prepared({code:?}, {hash:?});"
        )
        .unwrap();
    }
    let target = Path::new(&env::var("OUT_DIR").unwrap()).join("scripts.rs");
    fs::write(target, out).unwrap();
}
