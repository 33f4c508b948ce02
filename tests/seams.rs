//! Where the newer features meet the old paths: a `--key` and a semaphore's place hear what a
//! plain lock hears, and `--replace` hands the lock to the run that asked, past the queue.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::sys::signal::{Signal, kill};

use redlock_cli::Keys;

use crate::support::{Holder, RedisServer, code, keys, redlock, succeeded, wait_until};

/// Every command the server runs, as MONITOR reports it (a script's own calls included, from
/// the client `lua`), each as its words.
struct Monitor {
    lines: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Monitor {
    fn start(server: &RedisServer) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let into = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                into.lock().unwrap().push(words(&line));
            }
        });
        Monitor { lines }
    }

    /// Waits until the server's MONITOR has sent every command run so far: the lines arrive
    /// on another thread, in the order the server ran them.
    fn caught_up(&self, server: &RedisServer) {
        let marker = format!("caught up {}", std::process::id());
        server.cmd::<String>(&["ECHO", &marker]);
        wait_until("MONITOR reports the marker", || {
            let lines = self.lines.lock().unwrap();
            lines
                .iter()
                .any(|w| w.len() == 2 && w[0] == "ECHO" && w[1] == marker)
        });
    }

    /// The channels a script published on, with what it said.
    fn published(&self) -> Vec<(String, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.len() == 3 && matches!(w[0].as_str(), "SPUBLISH" | "PUBLISH"))
            .map(|w| (w[1].clone(), w[2].clone()))
            .collect()
    }

    /// The channels any client subscribed to.
    fn subscribed(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|w| matches!(w[0].as_str(), "SSUBSCRIBE" | "SUBSCRIBE"))
            .flat_map(|w| w[1..].to_vec())
            .collect()
    }
}

/// The quoted words of a MONITOR line (`+TIME [DB CLIENT] "CMD" "ARG" ...`), the command
/// upper-cased.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => word.extend(chars.next()),
                '"' => break,
                c => word.push(c),
            }
        }
        words.push(word);
    }
    if let Some(command) = words.first_mut() {
        *command = command.to_ascii_uppercase();
    }
    words
}

/// A lock as a test names it: its flags, the key that holds its place, and the waiters' queue.
struct Under {
    flags: &'static [&'static str],
    /// `release --force`'s flags for the place.
    release: &'static [&'static str],
    /// The place's keys, as redlock names them.
    keys: Keys,
}

impl Under {
    /// Its flags, then `more`.
    fn and<'a>(&self, more: &[&'a str]) -> Vec<&'a str> {
        [self.flags, more].concat()
    }
}

/// A holder of `under` started in the background: its command runs once it has the lock.
fn queued(server: &RedisServer, under: &Under, ahead: usize) -> JoinHandle<Holder> {
    let url = server.url();
    let args: Vec<String> = under
        .and(&["--wait", "60s"])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let holder = std::thread::spawn(move || {
        Holder::start(&url, &args.iter().map(String::as_str).collect::<Vec<_>>())
    });
    wait_until("the waiter joins the queue", || {
        server.cmd::<usize>(&["ZCARD", &under.keys.waiters]) == ahead + 1
    });
    holder
}

fn listening(server: &RedisServer, channel: &str) -> usize {
    let mut connection = server.connection();
    crate::support::listeners(&mut connection, channel) as usize
}

