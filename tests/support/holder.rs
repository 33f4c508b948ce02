//! Runs of `redlock run` in the background: a holder that says `ready` and holds the lock
//! until told, waiters that take over, an operator's break, and contending loops whose
//! critical sections are checked for overlaps.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use tempfile::TempDir;

use super::redlock;
use super::waiting::read_pid;

/// A child with piped stdin and stdout (and whatever else `command` says), started, and the
/// first line it wrote: a holder's `ready`, an application's `held`.
pub struct Piped {
    pub process: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    pub first_line: String,
}

impl Piped {
    pub fn start(command: &mut Command) -> Piped {
        let mut process = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = process.stdin.take();
        let mut stdout = BufReader::new(process.stdout.take().unwrap());
        let mut first_line = String::new();
        stdout.read_line(&mut first_line).unwrap();
        Piped {
            process,
            stdin,
            stdout,
            first_line,
        }
    }
}

/// A `redlock run` in the background whose command says `ready` and then holds the lock until
/// its stdin is closed (`finish`) or it is killed.
pub struct Holder {
    pub process: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub dir: TempDir,
}

/// The holder's default command: the shell's PID goes to `pid`, `ready` to stdout, then it
/// waits for its stdin to close.
pub const HOLD: &str = "echo $$ > pid; echo ready; read line; echo done";

impl Holder {
    pub fn start(url: &str, args: &[&str]) -> Self {
        Self::start_script(url, args, HOLD)
    }

    pub fn start_script(url: &str, args: &[&str], script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let Piped {
            mut process,
            stdin,
            stdout,
            first_line,
        } = Piped::start(
            redlock(url)
                .arg("run")
                .args(args)
                .args(["--", "sh", "-c", script])
                .current_dir(dir.path())
                .stderr(Stdio::piped()),
        );
        assert_eq!(
            first_line,
            "ready\n",
            "the holder did not start: {}",
            stderr_of(&mut process)
        );
        Holder {
            process,
            stdin,
            stdout,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The command's PID (the shell run by redlock).
    pub fn command_pid(&self) -> i32 {
        read_pid(&self.path("pid"))
    }

    pub fn redlock_pid(&self) -> Pid {
        Pid::from_raw(self.process.id() as i32)
    }

    pub fn send(&mut self, text: &str) {
        self.stdin
            .as_mut()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    /// Lets the command end; returns redlock's status and stderr.
    pub fn finish(&mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        self.wait()
    }

    /// Waits for redlock to end by itself; returns its status and stderr.
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = self.process.wait().unwrap();
        (status, stderr_of(&mut self.process))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub(super) fn stderr_of(process: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = process.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
    }
    text
}

/// A waiter for lock `name`: `redlock run --wait 120s` whose command creates `dir/took-over`.
pub fn waiter(url: &str, name: &str, dir: &Path) -> Child {
    redlock(url)
        .args(["run", "-n", name, "--wait", "120s", "--", "sh", "-c"])
        .arg("echo x > took-over")
        .current_dir(dir)
        .spawn()
        .unwrap()
}

/// Ends `holder`, whose lease is 60 s, and checks that `waiter` (see `waiter`) takes over on
/// the release notice: in milliseconds normally (see bench/); 20 s only rules out waiting for
/// the lease to expire.
pub fn takes_over_on_release(holder: &mut Holder, mut waiter: Child, dir: &Path) {
    assert!(!dir.join("took-over").exists());
    let released = Instant::now();
    assert!(holder.finish().0.success());
    let status = waiter.wait().unwrap();
    assert!(released.elapsed() < Duration::from_secs(20));
    assert!(status.success());
    assert!(dir.join("took-over").exists());
}

/// `redlock release --force` of `name` through `url` reaches a live holder, which stops its
/// command and lets go (the break waited for it), and that holder exits 76.
pub fn breaks_a_live_holder(url: &str, name: &str, holder: &mut Holder) {
    let output = redlock(url)
        .args(["release", "-n", name, "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the holder of '{name}' stopped its command and released"
        )),
        "{stderr}"
    );
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(76), "{stderr}");
}

/// `loops` shell loops of `runs` runs each on one lock name, all with `--wait`: checks that the
/// critical sections never overlap and that each sees a larger fencing token than the last.
pub fn contend(url: &str, loops: usize, runs: usize) {
    contend_on(url, "shared", loops, runs);
}

/// `contend` on the lock `name`.
pub fn contend_on(url: &str, name: &str, loops: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    // mkdir is atomic: it fails if another critical section is inside.
    let critical = "mkdir inside || echo OVERLAP >> log; echo \"start $REDLOCK_FENCE\" >> log; \
                    echo \"end $REDLOCK_FENCE\" >> log; rmdir inside";
    let script = format!(
        "for i in $(seq {runs}); do '{redlock}' run -n {name} --wait 120s -- sh -c '{critical}' \
         || echo FAILED $? >> log; done"
    );
    let shells: Vec<_> = (0..loops)
        .map(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .env("REDLOCK_URL", url)
                .current_dir(dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut shell in shells {
        assert!(shell.wait().unwrap().success());
    }
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), loops * runs * 2, "{log}");
    let mut last_fence = 0;
    for pair in lines.chunks(2) {
        let start: u64 = pair[0].strip_prefix("start ").expect(&log).parse().unwrap();
        let end: u64 = pair[1].strip_prefix("end ").expect(&log).parse().unwrap();
        assert_eq!(start, end, "another run got in between:\n{log}");
        assert!(
            start > last_fence,
            "fence went from {last_fence} to {start}:\n{log}"
        );
        last_fence = start;
    }
}
