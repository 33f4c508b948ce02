//! `--metrics-dir`: after every outcome, a file that a strict reader of the text format (and
//! promtool, where installed) takes; counters that count across runs; one file per name; a DIR
//! that cannot be written is only a warning; and a file that appears whole or not at all.

mod exposition;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{Holder, RedisServer, code, keys, redlock};
use exposition::{Exposition, parse};

const OUTCOMES: [&str; 6] = ["ran", "busy", "unavailable", "lost", "timeout", "replaced"];

/// `redlock run --metrics-dir DIR ARGS` against `url`.
fn run(url: &str, dir: &Path, args: &[&str]) -> Output {
    redlock(url)
        .arg("run")
        .arg("--metrics-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn code(output: &Output) -> Option<i32> {
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output.status.code()
}

/// The metrics file at `path`, which must parse, and pass `promtool check metrics` (lint
/// included) where promtool is installed.
fn read(path: &Path) -> Exposition {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if let Some(said) = promtool(&text) {
        panic!(
            "promtool check metrics refused {}: {said}\n{text}",
            path.display()
        );
    }
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// What `promtool check metrics` says against `text`, when it finds fault; `None` when it does
/// not, or is not installed.
fn promtool(text: &str) -> Option<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    (!output.status.success() || !said.trim().is_empty()).then(|| said.into_owned())
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("redlock_{name}.prom"))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The file says the last run of `name` had `outcome` and exit status `status`, and declares
/// every outcome in both families that have one.
fn assert_last(metrics: &Exposition, name: &str, outcome: &str, status: u8) {
    for other in OUTCOMES {
        let labels = [("name", name), ("outcome", other)];
        let expected = f64::from(u8::from(other == outcome));
        assert_eq!(
            metrics.value("redlock_last_outcome", &labels),
            Some(expected),
            "{other}: {metrics:?}"
        );
        assert!(metrics.value("redlock_runs_total", &labels).is_some());
    }
    let status = f64::from(status);
    assert_eq!(
        metrics.value("redlock_last_exit_status", &[("name", name)]),
        Some(status)
    );
    let mut families: Vec<&str> = metrics.types.keys().map(String::as_str).collect();
    families.sort();
    let fence = metrics.types.contains_key("redlock_last_fence");
    let expected = [
        "redlock_last_duration_seconds",
        "redlock_last_end_time_seconds",
        "redlock_last_exit_status",
        "redlock_last_fence",
        "redlock_last_outcome",
        "redlock_last_start_time_seconds",
        "redlock_last_wait_seconds",
        "redlock_runs_total",
    ];
    let expected: Vec<&str> = (expected.into_iter())
        .filter(|family| fence || *family != "redlock_last_fence")
        .collect();
    assert_eq!(families, expected);
}

fn runs(metrics: &Exposition, name: &str, outcome: &str) -> f64 {
    let labels = [("name", name), ("outcome", outcome)];
    metrics.value("redlock_runs_total", &labels).unwrap()
}

fn gauge(metrics: &Exposition, metric: &str, name: &str) -> f64 {
    metrics
        .value(metric, &[("name", name)])
        .unwrap_or_else(|| panic!("no {metric}: {metrics:?}"))
}

#[test]
fn runs_record_their_times_status_fence_and_count() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let before = now();
    assert_eq!(
        code(&run(
            &server.url(),
            dir.path(),
            &["-n", "job", "--", "true"]
        )),
        Some(0)
    );
    let first = read(&file(dir.path(), "job"));
    assert_last(&first, "job", "ran", 0);
    assert_eq!(runs(&first, "job", "ran"), 1.0);

    let args = ["-n", "job", "--", "sh", "-c", "exit 3"];
    assert_eq!(code(&run(&server.url(), dir.path(), &args)), Some(3));
    let after = now();
    let second = read(&file(dir.path(), "job"));
    assert_last(&second, "job", "ran", 3);
    assert_eq!(runs(&second, "job", "ran"), 2.0);
    assert_eq!(runs(&second, "job", "busy"), 0.0);
    let fence = |m: &Exposition| gauge(m, "redlock_last_fence", "job");
    assert!(fence(&second) > fence(&first), "{first:?} {second:?}");
    let start = gauge(&second, "redlock_last_start_time_seconds", "job");
    let end = gauge(&second, "redlock_last_end_time_seconds", "job");
    let duration = gauge(&second, "redlock_last_duration_seconds", "job");
    // Rounded to the millisecond: a millisecond's slack.
    assert!(before - 0.001 <= start && start <= end && end <= after + 0.001);
    assert!((end - start - duration).abs() <= 0.002, "{second:?}");
    assert!(gauge(&second, "redlock_last_wait_seconds", "job") >= 0.0);
    assert_eq!(second.types["redlock_runs_total"], "counter");
    assert_eq!(second.types["redlock_last_start_time_seconds"], "gauge");
}