/// Runs each script that publishes (acquire taking over, ask for `release --force` and
/// `--replace`, release, break) on the place `under`, and checks that every notice went to a
/// channel a listener subscribed to: a notice on another channel is heard by no one.
fn every_notice_reaches_its_listener(under: Under, replace: bool) {
    let server = RedisServer::start();
    let monitor = Monitor::start(&server);
    let url = server.url();
    // A semaphore's place 0 is held by another run all along: the place under test is 1.
    let _first = (under.flags.contains(&"--limit")).then(|| Holder::start(&url, under.flags));

    // ask ('stop'), the holder's extensions and release naming the waiter, the waiter's acquire.
    let mut holder = Holder::start(&url, &under.and(&["--ttl", "3s"]));
    let waiter = queued(&server, &under, 0);
    wait_until("the holder listens", || {
        listening(&server, &under.keys.control) == 1
    });
    let mut release = redlock(&url);
    release.args(["release", "--force"]).args(under.release);
    succeeded(&mut release);
    assert_eq!(holder.wait().0.code(), Some(code::LOCK_LOST));
    let mut holder = waiter.join().unwrap();

    // ask ('replace'), and the replacing run's acquire.
    if replace {
        wait_until("the holder listens", || {
            listening(&server, &under.keys.control) == 1
        });
        let mut replacing = redlock(&url);
        replacing
            .arg("run")
            .args(under.and(&["--replace", "--wait", "20s", "--", "true"]));
        succeeded(&mut replacing);
        assert_eq!(holder.wait().0.code(), Some(code::REPLACED));
    } else {
        holder.finish();
    }

    // acquire taking over from a live holder whose lock was deleted behind its back.
    let mut holder = Holder::start(&url, &under.and(&["--ttl", "60s"]));
    wait_until("the holder listens", || {
        listening(&server, &under.keys.control) == 1
    });
    server.cmd::<i64>(&["DEL", &under.keys.lock]);
    let mut taking = redlock(&url);
    taking.arg("run").args(under.and(&["--", "true"]));
    succeeded(&mut taking);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");

    // break: the holder's redlock is gone, its lock is left until its lease ends.
    let holder = Holder::start(&url, &under.and(&["--ttl", "60s"]));
    let waiter = queued(&server, &under, 0);
    kill(holder.redlock_pid(), Signal::SIGKILL).unwrap();
    wait_until("the holder no longer listens", || {
        listening(&server, &under.keys.control) == 0
    });
    succeeded(release.stderr(Stdio::null()));
    waiter.join().unwrap().finish();

    monitor.caught_up(&server);
    let subscribed = monitor.subscribed();
    let published = monitor.published();
    for (channel, notice) in &published {
        assert!(
            subscribed.contains(channel),
            "{notice:?} was published on {channel}, where nobody listens: {subscribed:?}"
        );
    }
    let said = |verb: &str| published.iter().any(|(_, n)| n.starts_with(verb));
    let mut verbs = vec!["taken ", "stop "];
    if replace {
        verbs.push("replace ");
    }
    for verb in verbs {
        assert!(said(verb), "no {verb:?} notice among {published:?}");
    }
    let was = |notice: &dyn Fn(&str) -> bool| published.iter().any(|(_, n)| notice(n));
    assert!(was(&|n| n == "broken"), "no break told: {published:?}");
    // The releases and the break each woke the waiter on its own channel (`Keys::wake`).
    let waiters = format!("{}:", under.keys.channel);
    let woken = (published.iter())
        .filter(|(channel, notice)| channel.starts_with(&waiters) && notice.is_empty())
        .count();
    assert!(woken >= 2, "no waiter woken: {published:?}");
}

#[test]
fn every_notice_of_a_name_reaches_its_listener() {
    every_notice_reaches_its_listener(
        Under {
            flags: &["-n", "sn"],
            release: &["-n", "sn"],
            keys: keys("sn"),
        },
        true,
    );
}

#[test]
fn every_notice_of_a_key_reaches_its_listener() {
    every_notice_reaches_its_listener(
        Under {
            flags: &["--key", "sk"],
            release: &["--key", "sk"],
            keys: Keys::for_key("sk"),
        },
        true,
    );
}

/// `--replace` is refused with `--limit` above 1: a place has no replace path.
#[test]
fn every_notice_of_a_semaphore_s_place_reaches_its_listener() {
    every_notice_reaches_its_listener(
        Under {
            flags: &["-n", "sl", "--limit", "2"],
            release: &["-n", "sl", "--slot", "1"],
            keys: keys("sl").slot(1),
        },
        false,
    );
}

