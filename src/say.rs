//! redlock's own lines on stderr, all printed here: each `redlock: ...` line is one call to
//! [`say`], naming its [`Event`], its message and the numbers the message states.
//!
//! ```ignore
//! say(
//!     Event::Acquired,
//!     format!("acquired '{name}' (fence {fence}) in {}", human(took)),
//!     &[("fence", fence.into()), ("took_ms", ms(took))],
//! );
//! // A warning that is no failure (a metrics file that cannot be written, a failed ping):
//! say::warning(format!("cannot write {}: {e:#}", path.display()), &[]);
//! ```
//!
//! The text form (the default) is `redlock: MESSAGE`, one line, as it always was; a warning's
//! message starts with `warning: `. With `--log-format json` (or `REDLOCK_LOG_FORMAT=json`)
//! each line is one JSON object instead, `{"event":…,"level":…,"name":…,"message":…}` followed
//! by the fields, durations as `*_ms` integers; `name` is the lock's (null when there is none:
//! `list`, a usage error). When stderr is the systemd journal, each line starts with the `<N>`
//! priority journald reads (sd-daemon(3)). A new event or field is documented in
//! docs/events.md, which scripts read: the names there are stable.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::ValueEnum;
use serde_json::Value;

/// One field of a JSON line: a name and its value.
pub type Field = (&'static str, Value);

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One `redlock: MESSAGE` line each.
    Text,
    /// One JSON object per line.
    Json,
}

/// What a line is about; each has one syslog priority (`Event::level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Waiting,
    Replacing,
    Acquired,
    Busy,
    Unavailable,
    Retrying,
    Unlocked,
    Extended,
    ExtensionFailed,
    Lost,
    Stopping,
    GuardDied,
    Leftovers,
    Released,
    Kept,
    ReleaseFailed,
    Exiting,
    Asking,
    HolderReleased,
    NoAnswer,
    NotReleased,
    Broken,
    NothingToBreak,
    Warning,
    Error,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Waiting => "waiting",
            Event::Replacing => "replacing",
            Event::Acquired => "acquired",
            Event::Busy => "busy",
            Event::Unavailable => "unavailable",
            Event::Retrying => "retrying",
            Event::Unlocked => "unlocked",
            Event::Extended => "extended",
            Event::ExtensionFailed => "extension_failed",
            Event::Lost => "lost",
            Event::Stopping => "stopping",
            Event::GuardDied => "guard_died",
            Event::Leftovers => "leftovers",
            Event::Released => "released",
            Event::Kept => "kept",
            Event::ReleaseFailed => "release_failed",
            Event::Exiting => "exiting",
            Event::Asking => "asking",
            Event::HolderReleased => "holder_released",
            Event::NoAnswer => "no_answer",
            Event::NotReleased => "not_released",
            Event::Broken => "broken",
            Event::NothingToBreak => "nothing_to_break",
            Event::Warning => "warning",
            Event::Error => "error",
        }
    }

    /// Its priority: what `journalctl -p` filters on. A run that did not do its job (lost,
    /// stopped, unavailable, failed) is an error; a skipped run or a hitch is a warning.
    pub fn level(self) -> Level {
        match self {
            Event::Unavailable | Event::Lost | Event::GuardDied | Event::Exiting | Event::Error => {
                Level::Err
            }
            Event::Busy
            | Event::Unlocked
            | Event::ExtensionFailed
            | Event::Retrying
            | Event::Stopping
            | Event::ReleaseFailed
            | Event::NoAnswer
            | Event::NotReleased
            | Event::Warning => Level::Warning,
            Event::Replacing
            | Event::Asking
            | Event::HolderReleased
            | Event::Broken
            | Event::NothingToBreak => Level::Notice,
            Event::Waiting | Event::Acquired | Event::Leftovers | Event::Released | Event::Kept => {
                Level::Info
            }
            Event::Extended => Level::Debug,
        }
    }
}

/// A syslog priority, as `<N>` prefixes and `journalctl -p` number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Err => "err",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

