//! How a failure is worded: one line, the usual causes named, and the server named once, by
//! its address (never its password); and whether it is worth waiting out (`transient`): a
//! server that cannot be reached, or is failing over, may be back within `--wait`; a refused
//! login or a key in the way will not be.

use anyhow::anyhow;
use rustls::AlertDescription;

/// A failure that passes: a connection refused, reset or timed out, a server loading or busy,
/// a cluster or a Sentinel set in the middle of a failover. Its text is the whole message.
#[derive(Debug)]
pub struct Transient(pub String);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

/// A transient failure with these words.
pub(super) fn passing(text: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Transient(text.into()))
}

/// Whether `error` is one that passes (see `Transient`): the one place that says so.
pub fn transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Transient>())
}

/// The replies of a server that will answer otherwise in a moment: loading its data, running a
/// long script, a replica without its primary, a cluster failing over, a primary turned replica.
const PASSING_REPLIES: [&str; 7] = [
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "READONLY",
    "UNBLOCKED",
];

/// `error`, naming the server at `address`; while connecting or logging in, as a failure to
/// connect.
pub(super) fn named(error: anyhow::Error, address: &str, connecting: bool) -> anyhow::Error {
    error.context(at(address, connecting))
}

/// A server that had not answered when the outcome was decided (a `None` answer). A string:
/// it is written on every run that goes ahead without a slow server, so it costs no error.
pub fn unanswered(address: &str) -> String {
    format!("{}: no answer in time", at(address, false))
}

fn at(address: &str, connecting: bool) -> String {
    let what = if connecting {
        "cannot connect to Redis at"
    } else {
        "Redis at"
    };
    format!("{what} {address}")
}

/// A one-line description of an error a server answered, with the usual causes named.
pub(super) fn describe_reply(text: &str) -> anyhow::Error {
    if text.contains("WRONGPASS") || text.contains("invalid password") {
        anyhow!("authentication failed: wrong username or password")
    } else if text.contains("NOAUTH") || text.contains("unauthenticated") {
        anyhow!("authentication required: give the password in the URL (redis://:PASSWORD@host)")
    } else if let Some((named, _)) = text
        .strip_prefix("WRONGTYPE ")
        .and_then(|t| t.split_once(", not a lock"))
    {
        // lock_type.lua named the key and its type (Redis adds where in the script after it).
        anyhow!("{WRONG_TYPE}: {}, not a lock", one_line(named))
    } else if text.contains("WRONGTYPE") || text.contains("not an integer") {
        anyhow!("{WRONG_TYPE}")
    } else if PASSING_REPLIES
        .iter()
        .any(|prefix| text.split_whitespace().next() == Some(prefix))
    {
        passing(one_line(text))
    } else {
        anyhow!("{}", one_line(text))
    }
}

/// Where the rule an ACL needs is written down.
const ACL_RULE: &str = "docs/security.md gives the rule redlock needs";

/// `describe_reply`, for the answer to a request; an ACL's refusal names what the Redis user
/// may not do. Redis 7.2 and Valkey name the command, inside a script too (`... no
/// permissions to run the 'zcard' command`); inside a script 6.2 and 7.0 name only the line
/// (`... script: SHA, on @user_script:N.`), and the command is read from that line of the
/// script's `code` as sent.
pub(super) fn describe_refusal(text: &str, code: Option<&str>) -> anyhow::Error {
    let refused = |what: String| anyhow!("the Redis user {what} (an ACL): {ACL_RULE}");
    let in_script = text.contains("script");
    let where_ = if in_script { " in a lock script" } else { "" };
    if let Some((_, rest)) = text.split_once("permissions to run the '")
        && let Some((command, _)) = rest.split_once('\'')
    {
        return refused(format!(
            "may not run {}{where_}",
            command.to_ascii_uppercase()
        ));
    }
    let acl = text.starts_with("NOPERM")
        || text.contains("ACL failure")
        || text.contains("The user executing the script can't");
    if !acl {
        return describe_reply(text);
    }
    let named = || {
        script_line(text)
            .zip(code)
            .and_then(|(line, code)| code.lines().nth(line.checked_sub(1)?))
            .and_then(called_in)
    };
    let what = if text.contains("key") {
        "may not touch the keys of"
    } else if text.contains("channel") {
        "may not use the channel of"
    } else {
        "may not run"
    };
    match (in_script, named()) {
        (true, Some(command)) => refused(format!("{what} {command} in a lock script")),
        (true, None) => refused(format!("{what} a command of a lock script")),
        (false, _) if text.contains("key") => refused("may not touch the lock's keys".into()),
        (false, _) if text.contains("channel") => {
            refused("may not listen on the lock's channels".into())
        }
        (false, _) => refused(format!("is refused: {}", one_line(text))),
    }
}

