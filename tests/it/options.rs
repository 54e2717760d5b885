//! Every request option of the polling source against a real local server: method, body,
//! headers, query_params, timeouts, auth kinds, formats, request variables.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(20);

/// Runs one table against `api` and waits until it has `rows` rows.
async fn run_table(
    api: &MockServer,
    columns: &str,
    options: &str,
    rows: usize,
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t ({columns}) WITH (connector = 'polling_http_source', interval_ms = 100, {options});",
    )
    .replace("{uri}", &api.uri());
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for("SELECT * FROM t", WAIT, |r| r.len() >= rows)
        .await;
    (server, dir)
}

#[tokio::test]
async fn post_with_body_json_headers_and_query_params() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/query"))
        .and(header("content-type", "application/json"))
        .and(header("x-tenant", "acme"))
        .and(query_param("limit", "10"))
        .and(body_string_contains(r#""query": "all""#))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"rows": [{"n": 1}, {"n": 2}]})),
        )
        .mount(&api)
        .await;
    let (server, _dir) = run_table(
        &api,
        "n BIGINT",
        r#"endpoint = '{uri}/query', method = 'POST', body = '{"query": "all"}',
           headers = '{"Content-Type": "application/json", "X-Tenant": "acme"}',
           query_params = '{"limit": 10}', json_path = '$.rows[*]'"#,
        2,
    )
    .await;
    assert_eq!(
        server.query("SELECT DISTINCT n FROM t ORDER BY n").await,
        vec![json!({"n": 1}), json!({"n": 2})]
    );
}

#[tokio::test]
async fn put_patch_and_delete_methods() {
    for verb in ["PUT", "PATCH", "DELETE"] {
        let api = MockServer::start().await;
        Mock::given(method(verb))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&api)
            .await;
        let (server, _dir) = run_table(
            &api,
            "ok BOOLEAN",
            &format!("endpoint = '{{uri}}/m', method = '{}'", verb.to_lowercase()),
            1,
        )
        .await;
        assert_eq!(
            server.query("SELECT ok FROM t LIMIT 1").await,
            vec![json!({"ok": true})]
        );
    }
}

#[tokio::test]
async fn auth_basic_bearer_and_api_key() {
    let cases = [
        (
            "auth_type = 'basic', username = 'user', password = 'p@ss'",
            "authorization",
            "Basic dXNlcjpwQHNz",
        ),
        (
            "auth_type = 'bearer', token = 'tkn'",
            "authorization",
            "Bearer tkn",
        ),
        ("auth_type = 'api_key', api_key = 'k1'", "x-api-key", "k1"),
        (
            "auth_type = 'api_key', api_key = 'k2', api_key_header = 'X-Custom-Key'",
            "x-custom-key",
            "k2",
        ),
    ];
    for (auth, name, value) in cases {
        let api = MockServer::start().await;
        Mock::given(header(name, value))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"who": "me"})))
            .mount(&api)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401))
            .with_priority(10)
            .mount(&api)
            .await;
        let (server, _dir) = run_table(
            &api,
            "who TEXT",
            &format!("endpoint = '{{uri}}/a', {auth}"),
            1,
        )
        .await;
        assert_eq!(
            server.query("SELECT who FROM t LIMIT 1").await,
            vec![json!({"who": "me"})],
            "{auth}"
        );
    }
}

#[tokio::test]
async fn timeout_is_an_error_in_status_not_a_crash() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"a": 1}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t (a INT) WITH (connector = 'polling_http', endpoint = '{}/slow', poll_interval_ms = 100, timeout_ms = 200);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let rows = server
        .wait_for(
            "SELECT last_error, consecutive_failures FROM system.connector_status",
            WAIT,
            |r| int(&r[0]["consecutive_failures"]) >= 2,
        )
        .await;
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out after 200 ms"),
        "{rows:?}"
    );
    assert_eq!(server.scalar("SELECT count(*) FROM t").await, json!(0));
}

#[tokio::test]
async fn ndjson_and_raw_formats() {
    let api = MockServer::start().await;
    Mock::given(path("/nd"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("{\"a\": 1}\n\n{\"a\": 2}\nnot json\n{\"a\": 3}\n"),
        )
        .mount(&api)
        .await;
    Mock::given(path("/raw"))
        .respond_with(ResponseTemplate::new(200).set_body_string("plain <b>text</b>"))
        .mount(&api)
        .await;
    let (server, _dir) =
        run_table(&api, "a INT", "endpoint = '{uri}/nd', format = 'ndjson'", 3).await;
    assert_eq!(
        server.query("SELECT DISTINCT a FROM t ORDER BY a").await,
        vec![json!({"a": 1}), json!({"a": 2}), json!({"a": 3})]
    );
    let dead = server
        .query("SELECT reason FROM system.dead_letters LIMIT 1")
        .await;
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("line 4"),
        "{dead:?}"
    );
    let (server, _dir) = run_table(
        &api,
        "body TEXT",
        "endpoint = '{uri}/raw', format = 'raw'",
        1,
    )
    .await;
    assert_eq!(
        server.query("SELECT body FROM t LIMIT 1").await,
        vec![json!({"body": "plain <b>text</b>"})]
    );
}