static JSON: AtomicBool = AtomicBool::new(false);
static NAME: OnceLock<String> = OnceLock::new();
static JOURNAL: OnceLock<bool> = OnceLock::new();

/// Chooses the format of every later line: from main, before anything is said.
pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

/// The lock every later line is about: set once, when the command line names it.
pub fn set_name(name: &str) {
    let _ = NAME.set(name.to_string());
}

/// The format asked for, read before clap parses the command line, so that a usage error is
/// said in it too: `--log-format F` or `--log-format=F` before any `--` (after it come the
/// command's own arguments), else `REDLOCK_LOG_FORMAT`. A value that is not a format (the
/// usage error itself, maybe) is text.
pub fn format_before_parsing(args: &[OsString], env: Option<OsString>) -> Format {
    let mut given = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if arg == "--log-format" {
            given = args.next().cloned();
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--log-format=")) {
            given = Some(value.into());
        }
    }
    given
        .or(env.filter(|value| !value.is_empty()))
        .and_then(|value| Format::from_str(value.to_str()?, false).ok())
        .unwrap_or(Format::Text)
}

/// A REDLOCK_LOG_FORMAT that is not a format, when no `--log-format` before `--` overrides it.
pub fn bad_variable(args: &[OsString], env: Option<OsString>) -> Option<String> {
    for arg in args {
        if arg == "--" {
            break;
        }
        if arg == "--log-format" || arg.to_str().is_some_and(|a| a.starts_with("--log-format=")) {
            return None;
        }
    }
    let value = env.filter(|value| !value.is_empty())?;
    let text = value.to_string_lossy();
    Format::from_str(&text, false)
        .is_err()
        .then(|| text.into_owned())
}

