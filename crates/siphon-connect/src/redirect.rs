//! Following HTTP redirects by hand, so that no secret follows one to another origin.
//!
//! The shared client ([`http_client`](crate::source::http_client)) follows no redirect
//! itself: reqwest would carry every header but `Authorization` and `Cookie` wherever a
//! server points, an API key header included. [`send`] sends a request and follows its
//! redirects instead:
//! * at most [`MAX_REDIRECTS`] of them; more, or a redirect back to a URL already
//!   requested with the same method, is a redirect loop ([`RedirectError`]);
//! * 301, 302 and 303 become a GET without a body (and without its `Content-*` headers);
//!   307 and 308 keep the method and the body;
//! * a relative `Location` is resolved against the URL that answered; a `Location` that is
//!   not an http(s) URL is not followed (the 3xx is the answer);
//! * a hop to an origin other than the first request's loses every secret header: a
//!   credential by its name ([`is_secret_header`]), a header the caller names (the
//!   `api_key_header`), and any header whose value holds a secret the [`Redactor`] knows.
//!   A hop whose body holds a secret is not sent at all: a body cannot be stripped.
//!
//! Once stripped, secrets stay stripped: a chain that comes back to the first origin does
//! not get them again.

use reqwest::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Client, Method, Request, Response, StatusCode, Url};

use crate::secret::{Redactor, is_secret_header};

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 10;

/// Why a redirect was not followed. Messages carry no URL: the caller names the request.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("too many redirects (more than {MAX_REDIRECTS}): a redirect loop")]
    TooMany,
    /// A redirect back to a URL already requested (with the same method).
    #[error("redirect loop: a redirect leads back to a URL already requested")]
    Loop,
    /// A redirect to another origin that would carry a secret in its body.
    #[error(
        "not following a redirect to another origin ({origin}): the request body holds a secret, and secrets are sent only to the endpoint's origin"
    )]
    SecretBody {
        /// The origin redirected to.
        origin: String,
    },
}

impl RedirectError {
    /// Whether this is a loop (too many redirects) rather than a refusal.
    pub fn is_loop(&self) -> bool {
        matches!(self, RedirectError::TooMany | RedirectError::Loop)
    }
}

/// Why [`send`] has no response.
#[derive(Debug)]
pub enum SendError {
    /// The HTTP client failed (no response, or a broken one).
    Transport(reqwest::Error),
    /// A redirect could not be followed.
    Redirect(RedirectError),
}

/// What is secret in a request, for a hop to another origin.
#[derive(Clone, Copy, Debug)]
pub struct Secrets<'a> {
    /// Knows every secret value.
    pub redactor: &'a Redactor,
    /// Header names that carry a credential though their names do not say so.
    pub headers: &'a [&'a str],
}

