//! Configuration: every setting is an environment variable (a `.env` file is read first) and a
//! matching command-line flag. A malformed value stops start-up with a message naming it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::crypto::MasterKey;

/// Settings of the API, from flags or environment variables.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// `sqlite://…` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://auth.db",
        global = true
    )]
    pub database_url: String,

    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,

    /// Seconds a request waits for a pooled database connection before it fails
    /// (`INTERNAL`, or 503 outside GraphQL). Short, so that with the database down requests
    /// are answered promptly rather than hanging past a load balancer's timeout.
    #[arg(
        long,
        env = "DATABASE_ACQUIRE_TIMEOUT_SECONDS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..=60),
        global = true
    )]
    pub database_acquire_timeout_seconds: u64,

    /// Address the API listens on.
    #[arg(
        long,
        env = "AUTH_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// `iss` of issued tokens; the API's base URL, without a trailing slash.
    #[arg(long, env = "AUTH_ISSUER", default_value = "http://127.0.0.1:8080", value_parser = parse_issuer, global = true)]
    pub issuer: String,

    /// `aud` of issued access tokens; the issuer when unset.
    #[arg(long, env = "AUTH_AUDIENCE", global = true)]
    pub audience: Option<String>,

    /// 32-byte key, base64, that encrypts secrets at rest. Dev only: generated beside the
    /// SQLite file when unset.
    #[arg(long, env = "AUTH_MASTER_KEY", value_parser = MasterKey::parse, global = true, hide_env_values = true)]
    pub master_key: Option<MasterKey>,

    /// Comma-separated emails that are admins of the default tenant.
    #[arg(long, env = "AUTH_ADMIN_EMAILS", value_delimiter = ',', global = true)]
    pub admin_emails: Vec<String>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "AUTH_ACCESS_TTL_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(i64).range(30..=86_400), global = true)]
    pub access_ttl_seconds: i64,

    /// Absolute lifetime of a session, in seconds (default 24 days).
    #[arg(long, env = "AUTH_SESSION_TTL_SECONDS", default_value_t = 24 * 86_400, value_parser = clap::value_parser!(i64).range(60..), global = true)]
    pub session_ttl_seconds: i64,

    /// Lifetime of the mfaToken of an `MFA_REQUIRED` answer (the sign-in waiting for its
    /// second factor), in seconds.
    #[arg(long, env = "AUTH_MFA_TOKEN_TTL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(i64).range(1..=3_600), global = true)]
    pub mfa_token_ttl_seconds: i64,

    /// A used refresh token presented again within this many seconds gets the same new pair;
    /// 0 turns the grace off.
    #[arg(long, env = "AUTH_REFRESH_GRACE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(0..=300), global = true)]
    pub refresh_grace_seconds: i64,

    /// Proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is believed.
    #[arg(
        long,
        env = "AUTH_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_net,
        global = true
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Let loopback callers use `/introspect` and `/internal/revocations` without a machine
    /// token (the zero-config verifier beside a laptop's API). Default: on only with SQLite and
    /// a loopback listen address. Never applies to a request that carries forwarding headers
    /// or comes from a trusted proxy: behind a same-host reverse proxy, loopback is the
    /// internet.
    #[arg(long, env = "AUTH_INTERNAL_LOOPBACK_NO_TOKEN", action = clap::ArgAction::Set, global = true)]
    pub internal_loopback_no_token: Option<bool>,

    /// PEM private key (Ed25519, P-256 or RSA) to sign with instead of a generated key.
    #[arg(long, env = "AUTH_SIGNING_KEY_FILE", global = true)]
    pub signing_key_file: Option<PathBuf>,

    /// Serve GraphiQL on `GET /graphql`.
    #[arg(long, env = "AUTH_GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub graphiql: bool,

    /// Answer schema introspection queries; follows `AUTH_GRAPHIQL` when unset.
    #[arg(long, env = "AUTH_INTROSPECTION", action = clap::ArgAction::Set, global = true)]
    pub introspection: Option<bool>,

    /// Largest request body, in bytes; raised to admit the largest avatar
    /// (`AUTH_AVATAR_MAX_BYTES` as base64) with room for the rest of the request, see
    /// [`Config::body_limit`].
    #[arg(long, env = "AUTH_MAX_BODY_BYTES", default_value_t = 64 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Largest avatar image, in bytes (decoded).
    #[arg(long, env = "AUTH_AVATAR_MAX_BYTES", default_value_t = 256 * 1024, global = true)]
    pub avatar_max_bytes: usize,

    /// Most `sessionEvents` subscriptions one session may hold open at once (per process).
    #[arg(
        long,
        env = "AUTH_SUBSCRIPTIONS_PER_SESSION",
        default_value_t = 5,
        global = true
    )]
    pub subscriptions_per_session: usize,

    /// Most `sessionEvents` subscriptions this process holds open at once.
    #[arg(
        long,
        env = "AUTH_SUBSCRIPTIONS_MAX",
        default_value_t = 20_000,
        global = true
    )]
    pub subscriptions_max: usize,

    /// Outgoing mail server, e.g. `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465` (TLS); unset = mail is written to the log.
    #[arg(long, env = "SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Comma-separated origins of browser frontends allowed to call the API (CORS), e.g.
    /// `https://app.example.com`; tenants add their own (`allowedOrigins`). Empty: none.
    #[arg(long, env = "AUTH_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub cors_origins: Vec<String>,

    /// WebAuthn relying-party id passkeys are bound to: a domain name, the host of the
    /// frontends' origins or a parent of it (`example.com` for `https://app.example.com`).
    /// The host of `AUTH_ISSUER` when unset; passkeys are off when that is an IP address.
    #[arg(long, env = "AUTH_WEBAUTHN_RP_ID", global = true)]
    pub webauthn_rp_id: Option<String>,

    /// Comma-separated origins passkeys may be used from (the pages that call
    /// `navigator.credentials`), e.g. `https://app.example.com`; each must be on the
    /// relying-party id's domain. `AUTH_ISSUER` when empty.
    #[arg(long, env = "AUTH_WEBAUTHN_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub webauthn_origins: Vec<String>,

    /// Sender of mail when the tenant's branding names none.
    #[arg(
        long,
        env = "AUTH_MAIL_FROM",
        default_value = "Auth <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// Scales every rate limit (sign-in, codes, resets; per IP and per email): 2 doubles
    /// them, 0 turns rate limiting off. Account lockout after failed sign-ins stays on.
    #[arg(long, env = "AUTH_RATE_LIMIT_FACTOR", default_value_t = 1.0, value_parser = parse_factor, global = true)]
    pub rate_limit_factor: f64,

    /// Allow `http://` and loopback/private addresses for OAuth/OIDC provider URLs
    /// (development and tests only: it turns off the SSRF protection of provider calls).
    #[arg(long, env = "AUTH_OAUTH_ALLOW_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub oauth_allow_loopback: bool,

    /// Least time, in seconds, between two fetches of a provider's JWKS caused by an
    /// id_token with an unknown `kid` (invented `kid`s cannot make us flood the provider).
    #[arg(
        long,
        env = "AUTH_OAUTH_JWKS_REFETCH_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub oauth_jwks_refetch_seconds: u64,

    /// Log format: `text` or `json`.
    #[arg(long, env = "AUTH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,
}

