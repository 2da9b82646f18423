//! Configuration of `auth-verifier`: every setting is an environment variable and a matching
//! command-line flag (clap). A malformed value stops start-up with a message naming it.

use std::net::SocketAddr;
use std::time::Duration;

use auth_protocol::Secret;
use clap::Parser;

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("`{s}` is not a whole number of seconds"))
}

/// Settings of the verifier, from flags or environment variables.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "auth-verifier",
    version,
    about = "Answers token checks (forward-auth, RFC 7662) from memory"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "VERIFIER_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Base URL of `auth-api` (JWKS, discovery, revocation feed, introspection).
    #[arg(
        long,
        env = "VERIFIER_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,

    /// Machine token (scope `verify`) presented to the API. Not needed on a loopback SQLite
    /// dev setup. Checked at start (introspected through the API): a token the API refuses,
    /// or one without scope `verify`, stops start-up. Without scope `platform` too, the token
    /// is bound to its tenant: the API tells it only that tenant's revocations, so only that
    /// tenant's tokens are accepted here (other tenants' access tokens get 403; their machine
    /// tokens, which the API reports inactive to such a token, 401).
    #[arg(long, env = "VERIFIER_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<Secret>,

    /// Expected `iss` of access tokens; default: the `issuer` of the API's
    /// `/.well-known/openid-configuration`.
    #[arg(long, env = "VERIFIER_ISSUER")]
    pub issuer: Option<String>,

    /// Expected `aud` of access tokens; default: the issuer (what the API puts there).
    #[arg(long, env = "VERIFIER_AUDIENCE")]
    pub audience: Option<String>,

    /// Tenants (slugs) whose tokens this verifier accepts, comma-separated; empty accepts
    /// every tenant. A valid token of another tenant gets 403. With a tenant-bound
    /// `VERIFIER_API_TOKEN` (no scope `platform`) only the token's tenant is accepted, and a
    /// list naming any other tenant stops start-up.
    #[arg(long, env = "VERIFIER_TENANTS", value_delimiter = ',', num_args = 0..)]
    pub tenants: Vec<String>,

    /// Seconds the revocation feed may be down before tokens are refused rather than checked
    /// against a stale list. The API pings every 5 s, so 30 s is six missed pings: long enough
    /// to ride out an API restart or a rolling deploy, short beside the 15-minute life of an
    /// access token, which is how long a revoked token would otherwise stay usable.
    #[arg(long, env = "VERIFIER_STALENESS_LIMIT_SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub staleness_limit: Duration,

    /// Most verified tokens kept in memory (about 300 bytes each).
    #[arg(long, env = "VERIFIER_CACHE_CAPACITY", default_value_t = 200_000)]
    pub cache_capacity: u64,

    /// Least seconds between two JWKS fetches triggered by an unknown `kid`, so invented key
    /// ids cannot make the verifier hammer the API.
    #[arg(long, env = "VERIFIER_JWKS_MIN_INTERVAL_SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub jwks_min_interval: Duration,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "VERIFIER_LEEWAY_SECONDS", default_value_t = 5)]
    pub leeway: u64,

    /// Seconds an introspection answer of the API for a machine token (`mt_…`) is reused. A
    /// deleted machine token, or any machine token of a deleted tenant, is refused at once
    /// when the feed reports it.
    #[arg(long, env = "VERIFIER_MACHINE_TOKEN_TTL_SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub machine_token_ttl: Duration,

    /// `realm` of the `WWW-Authenticate` challenge.
    #[arg(long, env = "VERIFIER_REALM", default_value = "auth")]
    pub realm: String,

    /// Let `POST /introspect` answer a caller without a token when the caller is on this host:
    /// its TCP peer is a loopback address and the request carries no forwarding header
    /// (`Forwarded`, `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto`,
    /// `X-Real-IP`), so a same-host reverse proxy never passes the exemption on. Otherwise a
    /// caller presents `Authorization: Bearer mt_…` with scope `verify` (401 without or with a
    /// bad token, 403 without the scope), and learns only about tokens of its own tenant
    /// (`{"active": false}` for others) unless it holds `platform` too. A presented token is
    /// always checked. Default: on only when the listen address is loopback and
    /// `VERIFIER_API_TOKEN` is unset (the zero-config dev setup).
    #[arg(long, env = "VERIFIER_INTROSPECT_LOOPBACK_NO_TOKEN", action = clap::ArgAction::Set)]
    pub introspect_loopback_no_token: Option<bool>,
}

impl Config {
    /// The API base URL without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    /// Whether tokenless loopback callers of `POST /introspect` are answered, for a verifier
    /// listening on `listen`: the setting, or by default on only for a loopback listen address
    /// without `VERIFIER_API_TOKEN`.
    pub fn introspect_loopback_no_token(&self, listen: SocketAddr) -> bool {
        self.introspect_loopback_no_token
            .unwrap_or_else(|| listen.ip().to_canonical().is_loopback() && self.api_token.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["auth-verifier"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("parses")
    }

    #[test]
    fn the_loopback_exemption_defaults_to_the_tokenless_loopback_dev_setup() {
        let lo: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8081".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        let dev = Config {
            api_token: None,
            ..parse(&[])
        };
        assert!(dev.introspect_loopback_no_token(lo));
        assert!(dev.introspect_loopback_no_token(lo6));
        assert!(
            !dev.introspect_loopback_no_token(any),
            "not on a public address"
        );
        let with_token = parse(&["--api-token", "mt_x"]);
        assert!(
            !with_token.introspect_loopback_no_token(lo),
            "not with a token"
        );
        let forced = parse(&[
            "--api-token",
            "mt_x",
            "--introspect-loopback-no-token",
            "true",
        ]);
        assert!(forced.introspect_loopback_no_token(lo));
        assert!(forced.introspect_loopback_no_token(any));
        let off = Config {
            api_token: None,
            ..parse(&["--introspect-loopback-no-token", "false"])
        };
        assert!(!off.introspect_loopback_no_token(lo));
        assert!(
            Config::try_parse_from(["auth-verifier", "--introspect-loopback-no-token", "maybe"])
                .is_err()
        );
    }
}
