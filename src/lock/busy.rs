//! What a busy run says of the lock's holders: one holder, the shared holders (`--shared`), or
//! a semaphore's places, each with who, since when and until when.

use crate::duration::human;

use super::holder::{Holder, clamped_millis};

/// The busy message for a lock whose places (one, or a semaphore's N) are all held:
/// `lock 'backup' is held by db2 (pid 4242, ./backup.sh) for 3m12s; expires in 27s`, and for a
/// semaphore `lock 'nas' has all 2 places held (--limit 2): place 0 held by db2 (pid 4242,
/// ./backup.sh) for 3m12s, expires in 27s; place 1 held by ...`.
pub fn busy_message_for(name: &str, holders: &[Holder]) -> String {
    match holders {
        [holder] if holder.shared == Some(0) => format!(
            "lock '{name}' is free, but a run that wants it alone waits before this one \
             (shared runs let it go first)"
        ),
        [holder] if holder.shared.is_some() => {
            let about = about(holder).join("; ");
            format!(
                "lock '{name}' is held shared by {} run(s), the last to end: {}",
                holder.shared.unwrap_or(0),
                about.strip_prefix("held by ").unwrap_or(&about)
            )
        }
        [holder] => busy_message(name, holder),
        _ => {
            let places: Vec<String> = holders
                .iter()
                .enumerate()
                .map(|(place, holder)| format!("place {place} {}", about(holder).join(", ")))
                .collect();
            format!(
                "lock '{name}' has all {} places held (--limit {}): {}",
                holders.len(),
                holders.len(),
                places.join("; ")
            )
        }
    }
}

/// `lock 'backup' is held by db2 (pid 4242, ./backup.sh) for 3m12s; expires in 27s`
pub fn busy_message(name: &str, holder: &Holder) -> String {
    format!("lock '{name}' is {}", about(holder).join("; "))
}

/// What a busy message says of one holder: who, since when, until when.
fn about(holder: &Holder) -> Vec<String> {
    let mut parts = vec![match (holder.ended_ago(), holder.age()) {
        (Some(ago), _) => format!("kept by --min-hold: {holder} finished {} ago", human(ago)),
        (None, Some(age)) => format!("held by {holder} for {}", human(age)),
        (None, None) => format!("held by {holder}"),
    }];
    parts.push(match holder.remaining() {
        Some(remaining) => format!("expires in {}", human(remaining)),
        None => "the key has no expiry".to_string(),
    });
    match (holder.time_limit_in(), holder.ended_ms) {
        (Some(left), None) if left > 0 => parts.push(format!(
            "its --timeout ends in {}",
            human(clamped_millis(left))
        )),
        (Some(ago), None) => parts.push(format!(
            "its --timeout ran out {} ago: its command is being stopped",
            human(clamped_millis(-ago))
        )),
        _ => {}
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_message_names_the_holder() {
        let holder = Holder {
            host: Some("db2".into()),
            pid: Some(4242),
            user: Some("backup".into()),
            command: Some("./backup.sh".into()),
            started_ms: Some(1_000_000),
            age_ms: Some(192_000),
            ttl_ms: Some(27_000),
            token: Some("t".into()),
            ..Holder::default()
        };
        assert_eq!(
            busy_message("backup", &holder),
            "lock 'backup' is held by db2 (pid 4242, ./backup.sh) for 3m12s; expires in 27s"
        );
        let limited = Holder {
            limit_ms: Some(1_000_000 + 192_000 + 60_000),
            ..holder.clone()
        };
        assert_eq!(
            busy_message("backup", &limited),
            "lock 'backup' is held by db2 (pid 4242, ./backup.sh) for 3m12s; expires in 27s; \
             its --timeout ends in 1m"
        );
        let past = Holder {
            limit_ms: Some(1_000_000 + 190_000),
            ..holder.clone()
        };
        assert!(
            busy_message("backup", &past)
                .ends_with("; its --timeout ran out 2.0s ago: its command is being stopped"),
            "{}",
            busy_message("backup", &past)
        );
        // `list` and `release` name the user too.
        assert_eq!(
            format!("{holder:#}"),
            "db2 (pid 4242, user backup, ./backup.sh)"
        );
        let kept = Holder {
            ended_ms: Some(1_000_000 + 192_000 - 3_000),
            ..holder.clone()
        };
        assert_eq!(
            busy_message("backup", &kept),
            "lock 'backup' is kept by --min-hold: db2 (pid 4242, ./backup.sh) finished 3.0s ago; \
             expires in 27s"
        );
        let unknown = Holder {
            ttl_ms: Some(-1),
            ..Holder::default()
        };
        assert_eq!(
            busy_message("x", &unknown),
            "lock 'x' is held by another client (not redlock); the key has no expiry"
        );
    }
}
