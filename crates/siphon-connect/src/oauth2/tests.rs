//! Tests of [`TokenProvider`] against wiremock token endpoints on 127.0.0.1: caching,
//! single flight, refresh ahead of expiry, invalidation, client authentication and its
//! fallback, and that errors never carry the client secret or a token.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_string_contains, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::*;

const CLIENT_ID: &str = "client id";
/// Has characters that form-urlencoding changes, and non-ASCII.
const CLIENT_SECRET: &str = "s3:cr&t/+é%";
/// base64("client+id:s3%3Acr%26t%2F%2B%C3%A9%25"): RFC 6749 §2.3.1 encodes both parts
/// form-urlencoded before joining them.
const BASIC: &str = "Y2xpZW50K2lkOnMzJTNBY3IlMjZ0JTJGJTJCJUMzJUE5JTI1";

/// A responder that gets the 1-based number of the request it answers.
struct Seq<F>(AtomicUsize, F);

impl<F: Fn(usize, &Request) -> ResponseTemplate + Send + Sync> Respond for Seq<F> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        (self.1)(n, request)
    }
}

fn seq<F: Fn(usize, &Request) -> ResponseTemplate + Send + Sync>(f: F) -> Seq<F> {
    Seq(AtomicUsize::new(0), f)
}

/// `tok-N` for the N-th request, living `expires_in`.
fn tokens(expires_in: serde_json::Value) -> impl Respond {
    seq(move |n, _| {
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("tok-{n}"),
            "token_type": "Bearer",
            "expires_in": expires_in,
        }))
    })
}

async fn server_with(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

fn provider(server: &MockServer, scope: Option<&str>) -> TokenProvider {
    TokenProvider::new(
        OAuth2Config {
            token_url: format!("{}/token", server.uri()),
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            scope: scope.map(str::to_string),
        },
        crate::source::http_client(),
    )
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn token_is_fetched_once_and_cached() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, None);
    for _ in 0..20 {
        assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    }
    assert_eq!(p.fetches(), 1);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_fetch() {
    let server = server_with(seq(|n, _| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": format!("tok-{n}"), "expires_in": 3600}))
            .set_delay(Duration::from_millis(300))
    }))
    .await;
    let p = Arc::new(provider(&server, None));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.token().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().expose(), "tok-1");
    }
    assert_eq!(p.fetches(), 1);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_failure_then_retry() {
    let server = server_with(seq(|n, _| {
        if n == 1 {
            ResponseTemplate::new(503)
                .set_body_string("down")
                .set_delay(Duration::from_millis(300))
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"access_token": format!("tok-{n}")}))
        }
    }))
    .await;
    let p = Arc::new(provider(&server, None));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.token().await })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(
            matches!(error, OAuth2Error::Status { status: 503, .. }),
            "{error}"
        );
    }
    assert_eq!(p.fetches(), 1);
    assert_eq!(p.token().await.unwrap().expose(), "tok-2");
    assert_eq!(p.fetches(), 2);
}

#[tokio::test]
async fn token_is_refreshed_ahead_of_expiry() {
    // A 2 s token is refreshed after 1 s (the margin is never more than half the lifetime).
    let server = server_with(tokens(json!(2))).await;
    let p = provider(&server, None);
    let start = std::time::Instant::now();
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(start.elapsed())).await;
    assert_eq!(p.token().await.unwrap().expose(), "tok-2");
    assert_eq!(p.token().await.unwrap().expose(), "tok-2");
    assert_eq!(p.fetches(), 2);
}

#[tokio::test]
async fn failed_refresh_keeps_the_unexpired_token_until_it_expires() {
    let server = server_with(seq(|n, _| {
        if n == 1 {
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "tok-1", "expires_in": 2}))
        } else {
            ResponseTemplate::new(500).set_body_string("boom")
        }
    }))
    .await;
    let p = provider(&server, None);
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Inside the refresh margin: the refresh fails, the still-valid token is handed out.
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.fetches(), 2);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let error = p.token().await.unwrap_err();
    assert!(
        matches!(error, OAuth2Error::Status { status: 500, .. }),
        "{error}"
    );
    assert_eq!(p.fetches(), 3);
}

#[tokio::test]
async fn invalidate_after_401_fetches_a_new_token() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, None);
    let first = p.token().await.unwrap();
    p.invalidate(&first);
    assert_eq!(p.token().await.unwrap().expose(), "tok-2");
    assert_eq!(p.fetches(), 2);
}

