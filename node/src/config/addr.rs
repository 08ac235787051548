//! Addresses in the config: listen addresses (an IP and a port) and peer addresses (a host
//! name or IP and a port).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A peer's address: `host:port`, `ipv4:port` or `[ipv6]:port`; the port is 1 to 65535.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// Parses `s`, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<HostPort, String> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return HostPort::from_socket(sa);
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or("expected host:port (the port is missing)")?;
        let port = parse_port(port)?;
        if host.starts_with('[') || host.contains(':') {
            return Err("not a valid [IPv6]:port address".into());
        }
        if host.parse::<IpAddr>().is_err() {
            check_dns_name(host)?;
        }
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn from_socket(sa: SocketAddr) -> Result<HostPort, String> {
        if sa.port() == 0 {
            return Err("port 0 is not a fixed port".into());
        }
        if sa.ip().is_unspecified() {
            return Err("an unspecified address (0.0.0.0 or ::) cannot be dialled".into());
        }
        Ok(HostPort {
            host: sa.ip().to_string(),
            port: sa.port(),
        })
    }

    /// The host name or IP (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A local address to listen on: an IP (possibly `0.0.0.0`) and a non-zero port.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let sa: SocketAddr = s
        .parse()
        .map_err(|_| "expected ip:port (e.g. 0.0.0.0:7001 or [::1]:7001)".to_string())?;
    if sa.port() == 0 {
        return Err("port 0 is not a fixed port".into());
    }
    Ok(sa)
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) => Err("port 0 is not a fixed port".into()),
        Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err("the port is not a number from 1 to 65535".into()),
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and hyphens, each 1 to 63
/// characters and not starting or ending with a hyphen; 253 characters in all.
fn check_dns_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(format!("{label:?} is not a valid host name label"));
        }
    }
    if host
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("not a valid IPv4 address".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        for (s, shown) in [
            ("node-1.example.com:7001", "node-1.example.com:7001"),
            ("Node1:1", "node1:1"),
            ("10.0.0.1:7001", "10.0.0.1:7001"),
            ("[::1]:7001", "[::1]:7001"),
            ("[fe80::1]:65535", "[fe80::1]:65535"),
        ] {
            assert_eq!(HostPort::parse(s).unwrap().to_string(), shown, "{s}");
        }
        for bad in [
            "node1",
            "node1:",
            "node1:0",
            "node1:65536",
            "node1:+80",
            ":7001",
            "-node:7001",
            "no_de:7001",
            "a..b:7001",
            "::1:7001",
            "[::1:7001",
            "0.0.0.0:7001",
            "10.0.0.256:7001",
            "1.2.3:7001",
            "http://node1:7001",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("0.0.0.0:7001").unwrap(),
            "0.0.0.0:7001".parse().unwrap()
        );
        assert!(parse_listen("[::]:9").is_ok());
        for bad in ["localhost:7001", "0.0.0.0:0", "0.0.0.0", "7001"] {
            assert!(parse_listen(bad).is_err(), "{bad} accepted");
        }
    }
}
