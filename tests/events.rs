//! `--log-format json` and the journal's priority prefixes (docs/events.md): every line redlock
//! writes to stderr is one JSON object with `event` and `name`, for every outcome; `<N>`
//! prefixes only when `JOURNAL_STREAM` names stderr.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{Holder, RedisServer, code, keys, redlock, wait_for_holder, wait_until};

/// Each line of `stderr` as an object with `event`, `level`, `name` (`name` as given) and
/// `message`; panics on any line that is not.
fn events(stderr: &str, name: Option<&str>) -> Vec<Value> {
    assert!(!stderr.is_empty(), "nothing on stderr");
    stderr
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nin:\n{stderr}"));
            assert!(event["event"].is_string(), "no event: {line}");
            assert!(event["level"].is_string(), "no level: {line}");
            assert!(event["message"].is_string(), "no message: {line}");
            assert_eq!(event["name"].as_str(), name, "{line}");
            event
        })
        .collect()
}

/// The events' names, in order.
fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `command` with its stderr in the file `path`, started; as a file, it can be read while
/// redlock runs.
fn spawn_to_file(command: &mut Command, path: &Path) -> std::process::Child {
    command.stderr(File::create(path).unwrap()).spawn().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A run with -v and a 1 s lease whose command waits for a file: `acquired` with its fence,
/// `extended` (the test waits for one before it lets the command end), `released`.
#[test]
fn a_verbose_run_says_acquired_extended_released() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let mut run = spawn_to_file(
        redlock(&server.url())
            .args([
                "run",
                "-n",
                "job",
                "-v",
                "--ttl",
                "1s",
                "--log-format",
                "json",
            ])
            .args(["--", "sh", "-c", "while [ ! -e go ]; do sleep 0.01; done"])
            .current_dir(dir.path()),
        &stderr,
    );
    wait_until("the lease is extended", || {
        read(&stderr).contains("\"event\":\"extended\"")
    });
    File::create(dir.path().join("go")).unwrap();
    assert!(run.wait().unwrap().success());
    let events = events(&read(&stderr), Some("job"));
    let names = names(&events);
    assert_eq!(names.first(), Some(&"acquired"), "{names:?}");
    assert_eq!(names.last(), Some(&"released"), "{names:?}");
    assert!(names[1..names.len() - 1].iter().all(|n| *n == "extended"));
    assert_eq!(events[0]["fence"], 1);
    assert!(events[0]["took_ms"].is_u64());
    assert_eq!(events[0]["level"], "info");
    assert!(events[1]["took_ms"].is_u64());
    assert_eq!(events[1]["level"], "debug");
    assert_eq!(events.last().unwrap()["ours"], true);
}

/// A waiter with -v says whom it waits for, then takes the lock when the holder lets go.
#[test]
fn a_waiter_says_whom_it_waits_for() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "queue"]);
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let mut waiter = spawn_to_file(
        redlock(&server.url())
            .env("REDLOCK_LOG_FORMAT", "json")
            .args(["run", "-n", "queue", "-v", "--wait", "1m", "--", "true"]),
        &stderr,
    );
    wait_until("the waiter says it waits", || {
        read(&stderr).contains("\"event\":\"waiting\"")
    });
    assert!(holder.finish().0.success());
    assert!(waiter.wait().unwrap().success());
    let events = events(&read(&stderr), Some("queue"));
    assert_eq!(names(&events), ["waiting", "acquired", "released"]);
    assert_eq!(events[0]["wait_ms"], 60_000);
    assert_eq!(events[0]["holder"]["pid"], holder.redlock_pid().as_raw());
    assert!(events[0]["holder"]["ttl_ms"].is_i64());
}

/// Busy, with the option and with the variable: one `busy` object naming the holder (without
/// its token), the exit status, and how long it waited when it did.
#[test]
fn busy_is_one_object_naming_the_holder() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "backup"]);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let by_option = redlock(&server.url())
        .args(["run", "--log-format", "json", "-n", "backup", "--", "true"])
        .output()
        .unwrap();
    let by_variable = redlock(&server.url())
        .env("REDLOCK_LOG_FORMAT", "json")
        .args(["run", "-n", "backup", "-w", "100ms", "--", "true"])
        .output()
        .unwrap();
    for output in [&by_option, &by_variable] {
        assert_eq!(output.status.code(), Some(code::BUSY));
        let events = events(&stderr_of(output), Some("backup"));
        assert_eq!(names(&events), ["busy"]);
        let busy = &events[0];
        assert_eq!(busy["level"], "warning");
        assert_eq!(busy["exit_code"], 75);
        assert_eq!(busy["holder"]["host"], host.as_str());
        assert_eq!(busy["holder"]["pid"], holder.redlock_pid().as_raw());
        assert!(
            busy["holder"]["command"]
                .as_str()
                .unwrap()
                .starts_with("sh -c")
        );
        assert!(busy["holder"]["ttl_ms"].as_i64().unwrap() > 0);
        assert!(busy["holder"].get("token").is_none(), "{busy}");
        assert!(busy["message"].as_str().unwrap().contains("is held by"));
    }
    let waited = &events(&stderr_of(&by_variable), Some("backup"))[0];
    assert_eq!(waited["waited_ms"], 100);
    assert!(holder.finish().0.success());
}