impl Config {
    /// The largest request body accepted: `AUTH_MAX_BODY_BYTES`, or more when the largest
    /// avatar as base64 (plus 16 KiB for the rest of the request) needs it.
    pub fn body_limit(&self) -> usize {
        let avatar = self.avatar_max_bytes.div_ceil(3) * 4 + 16 * 1024;
        self.max_body_bytes.max(avatar)
    }

    /// A configuration with every default, for `database_url`, that reads no environment
    /// variable (a `SMTP_URL` in the shell does not reach it); what tests start from.
    pub fn for_database(database_url: &str) -> Self {
        use clap::FromArgMatches;
        let command =
            Config::augment_args(clap::Command::new("auth-api")).mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["auth-api", "--database-url", database_url]);
        Config::from_arg_matches(&matches).expect("the defaults parse")
    }

    /// The audience of access tokens.
    pub fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(&self.issuer)
    }

    /// The WebAuthn relying-party id: `AUTH_WEBAUTHN_RP_ID`, or the host of the issuer.
    pub fn webauthn_rp_id(&self) -> String {
        match &self.webauthn_rp_id {
            Some(id) => id.trim().to_ascii_lowercase(),
            None => url::Url::parse(&self.issuer)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }

    /// The origins passkeys may be used from: `AUTH_WEBAUTHN_ORIGINS`, or the issuer.
    pub fn webauthn_origins(&self) -> Vec<String> {
        if self.webauthn_origins.is_empty() {
            vec![self.issuer.clone()]
        } else {
            self.webauthn_origins.clone()
        }
    }

    /// Whether introspection queries are answered.
    pub fn introspection(&self) -> bool {
        self.introspection.unwrap_or(self.graphiql)
    }

    /// Whether tokenless loopback callers may use the machine endpoints (see the setting).
    pub fn internal_loopback_no_token(&self) -> bool {
        self.internal_loopback_no_token
            .unwrap_or_else(|| self.is_sqlite() && self.listen.ip().is_loopback())
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The SQLite file, if the database is a SQLite file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

fn parse_factor(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor >= 0.0 => Ok(factor),
        _ => Err("must be a number, 0 or more".into()),
    }
}

/// An IP network: a CIDR (`10.0.0.0/8`) or a single address (`127.0.0.1`, `::1`), which
/// stands for itself alone.
fn parse_net(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{value}` is neither an IP address nor a CIDR"))
}

/// A browser origin exactly as browsers send it: `scheme://host[:port]`, nothing more.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    let parsed =
        url::Url::parse(value).map_err(|_| "must be an origin such as https://app.example.com")?;
    let exact = parsed.origin().ascii_serialization();
    if !matches!(parsed.scheme(), "http" | "https") || exact != value {
        return Err(format!(
            "must be an origin such as https://app.example.com (scheme, host, port; no path, no trailing slash, no wildcard), not {value}"
        ));
    }
    Ok(exact)
}

fn parse_issuer(value: &str) -> Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err("must be an http:// or https:// URL".into());
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn test_configuration_reads_no_environment() {
        // SAFETY: a unit test of its own; no other thread reads this variable.
        unsafe { std::env::set_var("AUTH_ACCESS_TTL_SECONDS", "31") };
        let config = Config::for_database("sqlite://auth.db");
        unsafe { std::env::remove_var("AUTH_ACCESS_TTL_SECONDS") };
        assert_eq!(config.access_ttl_seconds, 900);
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::for_database("sqlite://auth.db");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.issuer, "http://127.0.0.1:8080");
        assert_eq!(config.refresh_grace_seconds, 10);
        assert_eq!(config.session_ttl_seconds, 24 * 86_400);
        assert_eq!(config.sqlite_path(), Some(PathBuf::from("auth.db")));
        assert_eq!(config.webauthn_rp_id(), "127.0.0.1");
        assert_eq!(config.webauthn_origins(), ["http://127.0.0.1:8080"]);
    }

    #[test]
    fn webauthn_settings_default_to_the_issuer() {
        let cli = Cli::try_parse_from(["auth-api", "--issuer", "https://auth.example.com/"])
            .expect("issuer");
        assert_eq!(cli.config.webauthn_rp_id(), "auth.example.com");
        assert_eq!(cli.config.webauthn_origins(), ["https://auth.example.com"]);
        let cli = Cli::try_parse_from([
            "auth-api",
            "--webauthn-rp-id",
            "Example.com",
            "--webauthn-origins",
            "https://app.example.com, https://example.com",
        ])
        .expect("explicit");
        assert_eq!(cli.config.webauthn_rp_id(), "example.com");
        assert_eq!(
            cli.config.webauthn_origins(),
            ["https://app.example.com", "https://example.com"]
        );
        let err = Cli::try_parse_from(["auth-api", "--webauthn-origins", "https://a.test/x"])
            .unwrap_err();
        assert!(err.to_string().contains("--webauthn-origins"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let cli =
            Cli::try_parse_from(["auth-api", "--trusted-proxies", "127.0.0.1, ::1,10.0.0.0/8"])
                .expect("addresses and CIDRs");
        let nets: Vec<String> = cli
            .config
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]);
    }

    #[test]
    fn malformed_values_are_named() {
        let err = Cli::try_parse_from(["auth-api", "--listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
        let err =
            Cli::try_parse_from(["auth-api", "--trusted-proxies", "10.0.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("--trusted-proxies"), "{err}");
        let err = Cli::try_parse_from(["auth-api", "--master-key", "short"]).unwrap_err();
        assert!(err.to_string().contains("--master-key"), "{err}");
    }
}
