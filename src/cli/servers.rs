//! The options every command that talks to Redis shares: which servers, the key prefix, and
//! the TLS files.

use std::path::PathBuf;

use clap::Args;

/// Where the locks are: shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Redis server URL (repeat it for several independent servers)
    ///
    /// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... for TLS, redis+unix:///PATH, or
    /// redis+sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB] (rediss+sentinel://
    /// for TLS; ?sentinel_username=U&sentinel_password=P when the sentinels' own credentials
    /// differ) for the primary that Redis Sentinel watches under SERVICE: the sentinels are asked
    /// where it is each time a connection opens, and again after a failover. A URL may name any
    /// node of a Redis Cluster, or several (redis://n1:7000,n2:7001, tried in turn): requests
    /// follow the cluster's redirects to the node that owns the lock. A cluster, or a set of sentinels, counts as one server. A TLS server's certificate is checked against those of --tls-ca, else the system's
    /// trusted certificates or those of the PEM file SSL_CERT_FILE names; a URL ending in
    /// /#insecure skips the check (for testing only). Checked before anything runs; messages name a server by host:port
    /// or socket path, never with its password. Repeat it, or give REDLOCK_URL a comma-separated
    /// list, for several independent servers: the lock then needs a majority of them (the
    /// Redlock algorithm).
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "REDLOCK_URL",
        default_value = "redis://127.0.0.1:6379",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis: Vec<String>,

    /// Prefix of every key redlock writes [env: REDLOCK_PREFIX] [default: redlock]
    ///
    /// The lock NAME lives in PREFIX:{NAME}, its holder's details in PREFIX:{NAME}:holder and its
    /// fencing counter in PREFIX:{NAME}:fence. No braces or control characters. Not with --key,
    /// which names the key itself (REDLOCK_PREFIX is then ignored).
    // REDLOCK_PREFIX is read by `prefix()`, not as clap's `env`: clap would take the variable
    // for the option given, and refuse it beside --key.
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub given_prefix: Option<String>,

    /// Trust only the CA certificates in FILE for rediss:// servers
    ///
    /// A PEM file of one or more certificates: every rediss:// server's certificate must be
    /// signed by one of them, and the system's trusted certificates (and SSL_CERT_FILE) are not
    /// used. Without it, the system's trusted certificates are, or those of the PEM file
    /// SSL_CERT_FILE names. Read when redlock starts: a file that cannot be read or holds no
    /// certificate is a usage error.
    #[arg(
        long,
        value_name = "FILE",
        env = "REDLOCK_TLS_CA",
        hide_env_values = true
    )]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate for rediss:// servers (needs --tls-key)
    ///
    /// A PEM file: the certificate first, then any intermediate certificates. It is shown to
    /// every rediss:// server that asks for one (mutual TLS: redis-server --tls-auth-clients);
    /// a server that refuses it is unavailable (69), with its reason. Read when redlock starts:
    /// a file that cannot be read or holds no certificate is a usage error.
    #[arg(
        long,
        value_name = "FILE",
        env = "REDLOCK_TLS_CERT",
        hide_env_values = true,
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (needs --tls-cert)
    ///
    /// A PEM file holding the unencrypted private key (PKCS#8, RSA or EC) of the --tls-cert
    /// certificate. Read when redlock starts: a file that cannot be read, holds no key or holds
    /// another certificate's key is a usage error.
    #[arg(
        long,
        value_name = "FILE",
        env = "REDLOCK_TLS_KEY",
        hide_env_values = true,
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

impl ServerArgs {
    /// --prefix, else REDLOCK_PREFIX, else `redlock`.
    pub fn prefix(&self) -> String {
        self.given_prefix
            .clone()
            .or_else(|| std::env::var("REDLOCK_PREFIX").ok())
            .unwrap_or_else(|| "redlock".to_string())
    }
}
