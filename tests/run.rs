//! The basics: the command runs with its I/O untouched and its status reported.

use std::io::Write;
use std::process::Stdio;

use crate::support::{
    RedisServer, Terminal, code, expiring_keys, keys, read_pid, redlock, succeeded, wait_until,
};

#[test]
fn passes_stdin_stdout_and_stderr_through() {
    let server = RedisServer::start();
    let mut child = redlock(&server.url())
        .args([
            "run",
            "--name",
            "io",
            "--",
            "sh",
            "-c",
            "cat; echo to-stderr >&2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\n\x00binary\xff\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"line one\n\x00binary\xff\n");
    assert_eq!(output.stderr, b"to-stderr\n");
}

#[test]
fn exit_status_of_the_command_is_kept() {
    let server = RedisServer::start();
    for code in [0, 1, 42, 255] {
        let status = redlock(&server.url())
            .args([
                "run",
                "-n",
                "codes",
                "--",
                "sh",
                "-c",
                &format!("exit {code}"),
            ])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code));
    }
}

#[test]
fn a_command_killed_by_a_signal_gives_128_plus_n() {
    let server = RedisServer::start();
    for (signal, code) in [("TERM", 143), ("KILL", 137), ("SEGV", 139)] {
        let status = redlock(&server.url())
            .args([
                "run",
                "-n",
                "sig",
                "--",
                "sh",
                "-c",
                &format!("kill -{signal} $$"),
            ])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
    }
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args(["run", "-n", "x", "--", "no-such-command-xyz"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::NOT_FOUND));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "redlock: cannot run 'no-such-command-xyz': command not found\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let output = redlock(&server.url())
        .args(["run", "-n", "x", "--"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::CANNOT_EXECUTE));
    assert!(String::from_utf8_lossy(&output.stderr).contains("permission denied"));
    // Neither left the lock behind.
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("x").lock]), 0);
}

#[test]
fn the_command_gets_name_token_and_fence() {
    let server = RedisServer::start();
    let run = || {
        let stdout = succeeded(redlock(&server.url()).args([
            "run",
            "-n",
            "env",
            "--",
            "sh",
            "-c",
            "echo $REDLOCK_NAME $REDLOCK_TOKEN $REDLOCK_FENCE",
        ]));
        let text = String::from_utf8(stdout).unwrap();
        let fields: Vec<String> = text.split_whitespace().map(String::from).collect();
        assert_eq!(fields.len(), 3, "{text}");
        (
            fields[0].clone(),
            fields[1].clone(),
            fields[2].parse::<u64>().unwrap(),
        )
    };
    let (name, first_token, first_fence) = run();
    let (_, second_token, second_fence) = run();
    assert_eq!(name, "env");
    assert_eq!(first_token.len(), 32);
    assert_ne!(first_token, second_token);
    assert!(second_fence > first_fence);
}

