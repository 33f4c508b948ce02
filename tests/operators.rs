//! The operators' commands: status, list, release; and the generated completions and man pages.

use std::process::Command;

use crate::support::{
    Holder, RedisServer, code, keys, redlock, script_calls, start_servers, succeeded, urls,
    wait_until,
};

fn host() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[test]
fn status_of_a_held_lock_in_text_and_json() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "backup"]);
    let pid = holder.redlock_pid().to_string();
    let output = redlock(&server.url())
        .args(["status", "-n", "backup"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(&format!("lock 'backup' is held by {} (pid {pid}, ", host())),
        "{text}"
    );
    assert!(
        text.contains("  fence    1\n") && text.contains("  expires  in "),
        "{text}"
    );

    let output = redlock(&server.url())
        .args(["status", "-n", "backup", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["name"], "backup");
    assert_eq!(json["held"], true);
    assert_eq!(json["holder"]["host"], host());
    assert_eq!(json["holder"]["pid"].to_string(), pid);
    assert_eq!(json["holder"]["fence"], 1);
    assert!(json["holder"]["ttl_ms"].as_i64().unwrap() > 0);
    assert_eq!(json["holder"]["token"].as_str().unwrap().len(), 32);
    assert_eq!(json["quorum"], 1);
    assert_eq!(json["agreeing"], 1);
    assert_eq!(json["servers"].as_array().unwrap().len(), 1);
    holder.finish();
}

/// The holder's user: USER, else LOGNAME, else the name of its uid (as cron and services often
/// run without either variable).
#[test]
fn the_holder_is_named_by_user_logname_or_uid() {
    let server = RedisServer::start();
    let redlock_path = env!("CARGO_BIN_EXE_redlock");
    let user_of = |env: &[(&str, &str)]| {
        let mut run = redlock(&server.url());
        run.env_remove("USER")
            .env_remove("LOGNAME")
            .envs(env.iter().copied());
        let stdout = succeeded(run.args([
            "run",
            "-n",
            "who",
            "--",
            redlock_path,
            "status",
            "-n",
            "who",
            "--json",
        ]));
        let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        json["holder"]["user"].as_str().unwrap().to_string()
    };
    assert_eq!(user_of(&[("USER", "alice"), ("LOGNAME", "bob")]), "alice");
    assert_eq!(user_of(&[("LOGNAME", "bob")]), "bob");
    assert_eq!(user_of(&[("USER", ""), ("LOGNAME", "bob")]), "bob");
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid).unwrap().unwrap().name;
    assert_eq!(user_of(&[]), name);
}

#[test]
fn status_of_a_free_lock_is_1_and_of_no_server_is_69() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args(["status", "-n", "nothing"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "lock 'nothing' is free\n"
    );
    let output = redlock(&server.url())
        .args(["status", "-n", "nothing", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["held"], false);
    assert!(json["holder"].is_null());

    let output = redlock("redis://127.0.0.1:1")
        .args(["status", "-n", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "redlock: cannot connect to Redis at 127.0.0.1:1: connection refused\n"
    );
}

#[test]
fn status_with_several_servers_shows_each_and_the_majority() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let mut holder = Holder::start(&url, &["-n", "multi"]);
    crate::support::wait_until("every server has the lock", || {
        servers
            .iter()
            .all(|s| s.cmd::<i64>(&["EXISTS", &keys("multi").lock]) == 1)
    });
    servers[2].freeze();
    let output = redlock(&url)
        .args(["status", "-n", "multi"])
        .output()
        .unwrap();
    servers[2].thaw();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("  servers  2 of 3 agree (2 needed)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("    {}  unavailable: ", &servers[2].url()[8..])),
        "{text}"
    );
    holder.finish();
}

#[test]
fn list_finds_the_locks_among_many_other_keys() {
    let server = RedisServer::start();
    // Thousands of unrelated keys: SCAN walks them in batches; a lock must not be missed.
    let mut connection = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET")
            .arg(format!("unrelated:{i}"))
            .arg(i)
            .ignore();
    }
    let _: () = pipe.query(&mut connection).unwrap();
    let mut backup = Holder::start(&server.url(), &["-n", "backup-db"]);
    let mut report = Holder::start(&server.url(), &["-n", "report"]);
    let output = redlock(&server.url()).arg("list").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["backup-db", "report"], "{text}");
    assert!(
        text.contains(&format!("\t{} (pid {}, ", host(), backup.redlock_pid())),
        "{text}"
    );

    let output = redlock(&server.url())
        .args(["list", "backup-*", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let locks = json.as_array().unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0]["name"], "backup-db");
    assert_eq!(locks[0]["host"], host());
    assert!(locks[0]["ttl_ms"].as_i64().unwrap() > 0);
    backup.finish();
    report.finish();
}

