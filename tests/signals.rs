//! Signals sent to redlock reach the command; its status is kept and the lock is freed at once.

use nix::sys::signal::{Signal, kill};

use crate::support::{Holder, RedisServer};

#[test]
fn each_forwarded_signal_reaches_the_command() {
    let server = RedisServer::start();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        let name = &signal.as_str()[3..];
        // `wait` returns as soon as a trapped signal arrives; the trap chooses the exit status.
        let script = format!(
            "trap 'echo got-{name} > got; exit 42' {name}; sleep 1000 & echo $$ > pid; echo ready; wait"
        );
        // A long TTL: a lock still there after exit would be there for a minute.
        let mut holder =
            Holder::start_script(&server.url(), &["-n", "sig", "--ttl", "60s"], &script);
        kill(holder.redlock_pid(), signal).unwrap();
        let got = holder.path("got");
        let (status, stderr) = holder.wait();
        assert_eq!(status.code(), Some(42), "{name}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(got).unwrap(),
            format!("got-{name}\n")
        );
        assert_eq!(
            server.cmd::<i64>(&["EXISTS", "redlock:{sig}"]),
            0,
            "{name}: lock not released"
        );
    }
}

#[test]
fn a_signal_that_kills_the_command_gives_128_plus_n() {
    let server = RedisServer::start();
    let mut holder = Holder::start_script(
        &server.url(),
        &["-n", "sig"],
        "echo $$ > pid; echo ready; exec sleep 1000",
    );
    kill(holder.redlock_pid(), Signal::SIGTERM).unwrap();
    let (status, _) = holder.wait();
    assert_eq!(status.code(), Some(143));
    assert_eq!(server.cmd::<i64>(&["EXISTS", "redlock:{sig}"]), 0);
}
