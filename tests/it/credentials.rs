//! Credentials and their redaction, end to end: the real binary against two real local
//! servers (two origins). Secrets go only to the endpoint's origin, whether the walk
//! reaches another origin by a next link or by a redirect; every kind of secret is
//! redacted from errors, status, system tables and logs, including load-time errors; and
//! POST/PUT/PATCH/DELETE are retried after a timeout only when the user opts in.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{Server, int, siphon, write_file};

const WAIT: Duration = Duration::from_secs(30);

/// The OAuth2 access token the token endpoint issues.
const OAUTH_TOKEN: &str = "oauth-tok-7f3a9c51";

/// Every auth kind (and secret headers) as table options, with the secret values it sends.
/// `{api}` is the endpoint's origin (where the token endpoint lives too).
fn auth_kinds() -> Vec<(&'static str, String, Vec<String>)> {
    // base64("user:pw-basic-5d2e")
    let basic = "dXNlcjpwdy1iYXNpYy01ZDJl".to_string();
    vec![
        (
            "basic",
            "auth_type = 'basic', username = 'user', password = 'pw-basic-5d2e'".into(),
            vec!["pw-basic-5d2e".into(), basic],
        ),
        (
            "bearer",
            "auth_type = 'bearer', token = 'tok-bearer-8c1f'".into(),
            vec!["tok-bearer-8c1f".into()],
        ),
        (
            "apikey",
            "auth_type = 'api_key', api_key = 'key-api-3b7d'".into(),
            vec!["key-api-3b7d".into()],
        ),
        (
            // A header name that does not look like a credential: only its value tells.
            "apikeyplain",
            "auth_type = 'api_key', api_key = 'key-partner-9e4c', api_key_header = 'X-Partner'"
                .into(),
            vec!["key-partner-9e4c".into()],
        ),
        (
            "oauth",
            "auth_type = 'oauth2', client_id = 'cid', client_secret = 'csecret-2a7b', token_url = '{api}/token'"
                .into(),
            vec![OAUTH_TOKEN.into(), "csecret-2a7b".into()],
        ),
        (
            "headers",
            r#"headers = '{"X-Custom-Token": "hdr-tok-6e2a", "Cookie": "session=cookie-9a4b", "Authorization": "Token auth-cred-1c5f", "X-Tenant": "${TENANT}", "X-App": "appid-val-4d8e", "X-Plain": "plain-value"}',
               query_params = '{"appid": "appid-val-4d8e"}'"#
                .into(),
            vec![
                "hdr-tok-6e2a".into(),
                "cookie-9a4b".into(),
                "auth-cred-1c5f".into(),
                "tenant-env-2f6b".into(),
                "appid-val-4d8e".into(),
            ],
        ),
    ]
}

async fn mount_token_endpoint(api: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": OAUTH_TOKEN, "token_type": "Bearer", "expires_in": 3600}),
        ))
        .mount(api)
        .await;
}

