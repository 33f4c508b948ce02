//! The documents say what the program does. `--help` and the man pages render their exit-status
//! tables from src/exit.rs, so the README's copy must match them word for word; and CI must run
//! the tests exactly as the README tells a reader to.

use std::path::Path;
use std::process::Command;

use crate::support::{src_dir, src_files, succeeded};

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Whitespace collapsed: help and man pages wrap lines where they like.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rows of the README table under the line `heading` (in "Exit status"), each as
/// `status meaning`, without the backquotes that help and man pages do not show.
fn readme_table(readme: &str, heading: &str) -> String {
    let section = &readme[readme
        .find("\n## Exit status\n")
        .expect("an Exit status section")..];
    let table = &section[section
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading:?} in the README's Exit status"))..];
    let rows: Vec<String> = table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 2, "a row of two cells: {row}");
            format!("{} {}", cells[0].trim(), cells[1].trim()).replace('`', "")
        })
        .collect();
    assert!(!rows.is_empty(), "no rows under {heading:?}");
    words(&rows.join(" "))
}

/// The block of `redlock ARGS --help` under the line `title`, up to the next blank line.
fn help_block(args: &[&str], title: &str) -> String {
    let stdout = succeeded(
        Command::new(env!("CARGO_BIN_EXE_redlock"))
            .args(args)
            .arg("--help"),
    );
    let help = String::from_utf8(stdout).unwrap();
    let start = help
        .find(&format!("\n{title}\n"))
        .unwrap_or_else(|| panic!("no {title:?} in redlock {args:?} --help:\n{help}"));
    let block = &help[start + title.len() + 2..];
    words(&block[..block.find("\n\n").unwrap_or(block.len())])
}

/// The text of the subsection `title` of a committed man page, without its roff requests
/// and escapes.
fn man_block(page: &str, title: &str) -> String {
    let roff = read(&format!("man/{page}"));
    let start = roff
        .find(&format!(".SS \"{title}\"\n"))
        .unwrap_or_else(|| panic!("no subsection {title:?} in man/{page}"));
    let lines = roff[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with(".SS") && !line.starts_with(".SH"))
        .filter(|line| !line.starts_with('.'))
        .map(|line| {
            line.replace("\\-", "-")
                .replace("\\fB", "")
                .replace("\\fR", "")
        })
        .collect::<Vec<_>>();
    words(&lines.join(" "))
}

#[test]
fn exit_statuses_agree_in_readme_help_and_man_pages() {
    // Left: what the binary or a man page shows; right: the README. Both should be exit.rs's.
    let readme = read("README.md");
    let run = readme_table(&readme, "`redlock run`:");
    let operators = readme_table(
        &readme,
        "`redlock status`, `list`, `release`, `history`, `acquire` and `extend`:",
    );

    assert_eq!(
        help_block(&["run"], "Exit status:"),
        run,
        "redlock run --help"
    );
    assert_eq!(
        help_block(&[], "Exit status of redlock run:"),
        run,
        "redlock --help"
    );
    assert_eq!(
        help_block(
            &[],
            "Exit status of redlock status, list, release, history, acquire and extend:"
        ),
        operators,
        "redlock --help"
    );
    for sub in ["status", "list", "release", "acquire", "extend"] {
        assert_eq!(
            help_block(&[sub], "Exit status:"),
            operators,
            "redlock {sub} --help"
        );
    }

    assert_eq!(man_block("redlock.1", "redlock run"), run, "redlock.1");
    assert_eq!(
        man_block("redlock-run.1", "redlock run"),
        run,
        "redlock-run.1"
    );
    for page in [
        "redlock.1",
        "redlock-status.1",
        "redlock-list.1",
        "redlock-release.1",
        "redlock-history.1",
        "redlock-acquire.1",
        "redlock-extend.1",
    ] {
        assert_eq!(
            man_block(
                page,
                "redlock status, list, release, history, acquire, extend"
            ),
            operators,
            "{page}"
        );
    }
}

#[test]
fn ci_runs_the_tests_the_readme_gives() {
    let readme = read("README.md");
    let commands: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("cargo test"))
        .collect();
    assert_eq!(
        commands.len(),
        1,
        "one test command in the README: {commands:?}"
    );
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|line| line.trim() == commands[0]),
        ".ci/run does not run the README's `{}`",
        commands[0]
    );
}

/// CONTRIBUTING's layout is the map a new contributor reads: every source file is named in the
/// paragraph of its folder (`src/lock/transport/` has one of its own; the top level's files are
/// named with their path).
#[test]
fn the_layout_names_every_source_file() {
    let contributing = read("CONTRIBUTING.md");
    let layout = &contributing[contributing
        .find("\n## Layout\n")
        .expect("a Layout section")..];
    let paragraphs: Vec<String> = layout
        .split("\n- ")
        .skip(1)
        .map(|paragraph| words(paragraph.split("\n## ").next().unwrap_or_default()))
        .collect();
    let root = src_dir();
    let mut missing = Vec::new();
    for path in src_files("rs") {
        let relative = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let (named, folder) = match relative.rsplit_once('/') {
            Some((folder, file)) => (format!("`{file}`"), format!("`src/{folder}/`")),
            // The top level's paragraph begins with main.rs.
            None => (format!("`src/{relative}`"), "`src/main.rs`".to_string()),
        };
        let paragraph = paragraphs.iter().find(|p| p.starts_with(&folder));
        if !paragraph.is_some_and(|p| p.contains(&named)) {
            missing.push(format!("src/{relative}"));
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "CONTRIBUTING.md's layout does not name: {}",
        missing.join(", ")
    );
}
