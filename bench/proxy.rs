//! A TCP proxy that delays each direction by a set time, for issue 15's round-trip scenario
//! (B11, bench/trips.py), with nothing but std: `bench/run` builds it with
//! `rustc -O --edition 2021 bench/proxy.rs`. Two ways to call it:
//!
//!     proxy LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS [LOG_FILE]
//!     proxy ONE_WAY_MS LOG_FILE|- LISTEN_PORT:UPSTREAM_PORT[:ONE_WAY_MS] ...
//!
//! The second serves several servers from one process (a listen port of 0: one of the system's
//! choosing). It prints `ready` once listening, followed in the second form by the ports it
//! listens on, in order. Upstreams are on 127.0.0.1.
//!
//! Per connection and direction a reader thread reads chunks and stamps each with the time it
//! was read; a writer thread writes each chunk at that time plus the delay, in order. A request
//! and its reply cost twice the delay: a network with that round trip in front of a loopback
//! Redis. (The TCP handshake is the proxy's own, on loopback: a connect costs no round trip
//! here, where it costs one on a real network.) The Python proxy this replaces ran each chunk
//! through an asyncio queue and timer, five processes on two cores, and its own delays blurred
//! B11's figures.
//!
//! With a log, each client-to-server chunk that follows a chunk delivered to the client (or
//! is the first) is a `turn`: the client may have waited for a reply before sending it. The log
//! has one line per event, times in ms since the proxy started:
//!
//!     conn ID LISTEN_PORT TIME          a client connected
//!     turn ID TIME COMMAND...           a turn, with the commands completed in it
//!     more ID TIME COMMAND...           a client chunk that is not a turn
//!     reply ID TIME [NOSCRIPT]          a chunk from the server (NOSCRIPT: it holds that error)
//!     close ID TIME                     the client's side ended
//!     script SHA1 HEX                   an EVAL body, the first time it is seen
//!
//! A command is its name (`AUTH`, `SELECT`, `SSUBSCRIBE`...), `EVAL:SHA1` with the SHA1 of the
//! script body, or `EVALSHA:SHA1`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: proxy LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS [LOG_FILE]\n       \
                     proxy ONE_WAY_MS LOG_FILE|- LISTEN_PORT:UPSTREAM_PORT[:ONE_WAY_MS] ...";

/// One listening port and where it leads.
struct Pair {
    listen: u16,
    upstream: u16,
    delay: Duration,
}

/// The log, shared by every connection: lines are whole and in the order they were written.
struct Log {
    out: Mutex<(BufWriter<File>, HashSet<[u8; 20]>)>,
    start: Instant,
}

impl Log {
    fn ms(&self, at: Instant) -> String {
        format!(
            "{:.3}",
            at.duration_since(self.start).as_secs_f64() * 1000.0
        )
    }

    fn line(&self, line: &str) {
        let mut out = self.out.lock().unwrap();
        let _ = writeln!(out.0, "{line}");
        let _ = out.0.flush();
    }