#[tokio::test]
async fn invalidate_with_a_stale_token_keeps_the_new_one() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, None);
    let first = p.token().await.unwrap();
    p.invalidate(&first);
    let second = p.token().await.unwrap();
    assert_eq!(second.expose(), "tok-2");
    // A second table got a 401 with the old token after the first already replaced it.
    p.invalidate(&first);
    assert_eq!(p.token().await.unwrap(), second);
    assert_eq!(p.fetches(), 2);
}

#[tokio::test]
async fn request_has_grant_scope_and_headers() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, Some("read:data write"));
    p.token().await.unwrap();
    let sent = requests(&server).await;
    let r = &sent[0];
    assert_eq!(
        header(r, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(r, "accept"), Some("application/json"));
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "grant_type=client_credentials&scope=read%3Adata+write"
    );
    assert_eq!(
        form(r),
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("scope".to_string(), "read:data write".to_string()),
        ]
    );
}

#[tokio::test]
async fn no_scope_sends_only_the_grant_type() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, Some("  "));
    p.token().await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        String::from_utf8_lossy(&sent[0].body),
        "grant_type=client_credentials"
    );
}

#[tokio::test]
async fn basic_auth_uses_form_urlencoded_credentials() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, None);
    p.token().await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        header(&sent[0], "authorization"),
        Some(format!("Basic {BASIC}").as_str())
    );
    assert!(
        form(&sent[0])
            .iter()
            .all(|(k, _)| k != "client_secret" && k != "client_id")
    );
    assert_eq!(p.client_auth(), ClientAuth::Basic);
}

async fn fallback_case(rejection: ResponseTemplate) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header_exists("authorization"))
        .respond_with(rejection)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("client_secret="))
        .respond_with(tokens(json!(3600)))
        .mount(&server)
        .await;
    let p = provider(&server, None);
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.fetches(), 2);
    assert_eq!(p.client_auth(), ClientAuth::Body);

    // The method is remembered: the next fetch goes straight to body credentials.
    let first = p.token().await.unwrap();
    p.invalidate(&first);
    assert_eq!(p.token().await.unwrap().expose(), "tok-2");
    assert_eq!(p.fetches(), 3);
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 3);
    let last = &sent[2];
    assert_eq!(header(last, "authorization"), None);
    assert_eq!(
        form(last),
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), CLIENT_ID.to_string()),
            ("client_secret".to_string(), CLIENT_SECRET.to_string()),
        ]
    );
}

#[tokio::test]
async fn basic_rejected_with_invalid_client_falls_back_to_body_credentials() {
    fallback_case(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})))
        .await;
}

#[tokio::test]
async fn basic_rejected_with_401_falls_back_to_body_credentials() {
    fallback_case(ResponseTemplate::new(401).set_body_string("Unauthorized")).await;
}

#[tokio::test]
async fn other_400_errors_do_not_fall_back() {
    let server = server_with(seq(|_, _| {
        ResponseTemplate::new(400)
            .set_body_json(json!({"error": "invalid_scope", "error_description": "no such scope"}))
    }))
    .await;
    let p = provider(&server, Some("admin"));
    let error = p.token().await.unwrap_err();
    assert_eq!(p.fetches(), 1);
    assert_eq!(p.client_auth(), ClientAuth::Basic);
    match &error {
        OAuth2Error::Status {
            status: 400,
            error: Some(code),
            detail,
            ..
        } => {
            assert_eq!(code, "invalid_scope");
            assert_eq!(detail, "invalid_scope: no such scope");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_error_is_reported_and_not_cached() {
    let server = server_with(seq(|n, _| {
        if n == 1 {
            ResponseTemplate::new(500).set_body_string("  Internal\n  Server Error ")
        } else {
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": format!("tok-{n}"), "expires_in": 60}))
        }
    }))
    .await;
    let p = provider(&server, None);
    let error = p.token().await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            OAuth2Error::Status {
                status: 500,
                error: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        message.contains("HTTP 500") && message.contains("Internal Server Error"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}/token", server.uri())),
        "{message}"
    );
    assert_eq!(p.token().await.unwrap().expose(), "tok-2");
    assert_eq!(p.fetches(), 2);
}

#[tokio::test]
async fn secret_echoed_by_the_endpoint_is_redacted() {
    // The endpoint quotes everything it got: the raw secret, the Basic header, the body.
    let server = server_with(seq(|_, request: &Request| {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": format!(
                "bad secret {CLIENT_SECRET} in {auth} / {}",
                String::from_utf8_lossy(&request.body)
            ),
        }))
    }))
    .await;
    let p = provider(&server, None);
    let error = p.token().await.unwrap_err();
    let message = error.to_string();
    let debug = format!("{error:?}");
    let encoded: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    for text in [&message, &debug] {
        assert!(text.contains("bad secret ***"), "{text}");
        assert!(text.contains("Basic ***"), "{text}");
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains(&encoded) && !text.contains(BASIC),
            "{text}"
        );
    }
}