#[test]
fn a_busy_run_is_counted_without_a_fence() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::start(&server.url(), &["-n", "b"]);
    assert_eq!(
        code(&run(&server.url(), dir.path(), &["-n", "b", "--", "true"])),
        Some(code::BUSY)
    );
    let busy = read(&file(dir.path(), "b"));
    assert_last(&busy, "b", "busy", 75);
    assert!(busy.series("redlock_last_fence").is_empty(), "{busy:?}");
    assert_eq!(gauge(&busy, "redlock_last_duration_seconds", "b"), 0.0);
    assert!(holder.finish().0.success());

    assert_eq!(
        code(&run(&server.url(), dir.path(), &["-n", "b", "--", "true"])),
        Some(0)
    );
    let ran = read(&file(dir.path(), "b"));
    assert_last(&ran, "b", "ran", 0);
    assert_eq!(
        (runs(&ran, "b", "busy"), runs(&ran, "b", "ran")),
        (1.0, 1.0)
    );
    assert_eq!(ran.series("redlock_last_fence").len(), 1);
}

/// Also with `--on-unavailable run`, where the file is written before the command takes
/// redlock's place: the command itself reads it.
#[test]
fn unavailable_runs_are_recorded_before_a_command_runs_without_the_lock() {
    let nowhere = "redis://127.0.0.1:1";
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        code(&run(nowhere, dir.path(), &["-n", "u", "--", "true"])),
        Some(code::UNAVAILABLE)
    );
    let first = read(&file(dir.path(), "u"));
    assert_last(&first, "u", "unavailable", 69);
    assert!(first.series("redlock_last_fence").is_empty());

    let path = file(dir.path(), "u");
    let path = path.to_str().unwrap();
    let args = ["-n", "u", "--on-unavailable", "run", "--", "cat", path];
    let output = run(nowhere, dir.path(), &args);
    assert_eq!(code(&output), Some(0));
    let seen = parse(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert_eq!(runs(&seen, "u", "unavailable"), 2.0);
    assert_last(&read(Path::new(path)), "u", "unavailable", 69);
}

#[test]
fn a_lost_lock_is_recorded() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let metrics_dir = dir.path().to_str().unwrap();
    let args = ["-n", "gone", "--ttl", "2s", "--metrics-dir", metrics_dir];
    let mut holder = Holder::start(&server.url(), &args);
    let _: () = server.cmd(&["DEL", &keys("gone").lock]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    let lost = read(&file(dir.path(), "gone"));
    assert_last(&lost, "gone", "lost", 76);
    assert_eq!(runs(&lost, "gone", "lost"), 1.0);
    assert_eq!(lost.series("redlock_last_fence").len(), 1);
}

#[test]
fn a_timeout_is_recorded() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let args = ["-n", "slow", "--timeout", "1s", "--", "sleep", "30"];
    assert_eq!(
        code(&run(&server.url(), dir.path(), &args)),
        Some(code::TIMED_OUT)
    );
    let timeout = read(&file(dir.path(), "slow"));
    assert_last(&timeout, "slow", "timeout", 124);
    // The command's time, cut short by --timeout: not the sleep's 30 s.
    let ran = gauge(&timeout, "redlock_last_duration_seconds", "slow");
    assert!((1.0..20.0).contains(&ran), "{timeout:?}");
}

#[test]
fn a_replaced_run_is_recorded() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let metrics_dir = dir.path().to_str().unwrap();
    let mut holder = Holder::start(&server.url(), &["-n", "r", "--metrics-dir", metrics_dir]);
    let args = ["-n", "r", "--replace", "--", "true"];
    assert_eq!(code(&run(&server.url(), dir.path(), &args)), Some(0));
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::REPLACED), "{stderr}");
    // Which of the two wrote last is a race; both are counted.
    let both = read(&file(dir.path(), "r"));
    assert_eq!(
        (runs(&both, "r", "replaced"), runs(&both, "r", "ran")),
        (1.0, 1.0)
    );
}

#[test]
fn names_that_sanitise_alike_get_files_of_their_own() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let names = [
        r#"db-backup "nightly"\x"#,
        r#"db.backup "nightly"\x"#,
        "db_backup",
    ];
    for name in names {
        assert_eq!(
            code(&run(&server.url(), dir.path(), &["-n", name, "--", "true"])),
            Some(0)
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[0], "redlock_db_backup.prom");
    let mut labels = Vec::new();
    for changed in &files[1..] {
        assert!(
            changed.starts_with("redlock_db_backup__nightly__x_"),
            "{files:?}"
        );
        assert!(changed.ends_with(".prom"), "{files:?}");
        let metrics = read(&dir.path().join(changed));
        let series = metrics.series("redlock_last_exit_status");
        let [(_, labels_of)] = series.as_slice() else {
            panic!("{metrics:?}")
        };
        // The real name, unescaped by the reader: the label is what tells them apart.
        let name = labels_of[0].1.clone();
        assert_last(&metrics, &name, "ran", 0);
        assert_eq!(runs(&metrics, &name, "ran"), 1.0);
        labels.push(name);
    }
    labels.sort();
    assert_eq!(labels, [names[0], names[1]]);
}

