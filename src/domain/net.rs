//! Network newtypes.

use std::net::{IpAddr, Ipv6Addr};

use super::ParseError;

/// An IP network in CIDR notation, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address (a single host).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError::new("must be an IP network such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
/// untrusted address in `X-Forwarded-For` (read right to left, as each proxy appends the
/// address it saw). A malformed entry stops the walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = canonical(peer);
    if !is_trusted(client) {
        return client;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return client;
        };
        client = canonical(ip);
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// The key a client address is counted under (per-address budgets, connection limits):
/// an IPv4 address (IPv4-mapped IPv6 included) as it is, an IPv6 address by its /64, the
/// block one subscriber usually holds.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().filter_map(|c| Cidr::parse(c).ok()).collect()
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net = cidrs(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(net[0].contains(ip("10.200.1.2")));
        assert!(!net[0].contains(ip("11.0.0.1")));
        assert!(net[0].contains(ip("::ffff:10.1.1.1")));
        assert!(net[1].contains(ip("2001:db8:1::5")));
        assert!(!net[1].contains(ip("2001:db9::1")));
        assert!(cidrs(&["0.0.0.0/0"])[0].contains(ip("8.8.8.8")));
    }

    #[test]
    fn only_trusted_proxies_may_name_the_client() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // Untrusted peer: its header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // Trusted peer: the nearest untrusted hop, even if the client forged earlier ones.
        assert_eq!(
            client_ip(
                ip("10.0.0.5"),
                &["6.6.6.6, 198.51.100.7", "10.0.0.9"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &["junk"], &trusted),
            ip("10.0.0.5")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.5"), &[], &trusted), ip("10.0.0.5"));
    }
}