#[tokio::test]
async fn secret_echoed_in_a_plain_body_is_redacted_before_truncation() {
    // The secret sits across the excerpt's cut: redaction must come first.
    let server = server_with(seq(|_, _| {
        let mut body = "x".repeat(295);
        body.push_str(CLIENT_SECRET);
        body.push_str(&"y".repeat(50));
        ResponseTemplate::new(401).set_body_string(body)
    }))
    .await;
    let p = provider(&server, None);
    let error = p.token().await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("***"), "{message}");
    assert!(!message.contains("s3:c"), "{message}");
    assert_eq!(p.fetches(), 2); // the 401 made it try body credentials too
}

#[tokio::test]
async fn fetched_tokens_are_redacted_from_later_errors() {
    let server = server_with(seq(|n, _| {
        if n == 1 {
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "tok-first-1234", "expires_in": 3600}))
        } else {
            ResponseTemplate::new(500).set_body_string("token tok-first-1234 was revoked")
        }
    }))
    .await;
    let p = provider(&server, None);
    let first = p.token().await.unwrap();
    p.invalidate(&first);
    let message = p.token().await.unwrap_err().to_string();
    assert!(message.contains("token *** was revoked"), "{message}");
}

#[tokio::test]
async fn missing_access_token_is_a_clear_error() {
    let server = server_with(seq(|_, _| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"token_type": "Bearer", "expires_in": 3600}))
    }))
    .await;
    let p = provider(&server, None);
    let error = p.token().await.unwrap_err();
    assert!(
        matches!(error, OAuth2Error::BadResponse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no access_token"), "{error}");
    p.token().await.unwrap_err();
    assert_eq!(p.fetches(), 2);
}

#[tokio::test]
async fn non_json_success_is_a_clear_error() {
    let server = server_with(seq(|_, _| {
        ResponseTemplate::new(200).set_body_string("access_token=abcdef&token_type=bearer")
    }))
    .await;
    let p = provider(&server, None);
    let message = p.token().await.unwrap_err().to_string();
    assert!(message.contains("not JSON"), "{message}");
    assert!(!message.contains("abcdef"), "{message}");
}

#[tokio::test]
async fn expires_in_as_a_string_is_accepted() {
    let server = server_with(tokens(json!("3600"))).await;
    let p = provider(&server, None);
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.fetches(), 1);
}

#[tokio::test]
async fn missing_expires_in_is_cached_as_an_hour() {
    let server = server_with(seq(|n, _| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": format!("tok-{n}"), "token_type": "bearer"}))
    }))
    .await;
    let p = provider(&server, None);
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    assert_eq!(p.fetches(), 1);
}