/// Prints one line of `event`. `message` is the text after `redlock: `; `fields` are the
/// numbers (and names) it states, durations in `*_ms` (see [`ms`]), for the JSON form only.
pub fn say(event: Event, message: impl AsRef<str>, fields: &[Field]) {
    let format = match JSON.load(Ordering::Relaxed) {
        true => Format::Json,
        false => Format::Text,
    };
    let journal = *JOURNAL.get_or_init(stderr_is_journal);
    let line = render(
        format,
        journal,
        event,
        NAME.get().map(String::as_str),
        message.as_ref(),
        fields,
    );
    // One write: a line from the heartbeat thread never lands inside another. A stderr that is
    // gone is no reason to fail (eprintln! would panic).
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A warning: `redlock: warning: MESSAGE`, or a `warning` event.
pub fn warning(message: impl AsRef<str>, fields: &[Field]) {
    say(
        Event::Warning,
        format!("warning: {}", message.as_ref()),
        fields,
    );
}

/// A duration as a `*_ms` field: whole milliseconds.
pub fn ms(duration: Duration) -> Value {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .into()
}

/// The line as printed, newline included.
fn render(
    format: Format,
    journal: bool,
    event: Event,
    name: Option<&str>,
    message: &str,
    fields: &[Field],
) -> String {
    let level = event.level();
    let prefix = match journal {
        true => format!("<{}>", level as u8),
        false => String::new(),
    };
    match format {
        // Each line of a message of several (a panic's) is an entry of its own in the journal.
        Format::Text => format!(
            "{prefix}redlock: {}\n",
            message.replace('\n', &format!("\n{prefix}"))
        ),
        Format::Json => {
            let text = |s: &str| Value::from(s).to_string();
            let mut line = format!(
                "{prefix}{{\"event\":{},\"level\":{},\"name\":{},\"message\":{}",
                text(event.as_str()),
                text(level.as_str()),
                name.map_or("null".into(), text),
                text(message)
            );
            for (key, value) in fields {
                debug_assert!(!["event", "level", "name", "message"].contains(key));
                line.push_str(&format!(",{}:{value}", text(key)));
            }
            line.push_str("}\n");
            line
        }
    }
}

/// Whether stderr is a stream to the journal: systemd sets `JOURNAL_STREAM` to its device and
/// inode (systemd.exec(5)). A variable inherited by a process whose stderr went elsewhere (a
/// file, a pipe to another program) does not match, and then no line gets a prefix.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    journal_matches(&stream.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// `DEV:INODE` in decimal, as systemd writes it, against stderr's device and inode.
fn journal_matches(stream: &str, dev: u64, ino: u64) -> bool {
    let parsed = stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)));
    parsed == Some((dev, ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_the_line_it_always_was() {
        let line = render(Format::Text, false, Event::Busy, Some("x"), "busy", &[]);
        assert_eq!(line, "redlock: busy\n");
        let line = render(Format::Text, true, Event::Extended, None, "a\nb", &[]);
        assert_eq!(line, "<7>redlock: a\n<7>b\n");
    }

    #[test]
    fn json_is_one_object_in_a_stable_order() {
        let fields = [
            ("fence", json!(7)),
            ("took_ms", ms(Duration::from_micros(2500))),
        ];
        let line = render(
            Format::Json,
            false,
            Event::Acquired,
            Some("b\"k"),
            "a\nb",
            &fields,
        );
        let expected = concat!(
            r#"{"event":"acquired","level":"info","name":"b\"k","#,
            r#""message":"a\nb","fence":7,"took_ms":2}"#,
            "\n"
        );
        assert_eq!(line, expected);
        let line = render(Format::Json, true, Event::Error, None, "bad", &[]);
        let (prefix, object) = line.split_at(3);
        assert_eq!(prefix, "<3>");
        let object: Value = serde_json::from_str(object).unwrap();
        assert_eq!(object["name"], Value::Null);
        assert_eq!(object["level"], "err");
    }

    #[test]
    fn the_journal_is_recognised_by_device_and_inode() {
        assert!(journal_matches("64768:1234", 64768, 1234));
        assert!(!journal_matches("64768:1235", 64768, 1234));
        assert!(!journal_matches("64768", 64768, 1234));
        assert!(!journal_matches("x:y", 0, 0));
        assert!(!journal_matches("", 0, 0));
    }

    #[test]
    fn the_format_is_read_before_parsing() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let json = Some(OsString::from("json"));
        let early = format_before_parsing;
        assert_eq!(
            early(&args(&["run", "--log-format", "json"]), None),
            Format::Json
        );
        assert_eq!(
            early(&args(&["--log-format=json", "run"]), None),
            Format::Json
        );
        assert_eq!(early(&args(&["run"]), json.clone()), Format::Json);
        assert_eq!(
            early(&args(&["--log-format", "text"]), json.clone()),
            Format::Text
        );
        // The command's own arguments, a bad value, an empty variable: text.
        assert_eq!(
            early(&args(&["run", "--", "--log-format=json"]), None),
            Format::Text
        );
        assert_eq!(early(&args(&["--log-format", "yaml"]), json), Format::Text);
        assert_eq!(early(&args(&[]), Some(OsString::new())), Format::Text);
    }

    /// Scripts read the names in docs/events.md: each event has its own section there.
    #[test]
    fn every_event_is_documented_once() {
        let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md");
        let doc = std::fs::read_to_string(doc).unwrap();
        let names: std::collections::HashSet<&str> =
            ALL.iter().map(|event| event.as_str()).collect();
        assert_eq!(names.len(), ALL.len());
        for name in names {
            assert!(
                doc.contains(&format!("\n### `{name}`")),
                "{name} is not in docs/events.md"
            );
        }
    }

    /// Every event, for the tests (docs/events.md documents each).
    pub const ALL: [Event; 24] = [
        Event::Waiting,
        Event::Replacing,
        Event::Acquired,
        Event::Busy,
        Event::Unavailable,
        Event::Unlocked,
        Event::Extended,
        Event::ExtensionFailed,
        Event::Lost,
        Event::Stopping,
        Event::GuardDied,
        Event::Leftovers,
        Event::Released,
        Event::Kept,
        Event::ReleaseFailed,
        Event::Exiting,
        Event::Asking,
        Event::HolderReleased,
        Event::NoAnswer,
        Event::NotReleased,
        Event::Broken,
        Event::NothingToBreak,
        Event::Warning,
        Event::Error,
    ];
}