/// Every header value of a request, as `name: value` lines.
fn header_text(req: &Request) -> String {
    req.headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

async fn received(server: &MockServer, prefix: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn no_secret_follows_a_next_link_or_a_redirect_to_another_origin() {
    let api = MockServer::start().await;
    let other = MockServer::start().await;
    mount_token_endpoint(&api).await;
    let kinds = auth_kinds();
    let mut sql = String::new();
    for (kind, options, _) in &kinds {
        let options = options.replace("{api}", &api.uri());
        // By next link: page 1 on the endpoint's origin links to page 2 on the other.
        let next = format!("<{}/{kind}/link/p2>; rel=\"next\"", other.uri());
        Mock::given(path(format!("/{kind}/link/p1")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Link", next.as_str())
                    .set_body_json(json!([{"id": 1}])),
            )
            .mount(&api)
            .await;
        Mock::given(path(format!("/{kind}/link/p2")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 2}])))
            .mount(&other)
            .await;
        // By redirect: the endpoint's origin redirects to the other origin.
        Mock::given(path(format!("/{kind}/redirect")))
            .respond_with(ResponseTemplate::new(302).insert_header(
                "Location",
                format!("{}/{kind}/redirect/data", other.uri()).as_str(),
            ))
            .mount(&api)
            .await;
        Mock::given(path(format!("/{kind}/redirect/data")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1}])))
            .mount(&other)
            .await;
        // A same-origin redirect with a relative Location keeps the credentials.
        Mock::given(path(format!("/{kind}/same")))
            .respond_with(
                ResponseTemplate::new(301)
                    .insert_header("Location", format!("/{kind}/same/target").as_str()),
            )
            .mount(&api)
            .await;
        Mock::given(path(format!("/{kind}/same/target")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1}])))
            .mount(&api)
            .await;
        sql.push_str(&format!(
            "CREATE TABLE {kind}_link (id INT) WITH (connector = 'polling_http', endpoint = '{api}/{kind}/link/p1',
                 interval_ms = 600000, pagination_type = 'link_header', {options});
             CREATE TABLE {kind}_redirect (id INT) WITH (connector = 'polling_http', endpoint = '{api}/{kind}/redirect',
                 interval_ms = 600000, {options});
             CREATE TABLE {kind}_same (id INT) WITH (connector = 'polling_http', endpoint = '{api}/{kind}/same',
                 interval_ms = 600000, {options});\n",
            api = api.uri(),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(
        &dir.path().join("data"),
        &[&file],
        &[("TENANT", "tenant-env-2f6b")],
    )
    .await;
    for (kind, _, _) in &kinds {
        for (table, rows) in [("link", 2), ("redirect", 1), ("same", 1)] {
            server
                .wait_for(&format!("SELECT id FROM {kind}_{table}"), WAIT, |r| {
                    r.len() >= rows
                })
                .await;
        }
    }

    let all_secrets: Vec<String> = kinds.iter().flat_map(|(_, _, s)| s.clone()).collect();
    for (kind, _, secrets) in &kinds {
        // The endpoint's origin got the credentials (so the test can see them at all)...
        for table in ["link/p1", "redirect", "same/target"] {
            let at_home = received(&api, &format!("/{kind}/{table}")).await;
            assert!(!at_home.is_empty(), "{kind}: nothing reached /{table}");
            for req in &at_home {
                let headers = header_text(req);
                let sent = secrets.iter().any(|s| headers.contains(s.as_str()));
                assert!(
                    sent,
                    "{kind}: the endpoint's origin did not get the credentials at {}:\n{headers}",
                    req.url
                );
            }
        }
        // ... and the other origin got none of them, by link or by redirect.
        for prefix in [format!("/{kind}/link/"), format!("/{kind}/redirect/")] {
            let away = received(&other, &prefix).await;
            assert!(!away.is_empty(), "{kind}: nothing reached the other origin");
            for req in away {
                let text = format!("{}\n{}", req.url, header_text(&req));
                for secret in &all_secrets {
                    assert!(
                        !text.contains(secret.as_str()),
                        "{kind}: `{secret}` reached the other origin at {}:\n{text}",
                        req.url
                    );
                }
                assert!(
                    !text.to_ascii_lowercase().contains("authorization")
                        && !text.to_ascii_lowercase().contains("cookie"),
                    "{kind}: a credential header reached the other origin:\n{text}"
                );
                if *kind == "headers" {
                    // Headers that are not secrets still go wherever the walk goes.
                    assert!(
                        text.contains("x-plain: plain-value"),
                        "plain header missing:\n{text}"
                    );
                }
            }
        }
    }
    // No poll failed on the way.
    let failures = server
        .query("SELECT table_name, last_error FROM system.connector_status WHERE last_error IS NOT NULL")
        .await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn redirects_follow_http_method_rules_and_loops_fail_clearly() {
    let api = MockServer::start().await;
    let other = MockServer::start().await;
    for (code, name) in [(307, "r307"), (308, "r308"), (303, "r303"), (302, "r302")] {
        Mock::given(path(format!("/{name}")))
            .respond_with(ResponseTemplate::new(code).insert_header(
                "Location",
                format!("{}/{name}/target", other.uri()).as_str(),
            ))
            .mount(&api)
            .await;
        Mock::given(path(format!("/{name}/target")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1}])))
            .mount(&other)
            .await;
    }
    Mock::given(path("/secretbody"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "Location",
            format!("{}/secretbody/target", other.uri()).as_str(),
        ))
        .mount(&api)
        .await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/loop"))
        .mount(&api)
        .await;
    let mut sql = String::new();
    for name in ["r307", "r308", "r303", "r302"] {
        sql.push_str(&format!(
            r#"CREATE TABLE {name} (id INT) WITH (connector = 'polling_http', endpoint = '{api}/{name}',
                 interval_ms = 600000, method = 'POST', body = '{{"q": "all"}}');
"#,
            api = api.uri()
        ));
    }
    sql.push_str(&format!(
        r#"CREATE TABLE secretbody (id INT) WITH (connector = 'polling_http', endpoint = '{api}/secretbody',
             interval_ms = 600000, method = 'POST', body = '{{"key": "${{BODY_KEY}}"}}', max_retries = 0);
           CREATE TABLE looping (id INT) WITH (connector = 'polling_http', endpoint = '{api}/loop',
             interval_ms = 600000, max_retries = 0);
"#,
        api = api.uri()
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(
        &dir.path().join("data"),
        &[&file],
        &[("BODY_KEY", "body-key-6c2d")],
    )
    .await;
    for name in ["r307", "r308", "r303", "r302"] {
        server
            .wait_for(&format!("SELECT id FROM {name}"), WAIT, |r| !r.is_empty())
            .await;
    }
    for (name, verb, body) in [
        ("r307", "POST", r#"{"q": "all"}"#),
        ("r308", "POST", r#"{"q": "all"}"#),
        ("r303", "GET", ""),
        ("r302", "GET", ""),
    ] {
        let got = received(&other, &format!("/{name}/target")).await;
        assert_eq!(got[0].method.as_str(), verb, "{name}");
        assert_eq!(String::from_utf8_lossy(&got[0].body), body, "{name}");
        if verb == "GET" {
            assert!(
                !got[0].headers.contains_key("content-type"),
                "{name}: a GET without a body has no content type"
            );
        }
    }
    let rows = server
        .wait_for(
            "SELECT table_name, last_error FROM system.connector_status WHERE table_name IN ('secretbody', 'looping') AND last_error IS NOT NULL ORDER BY table_name",
            WAIT,
            |r| r.len() == 2,
        )
        .await;
    let looping = rows[0]["last_error"].as_str().unwrap();
    assert!(looping.contains("redirect"), "{looping}");
    let secretbody = rows[1]["last_error"].as_str().unwrap();
    assert!(
        secretbody.contains("another origin") && !secretbody.contains("body-key-6c2d"),
        "{secretbody}"
    );
    assert!(
        received(&other, "/secretbody").await.is_empty(),
        "a body holding a secret was sent to another origin"
    );
    // A redirect back to itself is a loop at once; any chain stops after 10 redirects.
    let loops = received(&api, "/loop").await.len();
    assert!((1..=11).contains(&loops), "{loops} requests for one loop");
}

#[tokio::test]
async fn every_kind_of_secret_is_redacted_from_errors_status_tables_and_logs() {
    let api = MockServer::start().await;
    mount_token_endpoint(&api).await;
    // Every data path fails with a body that echoes whatever credentials it was sent.
    Mock::given(method("GET"))
        .respond_with(|req: &Request| {
            let echoed: String = req
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={} ", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            // The bare credential after a scheme, the way an API names it in an error.
            let bare: String = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .map(|(_, c)| c.to_string())
                .unwrap_or_default();
            ResponseTemplate::new(500).set_body_string(format!(
                "bad credential {bare}; query {}; headers {echoed}",
                req.url.query().unwrap_or("")
            ))
        })
        .mount(&api)
        .await;
    let sql = format!(
        r#"CREATE CONNECTION oauth_api FROM polling_http_source WITH (endpoint = '{api}/o',
               auth_type = 'oauth2', client_id = 'cid', client_secret = 'csecret-2a7b', token_url = '{api}/token',
               interval_ms = 600000, max_retries = 0);
           CREATE TABLE oauth_a (id INT) WITH (connection = 'oauth_api', endpoint = '{api}/oa');
           CREATE TABLE oauth_b (id INT) WITH (connection = 'oauth_api', endpoint = '{api}/ob');
           CREATE TABLE envs (id INT) WITH (connector = 'polling_http', endpoint = '{api}/env', interval_ms = 600000,
               max_retries = 0, headers = '{{"X-Tenant": "${{TENANT}}"}}', query_params = '{{"region": "{{{{ REGION }}}}"}}');
           CREATE TABLE params (id INT) WITH (connector = 'polling_http', endpoint = '{api}/params?signature=sig-val-8b3e', interval_ms = 600000,
               max_retries = 0, query_params = '{{"appid": "appid-val-4d8e", "access_token": "qtok-val-1f9a"}}');
           CREATE TABLE schemes (id INT) WITH (connector = 'polling_http', endpoint = '{api}/schemes', interval_ms = 600000,
               max_retries = 0, headers = 'Authorization: Token auth-cred-1c5f');
"#,
        api = api.uri()
    );
    let secrets = [
        OAUTH_TOKEN,
        "csecret-2a7b",
        "tenant-env-2f6b",
        "region-env-7c3d",
        "sig-val-8b3e",
        "appid-val-4d8e",
        "qtok-val-1f9a",
        "auth-cred-1c5f",
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(
        &dir.path().join("data"),
        &[&file],
        &[("TENANT", "tenant-env-2f6b"), ("REGION", "region-env-7c3d")],
    )
    .await;
    let rows = server
        .wait_for(
            "SELECT table_name, last_error FROM system.connector_status WHERE last_error IS NOT NULL ORDER BY table_name",
            WAIT,
            |r| r.len() == 5,
        )
        .await;
    // The servers really did see (and echo) the secrets.
    let seen: Vec<String> = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.url, header_text(r)))
        .collect();
    for secret in secrets.iter().filter(|s| **s != "csecret-2a7b") {
        assert!(
            seen.iter().any(|s| s.contains(secret)),
            "{secret} was never sent"
        );
    }
    for row in &rows {
        let error = row["last_error"].as_str().unwrap();
        assert!(
            error.contains("HTTP 500") && error.contains("***"),
            "{row:?}"
        );
    }
    let mut outputs: Vec<(String, String)> =
        vec![("connector_status".into(), json!(rows).to_string())];
    for table in ["system.connector_logs", "system.http_metrics"] {
        let (status, body) = server
            .query_raw(&format!("SELECT * FROM {table}"), "csv")
            .await;
        assert_eq!(status, 200, "{body}");
        outputs.push((table.into(), body));
    }
    let status: Value = reqwest::get(format!("{}/v1/status", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    outputs.push(("status".into(), status.to_string()));
    outputs.push(("log".into(), server.log_text()));
    for (name, text) in &outputs {
        for secret in secrets {
            assert!(!text.contains(secret), "{name} leaked `{secret}`:\n{text}");
        }
    }
}

#[test]
fn load_time_errors_that_quote_option_text_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        "CREATE TABLE a (id INT) WITH (connector = 'polling_http', endpoint = 'ftp://${HOST}/x');
         CREATE TABLE b (id INT) WITH (connector = 'polling_http', endpoint = 'http://h/x', interval_ms = '${IV}');
         CREATE TABLE c (id INT) WITH (connector = 'polling_http', endpoint = 'ftp://h/x?api_key=lit-key-8d2c');
         CREATE TABLE d (id INT) WITH (connector = 'polling_http', endpoint = 'http://h/x', retry_on_status = '{{ CODES }}');",
    );
    let out = siphon(
        &["check", file.to_str().unwrap()],
        &[
            ("HOST", "host-env-5a1b"),
            ("IV", "iv-secret-3e9f"),
            ("CODES", "codes-secret-4c7a"),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    for option in ["endpoint", "interval_ms", "retry_on_status"] {
        assert!(text.contains(&format!("option `{option}`")), "{text}");
    }
    for secret in [
        "host-env-5a1b",
        "iv-secret-3e9f",
        "lit-key-8d2c",
        "codes-secret-4c7a",
    ] {
        assert!(!text.contains(secret), "`{secret}` leaked:\n{text}");
    }
    assert!(text.contains("***"), "{text}");
}

#[tokio::test]
async fn non_idempotent_requests_retry_a_timeout_only_when_opted_in() {
    let api = MockServer::start().await;
    Mock::given(path("/status"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&api)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 1}]))
                .set_delay(Duration::from_secs(2)),
        )
        .with_priority(10)
        .mount(&api)
        .await;
    let table = |name: &str, verb: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} (id INT) WITH (connector = 'polling_http', endpoint = '{}/{name}', method = '{verb}',
                 interval_ms = 600000, timeout_ms = 200, max_retries = 2, retry_backoff_ms = 10{extra});\n",
            api.uri()
        )
    };
    let sql = [
        table("post_plain", "POST", ""),
        table("put_plain", "PUT", ""),
        table("post_opted", "POST", ", retry_non_idempotent = true"),
        table("get_plain", "GET", ""),
    ]
    .concat()
        + &format!(
            "CREATE TABLE post_status (id INT) WITH (connector = 'polling_http', endpoint = '{}/status', method = 'POST',
                 interval_ms = 600000, max_retries = 2, retry_backoff_ms = 10);\n",
            api.uri()
        );
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let rows = server
        .wait_for(
            "SELECT table_name, last_error FROM system.connector_status WHERE last_error IS NOT NULL ORDER BY table_name",
            WAIT,
            |r| r.len() == 5,
        )
        .await;
    for row in &rows {
        let error = row["last_error"].as_str().unwrap();
        let expected = if row["table_name"] == "post_status" {
            "HTTP 503"
        } else {
            "timed out after 200 ms"
        };
        assert!(error.contains(expected), "{row:?}");
    }
    let count = |p: &'static str| {
        let api = &api;
        async move { received(api, p).await.len() }
    };
    assert_eq!(count("/post_plain").await, 1, "POST after a timeout");
    assert_eq!(count("/put_plain").await, 1, "PUT after a timeout");
    assert_eq!(count("/post_opted").await, 3, "retry_non_idempotent = true");
    assert_eq!(count("/get_plain").await, 3, "GET retries a timeout");
    assert_eq!(
        count("/status").await,
        3,
        "retry_on_status applies to every method"
    );
    let metrics = server
        .query("SELECT count(*) AS n FROM system.http_metrics WHERE url LIKE '%post_plain%'")
        .await;
    assert_eq!(int(&metrics[0]["n"]), 1, "{metrics:?}");
}

