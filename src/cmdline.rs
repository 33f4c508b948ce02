//! Keeping the secrets redlock was given on its command line out of `ps`. Every local user can
//! read every process's command line (`/proc/PID/cmdline`), for as long as it runs: a password
//! in `--redis redis://:PASSWORD@host`, a sentinel's `sentinel_password=`, or a health-check
//! URL (`--ping`, whose path is its secret) would show for the whole run, twice (redlock and its
//! guard, a fork). So redlock overwrites them with `*` in its own argument area, the memory the
//! kernel reads that file from, as curl does for `-u` and `setproctitle` for a title, before
//! anything forks. `REDLOCK_URL` and `REDLOCK_PING` keep them off the command line altogether
//! (another user cannot read `/proc/PID/environ`): the way docs/security.md recommends.
//!
//! The area is found in `/proc/self/stat` (`arg_start`, `arg_end`) and written through
//! `/proc/self/mem`, so no pointer is guessed; the secret keeps its length (the arguments stay
//! where the C runtime's `argv` points). Only redlock's own options are touched, not the
//! command's after `--`, and only where the value redlock parsed appears as given.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;

/// A value given on the command line and the parts of it that are secret, as byte ranges.
pub struct Secret<'a> {
    pub value: &'a str,
    pub hidden: Vec<std::ops::Range<usize>>,
}

/// The secret parts of a Redis or Sentinel URL: the password of its user information, and the
/// values of its query's `...password=` parameters (`sentinel_password`).
pub fn in_redis_url(url: &str) -> Secret<'_> {
    let mut hidden = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        // As the URLs are read (`sentinel.rs`): the user information ends at the last `@`
        // before the query, so a password may hold a `/`.
        let authority_end = url[start..]
            .find(['?', '#'])
            .map_or(url.len(), |end| start + end);
        if let Some(at_sign) = url[start..authority_end].rfind('@')
            && let Some(colon) = url[start..start + at_sign].find(':')
        {
            hidden.push(start + colon + 1..start + at_sign);
        }
    }
    if let Some(query) = url.find('?') {
        let mut offset = query + 1;
        for pair in url[query + 1..].split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && name.to_ascii_lowercase().contains("pass")
            {
                let value_start = offset + name.len() + 1;
                hidden.push(value_start..value_start + value.len());
            }
            offset += pair.len() + 1;
        }
    }
    hidden.retain(|range| !range.is_empty());
    Secret { value: url, hidden }
}

/// The secret part of a health-check URL: everything after its host (a check's UUID, or a
/// project's ping key and the check's name).
pub fn in_ping_url(url: &str) -> Secret<'_> {
    let start = url.find("://").map_or(0, |end| end + 3);
    let path = url[start..].find(['/', '?']).map(|at| start + at);
    Secret {
        value: url,
        hidden: path.map(|at| at..url.len()).into_iter().collect(),
    }
}

/// Overwrites every secret in redlock's own arguments (before `--`) in the argument area the
/// kernel shows as `/proc/PID/cmdline`. Nothing to hide: nothing done.
pub fn hide(secrets: &[Secret]) -> io::Result<()> {
    if secrets.iter().all(|secret| secret.hidden.is_empty()) {
        return Ok(());
    }
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command's name, which may hold spaces and parentheses: from the
    // state (field 3); arg_start and arg_end are fields 48 and 49.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("/proc/self/stat has no argument area"))
    };
    let (start, end) = (field(48)?, field(49)?);
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    let mut area = vec![0; end.saturating_sub(start) as usize];
    mem.read_exact_at(&mut area, start)?;
    // The caller found each secret among the arguments: not finding one here is a failure.
    if !mask(&mut area, secrets) {
        return Err(io::Error::other(
            "the arguments are not where /proc/self/stat says",
        ));
    }
    mem.write_all_at(&area, start)
}

/// Masks the secrets in the arguments of `area` (NUL-terminated, redlock's own up to `--`);
/// whether anything changed.
fn mask(area: &mut [u8], secrets: &[Secret]) -> bool {
    // Each argument's start and length, found before any is changed.
    let mut args = Vec::new();
    let mut offset = 0;
    for arg in area.split(|&b| b == 0) {
        args.push((offset, arg.len()));
        offset += arg.len() + 1;
    }
    let mut changed = false;
    // The first is the program's name.
    for (i, (start, len)) in args.into_iter().enumerate() {
        if i > 0 && &area[start..start + len] == b"--" {
            break;
        }
        for secret in secrets {
            let value = secret.value.as_bytes();
            let mut from = 0;
            while let Some(at) = find(&area[start + from..start + len], value) {
                for range in &secret.hidden {
                    let begin = start + from + at + range.start;
                    area[begin..begin + range.len()].fill(b'*');
                    changed = true;
                }
                from += at + value.len().max(1);
            }
        }
    }
    changed
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(args: &[&str], secrets: &[Secret]) -> String {
        let mut area = args.join("\0").into_bytes();
        area.push(0);
        mask(&mut area, secrets);
        String::from_utf8(area).unwrap().replace('\0', " ")
    }

    #[test]
    fn a_password_is_masked_where_redlock_was_given_it() {
        let url = "redis://:s3cret@h:6379/0";
        let args = ["redlock", "run", "--redis", url, "--", "echo", url];
        assert_eq!(
            masked(&args, &[in_redis_url(url)]),
            format!("redlock run --redis redis://:******@h:6379/0 -- echo {url} ")
        );
        let given = format!("--redis={url}");
        assert_eq!(
            masked(&["redlock", &given], &[in_redis_url(url)]),
            "redlock --redis=redis://:******@h:6379/0 "
        );
    }

    #[test]
    fn the_secrets_of_each_kind_of_url() {
        let parts = |secret: Secret| -> Vec<String> {
            let value = secret.value;
            secret
                .hidden
                .into_iter()
                .map(|r| value[r].to_string())
                .collect()
        };
        assert_eq!(
            parts(in_redis_url("redis://u:p%40ss@h:1,h2:2/0")),
            ["p%40ss"]
        );
        assert!(parts(in_redis_url("redis://user@h:1")).is_empty());
        assert_eq!(
            parts(in_redis_url("redis+sentinel://:pa/ss@s1/m")),
            ["pa/ss"]
        );
        assert!(parts(in_redis_url("redis://h:1/0")).is_empty());
        assert_eq!(
            parts(in_redis_url(
                "redis+sentinel://:pw@s1:26379,s2/m?sentinel_username=u&sentinel_password=sp"
            )),
            ["pw", "sp"]
        );
        assert_eq!(
            parts(in_ping_url("https://hc-ping.com/0f3a-uuid")),
            ["/0f3a-uuid"]
        );
        assert!(parts(in_ping_url("https://hc.example")).is_empty());
    }
}
