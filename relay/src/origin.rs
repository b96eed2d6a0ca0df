//! Which requests are for this relay and from whom: the `Host` a request names must be one
//! of the relay's public origins (or, with none configured, a loopback name), so a page
//! that rebinds its own name to the relay's address is refused; and a page is same-origin
//! only when its `Origin` matches one of those origins exactly, scheme included.

/// An origin `scheme://host[:port]`, lowercased, without a default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Parses an origin; `None` for anything else (a path, `null`, another scheme).
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.trim_end_matches('/').split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = split_authority(rest)?;
        Some(Self {
            scheme,
            host,
            port: port.filter(|p| *p != default_port),
        })
    }

    fn authority_matches(&self, host: &str, port: Option<u16>) -> bool {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        self.host == host && self.port.unwrap_or(default_port) == port.unwrap_or(default_port)
    }
}

/// `host[:port]` (IPv6 in brackets) → lowercased host and port.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port.parse().ok()?)),
            None => (authority.to_owned(), None),
        }
    };
    Some((host.to_ascii_lowercase(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request naming `host` (its `Host` header) is for this relay.
pub fn host_allowed(host: Option<&str>, public_origins: &[String]) -> bool {
    let Some((name, port)) = host.and_then(split_authority) else {
        return false;
    };
    if public_origins.is_empty() {
        return is_loopback(&name);
    }
    public_origins
        .iter()
        .filter_map(|o| Origin::parse(o))
        .any(|o| o.authority_matches(&name, port))
}

/// Whether a page from `origin` may use the relay reached as `host`: an allowed origin, or
/// the relay's own (a public origin, or with none configured the loopback host itself).
pub fn origin_allowed(
    origin: &str,
    host: Option<&str>,
    public_origins: &[String],
    allowed_origins: &[String],
) -> bool {
    if allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let Some(origin) = Origin::parse(origin) else {
        return false;
    };
    if !public_origins.is_empty() {
        return public_origins
            .iter()
            .filter_map(|o| Origin::parse(o))
            .any(|o| o == origin);
    }
    match host.and_then(split_authority) {
        Some((name, port)) => {
            is_loopback(&name) && origin.authority_matches(&name, port) && origin.host == name
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_public_origins_only_loopback_hosts_are_served() {
        let none: &[String] = &[];
        assert!(host_allowed(Some("127.0.0.1:8080"), none));
        assert!(host_allowed(Some("localhost:8080"), none));
        assert!(host_allowed(Some("[::1]:8080"), none));
        assert!(!host_allowed(Some("evil.example:8080"), none));
        assert!(!host_allowed(Some("10.0.0.5:8080"), none));
        assert!(!host_allowed(None, none));
        let same = |origin: &str, host: &str| origin_allowed(origin, Some(host), none, none);
        assert!(same("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same("http://evil.example:8080", "evil.example:8080"));
        assert!(!same("http://127.0.0.1:9999", "127.0.0.1:8080"));
        assert!(!same("null", "127.0.0.1:8080"));
    }

    #[test]
    fn public_origins_name_the_host_and_the_scheme() {
        let public = strings(&["https://console.example.com"]);
        let allowed = strings(&["https://app.example.com"]);
        assert!(host_allowed(Some("console.example.com"), &public));
        assert!(host_allowed(Some("Console.Example.com:443"), &public));
        assert!(!host_allowed(Some("console.example.com:8443"), &public));
        assert!(!host_allowed(Some("127.0.0.1:8080"), &public));
        let from =
            |origin: &str| origin_allowed(origin, Some("console.example.com"), &public, &allowed);
        assert!(from("https://console.example.com"));
        assert!(!from("http://console.example.com"));
        assert!(from("https://app.example.com"));
        assert!(!from("https://evil.example"));
    }

    #[test]
    fn origins_parse_strictly() {
        assert_eq!(
            Origin::parse("https://A.example:443/"),
            Some(Origin {
                scheme: "https".into(),
                host: "a.example".into(),
                port: None
            })
        );
        assert_eq!(Origin::parse("ftp://a"), None);
        assert_eq!(Origin::parse("https://a/b"), None);
        assert_eq!(Origin::parse("https://u@a"), None);
        assert_eq!(Origin::parse("https://a:99999"), None);
    }
}