#[tokio::test]
async fn other_token_types_are_refused_by_name() {
    let server = server_with(seq(|_, _| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "abcd", "token_type": "mac"}))
    }))
    .await;
    let p = provider(&server, None);
    let error = p.token().await.unwrap_err();
    assert!(
        matches!(&error, OAuth2Error::UnsupportedTokenType { token_type, .. } if token_type == "mac"),
        "{error:?}"
    );
    assert!(error.to_string().contains("\"mac\""), "{error}");
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transport_error_naming_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/token");
    let p = TokenProvider::new(
        OAuth2Config {
            token_url: url.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            scope: None,
        },
        crate::source::http_client(),
    );
    let error = p.token().await.unwrap_err();
    assert!(matches!(error, OAuth2Error::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn slow_endpoint_times_out() {
    let server = server_with(seq(|_, _| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "abcd"}))
            .set_delay(Duration::from_secs(2))
    }))
    .await;
    let p = provider(&server, None).with_request_timeout(Duration::from_millis(200));
    let error = p.token().await.unwrap_err();
    assert!(
        matches!(
            error,
            OAuth2Error::Timeout {
                timeout_ms: 200,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn invalid_token_url_is_an_error_not_a_panic() {
    for url in ["not a url", "ftp://example.com/token", ""] {
        let p = TokenProvider::new(
            OAuth2Config {
                token_url: url.into(),
                client_id: CLIENT_ID.into(),
                client_secret: Secret::new(CLIENT_SECRET),
                scope: None,
            },
            crate::source::http_client(),
        );
        let error = p.token().await.unwrap_err();
        assert!(
            matches!(error, OAuth2Error::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
        assert_eq!(p.fetches(), 0);
    }
}

#[tokio::test]
async fn debug_output_has_no_secrets() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, Some("read"));
    let token = p.token().await.unwrap();
    let text = format!("{p:?} {:?} {token:?}", p.config());
    assert!(text.contains("client id") && text.contains("***"), "{text}");
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(BASIC) && !text.contains("tok-1"),
        "{text}"
    );
}

#[test]
fn refresh_margin_is_ten_percent_between_one_second_and_a_minute() {
    let s = Duration::from_secs;
    assert_eq!(refresh_margin(s(3600)), s(60));
    assert_eq!(refresh_margin(s(300)), s(30));
    assert_eq!(refresh_margin(s(30)), s(3));
    assert_eq!(refresh_margin(s(5)), s(1));
    assert_eq!(refresh_margin(s(2)), s(1));
    assert_eq!(
        refresh_margin(Duration::from_millis(1000)),
        Duration::from_millis(500)
    );
    assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
}

#[test]
fn provider_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenProvider>();
    assert_send_sync::<OAuth2Error>();
    fn assert_send<T: Send>(_: &T) {}
    let p = TokenProvider::new(
        OAuth2Config {
            token_url: "http://127.0.0.1:1/token".into(),
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            scope: None,
        },
        reqwest::Client::new(),
    );
    assert_send(&p.token());
}

#[tokio::test]
async fn tokens_reach_every_linked_redactor() {
    let server = server_with(tokens(json!(3600))).await;
    let p = provider(&server, None);
    let table_a = Redactor::default();
    let table_b = Redactor::default();
    p.share_tokens_with(table_a.learner());
    p.share_tokens_with(table_b.learner());
    let token = p.token().await.unwrap();
    assert_eq!(token.expose(), "tok-1");
    for r in [&table_a, &table_b] {
        assert_eq!(r.redact("echoed tok-1"), "echoed ***");
    }
    // A table linked later learns the tokens already issued.
    let table_c = Redactor::default();
    p.share_tokens_with(table_c.learner());
    assert_eq!(table_c.redact("tok-1"), "***");
}

#[tokio::test]
async fn token_requests_follow_redirects_without_taking_credentials_elsewhere() {
    // A same-origin redirect keeps the Basic credentials.
    let server = server_with(tokens(json!(3600))).await;
    Mock::given(path("/old-token"))
        .respond_with(ResponseTemplate::new(308).insert_header("location", "/token"))
        .mount(&server)
        .await;
    let config = |url: String| OAuth2Config {
        token_url: url,
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        scope: None,
    };
    let p = TokenProvider::new(
        config(format!("{}/old-token", server.uri())),
        crate::source::http_client(),
    );
    assert_eq!(p.token().await.unwrap().expose(), "tok-1");
    let at_token: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/token")
        .collect();
    assert_eq!(
        header(&at_token[0], "authorization"),
        Some(format!("Basic {BASIC}").as_str())
    );

    // Another origin gets neither the Basic header nor (in the body) the secret.
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(seq(|_, _| ResponseTemplate::new(401)))
        .mount(&elsewhere)
        .await;
    let home = MockServer::start().await;
    let target = format!("{}/token", elsewhere.uri());
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", target.as_str()))
        .mount(&home)
        .await;
    let p = TokenProvider::new(
        config(format!("{}/token", home.uri())),
        crate::source::http_client(),
    );
    let error = p.token().await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("another origin") && !text.contains(CLIENT_SECRET),
        "{text}"
    );
    let got = requests(&elsewhere).await;
    assert_eq!(
        got.len(),
        1,
        "the Basic attempt went, the body attempt did not"
    );
    assert_eq!(header(&got[0], "authorization"), None);
    assert!(
        !String::from_utf8_lossy(&got[0].body).contains("client_secret"),
        "{:?}",
        form(&got[0])
    );
}
