//! What of a command line is recorded next to the lock, where every Redis user can read it
//! (`status`, `list`, `history`, the busy message on every host): the command with its
//! credentials replaced by `***`. Cron lines carry DSNs (`pg_dump postgres://user:pw@db/app`)
//! and tokens (`--token=...`, `AWS_SECRET_ACCESS_KEY=...`); `--label` records a text of the
//! operator's choosing instead, for what this cannot recognise.
//!
//! Hidden (docs/security.md has the same list): the password of any URL's user information
//! (`scheme://user:PASSWORD@host`, all of it when there is no `:`, as in `https://TOKEN@host`);
//! the value of an assignment whose name has a part (between `-`, `_`, `.`) that ends in
//! password, passwd, passphrase, token, secret, credentials or apikey, or is pwd, pass or key
//! (`--password=X`, `PGPASSWORD=X`, `MYSQL_PWD=X`, `?api_key=X&...`), all of it when the
//! argument is an option's assignment (`--password='correct horse'`); the argument after an
//! option given alone whose last part says so (`--token X`; not `--no-password`,
//! `--password-stdin` or a bare `--key`); what follows `Authorization:`, and the word after
//! `Bearer` or `Basic`. Short options (`-pX`, `-a X`, `-pass pass:X`) are too ambiguous to
//! guess at, and are left alone.

/// The word standing for what is hidden.
pub const HIDDEN: &str = "***";

/// The command line as recorded: its arguments joined by spaces, credentials hidden.
pub fn command_line(args: &[String]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut value_follows = false;
    for arg in args {
        if value_follows && !arg.starts_with('-') {
            out.push(HIDDEN.to_string());
            value_follows = false;
            continue;
        }
        if let Some(name) = assigned(arg).filter(|name| is_secret_name(name)) {
            out.push(format!("{name}={HIDDEN}"));
            value_follows = false;
            continue;
        }
        let (redacted, next_is_value) = redact_arg(arg);
        out.push(redacted);
        value_follows = next_is_value;
    }
    out.join(" ")
}

/// The name of an argument that is all an option's assignment: `--NAME=...` (a `NAME=...`
/// argument is more often a script, `PGPASSWORD=x pg_dump ...`: its words are redacted).
fn assigned(arg: &str) -> Option<&str> {
    let (name, _) = arg.split_once('=')?;
    let bare = name.strip_prefix('-')?.trim_start_matches('-');
    let plain = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plain.then_some(name)
}

/// One argument that may hold several words (`sh -c '...'`): each word redacted; and whether
/// the argument after it is a secret's value (its last word is `--token`).
fn redact_arg(arg: &str) -> (String, bool) {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    let mut value_follows = false;
    while !rest.is_empty() {
        let space = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(space);
        if !word.is_empty() {
            if value_follows && !word.starts_with('-') {
                out.push_str(HIDDEN);
                value_follows = false;
            } else {
                out.push_str(&redact_word(word));
                if word.to_ascii_lowercase().ends_with("authorization:") {
                    // A header's credentials: `Bearer X`, `Basic X`, `token X`.
                    let header = after.trim_start();
                    if !header.is_empty() {
                        out.push(' ');
                        out.push_str(HIDDEN);
                    }
                    return (out, false);
                }
                value_follows = names_a_secret_option(word)
                    || matches!(word.to_ascii_lowercase().as_str(), "bearer" | "basic");
            }
        }
        let blank = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str(&after[..blank]);
        rest = &after[blank..];
    }
    (
        out,
        value_follows && arg.ends_with(|c: char| !c.is_whitespace()),
    )
}

/// `--password`, `--api-key`: an option alone whose last part says it takes a secret, so that
/// its value is the next word; not `--no-password` or `--password-stdin`.
fn names_a_secret_option(word: &str) -> bool {
    let Some(name) = word.strip_prefix("--") else {
        return false;
    };
    // `--key` alone is too common (sort, gpg) to be taken for one; `--api-key` is.
    !name.contains('=')
        && !name.starts_with("no-")
        && name != "key"
        && name
            .rsplit(['-', '_', '.'])
            .next()
            .is_some_and(is_secret_part)
}

/// Some part of the name (between `-`, `_` or `.`) says it holds a secret.
fn is_secret_name(name: &str) -> bool {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .any(is_secret_part)
}

/// `password`, `PGPASSWORD`, `passwd`, `passphrase`, `pwd`, `pass`, `token`, `secret`,
/// `credentials`, `key`, `apikey`; not `monkey`, `keyless` or `passthrough`.
fn is_secret_part(part: &str) -> bool {
    let part = part.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "passphrase",
        "token",
        "secret",
        "credentials",
        "apikey",
    ]
    .iter()
    .any(|secret| part.ends_with(secret))
        || matches!(part.as_str(), "pwd" | "pass" | "key")
}

/// One word: the credentials of its URLs and the values of its secret assignments hidden.
fn redact_word(word: &str) -> String {
    let word = redact_user_info(word);
    redact_assignments(&word)
}

