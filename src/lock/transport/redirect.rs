//! A Redis Cluster's redirects (MOVED, ASK), which requests (`exchange.rs`) and subscriptions
//! (`notices.rs`) follow to the node that owns the lock's slot.

/// A cluster's redirect: `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Redirect {
    pub(super) ask: bool,
    pub(super) host: String,
    pub(super) port: u16,
}

impl Redirect {
    pub(super) fn parse(text: &str) -> Option<Redirect> {
        let mut words = text.split_whitespace();
        let ask = match words.next()? {
            "MOVED" => false,
            "ASK" => true,
            _ => return None,
        };
        let _slot: u16 = words.next()?.parse().ok()?;
        let (host, port) = words.next()?.rsplit_once(':')?;
        // An empty host is the node that answered (a node that does not know its own address).
        Some(Redirect {
            ask,
            host: host.to_string(),
            port: port.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_read() {
        assert_eq!(
            Redirect::parse("MOVED 15495 127.0.0.1:7102"),
            Some(Redirect {
                ask: false,
                host: "127.0.0.1".into(),
                port: 7102
            })
        );
        assert_eq!(
            Redirect::parse("ASK 3999 ::1:6381"),
            Some(Redirect {
                ask: true,
                host: "::1".into(),
                port: 6381
            })
        );
        assert_eq!(Redirect::parse("MOVEDX 1 a:1"), None);
        assert_eq!(Redirect::parse("NOSCRIPT No matching script"), None);
        assert_eq!(Redirect::parse("MOVED x a:1"), None);
    }
}
