
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'redlock' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'redlock'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'redlock' {
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run COMMAND while holding the lock NAME')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show who holds the lock NAME (exit 0), or that it is free (exit 1)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the held locks, optionally those whose name matches PATTERN')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Break the lock NAME (needs --force), or give back your own (--token)')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Show the last runs of the lock NAME, on every host, newest first')
            [CompletionResult]::new('acquire', 'acquire', [CompletionResultType]::ParameterValue, 'Take the lock NAME and exit, printing its token and fence: a lock held across steps')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Renew the lease of a lock taken by `redlock acquire`, by its token')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'redlock;run' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the lock; repeat it to hold several locks at once')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the lock; repeat it to hold several locks at once')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock (0: try once)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock (0: try once)')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Sleep a random time up to DURATION before the first try')
            [CompletionResult]::new('-E', '-E ', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--conflict-exit-code', '--conflict-exit-code', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Length of the lease')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Allow up to N runs of the name at once: a counting semaphore (default 1: a lock)')
            [CompletionResult]::new('--heartbeat', '--heartbeat', [CompletionResultType]::ParameterName, 'Interval between lease extensions [default: a third of --ttl]')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'Grace between SIGTERM and SIGKILL [default: a quarter of --ttl]')
            [CompletionResult]::new('--on-unavailable', '--on-unavailable', [CompletionResultType]::ParameterName, 'What to do when too few Redis servers can be reached: fail, skip, or run')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Stop the command once it has run this long (as timeout(1) does)')
            [CompletionResult]::new('--min-hold', '--min-hold', [CompletionResultType]::ParameterName, 'Keep the lock at least this long after acquiring it')
            [CompletionResult]::new('--label', '--label', [CompletionResultType]::ParameterName, 'Record TEXT instead of the command line')
            [CompletionResult]::new('--history', '--history', [CompletionResultType]::ParameterName, 'How many runs the lock''s history keeps (0: record none)')
            [CompletionResult]::new('--metrics-dir', '--metrics-dir', [CompletionResultType]::ParameterName, 'After each run, write its outcome to DIR/redlock_NAME.prom (Prometheus textfile)')
            [CompletionResult]::new('--ping', '--ping', [CompletionResultType]::ParameterName, 'Health-check pings to URL (the healthchecks.io protocol)')
            [CompletionResult]::new('--ping-busy', '--ping-busy', [CompletionResultType]::ParameterName, 'What a busy run pings: nothing (none), or a success (ok)')
            [CompletionResult]::new('--ping-timeout', '--ping-timeout', [CompletionResultType]::ParameterName, 'How long redlock''s exit may wait for the final ping')
            [CompletionResult]::new('--wait-replicas', '--wait-replicas', [CompletionResultType]::ParameterName, 'Replicas that must confirm each acquire and extension')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the lock is busy')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the lock is busy')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Hold the lock shared: beside other --shared runs, never beside an exclusive one')
            [CompletionResult]::new('--replace', '--replace', [CompletionResultType]::ParameterName, 'Take over from the current holder: ask it to stop its command and let go')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Report what happens, with timings, on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Report what happens, with timings, on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;status' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;list' {
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;release' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Only if the lock still holds this token; without --force, give it back')
            [CompletionResult]::new('--slot', '--slot', [CompletionResultType]::ParameterName, 'Only this place of a semaphore (run --limit), 0 to N-1')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Really break the lock')
            [CompletionResult]::new('--now', '--now', [CompletionResultType]::ParameterName, 'Delete the lock at once, without asking its holder to stop first')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;history' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The application''s key, as given to `redlock run --key` (not with --name)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many runs to show')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'How many runs to show')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;acquire' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock (0: try once)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'How long to wait for a busy lock (0: try once)')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Sleep a random time up to DURATION before the first try')
            [CompletionResult]::new('-E', '-E ', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--conflict-exit-code', '--conflict-exit-code', [CompletionResultType]::ParameterName, 'Exit status when the lock is busy')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Length of the lease: the only bound on the hold (required)')
            [CompletionResult]::new('--label', '--label', [CompletionResultType]::ParameterName, 'Record TEXT instead of the command line')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing when the lock is busy')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing when the lock is busy')
            [CompletionResult]::new('--export', '--export', [CompletionResultType]::ParameterName, 'Print shell assignments to `eval`, instead of the token and fence')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Report what happens, with timings, on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Report what happens, with timings, on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;extend' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the lock')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Lock exactly this key, as redis-py''s Lock, node-redlock and redsync do (not with --name)')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Redis server URL (repeat it for several independent servers)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]')
            [CompletionResult]::new('--tls-ca', '--tls-ca', [CompletionResultType]::ParameterName, 'Trust only the CA certificates in FILE for rediss:// servers')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Client certificate for rediss:// servers (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'Private key of --tls-cert (needs --tls-cert)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'The token `redlock acquire` printed (required)')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'The new lease, from now (required)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of redlock''s own lines on stderr: text or json')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Report what happens, with timings, on stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Report what happens, with timings, on stderr')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'redlock;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run COMMAND while holding the lock NAME')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show who holds the lock NAME (exit 0), or that it is free (exit 1)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the held locks, optionally those whose name matches PATTERN')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Break the lock NAME (needs --force), or give back your own (--token)')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Show the last runs of the lock NAME, on every host, newest first')
            [CompletionResult]::new('acquire', 'acquire', [CompletionResultType]::ParameterValue, 'Take the lock NAME and exit, printing its token and fence: a lock held across steps')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Renew the lease of a lock taken by `redlock acquire`, by its token')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'redlock;help;run' {
            break
        }
        'redlock;help;status' {
            break
        }
        'redlock;help;list' {
            break
        }
        'redlock;help;release' {
            break
        }
        'redlock;help;history' {
            break
        }
        'redlock;help;acquire' {
            break
        }
        'redlock;help;extend' {
            break
        }
        'redlock;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