impl Secrets<'_> {
    fn is_secret(&self, name: &str, value: &[u8]) -> bool {
        is_secret_header(name)
            || self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
            || self.redactor.reveals(&String::from_utf8_lossy(value))
    }

    /// Removes every secret header; fails when the body holds a secret.
    fn strip(&self, request: &mut Request) -> Result<(), RedirectError> {
        let secret: Vec<_> = request
            .headers()
            .iter()
            .filter(|(name, value)| self.is_secret(name.as_str(), value.as_bytes()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in secret {
            request.headers_mut().remove(&name);
        }
        if let Some(body) = request.body().and_then(|b| b.as_bytes())
            && self.redactor.reveals(&String::from_utf8_lossy(body))
        {
            return Err(RedirectError::SecretBody {
                origin: request.url().origin().ascii_serialization(),
            });
        }
        Ok(())
    }
}

/// Sends `request` and follows its redirects (see the module docs); the response is the
/// last one, whose [`url`](Response::url) is where the chain ended.
pub async fn send(
    client: &Client,
    request: Request,
    secrets: Secrets<'_>,
) -> Result<Response, SendError> {
    let home = request.url().origin();
    let mut visited: Vec<(Method, Url)> = Vec::new();
    let mut request = request;
    loop {
        visited.push((request.method().clone(), request.url().clone()));
        let again = request.try_clone();
        let response = client
            .execute(request)
            .await
            .map_err(SendError::Transport)?;
        let Some(mut next) =
            again.and_then(|r| follow_up(r, response.status(), response.headers()))
        else {
            return Ok(response);
        };
        if visited.len() > MAX_REDIRECTS {
            return Err(SendError::Redirect(RedirectError::TooMany));
        }
        if visited
            .iter()
            .any(|(m, u)| m == next.method() && u == next.url())
        {
            return Err(SendError::Redirect(RedirectError::Loop));
        }
        if next.url().origin() != home {
            secrets.strip(&mut next).map_err(SendError::Redirect)?;
        }
        request = next;
    }
}

/// The request a redirect response asks for, or `None` when `status` is not a redirect to
/// follow (not 301/302/303/307/308, no usable `Location`).
pub fn follow_up(
    mut previous: Request,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Request> {
    let keeps_method = match status.as_u16() {
        301..=303 => false,
        307 | 308 => true,
        _ => return None,
    };
    let location = headers.get(LOCATION)?.to_str().ok()?;
    let target = previous.url().join(location.trim()).ok()?;
    if !matches!(target.scheme(), "http" | "https") {
        return None;
    }
    *previous.url_mut() = target;
    if !keeps_method {
        if *previous.method() != Method::HEAD {
            *previous.method_mut() = Method::GET;
        }
        *previous.body_mut() = None;
        for name in [CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING] {
            previous.headers_mut().remove(name);
        }
    }
    Some(previous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{AUTHORIZATION, HeaderValue};

    fn request(method: Method, url: &str, body: Option<&str>) -> Request {
        let mut r = Request::new(method, Url::parse(url).unwrap());
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer tok-1234"));
        if let Some(b) = body {
            *r.body_mut() = Some(b.to_string().into());
        }
        r
    }

    fn location(to: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_str(to).unwrap());
        h
    }

    #[test]
    fn see_other_and_found_become_a_get_without_body() {
        for code in [301, 302, 303] {
            let next = follow_up(
                request(Method::POST, "http://a/x", Some("{}")),
                StatusCode::from_u16(code).unwrap(),
                &location("/y?z=1"),
            )
            .unwrap();
            assert_eq!(next.method(), Method::GET, "{code}");
            assert!(next.body().is_none(), "{code}");
            assert!(next.headers().get(CONTENT_TYPE).is_none(), "{code}");
            assert_eq!(next.url().as_str(), "http://a/y?z=1", "{code}");
        }
    }

    #[test]
    fn temporary_and_permanent_redirects_keep_method_and_body() {
        for code in [307, 308] {
            let next = follow_up(
                request(Method::PUT, "http://a/dir/x", Some("{\"a\":1}")),
                StatusCode::from_u16(code).unwrap(),
                &location("other"),
            )
            .unwrap();
            assert_eq!(next.method(), Method::PUT);
            assert_eq!(
                next.body().and_then(|b| b.as_bytes()),
                Some(&b"{\"a\":1}"[..])
            );
            assert_eq!(next.url().as_str(), "http://a/dir/other");
        }
    }

    #[test]
    fn other_statuses_and_bad_locations_are_not_followed() {
        let r = || request(Method::GET, "http://a/x", None);
        assert!(follow_up(r(), StatusCode::OK, &location("/y")).is_none());
        assert!(follow_up(r(), StatusCode::NOT_MODIFIED, &location("/y")).is_none());
        assert!(follow_up(r(), StatusCode::FOUND, &HeaderMap::new()).is_none());
        assert!(follow_up(r(), StatusCode::FOUND, &location("ftp://b/y")).is_none());
    }

    #[test]
    fn a_hop_to_another_origin_loses_every_secret() {
        let mut redactor = Redactor::default();
        redactor.add("env-value-77");
        let secrets = Secrets {
            redactor: &redactor,
            headers: &["X-Partner"],
        };
        let mut r = request(Method::GET, "http://b/x", None);
        for (name, value) in [
            ("x-partner", "anything"),
            ("x-api-key", "k"),
            ("cookie", "c=1"),
            ("x-tenant", "t-env-value-77"),
            ("x-plain", "plain"),
        ] {
            r.headers_mut().insert(
                reqwest::header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        secrets.strip(&mut r).unwrap();
        let mut left: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-plain"]);

        let mut r = request(
            Method::POST,
            "http://b/x",
            Some("{\"k\": \"env-value-77\"}"),
        );
        let error = secrets.strip(&mut r).unwrap_err();
        assert!(
            error.to_string().contains("http://b") && !error.to_string().contains("env-value"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_long_chain_or_a_loop_is_a_redirect_loop_and_a_short_chain_arrives() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path_regex};
        let api = MockServer::start().await;
        // /hop/N redirects to /hop/N+1; /hop/3 of the short chain ends it.
        Mock::given(path_regex(r"^/hop/\d+$"))
            .respond_with(|req: &wiremock::Request| {
                let n: u32 = req.url.path().rsplit('/').next().unwrap().parse().unwrap();
                ResponseTemplate::new(302).insert_header("location", format!("/hop/{}", n + 1))
            })
            .mount(&api)
            .await;
        Mock::given(path_regex(r"^/a$"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "/b"))
            .mount(&api)
            .await;
        Mock::given(path_regex(r"^/b$"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "/a"))
            .mount(&api)
            .await;
        Mock::given(path_regex(r"^/end$"))
            .respond_with(ResponseTemplate::new(200).set_body_string("here"))
            .mount(&api)
            .await;
        Mock::given(path_regex(r"^/short$"))
            .respond_with(ResponseTemplate::new(303).insert_header("location", "/end"))
            .mount(&api)
            .await;
        let client = crate::source::http_client();
        let redactor = Redactor::default();
        let secrets = Secrets {
            redactor: &redactor,
            headers: &[],
        };
        let get = |p: &str| {
            Request::new(
                Method::GET,
                Url::parse(&format!("{}{p}", api.uri())).unwrap(),
            )
        };
        match send(&client, get("/hop/0"), secrets).await {
            Err(SendError::Redirect(e @ RedirectError::TooMany)) => assert!(e.is_loop()),
            other => panic!("{:?}", other.map(|r| r.status())),
        }
        let hops = api.received_requests().await.unwrap().len();
        assert_eq!(
            hops,
            MAX_REDIRECTS + 1,
            "the first request and 10 redirects"
        );
        match send(&client, get("/a"), secrets).await {
            Err(SendError::Redirect(e @ RedirectError::Loop)) => assert!(e.is_loop()),
            other => panic!("{:?}", other.map(|r| r.status())),
        }
        let response = send(&client, get("/short"), secrets).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.url().path(), "/end");
    }
}
