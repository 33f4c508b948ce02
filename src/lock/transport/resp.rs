//! Reading RESP2 replies from a buffer that may hold part of one (a connection reads whatever
//! its non-blocking socket has).

use redis::Value;

/// One reply: a value, or the server's error line.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Value(Value),
    Error(String),
}

/// Replies nested deeper than this are refused: no lock script returns them.
const MAX_DEPTH: usize = 8;

/// The first reply in `buf` and how many bytes it took, or `None` while it is incomplete.
/// `Err` when `buf` does not hold RESP2.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ()> {
    match buf.first() {
        None => Ok(None),
        Some(b'-') => Ok(line(&buf[1..])?.map(|(text, used)| {
            (
                Reply::Error(String::from_utf8_lossy(text).into_owned()),
                used + 1,
            )
        })),
        Some(_) => Ok(value(buf, 0)?.map(|(v, used)| (Reply::Value(v), used))),
    }
}

fn value(buf: &[u8], depth: usize) -> Result<Option<(Value, usize)>, ()> {
    let Some((&kind, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let Some((text, used)) = line(rest)? else {
        return Ok(None);
    };
    let header = used + 1;
    match kind {
        b'+' if text == b"OK" => Ok(Some((Value::Okay, header))),
        b'+' => Ok(Some((
            Value::SimpleString(String::from_utf8_lossy(text).into_owned()),
            header,
        ))),
        b':' => Ok(Some((Value::Int(number(text)?), header))),
        b'$' => match number(text)? {
            -1 => Ok(Some((Value::Nil, header))),
            len if len >= 0 => {
                let len = len as usize;
                let body = &buf[header..];
                if body.len() < len + 2 {
                    return Ok(None);
                }
                if &body[len..len + 2] != b"\r\n" {
                    return Err(());
                }
                Ok(Some((
                    Value::BulkString(body[..len].to_vec()),
                    header + len + 2,
                )))
            }
            _ => Err(()),
        },
        b'*' if depth < MAX_DEPTH => match number(text)? {
            -1 => Ok(Some((Value::Nil, header))),
            count if count >= 0 => {
                let mut items = Vec::with_capacity((count as usize).min(64));
                let mut at = header;
                for _ in 0..count {
                    match value(&buf[at..], depth + 1)? {
                        Some((item, used)) => {
                            items.push(item);
                            at += used;
                        }
                        None => return Ok(None),
                    }
                }
                Ok(Some((Value::Array(items), at)))
            }
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// The text up to the first CRLF, and the bytes it took with the CRLF.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ()> {
    match buf.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => Ok(Some((&buf[..end], end + 2))),
        // A header line is short: a long one without CRLF is not RESP.
        None if buf.len() > 64 * 1024 => Err(()),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Result<i64, ()> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        reply
    }

    #[test]
    fn reads_each_kind() {
        assert_eq!(whole(b"+OK\r\n"), Reply::Value(Value::Okay));
        assert_eq!(whole(b":-42\r\n"), Reply::Value(Value::Int(-42)));
        assert_eq!(
            whole(b"$5\r\nhe\r\no\r\n"),
            Reply::Value(Value::BulkString(b"he\r\no".to_vec()))
        );
        assert_eq!(whole(b"$-1\r\n"), Reply::Value(Value::Nil));
        assert_eq!(
            whole(b"-NOSCRIPT No matching script\r\n"),
            Reply::Error("NOSCRIPT No matching script".into())
        );
        assert_eq!(
            whole(b"*3\r\n:0\r\n$1\r\nx\r\n*1\r\n:7\r\n"),
            Reply::Value(Value::Array(vec![
                Value::Int(0),
                Value::BulkString(b"x".to_vec()),
                Value::Array(vec![Value::Int(7)]),
            ]))
        );
    }

    #[test]
    fn waits_for_the_rest_of_a_reply() {
        let full = b"*2\r\n:1\r\n$3\r\nabc\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn leaves_the_next_reply_in_the_buffer() {
        let (reply, used) = parse(b":1\r\n+OK\r\n").unwrap().unwrap();
        assert_eq!((reply, used), (Reply::Value(Value::Int(1)), 4));
    }

    #[test]
    fn refuses_what_is_not_resp() {
        assert_eq!(parse(b"HTTP/1.1 400 Bad Request\r\n"), Err(()));
        assert_eq!(parse(b":12x\r\n"), Err(()));
        assert_eq!(parse(b"$3\r\nabcd\r\n"), Err(()));
    }
}
