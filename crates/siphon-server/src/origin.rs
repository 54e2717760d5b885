//! Keeps web pages of other origins away from `/v1/query`.
//!
//! The query API answers any client that can reach it (`curl`, `siphon sql`, scripts),
//! but a browser must not let a page of another site use it on the user's behalf:
//! * a request a browser marks as coming from another site (`Sec-Fetch-Site: cross-site`
//!   or `same-site`, sent by current browsers even for `<img>` and `<script>` loads) is
//!   refused;
//! * a request whose `Origin` (sent by browsers on every cross-origin `fetch` and every
//!   POST) is not the server's own (`Host`) is refused, as is `Origin: null`;
//! * when the server listens on a loopback address, the `Host` must be a loopback name
//!   (`localhost`, `*.localhost`, or an IP address): this defeats DNS rebinding, where a
//!   page of `evil.example` resolves its own name to 127.0.0.1.
//!
//! Clients that send none of these headers are not browsers and are let through.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, StatusCode, header};

use crate::ApiError;

/// Refuses the request when it comes from a web page of another origin.
pub(crate) fn check(headers: &HeaderMap, listen: Option<SocketAddr>) -> Result<(), ApiError> {
    let refuse = |why: String| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-origin requests to the query API are refused ({why}); \
                 query siphon from its own origin, `siphon sql`, or a non-browser client"
            ),
        ))
    };
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
        && site != "none"
    {
        return refuse(format!("Sec-Fetch-Site: {site}"));
    }
    let host = text(header::HOST);
    if let Some(origin) = text(header::ORIGIN) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .map(|a| a.trim_end_matches('/'));
        let same = match (authority, host.as_deref()) {
            (Some(authority), Some(host)) => same_authority(authority, host),
            _ => false,
        };
        if !same {
            return refuse(format!("Origin: {origin}"));
        }
    }
    if listen.is_some_and(|l| l.ip().is_loopback())
        && let Some(host) = &host
        && !is_loopback_name(host)
    {
        return refuse(format!("Host: {host} on a loopback listener"));
    }
    Ok(())
}

/// `host[:port]` equality, with the default port of http spelled or not.
fn same_authority(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.strip_suffix(":80").unwrap_or(s).to_string();
    strip(a) == strip(b)
}

/// `localhost`, a name under `.localhost`, or an IP address (with or without a port).
fn is_loopback_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn browsers_on_other_origins_are_refused_and_other_clients_are_not() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let ok =
            |pairs: &[(&'static str, &'static str)]| check(&headers(pairs), Some(local)).is_ok();
        assert!(ok(&[("host", "127.0.0.1:8080")]));
        assert!(ok(&[]));
        assert!(ok(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080")
        ]));
        assert!(ok(&[
            ("host", "[::1]:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "none")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-site")
        ]));
        // DNS rebinding: same origin as far as the browser knows, but not our name.
        assert!(!ok(&[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080")
        ]));
        // On a public listener any host name is fine, other origins still are not.
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let h = headers(&[("host", "siphon.internal:8080")]);
        assert!(check(&h, Some(public)).is_ok());
        let h = headers(&[
            ("host", "siphon.internal:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check(&h, Some(public)).is_err());
    }
}