/// `--replace` behind two queued waiters: the holder's release hands the lock to the
/// replacing run, and the waiters keep their turn after it; neither is started only to be
/// replaced (each run's marks in one log say who ran when).
#[test]
fn replace_takes_over_before_the_queue_and_replaces_no_waiter() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The holder runs until it is stopped; the others come and go.
    let run = |who: &str, more: &[&str]| {
        let mut command = redlock(&server.url());
        let work = if who == "holder" {
            "while :; do sleep 0.05; done"
        } else {
            "true"
        };
        command
            .args(["run", "-n", "rq", "--ttl", "60s"])
            .args(more)
            .args(["--", "sh", "-c"])
            .arg(format!(
                "echo 'start {who}' >> log; {work}; echo 'end {who}' >> log"
            ))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let holder = run("holder", &[]).spawn().unwrap();
    wait_until("the holder runs", || {
        log_of(dir.path()).contains("start holder")
    });
    let waiters: Vec<_> = (1..=2)
        .map(|n| {
            let waiter = run(&format!("w{n}"), &["--wait", "60s"]).spawn().unwrap();
            wait_until("the waiter joins the queue", || {
                server.cmd::<usize>(&["ZCARD", &keys("rq").waiters]) == n
            });
            waiter
        })
        .collect();
    let replacing = run(
        "new",
        &["--replace", "--wait", "20s", "-v", "--log-format", "json"],
    )
    .output()
    .unwrap();
    assert_eq!(replacing.status.code(), Some(0), "{}", text(&replacing));
    // It says which holder it asked (the fault campaign's checker reads it): the first run's.
    let asked: Vec<serde_json::Value> = text(&replacing)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "replacing")
        .collect();
    assert_eq!(asked.len(), 1, "{}", text(&replacing));
    assert_eq!(asked[0]["holder"]["fence"], 1, "{}", text(&replacing));
    let old = holder.wait_with_output().unwrap();
    assert_eq!(old.status.code(), Some(code::REPLACED), "{}", text(&old));
    for waiter in waiters {
        let waited = waiter.wait_with_output().unwrap();
        assert_eq!(waited.status.code(), Some(0), "{}", text(&waited));
    }
    let starts: Vec<String> = log_of(dir.path())
        .lines()
        .filter_map(|l| l.strip_prefix("start ").map(str::to_string))
        .collect();
    // The waiters keep their turn after it (their order among themselves is the queue's, but
    // the second may go first when the first takes longer than 20 ms to try).
    assert_eq!(starts[..2], ["holder", "new"], "{}", log_of(dir.path()));
    let mut after: Vec<&str> = starts[2..].iter().map(String::as_str).collect();
    after.sort();
    assert_eq!(after, ["w1", "w2"], "{}", log_of(dir.path()));
}

fn log_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `command` with its stdout a pipe whose reader is already gone (`redlock list | head -1`
/// once `head` has its line): its status and stderr.
fn with_reader_gone(command: &mut std::process::Command) -> (Option<i32>, String) {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let output = command
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (output.status.code(), text(&output))
}

/// A reader that stops reading is no error: each command that prints ends quietly with the
/// status it would have had (docs/design.md), never 70 ("internal error: failed printing to
/// stdout: Broken pipe").
#[test]
fn a_reader_that_stops_reading_ends_the_output_quietly() {
    let server = RedisServer::start();
    let url = server.url();
    succeeded(redlock(&url).args(["run", "-n", "held", "--", "true"]));
    let _holder = Holder::start(&url, &["-n", "held"]);
    let cases: [(&[&str], i32); 13] = [
        (&["list"], 0),
        (&["list", "--json"], 0),
        (&["status", "-n", "held"], 0),
        (&["status", "-n", "held", "--json"], 0),
        (&["status", "-n", "free"], 1),
        (&["status", "-n", "free", "--json"], 1),
        (&["history", "--name", "held"], 0),
        (&["history", "--name", "held", "--json"], 0),
        (&["--help"], 0),
        (&["run", "--help"], 0),
        (&["--version"], 0),
        (&["--generate", "man"], 0),
        (&["--generate", "bash"], 0),
    ];
    for (args, expected) in cases {
        let (status, stderr) = with_reader_gone(redlock(&url).args(args));
        assert_eq!((status, stderr.as_str()), (Some(expected), ""), "{args:?}");
    }
}

/// A usage error names the subcommand's help, for every subcommand `redlock --help` lists.
#[test]
fn a_usage_error_points_to_its_subcommand_s_help() {
    let help = String::from_utf8(succeeded(redlock("redis://127.0.0.1:1").arg("--help"))).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .map_while(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() >= 5, "{help}");
    for name in commands {
        for args in [
            vec![name, "--bad"],
            vec!["--log-format", "text", name, "--bad"],
        ] {
            let output = redlock("redis://127.0.0.1:1").args(&args).output().unwrap();
            assert_eq!(output.status.code(), Some(code::USAGE), "{args:?}");
            assert_eq!(
                text(&output),
                format!(
                    "redlock: unexpected argument '--bad' found (see 'redlock {name} --help')\n"
                ),
                "{args:?}"
            );
        }
    }
}

/// A write that fails otherwise is an error said in one line: 70, not a panic.
#[test]
fn a_full_disk_behind_stdout_is_an_error() {
    let server = RedisServer::start();
    let _holder = Holder::start(&server.url(), &["-n", "held"]);
    for args in [
        &["list"][..],
        &["--generate", "man"],
        &["--help"],
        &["--version"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let output = redlock(&server.url())
            .args(args)
            .stdout(Stdio::from(full))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code::INTERNAL), "{args:?}");
        assert_eq!(
            text(&output),
            "redlock: cannot write to stdout: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}
