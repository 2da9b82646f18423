//! The loopback exemption both binaries offer a zero-config development setup: a tokenless
//! request to a machine endpoint is answered only from a loopback peer that nothing says was
//! forwarded. A same-host reverse proxy connects from loopback too; the headers it adds are
//! how the rule tells its requests apart.

use std::net::IpAddr;

/// Headers a reverse proxy adds (lower case, as HTTP header maps hold them): a request that
/// carries any of them was forwarded, whatever its TCP peer.
pub const FORWARDING_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Whether a tokenless request from `peer` passes the exemption: `peer` is a loopback address
/// (an IPv4-mapped `::ffff:127.…` too) and `forwarded` (any of [`FORWARDING_HEADERS`] present)
/// is false. Whether the exemption is on at all is each binary's setting.
pub fn loopback_exempt(peer: IpAddr, forwarded: bool) -> bool {
    peer.to_canonical().is_loopback() && !forwarded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unforwarded_loopback_peers_pass() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(loopback_exempt(ip("127.0.0.1"), false));
        assert!(loopback_exempt(ip("::1"), false));
        assert!(loopback_exempt(ip("::ffff:127.0.0.1"), false));
        assert!(!loopback_exempt(ip("127.0.0.1"), true));
        assert!(!loopback_exempt(ip("10.0.0.1"), false));
        assert!(!loopback_exempt(ip("::ffff:10.0.0.1"), false));
    }
}