#[test]
fn an_unwritable_dir_is_a_warning_not_a_failure() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let under_a_file = dir.path().join("file").join("metrics");
    let expected = format!(
        "redlock: warning: cannot write metrics to {}: ",
        under_a_file.display()
    );
    for (command, status) in [("echo ran", 0), ("echo ran; exit 3", 3)] {
        let output = run(
            &server.url(),
            &under_a_file,
            &["-n", "w", "--", "sh", "-c", command],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{stderr}");
        assert_eq!(output.stdout, b"ran\n");
        assert!(stderr.starts_with(&expected), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// Runs of one name that end together (a semaphore) each count: the counter's
/// read-increment-rename is serialised.
#[test]
fn runs_ending_together_each_count() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let runs_at_once = 20;
    let children: Vec<_> = (0..runs_at_once)
        .map(|_| {
            redlock(&server.url())
                .args(["run", "-n", "sem", "--limit", "20", "--metrics-dir"])
                .arg(dir.path())
                .args(["--", "true"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_eq!(code(&child.wait_with_output().unwrap()), Some(0));
    }
    let metrics = read(&file(dir.path(), "sem"));
    assert_eq!(runs(&metrics, "sem", "ran"), f64::from(runs_at_once));
}

/// A reader polling the file while 200 runs rewrite it never finds it partial or unparsable,
/// and never sees the counter go back: the file is renamed into place whole.
#[test]
fn a_reader_never_sees_a_partial_file() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "often");
    let done = AtomicBool::new(false);
    let total = 200;
    let seen = std::thread::scope(|scope| {
        // The loop only reads, to poll as often as it can: each new text is checked after.
        let reader = scope.spawn(|| {
            let mut seen: Vec<String> = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match std::fs::read_to_string(&path) {
                    Ok(text) if seen.last() != Some(&text) => seen.push(text),
                    Ok(_) => {}
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
                }
            }
            seen
        });
        for _ in 0..total {
            let output = run(&server.url(), dir.path(), &["-n", "often", "--", "true"]);
            assert_eq!(code(&output), Some(0));
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(!seen.is_empty(), "the reader never found the file");
    let mut last = 0.0;
    for (i, text) in seen.iter().enumerate() {
        let metrics = parse(text).unwrap_or_else(|e| panic!("text {i}: {e}\n{text}"));
        // All of it: a file cut at the end of a line would parse.
        assert_last(&metrics, "often", "ran", 0);
        let count = runs(&metrics, "often", "ran");
        assert!(count > last, "the counter went from {last} to {count}");
        last = count;
    }
    assert_eq!(runs(&read(&path), "often", "ran"), f64::from(total));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "temporary files left behind: {left:?}");
}

/// The reader above is strict where a half-written or badly escaped file would differ.
#[test]
fn the_reader_refuses_what_the_format_forbids() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{name=\"x\\\"\\\\\\n\"} 1\n";
    let parsed = parse(good).unwrap();
    assert_eq!(parsed.value("a_total", &[("name", "x\"\\\n")]), Some(1.0));
    let help = "# HELP g G.\n# TYPE g gauge\n";
    for bad in [
        "",
        &good[..good.len() - 1],               // no final line feed
        &format!("{help}g{{a=\"b}} 1\n"),      // an unclosed label value
        "# TYPE a_total counter\na_total 1\n", // no HELP
        "# HELP g G.\ng 1\n",                  // no TYPE
        &format!("{help}g{{a=\"\\x\"}} 1\n"),  // bad escape
        &format!("{help}g{{a=\"b\"}} 1\ng{{a=\"b\"}} 2\n"), // duplicate series
        &format!("{help}g{{a=\"b\",a=\"c\"}} 1\n"), // repeated label
        &format!("{help}g{{a=\"b\"c=\"d\"}} 1\n"), // no comma
        &format!("{help}g 1 1700000000000\n"), // a timestamp
        &format!("{help}g inf\n"),             // Prometheus spells it +Inf
        &format!("{help}g 1x\n"),
        &format!("{help}h 1\n"),                // undeclared
        "# HELP c C.\n# TYPE c counter\nc 1\n", // a counter not named _total
        &format!("{help}# HELP h H.\n# TYPE h gauge\nh 1\ng 1\n"), // g in two groups
        &format!("{help}1g 1\n"),
    ] {
        assert!(parse(bad).is_err(), "took {bad:?}");
    }
}
