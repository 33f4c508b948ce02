//! How a failure is worded: one line, the usual causes named, and the server named once, by
//! its address (never its password); and whether it is worth waiting out (`transient`): a
//! server that cannot be reached, or is failing over, may be back within `--wait`; a refused
//! login or a key in the way will not be.

use anyhow::anyhow;
use rustls::AlertDescription;

/// What kind of failure an error is, decided once, where the reply or the socket's error is
/// read (`Class::of`, `describe_io`): nobody else reads a message's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Cannot be reached now: refused, reset, timed out, closed, its address not known yet.
    Unreachable,
    /// Will answer otherwise in a moment: loading, busy, a cluster failing over.
    Busy,
    /// READONLY: a primary turned replica.
    ReadOnly,
    /// MOVED or ASK: a cluster's redirect (`Redirect::parse` reads where to).
    Redirect,
    /// NOSCRIPT: the script is not in the server's cache.
    NoScript,
    /// An ACL refused a command, a key or a channel.
    NoPermission,
    WrongPassword,
    NoPassword,
    /// A key of another type in a script's way; `named` by lock_type.lua: the key, its type.
    WrongType {
        named: Option<String>,
    },
    /// CROSSSLOT: the keys of one request are in several slots.
    CrossSlot,
    /// A cluster command to a server without cluster support.
    NotACluster,
    Other,
}

impl Class {
    /// The class of a server's error reply.
    pub fn of(text: &str) -> Class {
        let first = text.split_whitespace().next().unwrap_or_default();
        let has = |words: &str| text.contains(words);
        match first {
            "MOVED" | "ASK" => Class::Redirect,
            "NOSCRIPT" => Class::NoScript,
            "READONLY" => Class::ReadOnly,
            "CROSSSLOT" => Class::CrossSlot,
            "NOPERM" => Class::NoPermission,
            _ if PASSING_REPLIES.contains(&first) => Class::Busy,
            _ if has("ACL failure") || has("The user executing the script can't") => {
                Class::NoPermission
            }
            _ if has("WRONGPASS") || has("invalid password") => Class::WrongPassword,
            _ if has("NOAUTH") || has("unauthenticated") => Class::NoPassword,
            // lock_type.lua names the key and its type (Redis adds where in the script after).
            "WRONGTYPE" => Class::WrongType {
                named: (text.strip_prefix("WRONGTYPE "))
                    .and_then(|t| t.split_once(", not a lock"))
                    .map(|(named, _)| one_line(named)),
            },
            _ if has("WRONGTYPE") || has("not an integer") => Class::WrongType { named: None },
            _ if has("cluster support disabled") => Class::NotACluster,
            _ => Class::Other,
        }
    }

    /// Whether a failure of this class passes (a server down, restarting or failing over may
    /// answer the next time; a refused login or a key in the way will not): worth waiting out
    /// within `--wait`.
    pub fn passes(&self) -> bool {
        matches!(self, Class::Unreachable | Class::Busy | Class::ReadOnly)
    }
}

/// A failure, worded, and its class. Its text is the whole message.
#[derive(Debug)]
pub struct Failed {
    pub class: Class,
    message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// A failure of `class`, in these words.
pub fn failed(class: Class, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failed {
        class,
        message: message.into(),
    })
}

/// A failure to reach a server, in these words: it passes.
pub(super) fn passing(text: impl Into<String>) -> anyhow::Error {
    failed(Class::Unreachable, text)
}

/// The class of `error`, or of the failure it wraps; none for redlock's own errors.
pub fn class(error: &anyhow::Error) -> Option<&Class> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failed>())
        .map(|failed| &failed.class)
}

/// Whether `error` is one that passes (`Class::passes`): the one place that says so.
pub fn transient(error: &anyhow::Error) -> bool {
    class(error).is_some_and(Class::passes)
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
    let class = Class::of(text);
    let message = match &class {
        Class::WrongPassword => "authentication failed: wrong username or password".into(),
        Class::NoPassword => {
            "authentication required: give the password in the URL (redis://:PASSWORD@host)".into()
        }
        Class::WrongType { named: Some(named) } => format!("{WRONG_TYPE}: {named}, not a lock"),
        Class::WrongType { named: None } => WRONG_TYPE.into(),
        _ => one_line(text),
    };
    failed(class, message)
}

/// Where the rule an ACL needs is written down.
const ACL_RULE: &str = "docs/security.md gives the rule redlock needs";

/// `describe_reply`, for the answer to a request; an ACL's refusal names what the Redis user
/// may not do. Redis 7.2 and Valkey name the command, inside a script too (`... no
/// permissions to run the 'zcard' command`); inside a script 6.2 and 7.0 name only the line
/// (`... script: SHA, on @user_script:N.`), and the command is read from that line of the
/// script's `code` as sent.
pub(super) fn describe_refusal(text: &str, code: Option<&str>) -> anyhow::Error {
    let refused = |what: String| {
        let message = format!("the Redis user {what} (an ACL): {ACL_RULE}");
        failed(Class::NoPermission, message)
    };
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
    if Class::of(text) != Class::NoPermission {
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

    #[test]
    fn each_reply_is_classified_once_and_keeps_its_class_in_context() {
        let named = |key: &str| Class::WrongType {
            named: Some(key.into()),
        };
        for (text, class) in [
            ("MOVED 3999 127.0.0.1:6381", Class::Redirect),
            ("ASK 3999 127.0.0.1:6381", Class::Redirect),
            ("NOSCRIPT No matching script.", Class::NoScript),
            (
                "READONLY You can't write against a read only replica.",
                Class::ReadOnly,
            ),
            (
                "CROSSSLOT Keys in request don't hash to the same slot",
                Class::CrossSlot,
            ),
            (
                "ERR This instance has cluster support disabled",
                Class::NotACluster,
            ),
            (
                "NOPERM User u has no permissions to run the 'role' command",
                Class::NoPermission,
            ),
            (
                "ERR ACL failure in script: User u has no permissions",
                Class::NoPermission,
            ),
            (
                "WRONGPASS invalid username-password pair",
                Class::WrongPassword,
            ),
            ("NOAUTH Authentication required.", Class::NoPassword),
            (
                "LOADING Redis is loading the dataset in memory",
                Class::Busy,
            ),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                Class::WrongType { named: None },
            ),
            (
                "WRONGTYPE redlock:{a} is a list, not a lock script: x",
                named("redlock:{a} is a list"),
            ),
            (
                "ERR value is not an integer or out of range",
                Class::WrongType { named: None },
            ),
            ("ERR unknown command 'EVALSHA'", Class::Other),
        ] {
            assert_eq!(Class::of(text), class, "{text}");
            let error = named_error(describe_reply(text));
            assert_eq!(self::class(&error), Some(&class), "{text}");
        }
        assert_eq!(self::class(&not_redis()), None);
    }

    fn named_error(error: anyhow::Error) -> anyhow::Error {
        named(error, "h:1", false).context("cannot take the lock")
    }
}