/// N in Redis's `..., on @user_script:N.` (7.0), or `@user_script: N:` (6.2): the first.
fn script_line(text: &str) -> Option<usize> {
    let after = text.split_once("@user_script:")?.1.trim_start();
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The command a line of Lua calls: `redis.call('ZADD', ...)` or `pcall(redis.call, 'X', ...)`.
fn called_in(line: &str) -> Option<String> {
    let after = line.split_once("redis.call")?.1;
    let quoted = after.split_once('\'')?.1;
    Some(quoted.split_once('\'')?.0.to_ascii_uppercase())
}

/// A one-line description of a failed connection or socket operation.
pub(super) fn describe_io(error: &std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind::*;
    // A server down, restarting or cut off may answer the next time; a certificate refused,
    // TLS spoken to a plain port or a host without an address will not.
    match error.kind() {
        TimedOut | WouldBlock => passing("timed out"),
        NotFound => passing("no such socket"),
        ConnectionRefused => passing("connection refused"),
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof
        | HostUnreachable | NetworkUnreachable | NetworkDown | Interrupted => {
            passing(one_line(&error.to_string()))
        }
        _ => refused_certificate(error)
            .unwrap_or_else(|| anyhow!("{}", one_line(&error.to_string()))),
    }
}

/// A server's TLS alert that says it refused our client certificate (`--tls-cert`), in words.
/// With TLS 1.3 it comes after the handshake, in answer to the first request.
fn refused_certificate(error: &std::io::Error) -> Option<anyhow::Error> {
    use AlertDescription::*;
    let Some(&rustls::Error::AlertReceived(alert)) = error.get_ref()?.downcast_ref() else {
        return None;
    };
    let reason = match alert {
        CertificateRequired => "none was given (--tls-cert, --tls-key)",
        UnknownCA => "it is not signed by a CA the server trusts",
        CertificateExpired => "it has expired",
        CertificateRevoked => "it is revoked",
        BadCertificate | UnsupportedCertificate | CertificateUnknown => "it is not acceptable",
        AccessDenied => "access denied",
        _ => return None,
    };
    Some(anyhow!(
        "the server refused the client certificate: {reason}"
    ))
}

pub(super) fn not_redis() -> anyhow::Error {
    anyhow!("the server does not answer like Redis (is this the right port?)")
}

/// A key of another type where a script expects its own (`Lock` names the keys).
pub const WRONG_TYPE: &str = "a key of another type is in the way";

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod refusals {
    use super::*;

    const CODE: &str = "local a = 1\nredis.call('ZCARD', KEYS[2])\nlocal s, r = pcall(redis.call, 'SPUBLISH', c, m)";

    fn said(text: &str) -> String {
        format!("{:#}", describe_refusal(text, Some(CODE)))
    }

    #[test]
    fn each_server_s_wording_names_the_command() {
        let name = |text: &str, what: &str| {
            let said = said(text);
            assert!(
                said.contains(what) && said.contains("docs/security.md"),
                "{text}: {said}"
            );
        };
        // Redis 7.0, inside a script: the line; 6.2 says it twice, the first is right.
        name(
            "ERR The user executing the script can't run this command or subcommand script: abc, on @user_script:2.",
            "may not run ZCARD in a lock script",
        );
        name(
            "ERR Error running script (call to f_abc): @user_script:3: @user_script: 3: The user executing the script can't run this command or subcommand",
            "may not run SPUBLISH in a lock script",
        );
        name(
            "ERR The user executing the script can't publish to the channel mentioned in the command script: abc, on @user_script:3.",
            "may not use the channel of SPUBLISH",
        );
        // 7.2 and Valkey name it, in a script or not.
        name(
            "ERR ACL failure in script: User u has no permissions to run the 'zcard' command script: abc, on @user_script:2.",
            "may not run ZCARD in a lock script",
        );
        name(
            "NOPERM User u has no permissions to run the 'role' command",
            "may not run ROLE",
        );
        name(
            "NOPERM this user has no permissions to run the 'scan' command",
            "may not run SCAN",
        );
        name(
            "NOPERM this user has no permissions to access one of the keys used as arguments",
            "may not touch the lock's keys",
        );
        name(
            "NOPERM User u has no permissions to access the 'redlock:{x}' key",
            "may not touch the lock's keys",
        );
        name(
            "NOPERM this user has no permissions to access one of the channels used as arguments",
            "may not listen on the lock's channels",
        );
        // Not an ACL's.
        assert!(!said("ERR something else").contains("ACL"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_passes_is_told_from_what_does_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(transient(&named(describe_io(&refused), "h:1", true)));
        for text in [
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "MASTERDOWN Link with MASTER is down",
        ] {
            assert!(transient(&describe_reply(text)), "{text}");
        }
        for text in [
            "WRONGPASS invalid username-password pair",
            "NOAUTH Authentication required.",
            "NOPERM this user has no permissions",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR unknown command 'EVALSHA'",
            "BUSYKEY Target key name already exists.",
        ] {
            assert!(!transient(&describe_reply(text)), "{text}");
        }
        assert!(!transient(&not_redis()));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(transient(&describe_io(&reset)));
        for kind in [
            std::io::ErrorKind::InvalidData,
            std::io::ErrorKind::PermissionDenied,
            std::io::ErrorKind::AddrNotAvailable,
        ] {
            assert!(!transient(&describe_io(&kind.into())), "{kind:?}");
        }
    }
}
