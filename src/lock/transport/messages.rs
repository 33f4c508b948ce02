//! What a message on a subscribed connection says (`notices.rs`): a release notice and the
//! waiter it names, a key's keyspace event, a subscription's confirmation, and the server's
//! keyspace notification setting.

use redis::Value;

/// Whether CONFIG GET's answer, `notify-keyspace-events FLAGS`, has the server send a key's
/// `del`: K (keyspace channels) and g (generic commands), or K and A (all).
pub(super) fn sends_deletions(fields: &[Value]) -> bool {
    match fields {
        [_, Value::BulkString(flags)] => {
            let has = |c: u8| flags.contains(&c);
            has(b'K') && (has(b'g') || has(b'A'))
        }
        _ => false,
    }
}

/// What a key's keyspace event that frees it (`del`, `expired`, ...) is reported as, among the
/// release notices: not a token, which is hexadecimal.
pub const KEY_GONE: &str = "key gone";

/// What a message on a subscribed connection says: a release notice naming a waiter or none
/// (see `named`), `KEY_GONE`, or `None`: a keyspace event that frees nothing (a `set`), or the
/// keyspace subscription's confirmation (the release channel's wakes the waiter). `keyspace`:
/// the keyspace channel subscribed to, if any.
pub(super) fn notice(message: &[Value], keyspace: Option<&str>) -> Option<Option<String>> {
    match message {
        [Value::BulkString(kind), Value::BulkString(channel), third]
            if keyspace.is_some_and(|keyspace| channel == keyspace.as_bytes()) =>
        {
            // Gone: deleted, expired, evicted (the waiter decides whether that is a release).
            let gone = matches!(third, Value::BulkString(event)
                if matches!(event.as_slice(), b"del" | b"expired" | b"evicted" | b"unlink"));
            (kind == b"message" && gone).then(|| Some(KEY_GONE.to_string()))
        }
        _ => Some(named(message)),
    }
}

/// Whether `message` confirms a subscription.
pub(super) fn confirms(message: &[Value]) -> bool {
    matches!(message, [Value::BulkString(kind), _, Value::Int(_)]
        if kind == b"ssubscribe" || kind == b"subscribe")
}

/// The waiter a notice on a waiter's channel names (the one the lock went to, told to the next
/// in the queue): its payload, `message CHANNEL TOKEN` (`smessage` when sharded). A
/// subscription's confirmation, or a notice naming no one (the waiter's turn), names none.
fn named(message: &[Value]) -> Option<String> {
    match message {
        [Value::BulkString(kind), _, Value::BulkString(token)]
            if (kind == b"message" || kind == b"smessage") && !token.is_empty() =>
        {
            Some(String::from_utf8_lossy(token).into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_notice_names_the_waiter_in_its_payload() {
        let message = [bulk("message"), bulk("redlock:{x}:released"), bulk("abc")];
        assert_eq!(named(&message), Some("abc".to_string()));
        // A lock broken by an operator names no one; nor does a confirmed subscription.
        let sharded = [bulk("smessage"), bulk("redlock:{x}:released"), bulk("abc")];
        assert_eq!(named(&sharded), Some("abc".to_string()));
        let broken = [bulk("message"), bulk("redlock:{x}:released"), bulk("")];
        assert_eq!(named(&broken), None);
        let confirmed = [
            bulk("subscribe"),
            bulk("redlock:{x}:released"),
            Value::Int(1),
        ];
        assert_eq!(named(&confirmed), None);
    }

    #[test]
    fn keyspace_events_wake_only_when_the_key_is_gone() {
        let keyspace = Some("events of k");
        let event = |name: &str| [bulk("message"), bulk("events of k"), bulk(name)];
        let gone = Some(Some(KEY_GONE.to_string()));
        assert_eq!(notice(&event("del"), keyspace), gone);
        assert_eq!(notice(&event("expired"), keyspace), gone);
        assert_eq!(notice(&event("set"), keyspace), None);
        assert_eq!(notice(&event("pexpire"), keyspace), None);
        let confirmed = [bulk("subscribe"), bulk("events of k"), Value::Int(2)];
        assert_eq!(notice(&confirmed, keyspace), None);
        // The same event on another channel is a release channel's message.
        assert_eq!(notice(&event("set"), None), Some(Some("set".to_string())));
        let setting = |flags: &str| [bulk("notify-keyspace-events"), bulk(flags)];
        assert!(sends_deletions(&setting("Kg")));
        assert!(sends_deletions(&setting("AK")));
        assert!(!sends_deletions(&setting("Ex")));
        assert!(!sends_deletions(&setting("")));
    }
}
