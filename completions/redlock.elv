
use builtin;
use str;

set edit:completion:arg-completer[redlock] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'redlock'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'redlock'= {
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run COMMAND while holding the lock NAME'
            cand status 'Show who holds the lock NAME (exit 0), or that it is free (exit 1)'
            cand list 'List the held locks, optionally those whose name matches PATTERN'
            cand release 'Break the lock NAME (needs --force), or give back your own (--token)'
            cand history 'Show the last runs of the lock NAME, on every host, newest first'
            cand acquire 'Take the lock NAME and exit, printing its token and fence: a lock held across steps'
            cand extend 'Renew the lease of a lock taken by `redlock acquire`, by its token'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'redlock;run'= {
            cand -n 'Name of the lock; repeat it to hold several locks at once'
            cand --name 'Name of the lock; repeat it to hold several locks at once'
            cand --key 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)'
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand -w 'How long to wait for a busy lock (0: try once)'
            cand --wait 'How long to wait for a busy lock (0: try once)'
            cand --jitter 'Sleep a random time up to DURATION before the first try'
            cand -E 'Exit status when the lock is busy'
            cand --conflict-exit-code 'Exit status when the lock is busy'
            cand --ttl 'Length of the lease'
            cand --limit 'Allow up to N runs of the name at once: a counting semaphore (default 1: a lock)'
            cand --heartbeat 'Interval between lease extensions [default: a third of --ttl]'
            cand --kill-after 'Grace between SIGTERM and SIGKILL [default: a quarter of --ttl]'
            cand --on-unavailable 'What to do when too few Redis servers can be reached: fail, skip, or run'
            cand --timeout 'Stop the command once it has run this long (as timeout(1) does)'
            cand --min-hold 'Keep the lock at least this long after acquiring it'
            cand --label 'Record TEXT instead of the command line'
            cand --history 'How many runs the lock''s history keeps (0: record none)'
            cand --metrics-dir 'After each run, write its outcome to DIR/redlock_NAME.prom (Prometheus textfile)'
            cand --ping 'Health-check pings to URL (the healthchecks.io protocol)'
            cand --ping-busy 'What a busy run pings: nothing (none), or a success (ok)'
            cand --ping-timeout 'How long redlock''s exit may wait for the final ping'
            cand --wait-replicas 'Replicas that must confirm each acquire and extension'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand -q 'Print nothing when the lock is busy'
            cand --quiet 'Print nothing when the lock is busy'
            cand --shared 'Hold the lock shared: beside other --shared runs, never beside an exclusive one'
            cand --replace 'Take over from the current holder: ask it to stop its command and let go'
            cand -v 'Report what happens, with timings, on stderr'
            cand --verbose 'Report what happens, with timings, on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;status'= {
            cand -n 'Name of the lock'
            cand --name 'Name of the lock'
            cand --key 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)'
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand --json 'Print JSON'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;list'= {
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand --json 'Print JSON'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;release'= {
            cand -n 'Name of the lock'
            cand --name 'Name of the lock'
            cand --key 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)'
            cand --token 'Only if the lock still holds this token; without --force, give it back'
            cand --slot 'Only this place of a semaphore (run --limit), 0 to N-1'
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand --force 'Really break the lock'
            cand --now 'Delete the lock at once, without asking its holder to stop first'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;history'= {
            cand --name 'Name of the lock'
            cand --key 'The application''s key, as given to `redlock run --key` (not with --name)'
            cand -n 'How many runs to show'
            cand --lines 'How many runs to show'
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand --json 'Print JSON'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;acquire'= {
            cand -n 'Name of the lock'
            cand --name 'Name of the lock'
            cand --key 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)'
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand -w 'How long to wait for a busy lock (0: try once)'
            cand --wait 'How long to wait for a busy lock (0: try once)'
            cand --jitter 'Sleep a random time up to DURATION before the first try'
            cand -E 'Exit status when the lock is busy'
            cand --conflict-exit-code 'Exit status when the lock is busy'
            cand --ttl 'Length of the lease: the only bound on the hold (required)'
            cand --label 'Record TEXT instead of the command line'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand -q 'Print nothing when the lock is busy'
            cand --quiet 'Print nothing when the lock is busy'
            cand --export 'Print shell assignments to `eval`, instead of the token and fence'
            cand -v 'Report what happens, with timings, on stderr'
            cand --verbose 'Report what happens, with timings, on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;extend'= {
            cand -n 'Name of the lock'
            cand --name 'Name of the lock'
            cand --key 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)'
            cand --redis 'Redis server URL (repeat it for several independent servers)'
            cand --prefix 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]'
            cand --tls-ca 'Trust only the CA certificates in FILE for rediss:// servers'
            cand --tls-cert 'Client certificate for rediss:// servers (needs --tls-key)'
            cand --tls-key 'Private key of --tls-cert (needs --tls-cert)'
            cand --token 'The token `redlock acquire` printed (required)'
            cand --ttl 'The new lease, from now (required)'
            cand --log-format 'Format of redlock''s own lines on stderr: text or json'
            cand -v 'Report what happens, with timings, on stderr'
            cand --verbose 'Report what happens, with timings, on stderr'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'redlock;help'= {
            cand run 'Run COMMAND while holding the lock NAME'
            cand status 'Show who holds the lock NAME (exit 0), or that it is free (exit 1)'
            cand list 'List the held locks, optionally those whose name matches PATTERN'
            cand release 'Break the lock NAME (needs --force), or give back your own (--token)'
            cand history 'Show the last runs of the lock NAME, on every host, newest first'
            cand acquire 'Take the lock NAME and exit, printing its token and fence: a lock held across steps'
            cand extend 'Renew the lease of a lock taken by `redlock acquire`, by its token'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'redlock;help;run'= {
        }
        &'redlock;help;status'= {
        }
        &'redlock;help;list'= {
        }
        &'redlock;help;release'= {
        }
        &'redlock;help;history'= {
        }
        &'redlock;help;acquire'= {
        }
        &'redlock;help;extend'= {
        }
        &'redlock;help;help'= {
        }
    ]
    $completions[$command]
}
