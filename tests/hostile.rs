//! A hostile or broken server (docs/security.md): a reply of absurd length, depth or shape ends
//! the request with 69 within its time-out, in bounded memory, never a panic or a hang.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{code, redlock};

/// A server on a free loopback port that answers every connection with `reply` (whatever was
/// asked), then keeps it open, saying nothing more.
fn answering(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut asked = [0; 4096];
                if stream.read(&mut asked).is_ok() {
                    let _ = stream.write_all(reply);
                }
                // Held open until redlock gives up: a server that stops mid-reply.
                let _ = stream.read(&mut asked);
            });
        }
    });
    port
}

fn nested(depth: usize) -> &'static [u8] {
    "*1\r\n".repeat(depth).into_bytes().leak()
}

#[test]
fn absurd_replies_end_in_69_in_bounded_memory() {
    let cases: [(&str, &'static [u8]); 7] = [
        ("an array of 2^31 elements", b"*2147483647\r\n"),
        ("a string of 2^31 bytes", b"$2147483647\r\n"),
        ("200,000 nested arrays", nested(200_000)),
        ("garbage", b"hello, this is not RESP\r\n"),
        ("a negative array length", b"*-5\r\n"),
        ("a negative string length", b"$-7\r\n"),
        ("a length that is no number", b"*12x\r\n"),
    ];
    // Under the same limit, a real server's lock is taken: the limit alone fails nothing.
    let server = crate::support::RedisServer::start();
    let output = redlock(&server.url())
        .args(["run", "-n", "hostile", "--", "true"])
        .output_limited(512 << 20);
    assert!(output.status.success(), "{output:?}");
    for (what, reply) in cases {
        let port = answering(reply);
        let started = Instant::now();
        // 512 MB of address space: enough for redlock's threads and buffers, far too little for
        // a buffer sized by the reply's claimed length.
        let output = redlock(&format!("redis://127.0.0.1:{port}"))
            .args(["run", "-n", "hostile", "--", "true"])
            .output_limited(512 << 20);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code::UNAVAILABLE),
            "{what}: {stderr}"
        );
        assert!(stderr.starts_with("redlock: "), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        // The request's time-out is 5 s by default; 20 s only rules out a hang.
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
    }
}

/// `Command::output` with the child's address space limited to `bytes` (setrlimit in the
/// child, before exec).
trait Limited {
    fn output_limited(&mut self, bytes: u64) -> std::process::Output;
}

impl Limited for std::process::Command {
    fn output_limited(&mut self, bytes: u64) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit(2) only, between fork and exec.
        unsafe {
            self.pre_exec(move || {
                let limit = nix::libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                match nix::libc::setrlimit(nix::libc::RLIMIT_AS, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        self.output().unwrap()
    }
}
