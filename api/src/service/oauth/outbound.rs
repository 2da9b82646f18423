//! The one HTTP client for calls to providers: https only, no redirects, timeouts, a
//! response size limit, and SSRF protection: a URL whose host is, or resolves to, a loopback,
//! private, link-local (cloud metadata), shared, multicast or unspecified address is refused,
//! both when a provider is configured and at connect time (a resolver that filters what DNS
//! answers, so a name cannot be pointed at an internal address after it was checked).
//! `AUTH_OAUTH_ALLOW_LOOPBACK` lifts both rules (development and tests).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Future;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Largest provider answer read, in bytes.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Time to connect to a provider.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole provider call.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to a provider failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutboundError {
    /// The URL is not one we call (scheme, or an address SSRF protection refuses).
    #[error("refused URL: {0}")]
    Refused(String),
    /// Connecting, sending or reading failed (or timed out).
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The answer is larger than [`MAX_RESPONSE_BYTES`].
    #[error("provider answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// Whether `ip` is one a provider may not be: loopback, private, link-local (with cloud
/// metadata at 169.254.169.254 and fd00:ec2::254), shared (100.64/10), unspecified,
/// broadcast, multicast, documentation or unique-local; IPv4-mapped IPv6 as its IPv4.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x64 && v6.segments()[1] == 0xff9b)
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

/// Resolves names and refuses the answer when any address is internal.
#[derive(Debug)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
                return Err(format!("{host} resolves to the internal address {}", bad.ip()).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The outbound client. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    client: reqwest::Client,
    allow_loopback: bool,
}

/// What [`Outbound::send`] returns, boxed so the oauth2 crate can use it as its HTTP client.
pub(crate) type Sending =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, OutboundError>> + Send>>;

impl Outbound {
    /// A client; `allow_loopback` allows http:// and internal addresses.
    pub(crate) fn new(allow_loopback: bool) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("auth-api/", env!("CARGO_PKG_VERSION")));
        if !allow_loopback {
            builder = builder
                .https_only(true)
                .dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            client: builder.build()?,
            allow_loopback,
        })
    }

    /// Parse `raw` and refuse what is never called: not https (unless allowed), credentials
    /// in the URL, no host, a literal internal address.
    pub(crate) fn check_url(&self, raw: &str) -> Result<Url, OutboundError> {
        let url = Url::parse(raw).map_err(|_| OutboundError::Refused("not a URL".into()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_loopback => {}
            _ => return Err(OutboundError::Refused("the URL must be https".into())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::Refused(
                "the URL must not carry credentials".into(),
            ));
        }
        let ip = match url.host() {
            None => return Err(OutboundError::Refused("the URL has no host".into())),
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
        };
        if let Some(ip) = ip
            && !self.allow_loopback
            && is_internal(ip)
        {
            return Err(OutboundError::Refused(format!(
                "{ip} is an internal address"
            )));
        }
        Ok(url)
    }

    /// [`Outbound::check_url`], then resolve the host now and refuse internal addresses
    /// (what configuration checks; connecting checks again).
    pub(crate) async fn check_resolves(&self, raw: &str) -> Result<Url, OutboundError> {
        let url = self.check_url(raw)?;
        if self.allow_loopback {
            return Ok(url);
        }
        if let Some(Host::Domain(host)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs = tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| OutboundError::Refused(format!("{host} does not resolve")))?;
            for addr in addrs {
                if is_internal(addr.ip()) {
                    return Err(OutboundError::Refused(format!(
                        "{host} resolves to the internal address {}",
                        addr.ip()
                    )));
                }
            }
        }
        Ok(url)
    }

    /// Send a request and read at most [`MAX_RESPONSE_BYTES`] of the answer.
    pub(crate) fn send(&self, request: oauth2::HttpRequest) -> Sending {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = this.check_url(&parts.uri.to_string())?;
            let mut outgoing = this.client.request(parts.method, url).body(body);
            for (name, value) in &parts.headers {
                outgoing = outgoing.header(name, value);
            }
            let response = outgoing
                .send()
                .await
                .map_err(|e| OutboundError::Unreachable(error_chain(&e)))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_limited(response).await?;
            let mut answer = http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }

    /// GET `url` as JSON, with a bearer token if given; non-2xx answers are errors.
    pub(crate) async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<(http::StatusCode, serde_json::Value), OutboundError> {
        let mut request = http::Request::get(url).header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Vec::new())
            .map_err(|_| OutboundError::Refused("not a URL".into()))?;
        let response = self.send(request).await?;
        let status = response.status();
        let value = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}

/// oauth2's HTTP client: every token, refresh and revocation call goes through [`Outbound::send`].
impl<'c> oauth2::AsyncHttpClient<'c> for Outbound {
    type Error = OutboundError;
    type Future = Sending;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        self.send(request)
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, OutboundError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(OutboundError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| OutboundError::Unreachable(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(OutboundError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its sources, for logs (a URL is in it, never a token: tokens travel in
/// headers and bodies).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} allowed");
        }
        for ip in ["8.8.8.8", "142.250.74.36", "2a00:1450:4001:80b::200e"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} refused");
        }
    }

    #[test]
    fn urls_are_checked() {
        let strict = Outbound::new(false).unwrap();
        for bad in [
            "http://accounts.example.com",
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://[::1]/",
            "https://169.254.169.254/latest",
            "https://user:pw@accounts.example.com/",
            "ftp://accounts.example.com/",
            "not a url",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad} accepted");
        }
        assert!(strict.check_url("https://accounts.google.com").is_ok());
        let loose = Outbound::new(true).unwrap();
        assert!(loose.check_url("http://127.0.0.1:9999/").is_ok());
    }
}
