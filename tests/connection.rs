//! Ways to reach Redis: flags and environment, users and databases, TLS, sockets, Cluster.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    Holder, MutualTls, RedisServer, code, exits_with, keys, redlock, start_servers, succeeded,
    takes_over_on_release, wait_for_holder, wait_for_subscriber, waiter,
};

#[test]
fn the_redis_flag_overrides_the_environment() {
    let server = RedisServer::start();
    let output = redlock("redis://127.0.0.1:1")
        .args([
            "run",
            "-n",
            "flag",
            "--redis",
            &server.url(),
            "--",
            "echo",
            "ok",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("flag").fence]), 1);
}

#[test]
fn the_prefix_comes_from_the_environment_too() {
    let server = RedisServer::start();
    let status = redlock(&server.url())
        .env("REDLOCK_PREFIX", "team-a")
        .args(["run", "-n", "job", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(server.cmd::<i64>(&["EXISTS", "team-a:{job}:fence"]), 1);
}

#[test]
fn users_passwords_and_databases() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let admin = format!("redis://:s3cret@127.0.0.1:{}", server.port);
    let mut connection = redis::Client::open(admin.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all"][..])
        .query(&mut connection)
        .unwrap();
    let alice = format!("redis://alice:wonderland@127.0.0.1:{}/3", server.port);
    let output = redlock(&alice)
        .args(["run", "-n", "acl", "--", "echo", "ok"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _: () = redis::cmd("SELECT").arg(3).query(&mut connection).unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&keys("acl").fence)
        .query(&mut connection)
        .unwrap();
    assert_eq!(exists, 1, "the counter must be in database 3");
}

#[test]
fn tls_with_a_private_ca() {
    let (server, certs) = RedisServer::start_tls();
    let url = format!("rediss://127.0.0.1:{}", server.port);
    assert_eq!(
        succeeded(
            redlock(&url)
                .env("SSL_CERT_FILE", certs.path().join("ca.crt"))
                .args(["run", "-n", "tls", "--", "echo", "over-tls"])
        ),
        b"over-tls\n"
    );
    // Without the CA the certificate is not trusted, and nothing runs.
    let output = redlock(&url)
        .env("SSL_CERT_FILE", "/dev/null")
        .args(["run", "-n", "tls", "--", "echo", "over-tls"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    // A handshake that fails is a failure to connect, as a refused connection is.
    let expected = format!("cannot connect to Redis at 127.0.0.1:{} (TLS)", server.port);
    assert!(stderr.contains(&expected), "{stderr}");
    // `#insecure` skips the check, as the redis crate documents.
    let output = redlock(&format!("{url}/#insecure"))
        .env("SSL_CERT_FILE", "/dev/null")
        .args(["run", "-n", "tls", "--", "echo", "unchecked"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `--tls-auth-clients yes`: the run shows the client certificate of `--tls-cert`; without it,
/// or with one the server's CA did not sign, the server refuses the connection (69).
#[test]
fn mutual_tls_with_a_client_certificate() {
    let tls = MutualTls::start();
    let run = |files: &[(&str, &str)]| {
        let mut command = redlock(&tls.url());
        command.args(["run", "-n", "mtls"]);
        for (option, file) in files {
            command.arg(option).arg(tls.file(file));
        }
        command.args(["--", "echo", "over-mtls"]).output().unwrap()
    };
    let ca = ("--tls-ca", "ca.crt");
    let output = run(&[
        ca,
        ("--tls-cert", "client.crt"),
        ("--tls-key", "client.key"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"over-mtls\n");
    assert_eq!(tls.server.cmd::<i64>(&["GET", &keys("mtls").fence]), 1);
    // The server's reason, in one line that names it.
    let refused = format!(
        "Redis at 127.0.0.1:{} (TLS): the server refused the client certificate: ",
        tls.tls_port
    );
    let stranger = [
        ca,
        ("--tls-cert", "stranger.crt"),
        ("--tls-key", "stranger.key"),
    ];
    for (files, reason) in [
        (&[ca][..], "none was given"),
        (&stranger, "it is not signed by a CA the server trusts"),
    ] {
        let output = run(files);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code::UNAVAILABLE),
            "{files:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{files:?}: the command ran");
        assert!(stderr.starts_with("redlock: "), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("{refused}{reason}")), "{stderr}");
    }
    assert_eq!(tls.server.cmd::<i64>(&["GET", &keys("mtls").fence]), 1);
}

/// REDLOCK_TLS_* serve every subcommand, as the flags do; `--tls-ca` replaces SSL_CERT_FILE,
/// which still serves when it is not given.
#[test]
fn mutual_tls_from_the_environment() {
    let tls = MutualTls::start();
    assert_eq!(
        succeeded(
            redlock(&tls.url())
                .env("REDLOCK_TLS_CA", tls.file("ca.crt"))
                .env("REDLOCK_TLS_CERT", tls.file("client.crt"))
                .env("REDLOCK_TLS_KEY", tls.file("client.key"))
                .args(["run", "-n", "env", "--", "echo", "from-env"])
        ),
        b"from-env\n"
    );
    // SSL_CERT_FILE without --tls-ca; `status` reaches the server (1: the lock is free).
    let output = redlock(&tls.url())
        .env("SSL_CERT_FILE", tls.file("ca.crt"))
        .env("REDLOCK_TLS_CERT", tls.file("client.crt"))
        .env("REDLOCK_TLS_KEY", tls.file("client.key"))
        .args(["status", "-n", "env"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // --tls-ca, not SSL_CERT_FILE: a CA that did not sign the server's certificate fails.
    let stderr = exits_with(
        redlock(&tls.url())
            .env("SSL_CERT_FILE", tls.file("ca.crt"))
            .env("REDLOCK_TLS_CA", tls.file("stranger.crt"))
            .env("REDLOCK_TLS_CERT", tls.file("client.crt"))
            .env("REDLOCK_TLS_KEY", tls.file("client.key"))
            .args(["status", "-n", "env"]),
        code::UNAVAILABLE,
    );
    assert!(stderr.contains("certificate"), "{stderr}");
}

/// The TLS files are read before anything runs: a bad one is a usage error (64) naming it,
/// whatever the subcommand and whether or not a server would have asked for it.
#[test]
fn tls_files_are_checked_before_anything_runs() {
    let tls = MutualTls::start();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    let missing = missing.to_str().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "no PEM here\n").unwrap();
    let notes = notes.to_str().unwrap();
    let (ca, cert, key) = (
        tls.file("ca.crt"),
        tls.file("client.crt"),
        tls.file("client.key"),
    );
    let stranger = tls.file("stranger.key");
    let cases: [(&[&str], String); 7] = [
        (
            &["--tls-ca", missing],
            format!("cannot read --tls-ca {missing}: No such file or directory"),
        ),
        (
            &["--tls-cert", missing, "--tls-key", &key],
            format!("cannot read --tls-cert {missing}"),
        ),
        (
            &["--tls-ca", notes],
            format!("no PEM certificate in --tls-ca {notes}"),
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &ca],
            format!("no PEM private key in --tls-key {ca}"),
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &stranger],
            format!("--tls-key {stranger} does not go with --tls-cert {cert}"),
        ),
        (&["--tls-cert", &cert], "--tls-key <FILE>".to_string()),
        (&["--tls-key", &key], "--tls-cert <FILE>".to_string()),
    ];
    for (options, expected) in cases {
        let run: (&[&str], &[&str]) = (&["run", "-n", "x"], &["--", "echo", "ran"]);
        for (subcommand, command) in [run, (&["list"], &[])] {
            let output = redlock(&tls.url())
                .args(subcommand)
                .args(options)
                .args(command)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(code::USAGE),
                "{options:?}: {stderr}"
            );
            assert!(output.stdout.is_empty(), "{options:?}: something ran");
            assert!(stderr.starts_with("redlock: "), "{stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(&expected), "{options:?}: {stderr}");
        }
    }
    // The environment's files are checked as the flags' are, with no TLS server at all.
    let stderr = exits_with(
        redlock(&tls.server.url())
            .env("REDLOCK_TLS_CA", missing)
            .args(["run", "-n", "x", "--", "echo", "ran"]),
        code::USAGE,
    );
    assert!(stderr.contains(missing), "{stderr}");
    assert_eq!(tls.server.cmd::<i64>(&["EXISTS", &keys("x").fence]), 0);
}

#[test]
fn unix_socket_urls_work() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let _server = RedisServer::start_with(&["--unixsocket", socket.to_str().unwrap()]);
    let url = format!("redis+unix://{}", socket.display());
    assert_eq!(
        succeeded(redlock(&url).args(["run", "-n", "x", "--", "echo", "via-socket"])),
        b"via-socket\n"
    );
}

/// A one-node cluster owns every slot, yet still refuses a script whose keys span slots
/// (CROSSSLOT): the hash tag is what lets every script run.
#[test]
fn scripts_run_on_redis_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes.conf");
    let server = RedisServer::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        nodes.to_str().unwrap(),
    ]);
    let _: () = server.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    crate::support::wait_until("the cluster is up", || {
        server
            .cmd::<String>(&["CLUSTER", "INFO"])
            .contains("cluster_state:ok")
    });
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "clustered",
            "--min-hold",
            "0s",
            "--",
            "echo",
            "ok",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Servers addressed by host name (`localhost`, from /etc/hosts), one or several: their names
/// are looked up once per run, and every connection uses the answer: the holder's lock
/// requests and its control channel, the waiter's and its release notices (issue 10, defect 7).
#[test]
fn servers_addressed_by_host_name() {
    let servers = start_servers(3);
    let by_name = |s: &RedisServer| format!("redis://localhost:{}", s.port);
    let several = servers.iter().map(by_name).collect::<Vec<_>>().join(",");
    for (name, url, reached) in [
        ("one", by_name(&servers[0]), &servers[..1]),
        ("several", several, &servers[..]),
    ] {
        let mut holder = Holder::start(&url, &["-n", name, "--ttl", "60s"]);
        for server in reached {
            wait_for_holder(server, name);
        }
        let dir = tempfile::tempdir().unwrap();
        let waiter = waiter(&url, name, dir.path());
        for server in reached {
            wait_for_subscriber(server, name);
        }
        takes_over_on_release(&mut holder, waiter, dir.path());
    }
}

/// A host name whose lookup does not end (a nameserver that does not answer, here one on the
/// loopback that nobody serves, given to redlock in a mount namespace of its own) costs no
/// more than the connect time-out, 3 s, and is reported as the server's failure; musl's
/// resolver itself would wait 30 s. (glibc's gives up at once when the nameserver's port is
/// refused: the failure is the same, with its own cause, and sooner.) Skipped where
/// unprivileged namespaces are not allowed.
#[test]
fn a_host_name_that_does_not_resolve_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n",
    )
    .unwrap();
    let allowed = in_namespace(Command::new("true"), &resolv).status();
    if !allowed.is_ok_and(|status| status.success()) {
        eprintln!("skipped: no unprivileged user and mount namespaces here");
        return;
    }
    let servers = start_servers(2);
    let hung = "redis://hung.test:1";
    let urls = format!(
        "redis://localhost:{},redis://localhost:{},{hung}",
        servers[0].port, servers[1].port
    );
    let timed_out = if cfg!(target_env = "musl") {
        "cannot connect to Redis at hung.test:1: cannot resolve hung.test: timed out"
    } else {
        "cannot connect to Redis at hung.test:1: cannot resolve hung.test: "
    };
    let run = |url: &str, args: &[&str]| {
        let started = Instant::now();
        let output = in_namespace(redlock(url), &resolv)
            .args(args)
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "{args:?}");
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        (
            output.status.code(),
            text(output.stdout),
            text(output.stderr),
        )
    };
    // Several servers (one thread, non-blocking sockets): the other two make a majority.
    let (code, stdout, stderr) = run(&urls, &["run", "-n", "hung", "-v", "--", "echo", "ran"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "ran\n"), "{stderr}");
    assert!(stderr.contains(timed_out), "{stderr}");
    // The only server (redis-rs).
    let (code, _, stderr) = run(hung, &["run", "-n", "hung", "--", "true"]);
    assert_eq!(code, Some(code::UNAVAILABLE), "{stderr}");
    assert!(stderr.contains(timed_out), "{stderr}");
    // The operators' commands.
    let (code, stdout, stderr) = run(&urls, &["status", "-n", "hung"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout.contains(&format!("hung.test:1  unavailable: {timed_out}")),
        "{stdout}"
    );
}

/// `command`, run with `resolv` in place of /etc/resolv.conf.
fn in_namespace(command: Command, resolv: &Path) -> Command {
    let mut namespaced = Command::new("unshare");
    namespaced
        .args([
            "-rm",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
        ])
        .arg(resolv)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => namespaced.env(key, value),
            None => namespaced.env_remove(key),
        };
    }
    namespaced
}
