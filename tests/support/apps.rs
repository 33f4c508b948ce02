//! The lock libraries of applications, run for real: redis-py's `Lock` and node-redlock (with
//! ioredis), through tests/interop/pylock.py and nodelock.js. `./install.sh --deps` installs
//! them (tests/interop/setup): a virtual environment and node_modules beside the scripts.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command};

use super::holder::Piped;

/// Which library locks the key.
#[derive(Clone, Copy, Debug)]
pub enum Library {
    /// redis-py's `Lock` (one server).
    RedisPy,
    /// node-redlock over ioredis (one server, or its own quorum over several).
    NodeRedlock,
}

fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// The command that runs `library`'s script with its arguments: PORTS (one for redis-py),
/// KEY, TTL in ms, MODE and the rest.
pub fn command(library: Library, ports: &[u16], key: &str, ttl_ms: u64, mode: &str) -> Command {
    let dir = interop();
    let (program, script, ttl) = match library {
        Library::RedisPy => (
            dir.join("venv/bin/python"),
            "pylock.py",
            format!("{}", ttl_ms as f64 / 1000.0),
        ),
        Library::NodeRedlock => (PathBuf::from("node"), "nodelock.js", ttl_ms.to_string()),
    };
    let installed = match library {
        Library::RedisPy => program.exists(),
        Library::NodeRedlock => {
            dir.join("node_modules/redlock").exists()
                && Command::new("node")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        }
    };
    assert!(
        installed,
        "{library:?} is not installed in {}: run ./install.sh --deps",
        dir.display()
    );
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    if let Library::RedisPy = library {
        assert_eq!(ports.len(), 1, "redis-py's Lock takes one server");
    }
    let mut command = Command::new(program);
    command
        .arg(dir.join(script))
        .args([&ports.join(","), key, &ttl, mode]);
    command
}

/// One attempt without waiting: whether the library got the lock (it gives it back at once).
pub fn try_lock(library: Library, ports: &[u16], key: &str) -> bool {
    let output = command(library, ports, key, 10_000, "try")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{library:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    match stdout.trim() {
        "acquired" => true,
        "busy" => false,
        other => panic!("{library:?} said {other:?}"),
    }
}

/// An application holding the key with its library until `release`.
pub struct AppHolder {
    pub process: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl AppHolder {
    /// Waits until the library holds the key (TTL `ttl_ms`).
    pub fn start(library: Library, ports: &[u16], key: &str, ttl_ms: u64) -> AppHolder {
        let Piped {
            process,
            stdin,
            stdout,
            first_line,
        } = Piped::start(&mut command(library, ports, key, ttl_ms, "hold"));
        assert_eq!(first_line, "held\n", "{library:?} did not take the lock");
        AppHolder {
            process,
            stdin,
            stdout,
        }
    }

    /// Releases the lock the library's way; returns the wall-clock times just before (the end
    /// of its critical section) and just after, in nanoseconds since the epoch.
    pub fn release(&mut self) -> (u128, u128) {
        self.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        self.stdin.as_mut().unwrap().flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let at = line
            .strip_prefix("released ")
            .unwrap_or_else(|| panic!("the library said {line:?}"));
        assert!(self.process.wait().unwrap().success());
        let time = |word: Option<&str>| word.and_then(|w| w.parse().ok()).expect(&line);
        let mut words = at.split_whitespace();
        (time(words.next()), time(words.next()))
    }
}

impl Drop for AppHolder {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