#[test]
fn unavailable_is_one_object() {
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nothing = format!("redis://127.0.0.1:{}", down.local_addr().unwrap().port());
    drop(down);
    let output = redlock(&nothing)
        .args(["--log-format", "json", "run", "-n", "u", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    let events = events(&stderr_of(&output), Some("u"));
    assert_eq!(names(&events), ["unavailable"]);
    assert_eq!(events[0]["level"], "err");
    assert_eq!(events[0]["exit_code"], 69);
}

/// A deleted key while the command runs: `lost`, then `exiting` with 76 and the command's own
/// status (SIGTERM's 143: `read` does not trap it).
#[test]
fn a_lost_lock_says_lost_then_exiting() {
    let server = RedisServer::start();
    let args = ["-n", "gone", "--ttl", "2s", "--log-format", "json"];
    let mut holder = Holder::start(&server.url(), &args);
    let _: () = server.cmd(&["DEL", &keys("gone").lock]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    let events = events(&stderr, Some("gone"));
    assert_eq!(names(&events), ["lost", "exiting"]);
    assert_eq!(events[0]["level"], "err");
    assert_eq!(events[1]["exit_code"], 76);
    assert_eq!(events[1]["reason"], "lost");
    assert_eq!(events[1]["status"], 143);
}

#[test]
fn a_timeout_says_stopping_then_exiting() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args(["run", "-n", "slow", "--timeout", "1s", "--log-format=json"])
        .args(["--", "sleep", "30"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::TIMED_OUT));
    let events = events(&stderr_of(&output), Some("slow"));
    assert_eq!(names(&events), ["stopping", "exiting"]);
    assert_eq!(events[0]["reason"], "timeout");
    assert_eq!(events[0]["timeout_ms"], 1000);
    assert_eq!(events[1]["exit_code"], 124);
    assert_eq!(events[1]["reason"], "timeout");
    assert_eq!(events[1]["status"], 143);
}

/// Usage errors are `error` objects without a name, however the format is asked for; a bad
/// format is said in text, as are the command's own arguments after `--`.
#[test]
fn usage_errors_are_error_objects() {
    let nowhere = "redis://127.0.0.1:1";
    // The arguments, REDLOCK_LOG_FORMAT, and the name (known once the command line parsed).
    let cases: [(&[&str], Option<&str>, Option<&str>); 4] = [
        (&["--log-format", "json", "run", "-n", "x"], None, None),
        (&["run", "--bogus", "--log-format=json"], None, None),
        (&[], Some("json"), None),
        // An unsafe combination, found after parsing.
        (
            &[
                "run",
                "-n",
                "x",
                "--ttl",
                "1s",
                "--kill-after",
                "2s",
                "--",
                "true",
            ],
            Some("json"),
            Some("x"),
        ),
    ];
    for (args, variable, name) in cases {
        let mut command = redlock(nowhere);
        if let Some(format) = variable {
            command.env("REDLOCK_LOG_FORMAT", format);
        }
        let output = command.args(args).output().unwrap();
        let events = events(&stderr_of(&output), name);
        assert_eq!(
            output.status.code(),
            Some(code::USAGE),
            "{args:?}: {events:?}"
        );
        assert_eq!(names(&events), ["error"], "{args:?}");
        assert_eq!(events[0]["kind"], "usage", "{args:?}");
        assert_eq!(events[0]["exit_code"], 64, "{args:?}");
    }
    for args in [
        &["--log-format", "yaml", "run", "-n", "x", "--", "true"][..],
        &["run", "-n", "x", "--bogus", "--", "--log-format=json"],
    ] {
        let output = redlock(nowhere).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(code::USAGE));
        assert!(stderr_of(&output).starts_with("redlock: "), "{args:?}");
    }
}

/// `release --force` of a live holder: `asking` and `holder_released` from the operator,
/// `stopping` (asked) and `exiting` (broken, 76) from the holder; then `nothing_to_break`.
#[test]
fn release_force_says_each_step() {
    let server = RedisServer::start();
    let args = ["-n", "stale", "--ttl", "3s", "--log-format", "json"];
    let mut holder = Holder::start(&server.url(), &args);
    wait_for_holder(&server, "stale");
    let release = || {
        redlock(&server.url())
            .args(["release", "-n", "stale", "--force", "--log-format", "json"])
            .output()
            .unwrap()
    };
    let output = release();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let said = events(&stderr_of(&output), Some("stale"));
    let said = names(&said);
    assert_eq!(said.last(), Some(&"holder_released"), "{said:?}");
    assert!(
        said.iter()
            .all(|n| ["asking", "holder_released"].contains(n))
    );

    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    let events_of_holder = events(&stderr, Some("stale"));
    assert_eq!(names(&events_of_holder), ["stopping", "exiting"]);
    assert_eq!(events_of_holder[0]["reason"], "asked");
    assert_eq!(events_of_holder[1]["reason"], "broken");

    let output = release();
    assert_eq!(output.status.code(), Some(1));
    let again = events(&stderr_of(&output), Some("stale"));
    assert_eq!(names(&again), ["nothing_to_break"]);
    assert_eq!(again[0]["reason"], "not_held");
}

/// `DEV:INODE` of a file, as systemd writes `JOURNAL_STREAM`.
fn stream_of(path: &Path) -> String {
    let metadata = std::fs::metadata(path).unwrap();
    format!("{}:{}", metadata.dev(), metadata.ino())
}

/// redlock with stderr to `path` and `JOURNAL_STREAM` as given: its stderr.
fn run_to_file(mut command: Command, path: &Path, stream: &str) -> String {
    let status = spawn_to_file(command.env("JOURNAL_STREAM", stream), path)
        .wait()
        .unwrap();
    assert!(status.code().is_some());
    read(path)
}

/// With `JOURNAL_STREAM` naming stderr, each line starts with its priority: `<6>` for -v's
/// info, `<4>` for busy, `<3>` for an error; in both formats. Another file's device and inode,
/// or nonsense, get no prefix.
#[test]
fn journal_prefixes_only_when_the_stream_is_stderr() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "held"]);
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    File::create(&stderr).unwrap();
    let other = dir.path().join("other");
    File::create(&other).unwrap();
    let url = server.url();
    let verbose = || {
        let mut command = redlock(&url);
        command.args(["run", "-n", "free", "-v", "--", "true"]);
        command
    };
    let busy = || {
        let mut command = redlock(&url);
        command.args(["run", "-n", "held", "--", "true"]);
        command
    };
    let busy_json = || {
        let mut command = redlock(&url);
        command.args(["--log-format=json", "run", "-n", "held", "--", "true"]);
        command
    };
    let usage = || {
        let mut command = redlock(&url);
        command.args(["run", "-n", "x"]);
        command
    };

    // spawn_to_file creates the file anew: same inode, truncated.
    let journal = stream_of(&stderr);
    let said = run_to_file(verbose(), &stderr, &journal);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].starts_with("<6>redlock: acquired 'free'"),
        "{said}"
    );
    assert!(
        lines[1].starts_with("<6>redlock: released 'free'"),
        "{said}"
    );
    let said = run_to_file(busy(), &stderr, &journal);
    assert!(
        said.starts_with("<4>redlock: lock 'held' is held by"),
        "{said}"
    );
    let said = run_to_file(usage(), &stderr, &journal);
    assert!(said.starts_with("<3>redlock: "), "{said}");
    let said = run_to_file(busy_json(), &stderr, &journal);
    let object = said.strip_prefix("<4>").unwrap_or_else(|| panic!("{said}"));
    assert_eq!(names(&events(object, Some("held"))), ["busy"]);

    for stream in [stream_of(&other), "garbage".to_string(), "1:x".to_string()] {
        for command in [verbose(), busy(), usage()] {
            let said = run_to_file(command, &stderr, &stream);
            assert!(
                said.lines().all(|line| line.starts_with("redlock: ")),
                "{stream}: {said}"
            );
        }
        let said = run_to_file(busy_json(), &stderr, &stream);
        assert_eq!(names(&events(&said, Some("held"))), ["busy"], "{stream}");
    }
    assert!(holder.finish().0.success());
}

/// The option wins over REDLOCK_LOG_FORMAT, even over a bad value there; a bad value with no
/// option is a usage error that names the variable.
#[test]
fn the_option_wins_over_a_bad_variable() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .env("REDLOCK_LOG_FORMAT", "xml")
        .args(["run", "--log-format", "json", "-n", "v", "-v", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let events = events(&stderr_of(&output), Some("v"));
    assert!(names(&events).contains(&"acquired"), "{events:?}");
    let output = redlock(&server.url())
        .env("REDLOCK_LOG_FORMAT", "xml")
        .args(["run", "-n", "v", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::USAGE));
    assert_eq!(
        stderr_of(&output),
        "redlock: invalid value 'xml' for REDLOCK_LOG_FORMAT: text or json\n"
    );
}
