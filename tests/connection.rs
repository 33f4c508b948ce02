//! Ways to reach Redis: flags and environment, users and databases, TLS, sockets, Cluster.

use crate::support::{RedisServer, redlock};

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
    assert_eq!(server.cmd::<i64>(&["EXISTS", "redlock:{flag}:fence"]), 1);
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
        .arg("redlock:{acl}:fence")
        .query(&mut connection)
        .unwrap();
    assert_eq!(exists, 1, "the counter must be in database 3");
}

#[test]
fn tls_with_a_private_ca() {
    let (server, certs) = RedisServer::start_tls();
    let url = format!("rediss://127.0.0.1:{}", server.port);
    let output = redlock(&url)
        .env("SSL_CERT_FILE", certs.path().join("ca.crt"))
        .args(["run", "-n", "tls", "--", "echo", "over-tls"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"over-tls\n");
    // Without the CA the certificate is not trusted, and nothing runs.
    let output = redlock(&url)
        .env("SSL_CERT_FILE", "/dev/null")
        .args(["run", "-n", "tls", "--", "echo", "over-tls"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&output.stderr).contains("certificate"));
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

#[test]
fn unix_socket_urls_work() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let _server = RedisServer::start_with(&["--unixsocket", socket.to_str().unwrap()]);
    let url = format!("redis+unix://{}", socket.display());
    let output = redlock(&url)
        .args(["run", "-n", "x", "--", "echo", "via-socket"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"via-socket\n");
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
