//! A run inside a run of the same lock (a locking script that calls another that locks the
//! same name): it finds the outer run in its environment, and runs its command under the outer
//! lease if that run still holds the lock and this process is inside its command.

use crate::plan::Plan;

/// An outer run of this same lock, found in the environment it gave its command.
pub struct Outer {
    pub token: String,
    pub place: usize,
    /// What the command is given besides the outer run's environment: from a run of several
    /// locks, this lock's name and fence (from REDLOCK_FENCES), as a run of it alone gives.
    pub env: Vec<(&'static str, String)>,
}

/// The outer run of this same lock, from the environment it gave its command (REDLOCK_NAME or
/// REDLOCK_KEY, REDLOCK_TOKEN, REDLOCK_FENCE, REDLOCK_SLOT; or, from a run of several locks,
/// REDLOCK_FENCES); whether that run still holds the lock is checked on the servers before it
/// counts.
pub fn outer_run(plan: &Plan) -> Option<Outer> {
    let var = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
    let token = var("REDLOCK_TOKEN")?;
    if var("REDLOCK_FENCE").is_none() {
        let fences: serde_json::Value = serde_json::from_str(&var("REDLOCK_FENCES")?).ok()?;
        let fence = fences.get(&plan.label)?.as_u64()?;
        let env = vec![
            (plan.variables.0, plan.label.clone()),
            ("REDLOCK_FENCE", fence.to_string()),
            (
                "REDLOCK_FENCES",
                super::several::fences(std::iter::once((plan.label.as_str(), fence))),
            ),
        ];
        return Some(Outer {
            token,
            place: 0,
            env,
        });
    }
    let name = var(plan.variables.0)?;
    let place = var("REDLOCK_SLOT").map_or(Some(0), |slot| slot.parse().ok())?;
    (name == plan.label && place < plan.limit).then_some(Outer {
        token,
        place,
        env: Vec::new(),
    })
}

/// Whether this process runs inside the command of the outer run that holds the lock as
/// `outer`: on its host, in the process group it made for its command (led by its guard, a
/// child of that redlock), and with that command still running. A process that only has the
/// token (a daemon that left the group, a job started by `at`, someone who read `status
/// --json`) is not: the outer run would not stop it before its lease ends.
pub fn inside(outer: &crate::lock::Holder) -> bool {
    if outer.ended_ms.is_some() || outer.host.as_deref() != Some(crate::lock::host_name().as_str())
    {
        return false;
    }
    let group = nix::unistd::getpgrp().as_raw();
    // `/proc/PID/stat`: `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses.
    let parent = std::fs::read_to_string(format!("/proc/{group}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(") ")?;
            rest.split(' ').nth(1)?.parse::<u32>().ok()
        });
    parent.is_some() && parent == outer.pid
}