#[test]
fn leaves_only_the_fencing_counter_and_the_history_behind() {
    let server = RedisServer::start();
    let status = redlock(&server.url())
        .args(["run", "-n", "tidy", "--prefix", "jobs", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut found: Vec<String> = server.cmd(&["KEYS", "*"]);
    found.sort();
    let tidy = redlock_cli::Keys::new("jobs", "tidy");
    assert_eq!(found, [tidy.fence, tidy.history]);
    assert!(expiring_keys(&server).is_empty());
    // Without a history, only the counter.
    let status = redlock(&server.url())
        .args(["run", "-n", "bare", "--history", "0", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    let found: Vec<String> = server.cmd(&["KEYS", "redlock:*"]);
    assert_eq!(found, [keys("bare").fence]);
}

#[test]
fn verbose_reports_acquire_extend_and_release() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args([
            "run", "-v", "-n", "loud", "--ttl", "300ms", "--", "sleep", "0.5",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("redlock: acquired 'loud' (fence 1) in "),
        "{stderr}"
    );
    assert!(
        stderr.contains("redlock: extended the lease in "),
        "{stderr}"
    );
    assert!(stderr.contains("redlock: released 'loud' in "), "{stderr}");
}

#[test]
fn min_hold_keeps_the_lock_after_the_command_ends() {
    let server = RedisServer::start();
    let status = redlock(&server.url())
        .args(["run", "-n", "daily", "--min-hold", "20s", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    // redlock has exited; the lock lives on for what remains of the 20 s.
    let pttl: i64 = server.cmd(&["PTTL", &keys("daily").lock]);
    assert!((1..=20_000).contains(&pttl), "pttl {pttl}");
    let output = redlock(&server.url())
        .args(["run", "-n", "daily", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("redlock: lock 'daily' is kept by --min-hold: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("(pid ") && stderr.contains(", true) finished "),
        "{stderr}"
    );
}

#[test]
fn min_hold_does_not_keep_a_lock_whose_command_never_ran() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "typo",
            "--min-hold",
            "1h",
            "--",
            "no-such-command-xyz",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::NOT_FOUND));
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("typo").lock]), 0);
}

/// The line `field` of /proc/self/status as the command sees it, run under redlock.
fn command_status_line(field: &str) -> String {
    let server = RedisServer::start();
    let stdout = succeeded(
        redlock(&server.url())
            .args(["run", "-n", "status", "--", "grep"])
            .arg(format!("^{field}:"))
            .arg("/proc/self/status"),
    );
    String::from_utf8(stdout).unwrap()
}

#[test]
fn the_command_starts_with_no_signal_blocked() {
    assert_eq!(command_status_line("SigBlk"), "SigBlk:\t0000000000000000\n");
}

/// redlock ignores SIGPIPE (Rust does), and an ignored signal survives exec: the command must
/// get it back at its default, or `yes | head` style pipelines would never end.
#[test]
fn the_command_starts_with_sigpipe_at_its_default() {
    let line = command_status_line("SigIgn");
    let ignored = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:\t"), 16).unwrap();
    assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE is ignored: {line}");
}

/// A script without a `#!` line runs with /bin/sh, as execvp(3) runs it for flock, timeout or
/// a shell: named by its path or found in PATH.
#[test]
fn a_script_without_a_shebang_runs_with_sh() {
    use std::os::unix::fs::PermissionsExt;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plain-script");
    std::fs::write(&script, "echo from-sh \"$@\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for program in [script.to_str().unwrap(), "plain-script"] {
        let stdout = succeeded(
            redlock(&server.url())
                .args(["run", "-n", "plain", "--", program, "a b"])
                .env("PATH", &path),
        );
        assert_eq!(String::from_utf8_lossy(&stdout), "from-sh a b\n");
    }
}

/// The same in a terminal, where the command is given the terminal before it starts: it runs
/// with /bin/sh there too, whatever the libc's execvp(3) does (musl's has no such fallback), and
/// can read the terminal.
#[test]
fn a_script_without_a_shebang_runs_with_sh_in_a_terminal() {
    use std::os::unix::fs::PermissionsExt;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plain-script");
    std::fs::write(&script, "read line; echo \"from-sh $1 $line\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inner = format!(
        "'{}' run -n plain -- '{}' arg; echo \"status=$?\"",
        env!("CARGO_BIN_EXE_redlock"),
        script.display()
    );
    let mut terminal = Terminal::start(&inner, &server.url());
    terminal.type_in("typed\n");
    terminal.expect("from-sh arg typed");
    terminal.expect("status=0");
}

/// A parent that ignores SIGCHLD passes that on across exec; redlock must still see its
/// command exit (an ignored SIGCHLD has the kernel reap children unseen).
#[test]
fn an_ignored_sigchld_is_not_inherited_by_redlock() {
    use std::os::unix::process::CommandExt;
    let server = RedisServer::start();
    let mut run = redlock(&server.url());
    run.args(["run", "-n", "chld", "--", "sh", "-c", "exit 3"]);
    // SAFETY: signal(2) only, between fork and exec.
    unsafe {
        run.pre_exec(|| {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGCHLD,
                nix::sys::signal::SigHandler::SigIgn,
            )?;
            Ok(())
        });
    }
    let mut child = run.spawn().unwrap();
    let mut status = None;
    wait_until("redlock exits", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(3));
}

/// The guard (the leader of the command's process group) is reaped before redlock exits. Left
/// to init it would be a zombie wherever the first process does not reap orphans, as in many
/// containers; this test process stands in for such an init.
#[test]
fn the_guard_does_not_outlive_redlock() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Field 5 of /proc/PID/stat is the process group: the guard's PID.
    let status = redlock(&server.url())
        .args(["run", "-n", "reaped", "--", "sh", "-c"])
        .arg("cut -d' ' -f5 /proc/$$/stat > group")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let guard = read_pid(&dir.path().join("group"));
    assert!(
        !std::path::Path::new(&format!("/proc/{guard}")).exists(),
        "the guard {guard} was left behind"
    );
}

#[test]
fn arguments_that_are_not_utf8_pass_through() {
    use std::os::unix::ffi::OsStrExt;
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args(["run", "-n", "bytes", "--", "printf", "%s"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"\xff\xfe");
}
