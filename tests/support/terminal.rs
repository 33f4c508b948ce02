//! A terminal for a command, through script(1).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::waiting::{PATIENCE, read_pid};
use super::with_default_signals;

/// A terminal for a command, through script(1): what is typed goes to the terminal, what the
/// terminal shows comes back. Dropping it kills script(1), and the hang-up ends the rest.
pub struct Terminal {
    process: Child,
    input: ChildStdin,
    screen: std::sync::mpsc::Receiver<u8>,
    /// Everything shown so far.
    pub seen: String,
}

impl Terminal {
    pub fn start(command: &str, url: &str) -> Self {
        // Not under timeout(1): a terminal in its care sometimes loses Ctrl-C's SIGINT.
        let mut process = with_default_signals(&mut Command::new("script"))
            .args(["-qec", command, "/dev/null"])
            .env("REDLOCK_URL", url)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        let input = process.stdin.take().unwrap();
        let mut output = process.stdout.take().unwrap();
        let (sender, screen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            while std::io::Read::read(&mut output, &mut byte).unwrap_or(0) == 1 {
                if sender.send(byte[0]).is_err() {
                    break;
                }
            }
        });
        Terminal {
            process,
            input,
            screen,
            seen: String::new(),
        }
    }

    pub fn type_in(&mut self, text: &str) {
        self.input.write_all(text.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Types a control key (Ctrl-C or Ctrl-Z) until the terminal shows `text`. In this sandbox
    /// a pseudo-terminal now and then echoes the key without sending its signal, even with no
    /// redlock involved (a shell under script(1) alone shows it), so one keystroke is not proof.
    /// After two tries the signal goes to the terminal's foreground group directly, as the
    /// terminal would send it: the group of the process whose pid is in `foreground`.
    pub fn press_until(&mut self, key: &str, text: &str, foreground: &Path) {
        let signal = match key {
            "\x03" => Signal::SIGINT,
            "\x1a" => Signal::SIGTSTP,
            other => panic!("no signal for key {other:?}"),
        };
        let deadline = Instant::now() + PATIENCE;
        let start = self.seen.len();
        for attempt in 0.. {
            if attempt < 2 {
                self.type_in(key);
            } else {
                let group = nix::unistd::getpgid(Some(Pid::from_raw(read_pid(foreground))));
                let _ = nix::sys::signal::killpg(group.unwrap(), signal);
            }
            // Generous: on a loaded machine the shell can take seconds to report a stop.
            if self.wait_for(start, text, Duration::from_secs(5)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it showed:\n{}",
                self.seen
            );
        }
    }

    /// Waits until the terminal has shown `text` since the last call; panics after `PATIENCE`.
    pub fn expect(&mut self, text: &str) {
        let start = self.seen.len();
        if !self.wait_for(start, text, PATIENCE) {
            panic!(
                "the terminal never showed {text:?}; it showed:\n{}",
                self.seen
            );
        }
    }

    /// Whether `text` appears after byte `start` within `patience`.
    fn wait_for(&mut self, start: usize, text: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut bytes = Vec::new();
        while !self.seen[start..].contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.screen.recv_timeout(left) {
                Ok(byte) => {
                    bytes.push(byte);
                    if let Ok(text) = std::str::from_utf8(&bytes) {
                        self.seen.push_str(text);
                        bytes.clear();
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // script(1) and what runs in the terminal: the terminal's hang-up ends the rest.
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.process.id() as i32), Signal::SIGKILL);
        let _ = self.process.wait();
    }
}
