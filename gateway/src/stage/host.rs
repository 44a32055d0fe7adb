//! The host a client asked for, read strictly: a DNS-style name or an IP
//! literal with an optional decimal port, or nothing at all.
//!
//! A lenient reading lets junk after the name through (`admin.internal:1@evil.example`
//! routes as `admin.internal` while the upstream's `X-Forwarded-Host`
//! carries the rest), so anything else is refused before routing.

use std::net::Ipv6Addr;

use http::header;

/// Why a host was refused (a 400 `malformed_host`).
pub type HostProblem = &'static str;

/// The normalized form of a `Host` value or an `:authority`: lower case,
/// one trailing dot removed from a name, the port (if any) kept.
pub fn parse_host(raw: &str) -> Result<String, HostProblem> {
    if raw.is_empty() {
        return Err("empty host");
    }
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return Err("an IPv6 literal without its closing ']'");
        };
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err("not an IPv6 address between '[' and ']'");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after an IPv6 literal")?),
        };
        (format!("[{}]", literal.to_ascii_lowercase()), port)
    } else {
        let (name, port) = match raw.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (raw, None),
        };
        (reg_name(name)?, port)
    };
    match port {
        None => Ok(name),
        Some(p) => {
            let valid = !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65_535);
            if !valid {
                return Err("the port is not a decimal number up to 65535");
            }
            Ok(format!("{name}:{p}"))
        }
    }
}

/// A host name (dotted labels of letters, digits, `-` and `_`; IPv4
/// addresses are such names), lower case, without a trailing dot.
fn reg_name(name: &str) -> Result<String, HostProblem> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("a host name is 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a host name's labels are 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("a host name holds only letters, digits, '-', '_' and '.'");
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// The host of a request to the proxy: its `Host` header or, for HTTP/2,
/// its `:authority`; both must agree when both are sent (RFC 9113
/// §8.3.1). `None` when there is neither (HTTP/1.0).
pub fn request_host(parts: &http::request::Parts) -> Result<Option<String>, HostProblem> {
    let from_header = match parts.headers.get(header::HOST) {
        Some(v) => Some(parse_host(
            v.to_str().map_err(|_| "a Host that is not visible ASCII")?,
        )?),
        None => None,
    };
    let from_authority = match parts.uri.authority() {
        Some(a) => Some(parse_host(a.as_str())?),
        None => None,
    };
    match (from_header, from_authority) {
        (Some(h), Some(a)) if h != a => Err("the Host header and :authority name different hosts"),
        (Some(h), _) => Ok(Some(h)),
        (None, a) => Ok(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals_with_ports_are_accepted_and_normalized() {
        for (raw, want) in [
            ("App.Example", "app.example"),
            ("app.example.", "app.example"),
            ("app.example.:8443", "app.example:8443"),
            ("admin.internal:80", "admin.internal:80"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::1]", "[::1]"),
            ("[2001:DB8::1]:443", "[2001:db8::1]:443"),
            ("my_host", "my_host"),
        ] {
            assert_eq!(parse_host(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn junk_is_refused() {
        for raw in [
            "",
            "admin.internal:1@evil.example",
            "admin.internal:evil",
            "admin.internal:",
            "admin.internal:65536",
            "admin.internal:123456",
            "user@admin.internal",
            "admin..internal",
            ".",
            "a b",
            "a/b",
            "a\\b",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[not-ip]",
            "a:1:2",
            "%61dmin",
        ] {
            assert!(parse_host(raw).is_err(), "{raw:?} should be refused");
        }
    }
}
