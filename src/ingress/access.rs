//! Who may post callbacks: an optional allow-list of networks, checked on the peer address, or
//! on a proxy's client-address header when the peer is a configured trusted proxy.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

use crate::config::AccessRules;

impl AccessRules {
    /// The caller's address: the peer, or, behind a trusted proxy, the last address in the
    /// proxy header that is not itself a trusted proxy. `None` when the header is unusable.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let values: Vec<&str> = headers
            .get_all(self.client_ip_header.as_str())
            .map(|v| v.to_str().ok())
            .collect::<Option<_>>()?;
        if values.is_empty() {
            return Some(peer);
        }
        let mut chain = Vec::new();
        for part in values.iter().flat_map(|v| v.split(',')) {
            chain.push(part.trim().parse::<IpAddr>().ok()?.to_canonical());
        }
        // Proxies append what they saw: read from the right, past every trusted hop.
        chain
            .iter()
            .rev()
            .copied()
            .find(|ip| !self.is_trusted(*ip))
            .or(chain.first().copied())
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether this address may post callbacks.
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.allowed.iter().any(|net| net.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn rules(allowed: &[&str], trusted: &[&str]) -> AccessRules {
        AccessRules {
            allowed: allowed.iter().map(|s| s.parse().unwrap()).collect(),
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
            client_ip_header: "X-Forwarded-For".into(),
        }
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_an_allow_list_everyone_is_permitted() {
        assert!(rules(&[], &[]).permits(ip("203.0.113.9")));
    }

    #[test]
    fn the_peer_address_is_checked_and_the_header_ignored_from_untrusted_peers() {
        let r = rules(&["10.0.0.0/8"], &[]);
        assert_eq!(r.client_ip(ip("192.0.2.1"), &xff("10.1.1.1")), ip("192.0.2.1"));
        assert!(!r.permits(r.client_ip(ip("192.0.2.1"), &xff("10.1.1.1"))));
        assert!(r.permits(ip("10.2.3.4")));
        assert!(r.permits(r.client_ip(ip("::ffff:10.2.3.4"), &HeaderMap::new())));
    }

    #[test]
    fn behind_a_trusted_proxy_the_last_untrusted_hop_counts() {
        let r = rules(&["203.0.113.0/24"], &["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            r.client_ip(ip("127.0.0.1"), &xff("198.51.100.7, 203.0.113.5, 10.0.0.2")),
            ip("203.0.113.5")
        );
        assert_eq!(r.client_ip(ip("127.0.0.1"), &xff("not-an-ip")), None);
        assert!(!r.permits(None));
        assert_eq!(r.client_ip(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
    }
}
