//! Secrets stay out of sight (docs/security.md): a password or a health-check URL given on the
//! command line does not show in `ps`, and a command's credentials are not recorded in Redis,
//! where every Redis user reads them.

use crate::support::{HOLD, Holder, RedisServer, redlock, succeeded};

/// What `ps` shows of a process: its `/proc/PID/cmdline`, arguments joined by spaces.
fn cmdline(pid: i32) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    String::from_utf8_lossy(&bytes).replace('\0', " ")
}

/// The process group of `pid`: for the command, its guard's PID (src/run/guard.rs).
fn group_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[2].parse().unwrap()
}

/// The password of `--redis` and the path of `--ping` (its secret) are overwritten in the
/// command lines of redlock and of its guard while the command runs; the command's own
/// arguments (after `--`) are left alone.
#[test]
fn ps_shows_no_password_and_no_ping_secret() {
    let server = RedisServer::start_with(&["--requirepass", "s3cretpw"]);
    let url = format!("redis://:s3cretpw@127.0.0.1:{}", server.port);
    let ping = "http://127.0.0.1:1/ping-uuid-0f3a";
    let mut holder = Holder::start_script(
        "redis://127.0.0.1:1",
        &["-n", "sec", "--redis", &url, &format!("--ping={ping}")],
        &format!("{HOLD} # s3cretpw stays the command's own"),
    );
    let redlock_pid = holder.redlock_pid().as_raw();
    let guard = group_of(holder.command_pid());
    assert_ne!(guard, redlock_pid);
    for pid in [redlock_pid, guard] {
        let shown = cmdline(pid);
        let own = shown.split(" -- ").next().unwrap();
        assert!(!own.contains("s3cretpw"), "{shown}");
        assert!(!own.contains("ping-uuid-0f3a"), "{shown}");
        assert!(
            own.contains(&format!(
                "--redis redis://:********@127.0.0.1:{}",
                server.port
            )),
            "{shown}"
        );
        assert!(
            own.contains("--ping=http://127.0.0.1:1**************"),
            "{shown}"
        );
        assert!(
            shown.contains("# s3cretpw stays the command's own"),
            "{shown}"
        );
    }
    assert!(holder.finish().0.success());
    // In REDLOCK_URL (the README's crontab line), it is never on the command line at all.
    let mut holder = Holder::start(&url, &["-n", "sec"]);
    let shown = cmdline(holder.redlock_pid().as_raw());
    assert!(
        !shown.contains("s3cretpw") && !shown.contains("*"),
        "{shown}"
    );
    assert!(holder.finish().0.success());
}

/// The command line recorded next to the lock hides the credentials it carries: what `list`,
/// `status`, `history` and another host's busy message show.
#[test]
fn a_command_s_credentials_are_not_recorded() {
    let server = RedisServer::start();
    let url = server.url();
    let script = format!(
        "{HOLD}; : pg_dump postgres://backup:pw-in-url@db/app --password=hunter2 \
         PGPASSWORD=hunter3 --token tok-4"
    );
    let mut holder = Holder::start_script(&url, &["-n", "creds"], &script);
    let busy = redlock(&url)
        .args(["run", "-n", "creds", "--", "true"])
        .output()
        .unwrap();
    let mut shown = vec![String::from_utf8_lossy(&busy.stderr).into_owned()];
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["status", "-n", "creds"],
        &["status", "-n", "creds", "--json"],
    ] {
        shown.push(String::from_utf8(succeeded(redlock(&url).args(args))).unwrap());
    }
    assert!(holder.finish().0.success());
    for args in [
        &["history", "--name", "creds"][..],
        &["history", "--name", "creds", "--json"],
    ] {
        shown.push(String::from_utf8(succeeded(redlock(&url).args(args))).unwrap());
    }
    for text in &shown {
        for secret in ["pw-in-url", "hunter2", "hunter3", "tok-4"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("postgres://backup:***@db/app --password=*** PGPASSWORD=*** --token ***"),
            "{text}"
        );
    }
}

/// `--label` is recorded and shown instead of the command line.
#[test]
fn a_label_stands_for_the_command_line() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Holder::start_script(
        &url,
        &["-n", "labelled", "--label", "nightly backup"],
        &format!("{HOLD} # s3cret"),
    );
    let status =
        String::from_utf8(succeeded(redlock(&url).args(["status", "-n", "labelled"]))).unwrap();
    assert!(status.contains("(pid "), "{status}");
    assert!(status.contains("nightly backup"), "{status}");
    assert!(!status.contains("s3cret"), "{status}");
    assert!(holder.finish().0.success());
    let history = String::from_utf8(succeeded(
        redlock(&url).args(["history", "--name", "labelled", "--json"]),
    ))
    .unwrap();
    assert!(
        history.contains("\"command\": \"nightly backup\""),
        "{history}"
    );
    // A label with a control character is taken, and printed on one line, harmless.
    let mut holder = Holder::start(&url, &["-n", "odd", "--label", "night\x1b[31mly"]);
    let status = String::from_utf8(succeeded(redlock(&url).args(["status", "-n", "odd"]))).unwrap();
    assert!(status.contains("night?[31mly"), "{status}");
    assert!(holder.finish().0.success());
}
