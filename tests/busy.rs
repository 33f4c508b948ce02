//! A busy lock: the command does not run, and the exit status and message say who holds it.

use crate::support::{Holder, RedisServer, code, keys, redlock};

#[test]
fn busy_exits_75_and_names_the_holder() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "backup"]);
    let output = redlock(&server.url())
        .args(["run", "-n", "backup", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY));
    assert!(output.stdout.is_empty(), "the command must not run");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let expected = format!(
        "redlock: lock 'backup' is held by {host} (pid {}, sh -c ",
        holder.redlock_pid()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("; expires in "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);
    assert!(holder.finish().0.success());
}

#[test]
fn conflict_exit_code_and_quiet() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "job"]);
    let output = redlock(&server.url())
        .args(["run", "-n", "job", "-E", "3", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(!output.stderr.is_empty());
    let output = redlock(&server.url())
        .args(["run", "-n", "job", "-E", "0", "-q", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    let output = redlock(&server.url())
        .args(["run", "-n", "job", "--quiet", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY));
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    holder.finish();
}

#[test]
fn a_foreign_key_without_details_is_reported_as_unknown() {
    let server = RedisServer::start();
    let _: () = server.cmd(&["SET", &keys("other").lock, "someone-else", "PX", "60000"]);
    let output = redlock(&server.url())
        .args(["run", "-n", "other", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "redlock: lock 'other' is held by another client (not redlock); expires in "
        ),
        "{stderr}"
    );
    let value: String = server.cmd(&["GET", &keys("other").lock]);
    assert_eq!(value, "someone-else");
}

#[test]
fn different_names_do_not_conflict() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "a"]);
    let status = redlock(&server.url())
        .args(["run", "-n", "b", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    holder.finish();
}