#[tokio::test]
async fn request_variables_in_query_params_and_body() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": 1})))
        .mount(&api)
        .await;
    let (server, _dir) = run_table(
        &api,
        "ok INT",
        r#"endpoint = '{uri}/q', method = 'POST', time_format = 'unix',
           query_params = '{"from": "${last_poll_time}", "to": "${current_time}"}',
           body = '{"query": "SELECT * FROM data WHERE timestamp > ${last_poll_time}"}'"#,
        2,
    )
    .await;
    drop(server);
    let requests = api.received_requests().await.unwrap();
    let first: Vec<(String, String)> = requests[0].url.query_pairs().into_owned().collect();
    assert_eq!(
        first[0],
        ("from".into(), "0".into()),
        "the first poll has no last poll time: the epoch"
    );
    let to: i64 = first[1].1.parse().unwrap();
    let second: Vec<(String, String)> = requests[1].url.query_pairs().into_owned().collect();
    let from2: i64 = second[0].1.parse().unwrap();
    assert!(
        from2 >= to - 1 && from2 <= to + 1,
        "second poll's from ({from2}) is the first poll's start ({to})"
    );
    let body: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(
        body["query"],
        format!("SELECT * FROM data WHERE timestamp > {from2}")
    );
}

#[tokio::test]
async fn page_offset_and_cursor_variables_in_the_endpoint_and_time_formats() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(|req: &wiremock::Request| {
            let path = req.url.path().to_string();
            // /items/page/<n>: three pages of one record.
            let n: u64 = path.rsplit('/').next().unwrap().parse().unwrap_or(0);
            let body = if n <= 3 { json!([{"n": n}]) } else { json!([]) };
            ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&api)
        .await;
    let (server, _dir) = run_table(
        &api,
        "n INT",
        r#"endpoint = '{uri}/items/page/${page}', pagination_type = 'page', page_size = 1, page_param = 'p',
           query_params = '{"ms": "${current_time}"}', time_format = 'unix_ms'"#,
        3,
    )
    .await;
    assert_eq!(
        server.query("SELECT DISTINCT n FROM t ORDER BY n").await,
        vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
    );
    drop(server);
    let first = &api.received_requests().await.unwrap()[0];
    let ms: i64 = first
        .url
        .query_pairs()
        .find(|(k, _)| k == "ms")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(ms > 1_700_000_000_000, "unix_ms: {ms}");

    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(|req: &wiremock::Request| {
            let at: u64 = req.url.path().rsplit('/').next().unwrap().parse().unwrap_or(0);
            ResponseTemplate::new(200).set_body_json(json!({"rows": [{"n": at}], "next": if at < 20 { json!(at + 10) } else { json!(null) }}))
        })
        .mount(&api)
        .await;
    let (server, _dir) = run_table(
        &api,
        "n INT",
        r#"endpoint = '{uri}/from/${cursor}', pagination_type = 'cursor', cursor_path = '$.next', json_path = '$.rows[*]',
           query_params = '{"day": "${last_poll_time}"}', time_format = '%Y-%m-%d'"#,
        3,
    )
    .await;
    assert_eq!(
        server.query("SELECT DISTINCT n FROM t ORDER BY n").await,
        vec![json!({"n": 0}), json!({"n": 10}), json!({"n": 20})],
        "an empty cursor on the first page, then the cursor in the path"
    );
    drop(server);
    let first = &api.received_requests().await.unwrap()[0];
    assert_eq!(
        first.url.query_pairs().find(|(k, _)| k == "day").unwrap().1,
        "1970-01-01"
    );
}

#[tokio::test]
async fn csv_and_xml_awkward_bodies_through_the_binary() {
    let api = MockServer::start().await;
    Mock::given(path("/csv"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(
            "\u{feff}id;name;price;seen\r\n1;\"Smith; John\";12.50;2024-01-02T03:04:05Z\r\n2;\"say \"\"hi\"\"\";oops;\r\n3;\"multi\nline\";1;\r\n"
                .as_bytes()
                .to_vec(),
        ))
        .mount(&api)
        .await;
    Mock::given(path("/xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"<?xml version="1.0"?><r:response xmlns:r="urn:r" xmlns="urn:d"><items>
               <item id="7"><name><![CDATA[Tom & <Jerry>]]></name><tags><tag>a</tag><tag>b</tag></tags></item>
               <r:item id="8"><name>Fish &amp; Chips</name></r:item></items></r:response>"#,
        ))
        .mount(&api)
        .await;
    let (server, _dir) = run_table(
        &api,
        "id INT, name TEXT, price DECIMAL(10,2), seen TIMESTAMP",
        "endpoint = '{uri}/csv', format = 'csv', csv_delimiter = ';', csv_header = true",
        2,
    )
    .await;
    assert_eq!(
        server
            .query("SELECT DISTINCT id, name, price, seen FROM t WHERE id <> 2 ORDER BY id LIMIT 2")
            .await,
        vec![
            json!({"id": 1, "name": "Smith; John", "price": 12.5, "seen": "2024-01-02T03:04:05Z"}),
            json!({"id": 3, "name": "multi\nline", "price": 1.0, "seen": null}),
        ]
    );
    let dead = server
        .query("SELECT reason FROM system.dead_letters LIMIT 1")
        .await;
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("line 3"),
        "{dead:?}"
    );

    let (server, _dir) = run_table(
        &api,
        "id INT, name TEXT, tags JSON",
        "endpoint = '{uri}/xml', format = 'xml', xml_root_path = '/response/items/item'",
        2,
    )
    .await;
    assert_eq!(
        server
            .query("SELECT DISTINCT id, name, tags FROM t ORDER BY id LIMIT 2")
            .await,
        vec![
            json!({"id": 7, "name": "Tom & <Jerry>", "tags": {"tag": ["a", "b"]}}),
            json!({"id": 8, "name": "Fish & Chips", "tags": null}),
        ]
    );
}