#[tokio::test]
async fn test_connection_follows_redirects_and_oauth2_token_urls_stay_redacted() {
    let api = MockServer::start().await;
    let other = MockServer::start().await;
    mount_token_endpoint(&api).await;
    Mock::given(path("/moved"))
        .respond_with(
            ResponseTemplate::new(308)
                .insert_header("Location", format!("{}/data?k=1", other.uri()).as_str()),
        )
        .mount(&api)
        .await;
    Mock::given(path("/data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 7}])))
        .mount(&other)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE t (id INT) WITH (connector = 'polling_http', endpoint = '{api}/moved',
                auth_type = 'oauth2', client_id = 'cid', client_secret = 'csecret-2a7b',
                token_url = '{api}/token?client_key=${{TOKEN_KEY}}');",
            api = api.uri()
        ),
    );
    let out = std::process::Command::new(crate::harness::siphon_bin())
        .arg("test-connection")
        .arg(&file)
        .env("TOKEN_KEY", "token-key-5e8a")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("result:       ok") && stdout.contains("| 7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("client_key=***") && !stdout.contains("token-key-5e8a"),
        "{stdout}"
    );
    let got = received(&other, "/data").await;
    assert!(
        !header_text(&got[0]).contains(OAUTH_TOKEN),
        "the token followed the redirect"
    );
}