#[test]
fn release_needs_force_checks_the_token_and_stops_the_holder() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "stale", "--ttl", "3s"]);
    let command = holder.command_pid();

    let output = redlock(&server.url())
        .args(["release", "-n", "stale"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::USAGE));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "redlock: not breaking lock 'stale' without --force: it would ask its holder"
        ) && stderr.contains("then delete redlock:{stale} on 1 server(s) if it does not"),
        "{stderr}"
    );
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("stale").lock]), 1);

    let output = redlock(&server.url())
        .args([
            "release",
            "-n",
            "stale",
            "--force",
            "--token",
            "not-the-token",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("stale").lock]), 1);

    let token: String = server.cmd(&["GET", &keys("stale").lock]);
    let output = redlock(&server.url())
        .args(["release", "-n", "stale", "--force", "--token", &token])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("stale").lock]), 0);

    // The holder was asked to stop its command and release the lock, and did.
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(crate::support::is_dead(command));

    let output = redlock(&server.url())
        .args(["release", "-n", "stale", "--force"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "redlock: lock 'stale' is not held; nothing to break\n"
    );
}

#[test]
fn a_broken_lock_wakes_its_waiters() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "wedged", "--ttl", "3s"]);
    let waiter = redlock(&server.url())
        .args([
            "run",
            "-n",
            "wedged",
            "--wait",
            "5m",
            "--",
            "echo",
            "took-over",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_for_subscriber(&server, "wedged");
    let status = redlock(&server.url())
        .args(["release", "-n", "wedged", "--force"])
        .status()
        .unwrap();
    assert!(status.success());
    let output = waiter.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"took-over\n");
    let _ = holder.wait();
}

#[test]
fn completions_parse_and_man_pages_render_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |shell: &str, file: &str| {
        if Command::new(shell).arg("-c").arg("true").output().is_err() {
            return; // that shell is not installed here
        }
        let output = Command::new(shell)
            .arg("-n")
            .arg(root.join("completions").join(file))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    check("bash", "redlock.bash");
    check("zsh", "_redlock");
    check("fish", "redlock.fish");
    for page in [
        "redlock.1",
        "redlock-run.1",
        "redlock-status.1",
        "redlock-list.1",
        "redlock-release.1",
        "redlock-history.1",
    ] {
        let output = Command::new("groff")
            // -P -cbou: plain text, without the terminal's bold and underlining.
            .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
            .arg(root.join("man").join(page))
            .output()
            .expect("groff (groff-base) must be installed");
        assert!(output.status.success());
        assert!(
            output.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        for section in ["EXIT STATUS", "ENVIRONMENT", "SEE ALSO"] {
            assert!(text.contains(section), "{page} has no {section}");
        }
    }
}

#[test]
fn operators_on_odd_locks() {
    let server = RedisServer::start();
    // A key someone set by hand, without expiry or holder details.
    let _: () = server.cmd(&["SET", &keys("manual").lock, "someone"]);
    let output = redlock(&server.url())
        .args(["status", "-n", "manual"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("lock 'manual' is held by another client (not redlock)\n"),
        "{text}"
    );
    assert!(
        text.contains("  expires  never: the key has no expiry\n"),
        "{text}"
    );

    // A lock kept by --min-hold after its command ended says so.
    let status = redlock(&server.url())
        .args(["run", "-n", "kept", "--min-hold", "1m", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    let output = redlock(&server.url())
        .args(["status", "-n", "kept", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["holder"]["ended_ms"].as_i64().is_some(), "{json}");
    let output = redlock(&server.url())
        .args(["status", "-n", "kept"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("  kept     by --min-hold: its command finished")
    );

    // An empty --token would match any lock: refused.
    let output = redlock(&server.url())
        .args(["release", "-n", "kept", "--force", "--token", ""])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::USAGE));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "redlock: --token must not be empty\n"
    );
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("kept").lock]), 1);
}

#[test]
fn list_takes_the_prefix_literally_and_counts_only_majorities() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let mut holder = Holder::start(&url, &["-n", "real", "--prefix", "team[a]"]);
    // redlock goes ahead on a majority; the last server follows a moment later.
    for server in &servers {
        wait_until("the lock is on every server", || {
            server.cmd::<i64>(&["EXISTS", "team[a]:{real}"]) == 1
        });
    }
    let output = redlock(&url)
        .args(["list", "--prefix", "team[a]"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("real\t"), "{text}");
    // A lock on one server of three is nobody's lock.
    let _: () = servers[0].cmd(&["SET", "team[a]:{minority}", "someone", "PX", "60000"]);
    let output = redlock(&url)
        .args(["list", "--prefix", "team[a]", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["real"]);
    assert_eq!(json[0]["servers"], 3);
    holder.finish();
}

/// `list` reads the locks it found a page at a time: 250 locks cost 3 scripts, not 250 round
/// trips (counted, not timed: the time is B10 in BENCHMARKS.md).
#[test]
fn list_reads_the_locks_a_page_per_round_trip() {
    let server = RedisServer::start();
    for i in 0..250 {
        let key = format!("redlock:{{p{i}}}");
        let _: () = server.cmd(&["SET", &key, "t", "PX", "60000"]);
    }
    let before = script_calls(&server);
    let listed = succeeded(redlock(&server.url()).arg("list"));
    assert_eq!(String::from_utf8_lossy(&listed).lines().count(), 250);
    assert_eq!(script_calls(&server) - before, 3);
}
