//! The lock's control channel (`PREFIX:{NAME}:control`), heard by its live holder: the scripts
//! publish `taken TOKEN` (acquire.lua, a new holder), `broken` (break.lua, an operator deleted
//! the lock) and `stop TOKEN` (ask.lua, `release --force` asks that holder to let go). This is
//! what a holder makes of them.

/// What a message on the lock's control channel (`Keys::control`) asks of its holder.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    /// `release --force` asks this run to stop its command and release the lock.
    Stop,
    /// The lock was broken, or taken by another token: an extension at once tells whether it
    /// is still ours (with several servers, a majority may still hold it).
    Check(&'static str),
    /// For another holder.
    Ignore,
}

impl Control {
    pub fn parse(payload: &str, token: &str) -> Control {
        match payload.split_once(' ') {
            Some(("stop", asked)) if asked == token => Control::Stop,
            Some(("taken", by)) if by != token => Control::Check("another run took it"),
            None if payload == "broken" => Control::Check("`redlock release --force` broke it"),
            _ => Control::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_notices_are_read_for_this_run_only() {
        assert_eq!(Control::parse("stop abc", "abc"), Control::Stop);
        assert_eq!(Control::parse("stop other", "abc"), Control::Ignore);
        assert!(matches!(
            Control::parse("taken other", "abc"),
            Control::Check(_)
        ));
        // Our own acquire (a retry that reached a server late) is not a takeover.
        assert_eq!(Control::parse("taken abc", "abc"), Control::Ignore);
        assert!(matches!(Control::parse("broken", "abc"), Control::Check(_)));
        assert_eq!(Control::parse("", "abc"), Control::Ignore);
        assert_eq!(Control::parse("something else", "abc"), Control::Ignore);
    }
}
