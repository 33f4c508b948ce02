# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_redlock_global_optspecs
    string join \n log-format= h/help V/version
end

function __fish_redlock_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_redlock_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_redlock_using_subcommand
    set -l cmd (__fish_redlock_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c redlock -n "__fish_redlock_needs_command" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_needs_command" -s V -l version -d 'Print version'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "run" -d 'Run COMMAND while holding the lock NAME'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "status" -d 'Show who holds the lock NAME (exit 0), or that it is free (exit 1)'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "list" -d 'List the held locks, optionally those whose name matches PATTERN'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "release" -d 'Break the lock NAME (needs --force), or give back your own (--token)'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "history" -d 'Show the last runs of the lock NAME, on every host, newest first'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "acquire" -d 'Take the lock NAME and exit, printing its token and fence: a lock held across steps'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "extend" -d 'Renew the lease of a lock taken by `redlock acquire`, by its token'
complete -c redlock -n "__fish_redlock_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c redlock -n "__fish_redlock_using_subcommand run" -s n -l name -d 'Name of the lock; repeat it to hold several locks at once' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l key -d 'Lock exactly this key, as redis-py\'s Lock, node-redlock and redsync do (not with --name)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand run" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand run" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand run" -s w -l wait -d 'How long to wait for a busy lock (0: try once)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l jitter -d 'Sleep a random time up to DURATION before the first try' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -s E -l conflict-exit-code -d 'Exit status when the lock is busy' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l ttl -d 'Length of the lease' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l limit -d 'Allow up to N runs of the name at once: a counting semaphore (default 1: a lock)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l heartbeat -d 'Interval between lease extensions [default: a third of --ttl]' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l kill-after -d 'Grace between SIGTERM and SIGKILL [default: a quarter of --ttl]' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l on-unavailable -d 'What to do when too few Redis servers can be reached: fail, skip, or run' -r -f -a "fail\t'Exit with 69'
skip\t'Exit as if busy (the -E status)'
run\t'Run the command without the lock'"
complete -c redlock -n "__fish_redlock_using_subcommand run" -l timeout -d 'Stop the command once it has run this long (as timeout(1) does)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l min-hold -d 'Keep the lock at least this long after acquiring it' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l label -d 'Record TEXT instead of the command line' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l history -d 'How many runs the lock\'s history keeps (0: record none)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l metrics-dir -d 'After each run, write its outcome to DIR/redlock_NAME.prom (Prometheus textfile)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand run" -l ping -d 'Health-check pings to URL (the healthchecks.io protocol)' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l ping-busy -d 'What a busy run pings: nothing (none), or a success (ok)' -r -f -a "none\t'Nothing: a skipped run is not a failure, and not a run either'
ok\t'A success ping: the job is accounted for'"
complete -c redlock -n "__fish_redlock_using_subcommand run" -l ping-timeout -d 'How long redlock\'s exit may wait for the final ping' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l wait-replicas -d 'Replicas that must confirm each acquire and extension' -r
complete -c redlock -n "__fish_redlock_using_subcommand run" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand run" -s q -l quiet -d 'Print nothing when the lock is busy'
complete -c redlock -n "__fish_redlock_using_subcommand run" -l shared -d 'Hold the lock shared: beside other --shared runs, never beside an exclusive one'
complete -c redlock -n "__fish_redlock_using_subcommand run" -l replace -d 'Take over from the current holder: ask it to stop its command and let go'
complete -c redlock -n "__fish_redlock_using_subcommand run" -s v -l verbose -d 'Report what happens, with timings, on stderr'
complete -c redlock -n "__fish_redlock_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand status" -s n -l name -d 'Name of the lock' -r
complete -c redlock -n "__fish_redlock_using_subcommand status" -l key -d 'Lock exactly this key, as redis-py\'s Lock, node-redlock and redsync do (not with --name)' -r
complete -c redlock -n "__fish_redlock_using_subcommand status" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand status" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand status" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand status" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand status" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand status" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand status" -l json -d 'Print JSON'
complete -c redlock -n "__fish_redlock_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand list" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand list" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand list" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand list" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand list" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand list" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand list" -l json -d 'Print JSON'
complete -c redlock -n "__fish_redlock_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand release" -s n -l name -d 'Name of the lock' -r
complete -c redlock -n "__fish_redlock_using_subcommand release" -l key -d 'Lock exactly this key, as redis-py\'s Lock, node-redlock and redsync do (not with --name)' -r
complete -c redlock -n "__fish_redlock_using_subcommand release" -l token -d 'Only if the lock still holds this token; without --force, give it back' -r
complete -c redlock -n "__fish_redlock_using_subcommand release" -l slot -d 'Only this place of a semaphore (run --limit), 0 to N-1' -r
complete -c redlock -n "__fish_redlock_using_subcommand release" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand release" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand release" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand release" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand release" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand release" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand release" -l force -d 'Really break the lock'
complete -c redlock -n "__fish_redlock_using_subcommand release" -l now -d 'Delete the lock at once, without asking its holder to stop first'
complete -c redlock -n "__fish_redlock_using_subcommand release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand history" -l name -d 'Name of the lock' -r
complete -c redlock -n "__fish_redlock_using_subcommand history" -l key -d 'The application\'s key, as given to `redlock run --key` (not with --name)' -r
complete -c redlock -n "__fish_redlock_using_subcommand history" -s n -l lines -d 'How many runs to show' -r
complete -c redlock -n "__fish_redlock_using_subcommand history" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand history" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand history" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand history" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand history" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand history" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand history" -l json -d 'Print JSON'
complete -c redlock -n "__fish_redlock_using_subcommand history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -s n -l name -d 'Name of the lock' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l key -d 'Lock exactly this key, as redis-py\'s Lock, node-redlock and redsync do (not with --name)' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -s w -l wait -d 'How long to wait for a busy lock (0: try once)' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l jitter -d 'Sleep a random time up to DURATION before the first try' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -s E -l conflict-exit-code -d 'Exit status when the lock is busy' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l ttl -d 'Length of the lease: the only bound on the hold (required)' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l label -d 'Record TEXT instead of the command line' -r
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -s q -l quiet -d 'Print nothing when the lock is busy'
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -l export -d 'Print shell assignments to `eval`, instead of the token and fence'
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -s v -l verbose -d 'Report what happens, with timings, on stderr'
complete -c redlock -n "__fish_redlock_using_subcommand acquire" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand extend" -s n -l name -d 'Name of the lock' -r
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l key -d 'Lock exactly this key, as redis-py\'s Lock, node-redlock and redsync do (not with --name)' -r
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l redis -d 'Redis server URL (repeat it for several independent servers)' -r
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l prefix -d 'Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]' -r
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l tls-ca -d 'Trust only the CA certificates in FILE for rediss:// servers' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l tls-cert -d 'Client certificate for rediss:// servers (needs --tls-key)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l tls-key -d 'Private key of --tls-cert (needs --tls-cert)' -r -F
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l token -d 'The token `redlock acquire` printed (required)' -r
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l ttl -d 'The new lease, from now (required)' -r
complete -c redlock -n "__fish_redlock_using_subcommand extend" -l log-format -d 'Format of redlock\'s own lines on stderr: text or json' -r -f -a "text\t'One `redlock: MESSAGE` line each'
json\t'One JSON object per line'"
complete -c redlock -n "__fish_redlock_using_subcommand extend" -s v -l verbose -d 'Report what happens, with timings, on stderr'
complete -c redlock -n "__fish_redlock_using_subcommand extend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "run" -d 'Run COMMAND while holding the lock NAME'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "status" -d 'Show who holds the lock NAME (exit 0), or that it is free (exit 1)'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "list" -d 'List the held locks, optionally those whose name matches PATTERN'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "release" -d 'Break the lock NAME (needs --force), or give back your own (--token)'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "history" -d 'Show the last runs of the lock NAME, on every host, newest first'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "acquire" -d 'Take the lock NAME and exit, printing its token and fence: a lock held across steps'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "extend" -d 'Renew the lease of a lock taken by `redlock acquire`, by its token'
complete -c redlock -n "__fish_redlock_using_subcommand help; and not __fish_seen_subcommand_from run status list release history acquire extend help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