    /// Logs a script body, the first time its SHA1 is seen.
    fn new_script(&self, sha: [u8; 20], body: &[u8]) {
        let mut out = self.out.lock().unwrap();
        if out.1.insert(sha) {
            let _ = writeln!(out.0, "script {} {}", hex(&sha), hex(body));
            let _ = out.0.flush();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (pairs, log, multi) = parse(&args).unwrap_or_else(|e| {
        eprintln!("proxy: {e}\n{USAGE}");
        exit(2)
    });
    // Sleeps end when asked, not up to 50 µs later (the default timer slack): a round trip
    // has two of them. Threads inherit it.
    set_timer_slack();
    let log = log.map(|path| {
        let file = File::create(&path).unwrap_or_else(|e| {
            eprintln!("proxy: {path}: {e}");
            exit(2)
        });
        Arc::new(Log {
            out: Mutex::new((BufWriter::new(file), HashSet::new())),
            start: Instant::now(),
        })
    });
    let mut ports = Vec::new();
    let mut listeners = Vec::new();
    for pair in pairs {
        let listener = TcpListener::bind(("127.0.0.1", pair.listen)).unwrap_or_else(|e| {
            eprintln!("proxy: cannot listen on {}: {e}", pair.listen);
            exit(1)
        });
        ports.push(listener.local_addr().unwrap().port().to_string());
        listeners.push((listener, pair));
    }
    if multi {
        println!("ready {}", ports.join(" "));
    } else {
        println!("ready");
    }
    let _ = io::stdout().flush();
    let ids = Arc::new(AtomicU64::new(0));
    let acceptors: Vec<_> = listeners
        .into_iter()
        .map(|(listener, pair)| {
            let (log, ids) = (log.clone(), ids.clone());
            thread::spawn(move || accept(listener, pair, log, ids))
        })
        .collect();
    for acceptor in acceptors {
        let _ = acceptor.join();
    }
}

/// The pairs, the log's path, and whether it is the second form (several pairs).
fn parse(args: &[String]) -> Result<(Vec<Pair>, Option<String>, bool), String> {
    let ms = |s: &str| -> Result<Duration, String> {
        let ms: f64 = s.parse().map_err(|_| format!("not a delay in ms: {s}"))?;
        if !(0.0..1e9).contains(&ms) {
            return Err(format!("not a delay in ms: {s}"));
        }
        Ok(Duration::from_secs_f64(ms / 1000.0))
    };
    let port = |s: &str| s.parse::<u16>().map_err(|_| format!("not a port: {s}"));
    if args.len() >= 3 && args[2].contains(':') {
        let delay = ms(&args[0])?;
        let log = (args[1] != "-").then(|| args[1].clone());
        let pairs = args[2..]
            .iter()
            .map(|spec| {
                let parts: Vec<&str> = spec.split(':').collect();
                match parts[..] {
                    [listen, upstream] => Ok(Pair {
                        listen: port(listen)?,
                        upstream: port(upstream)?,
                        delay,
                    }),
                    [listen, upstream, one_way] => Ok(Pair {
                        listen: port(listen)?,
                        upstream: port(upstream)?,
                        delay: ms(one_way)?,
                    }),
                    _ => Err(format!("not LISTEN:UPSTREAM[:MS]: {spec}")),
                }
            })
            .collect::<Result<_, String>>()?;
        return Ok((pairs, log, true));
    }
    if !(3..=4).contains(&args.len()) {
        return Err("wrong number of arguments".into());
    }
    let pair = Pair {
        listen: port(&args[0])?,
        upstream: port(&args[1])?,
        delay: ms(&args[2])?,
    };
    Ok((vec![pair], args.get(3).cloned(), false))
}

fn accept(listener: TcpListener, pair: Pair, log: Option<Arc<Log>>, ids: Arc<AtomicU64>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(log) = &log {
            log.line(&format!(
                "conn {id} {} {}",
                pair.listen,
                log.ms(Instant::now())
            ));
        }
        let Ok(server) = TcpStream::connect(("127.0.0.1", pair.upstream)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        if let Err(e) = relay(client, server, pair.delay, id, log.clone()) {
            eprintln!("proxy: connection {id}: {e}");
        }
    }
}

/// Starts the four threads of one connection: a reader and a writer each way.
fn relay(
    client: TcpStream,
    server: TcpStream,
    delay: Duration,
    id: u64,
    log: Option<Arc<Log>>,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // Set by the writer to the client, taken by the reader from it: a reply came between two
    // client chunks.
    let replied = Arc::new(AtomicBool::new(true));
    let (to_server, for_server) = channel();
    let (to_client, for_client) = channel();
    {
        let (from, replied, log) = (client.try_clone()?, replied.clone(), log.clone());
        let mut requests = Requests::new(id, log);
        thread::spawn(move || {
            read(from, to_server, |at, chunk| {
                requests.chunk(at, chunk, replied.swap(false, Ordering::SeqCst))
            });
            if let Some(log) = &requests.log {
                log.line(&format!("close {id} {}", log.ms(Instant::now())));
            }
        });
    }
    {
        let (to, from) = (server.try_clone()?, client.try_clone()?);
        thread::spawn(move || write(for_server, to, from, delay, None));
    }
    {
        let (from, log) = (server.try_clone()?, log);
        thread::spawn(move || {
            read(from, to_client, |at, chunk| {
                if let Some(log) = &log {
                    let noscript = contains(chunk, b"-NOSCRIPT");
                    let what = if noscript { " NOSCRIPT" } else { "" };
                    log.line(&format!("reply {id} {}{what}", log.ms(at)));
                }
            })
        });
    }
    thread::spawn(move || write(for_client, client, server, delay, Some(replied)));
    Ok(())
}

/// Reads chunks from `from` and hands each, stamped, to its writer; `inspect` sees it after.
/// The end of `from` (or an error) ends the writer's queue.
fn read(
    mut from: TcpStream,
    to: Sender<(Instant, Vec<u8>)>,
    mut inspect: impl FnMut(Instant, &[u8]),
) {
    let mut buffer = vec![0u8; 65536];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let at = Instant::now();
                if to.send((at, buffer[..n].to_vec())).is_err() {
                    break;
                }
                inspect(at, &buffer[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Writes each chunk to `to` at its time plus `delay`, in order; then ends `to`'s direction.
/// If `to` fails, `from` is shut so that its reader ends too.
fn write(
    chunks: Receiver<(Instant, Vec<u8>)>,
    mut to: TcpStream,
    from: TcpStream,
    delay: Duration,
    written: Option<Arc<AtomicBool>>,
) {
    for (at, chunk) in chunks {
        let due = at + delay;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        if to.write_all(&chunk).is_err() {
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
        if let Some(written) = &written {
            written.store(true, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The requests a client sends, read from its chunks as they come (a command may span two).
struct Requests {
    id: u64,
    log: Option<Arc<Log>>,
    pending: Vec<u8>,
}

impl Requests {
    fn new(id: u64, log: Option<Arc<Log>>) -> Self {
        Requests {
            id,
            log,
            pending: Vec::new(),
        }
    }

    /// Logs a chunk: a turn if a reply was delivered since the last one, with the commands it
    /// completed.
    fn chunk(&mut self, at: Instant, chunk: &[u8], turn: bool) {
        let Some(log) = self.log.clone() else { return };
        self.pending.extend_from_slice(chunk);
        let mut names = Vec::new();
        let mut used = 0;
        while let Some((command, size)) = command(&self.pending[used..]) {
            used += size;
            names.push(
                match command.first().map(|n| n.to_ascii_uppercase()).as_deref() {
                    Some(b"EVAL") if command.len() > 1 => {
                        let sha = sha1(command[1]);
                        log.new_script(sha, command[1]);
                        format!("EVAL:{}", hex(&sha))
                    }
                    Some(b"EVALSHA") if command.len() > 1 => {
                        format!(
                            "EVALSHA:{}",
                            String::from_utf8_lossy(command[1]).to_lowercase()
                        )
                    }
                    Some(name) => String::from_utf8_lossy(name).into_owned(),
                    None => "?".into(),
                },
            );
        }
        self.pending.drain(..used);
        let kind = if turn { "turn" } else { "more" };
        let mut line = format!("{kind} {} {}", self.id, log.ms(at));
        for name in names {
            line.push(' ');
            line.push_str(&name);
        }
        log.line(&line);
    }
}

/// The first whole command in `data` (a RESP array of bulk strings, or an inline command),
/// and its length.
fn command(data: &[u8]) -> Option<(Vec<&[u8]>, usize)> {
    let line_end = |from: usize| -> Option<usize> {
        data[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    if data.first() != Some(&b'*') {
        let end = line_end(0)?;
        let words = data[..end]
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        return Some((words, end + 2));
    }
    let end = line_end(0)?;
    let count: usize = std::str::from_utf8(&data[1..end]).ok()?.parse().ok()?;
    let mut at = end + 2;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        if data.get(at) != Some(&b'$') {
            return None;
        }
        let end = line_end(at)?;
        let len: usize = std::str::from_utf8(&data[at + 1..end]).ok()?.parse().ok()?;
        let start = end + 2;
        if data.len() < start + len + 2 {
            return None;
        }
        parts.push(&data[start..start + len]);
        at = start + len + 2;
    }
    Some((parts, at))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-1 (FIPS 180-4), as Redis names a script by it.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (h, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// PR_SET_TIMERSLACK to 1 ns (prctl(2)); std links the C library that has `prctl`.
fn set_timer_slack() {
    extern "C" {
        fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    }
    const PR_SET_TIMERSLACK: i32 = 29;
    // SAFETY: prctl with PR_SET_TIMERSLACK reads only its integer arguments.
    unsafe {
        prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_known_strings() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    #[test]
    fn commands_are_read_whole_or_not_at_all() {
        let data = b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*1\r\n$4\r\nPI";
        let (first, used) = command(data).unwrap();
        assert_eq!(first, [&b"SELECT"[..], b"1"]);
        assert_eq!(command(&data[used..]), None);
        assert_eq!(command(b"PING\r\n"), Some((vec![&b"PING"[..]], 6)));
    }
}