/// `scheme://user:password@host...` → `scheme://user:***@host...`; `scheme://token@host` →
/// `scheme://***@host`; for every URL in the word.
fn redact_user_info(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at_sign) => {
                let user_info = &tail[..at_sign];
                if let Some((user, _)) = user_info.split_once(':') {
                    out.push_str(user);
                    out.push(':');
                }
                out.push_str(HIDDEN);
                rest = &tail[at_sign..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// `NAME=VALUE` wherever NAME says it is a secret (`--password=`, `PGPASSWORD=`, `?token=`):
/// the VALUE, up to the next `&` or `;`, hidden.
fn redact_assignments(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.find('=') {
        let (before, after) = rest.split_at(at);
        let name_start = (before.char_indices().rev())
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        let value_end = after.find(['&', ';', '"', '\'']).unwrap_or(after.len());
        if is_secret_name(&before[name_start..]) && value_end > 0 {
            out.push_str(HIDDEN);
            rest = &after[value_end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(args: &[&str]) -> String {
        command_line(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_plain_command_is_recorded_as_it_is() {
        assert_eq!(
            recorded(&["./backup.sh", "-v", "--keyless", "a=b"]),
            "./backup.sh -v --keyless a=b"
        );
        assert_eq!(recorded(&["x", "--sort-key=name"]), "x --sort-key=***");
        assert_eq!(
            recorded(&["sh", "-c", "sleep 2;  echo hi"]),
            "sh -c sleep 2;  echo hi"
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            recorded(&["pg_dump", "postgres://backup:hunter2@db:5432/app"]),
            "pg_dump postgres://backup:***@db:5432/app"
        );
        assert_eq!(
            recorded(&["git", "clone", "https://ghp_abc@github.com/x/y"]),
            "git clone https://***@github.com/x/y"
        );
        assert_eq!(
            recorded(&["sh", "-c", "curl https://u:p@a/x && curl http://v:q@b"]),
            "sh -c curl https://u:***@a/x && curl http://v:***@b"
        );
        // An @ in the path is not user information.
        assert_eq!(recorded(&["https://host/a@b"]), "https://host/a@b");
    }

    #[test]
    fn secret_assignments_and_options_lose_their_values() {
        assert_eq!(
            recorded(&["sh", "-c", "sleep 2", "--password=hunter2"]),
            "sh -c sleep 2 --password=***"
        );
        assert_eq!(
            recorded(&[
                "env",
                "PGPASSWORD=pw",
                "AWS_SECRET_ACCESS_KEY=k",
                "HOME=/root"
            ]),
            "env PGPASSWORD=*** AWS_SECRET_ACCESS_KEY=*** HOME=/root"
        );
        assert_eq!(
            recorded(&["curl", "https://h/p?api_key=abc&page=2;token=t"]),
            "curl https://h/p?api_key=***&page=2;token=***"
        );
        assert_eq!(
            recorded(&["tool", "--token", "abc", "--api-key", "k", "x"]),
            "tool --token *** --api-key *** x"
        );
        assert_eq!(
            recorded(&["sh", "-c", "tool --secret s3 next"]),
            "sh -c tool --secret *** next"
        );
        // An option that follows is no value; a short option is left alone.
        assert_eq!(recorded(&["tool", "--token", "-v"]), "tool --token -v");
        assert_eq!(recorded(&["mysql", "-phunter2"]), "mysql -phunter2");
    }

    #[test]
    fn a_secret_argument_is_hidden_whole() {
        assert_eq!(
            recorded(&["tool", "--password", "correct horse battery"]),
            "tool --password ***"
        );
        assert_eq!(
            recorded(&["tool", "--password=correct horse battery", "x"]),
            "tool --password=*** x"
        );
        assert_eq!(
            recorded(&[
                "curl",
                "-H",
                "Authorization: Bearer abc.def",
                "MYSQL_PWD=p",
                "?pass=q"
            ]),
            "curl -H Authorization: *** MYSQL_PWD=*** ?pass=***"
        );
        assert_eq!(
            recorded(&[
                "git",
                "-c",
                "http.extraHeader=Authorization: token ghp_x",
                "pull"
            ]),
            "git -c http.extraHeader=Authorization: *** pull"
        );
        assert_eq!(
            recorded(&[
                "gpg",
                "--passphrase",
                "h2",
                "--aws-credentials",
                "c",
                "--db-pass",
                "p"
            ]),
            "gpg --passphrase *** --aws-credentials *** --db-pass ***"
        );
        assert_eq!(
            recorded(&["sh", "-c", "curl \"https://h/x?token=t\" -o out"]),
            "sh -c curl \"https://h/x?token=***\" -o out"
        );
    }

    #[test]
    fn a_script_keeps_its_words() {
        assert_eq!(
            recorded(&["sh", "-c", "PGPASSWORD=x pg_dump -h db app > /bk/app.sql"]),
            "sh -c PGPASSWORD=*** pg_dump -h db app > /bk/app.sql"
        );
        assert_eq!(
            recorded(&["sh", "-c", "KEY=daily; rotate --set $KEY"]),
            "sh -c KEY=***; rotate --set $KEY"
        );
    }

    #[test]
    fn ordinary_arguments_are_left_alone() {
        for args in [
            &["pg_dump", "--no-password", "mydb"][..],
            &[
                "docker",
                "login",
                "--password-stdin",
                "registry.example.com",
            ],
            &[
                "tool",
                "--monkey=3",
                "--keyless",
                "a=b",
                "--passthrough",
                "x",
            ],
            &["sh", "-c", "echo café=1 ünï=2"],
            &["sort", "--key", "2", "-t", ","],
        ] {
            assert_eq!(recorded(args), args.join(" "), "{args:?}");
        }
    }
}
