//! What a poll may claim (issue 9): a keyed table's snapshot diff deletes rows only when
//! the poll really saw the whole list, empty bodies are successful polls of zero records,
//! conditional requests never freeze a paginated source, and a timestamp state follows the
//! decoder's reading of epochs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(20);

async fn start(sql: &str, api: &MockServer) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql.replace("{uri}", &api.uri()));
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    (server, dir)
}

fn three_rows() -> Value {
    json!({"data": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]})
}

fn expected_rows() -> Vec<Value> {
    vec![
        json!({"id": 1, "name": "a"}),
        json!({"id": 2, "name": "b"}),
        json!({"id": 3, "name": "c"}),
    ]
}

/// Serves `first` to the first request of a path, then `later(n)` to request n (1-based).
fn serve(
    first: ResponseTemplate,
    later: impl Fn(u64) -> ResponseTemplate + Send + Sync + 'static,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
    let count = Arc::new(AtomicU64::new(0));
    move |_: &Request| match count.fetch_add(1, Ordering::SeqCst) {
        0 => first.clone(),
        n => later(n),
    }
}

/// Waits until `table`'s source made at least `requests` requests.
async fn wait_requests(server: &Server, table: &str, requests: i64) -> Vec<Value> {
    server
        .wait_for(
            &format!(
                "SELECT requests, consecutive_failures, last_error, state FROM system.connector_status WHERE table_name = '{table}'"
            ),
            WAIT,
            |r| r.len() == 1 && int(&r[0]["requests"]) >= requests,
        )
        .await
}

/// Issue 9, point 1 (a): a record that became a dead letter is not a deleted row.
#[tokio::test]
async fn a_dead_letter_does_not_delete_its_row() {
    let api = MockServer::start().await;
    Mock::given(path("/list"))
        .respond_with(serve(
            ResponseTemplate::new(200).set_body_json(three_rows()),
            |_| {
                ResponseTemplate::new(200).set_body_json(json!({"data": [
                    {"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": "three", "name": "c"}
                ]}))
            },
        ))
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/list', json_path = '$.data[*]', interval_ms = 100);";
    let (server, _dir) = start(sql, &api).await;
    wait_requests(&server, "t", 4).await;
    assert!(
        int(&server
            .scalar("SELECT count(*) FROM system.dead_letters")
            .await)
            >= 1,
        "the bad record is a dead letter"
    );
    assert_eq!(
        server.query("SELECT id, name FROM t ORDER BY id").await,
        expected_rows(),
        "a poll with a dead letter is no complete snapshot: row 3 stays"
    );
}

/// Issue 9, point 1 (b): a 200 whose body has nothing at `json_path` is a failed poll that
/// names the path and quotes the body, and deletes nothing; with `json_path_missing =
/// 'empty'` it is a successful poll of zero records that still deletes nothing.
#[tokio::test]
async fn a_body_without_the_json_path_fails_the_poll_and_deletes_nothing() {
    let api = MockServer::start().await;
    for p in ["/strict", "/lenient"] {
        Mock::given(path(p))
            .respond_with(serve(
                ResponseTemplate::new(200).set_body_json(three_rows()),
                |_| ResponseTemplate::new(200).set_body_json(json!({"error": "rate limited"})),
            ))
            .mount(&api)
            .await;
    }
    let sql = "
        CREATE TABLE strict (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
            endpoint = '{uri}/strict', json_path = '$.data[*]', interval_ms = 100);
        CREATE TABLE lenient (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
            endpoint = '{uri}/lenient', json_path = '$.data[*]', json_path_missing = 'empty', interval_ms = 100);";
    let (server, _dir) = start(sql, &api).await;
    let status = wait_requests(&server, "strict", 4).await;
    assert!(int(&status[0]["consecutive_failures"]) >= 1, "{status:?}");
    let error = status[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("json_path `$.data[*]` matches nothing")
            && error.contains(r#"{"error":"rate limited"}"#),
        "{error}"
    );
    let lenient = wait_requests(&server, "lenient", 4).await;
    assert_eq!(int(&lenient[0]["consecutive_failures"]), 0, "{lenient:?}");
    assert_eq!(lenient[0]["last_error"], Value::Null, "{lenient:?}");
    for table in ["strict", "lenient"] {
        assert_eq!(
            server
                .query(&format!("SELECT id, name FROM {table} ORDER BY id"))
                .await,
            expected_rows(),
            "{table}: nothing deleted"
        );
    }
}

/// Issue 9, point 1 (c): an empty page mid-walk that still names a next page is followed,
/// so the rows on the pages after it are neither missed nor deleted.
#[tokio::test]
async fn an_empty_page_mid_walk_is_followed_and_deletes_nothing() {
    let api = MockServer::start().await;
    let polls = Arc::new(AtomicU64::new(0));
    let p = polls.clone();
    Mock::given(path("/pages"))
        .respond_with(move |req: &Request| {
            let cursor = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "cursor")
                .map(|(_, v)| v.into_owned());
            let body = match cursor.as_deref() {
                None => {
                    let n = p.fetch_add(1, Ordering::SeqCst);
                    if n == 0 {
                        json!({"data": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "next": "c2"})
                    } else {
                        json!({"data": [{"id": 1, "name": "a"}], "next": "c2"})
                    }
                }
                Some("c2") if polls_so_far(&p) <= 1 => {
                    json!({"data": [{"id": 3, "name": "c"}], "next": null})
                }
                // Later polls: page 2 is filtered down to nothing but links onwards.
                Some("c2") => json!({"data": [], "next": "c3"}),
                Some("c3") => json!({"data": [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}], "next": null}),
                Some(other) => panic!("unexpected cursor {other}"),
            };
            ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/pages', json_path = '$.data[*]', interval_ms = 100,
        pagination_type = 'cursor', cursor_path = '$.next');";
    let (server, _dir) = start(sql, &api).await;
    wait_requests(&server, "t", 10).await;
    assert_eq!(
        server.query("SELECT id, name FROM t ORDER BY id").await,
        expected_rows()
    );
    let followed = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.query().is_some_and(|q| q.contains("cursor=c3")))
        .count();
    assert!(followed >= 1, "the empty page's next cursor was followed");
}

fn polls_so_far(polls: &AtomicU64) -> u64 {
    polls.load(Ordering::SeqCst)
}

/// Issue 9, point 3: a paginated source sends no conditional request, so a first page that
/// never changes (and would answer 304) does not hide the pages after it.
#[tokio::test]
async fn etag_on_the_first_page_does_not_freeze_a_paginated_source() {
    let api = MockServer::start().await;
    let conditional = Arc::new(AtomicU64::new(0));
    let page2 = Arc::new(AtomicU64::new(0));
    let (c, p2) = (conditional.clone(), page2.clone());
    Mock::given(path("/feed"))
        .respond_with(move |req: &Request| {
            let page = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .map(|(_, v)| v.into_owned());
            if req.headers.contains_key("if-none-match")
                || req.headers.contains_key("if-modified-since")
            {
                c.fetch_add(1, Ordering::SeqCst);
            }
            match page.as_deref() {
                Some("1") if req.headers.contains_key("if-none-match") => {
                    ResponseTemplate::new(304)
                }
                Some("1") => ResponseTemplate::new(200)
                    .insert_header("ETag", "\"p1\"")
                    .set_body_json(json!([{"id": 1}, {"id": 2}])),
                _ => {
                    // Page 2 (short, so the last) holds a new record at every request.
                    let n = p2.fetch_add(1, Ordering::SeqCst);
                    ResponseTemplate::new(200).set_body_json(json!([{"id": 3 + n}]))
                }
            }
        })
        .mount(&api)
        .await;
    let sql =
        "CREATE TABLE t (id BIGINT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/feed', interval_ms = 100, pagination_type = 'page', page_size = 2);";
    let (server, _dir) = start(sql, &api).await;
    server
        .wait_for("SELECT max(id) AS m FROM t", WAIT, |r| {
            r[0]["m"].as_i64().is_some_and(|m| m >= 5)
        })
        .await;
    assert_eq!(
        conditional.load(Ordering::SeqCst),
        0,
        "no If-None-Match / If-Modified-Since on a paginated source"
    );
}

/// Issue 9, point 3, the other side: without pagination the validators are still sent and
/// a 304 is a successful poll that changes nothing.
#[tokio::test]
async fn a_single_page_source_still_sends_validators() {
    let api = MockServer::start().await;
    Mock::given(path("/one"))
        .respond_with(|req: &Request| {
            if req.headers.get("if-none-match").map(|v| v.as_bytes()) == Some(b"\"v1\"") {
                ResponseTemplate::new(304)
            } else {
                ResponseTemplate::new(200)
                    .insert_header("ETag", "\"v1\"")
                    .set_body_json(json!([{"id": 1}, {"id": 2}]))
            }
        })
        .mount(&api)
        .await;
    let sql =
        "CREATE TABLE t (id BIGINT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/one', interval_ms = 100);";
    let (server, _dir) = start(sql, &api).await;
    let status = wait_requests(&server, "t", 4).await;
    assert_eq!(int(&status[0]["consecutive_failures"]), 0);
    assert_eq!(int(&server.scalar("SELECT count(*) FROM t").await), 2);
    let reqs = api.received_requests().await.unwrap();
    assert!(
        reqs[1..]
            .iter()
            .all(|r| r.headers.contains_key("if-none-match"))
    );
}

/// Issue 9, point 6: a BIGINT `state_field` of epoch milliseconds is read as milliseconds
/// (the decoder's rule), not as seconds in the year 56,000.
#[tokio::test]
async fn a_bigint_timestamp_state_in_milliseconds_is_read_as_milliseconds() {
    let api = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(|_: &Request| {
            ResponseTemplate::new(200).set_body_json(json!([
                {"id": 1, "ts": 1_710_506_000_000_i64},
                {"id": 2, "ts": 1_710_506_096_000_i64}
            ]))
        })
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (id BIGINT, ts BIGINT) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/events', interval_ms = 100, state_type = 'timestamp', state_field = 'ts',
        state_param = 'since');";
    let (server, _dir) = start(sql, &api).await;
    wait_requests(&server, "t", 3).await;
    let reqs = api.received_requests().await.unwrap();
    let since: Vec<String> = reqs
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert!(!since.is_empty(), "later polls send the state");
    assert!(
        since.iter().all(|s| s == "2024-03-15T12:34:56Z"),
        "{since:?}"
    );
}

/// Issue 9, point 6: a sentinel far in the future is not taken as state (which would make
/// every later request ask for the future), and the poll says so in the log.
#[tokio::test]
async fn a_timestamp_far_in_the_future_does_not_become_the_state() {
    let api = MockServer::start().await;
    Mock::given(path("/events"))
        .respond_with(|_: &Request| {
            ResponseTemplate::new(200).set_body_json(json!([
                {"id": 1, "ts": "2024-03-15T12:34:56Z"},
                {"id": 2, "ts": "9999-12-31T00:00:00Z"}
            ]))
        })
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (id BIGINT, ts TIMESTAMP) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/events', interval_ms = 100, state_type = 'timestamp', state_field = 'ts',
        state_param = 'since');";
    let (server, _dir) = start(sql, &api).await;
    wait_requests(&server, "t", 3).await;
    let reqs = api.received_requests().await.unwrap();
    let since: Vec<String> = reqs
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert!(!since.is_empty());
    assert!(
        since.iter().all(|s| s == "2024-03-15T12:34:56Z"),
        "{since:?}"
    );
    let notes = server
        .query("SELECT message FROM system.connector_logs WHERE level = 'WARN' AND message LIKE '%ahead of the clock%'")
        .await;
    assert!(!notes.is_empty(), "the skipped value is reported");
}

/// Issue 9, point 7: a 204 or an empty 2xx body is a successful poll of zero records in
/// every format, never a decode error counted by the circuit breaker; a keyed table keeps
/// its rows.
#[tokio::test]
async fn empty_bodies_are_successful_polls_in_every_format() {
    let api = MockServer::start().await;
    Mock::given(path("/keyed"))
        .respond_with(serve(
            ResponseTemplate::new(200).set_body_json(three_rows()),
            |n| {
                if n % 2 == 0 {
                    ResponseTemplate::new(204)
                } else {
                    ResponseTemplate::new(200).set_body_string(" \n")
                }
            },
        ))
        .mount(&api)
        .await;
    Mock::given(path("/empty"))
        .respond_with(serve(ResponseTemplate::new(204), |n| {
            if n % 2 == 0 {
                ResponseTemplate::new(204)
            } else {
                ResponseTemplate::new(200).set_body_string("")
            }
        }))
        .mount(&api)
        .await;
    let breaker = "circuit_breaker_enabled = true, circuit_breaker_threshold = 1, circuit_breaker_timeout_ms = 600000";
    let sql = format!(
        "
        CREATE TABLE keyed (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source',
            endpoint = '{{uri}}/keyed', json_path = '$.data[*]', interval_ms = 100, {breaker});
        CREATE TABLE j (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{{uri}}/empty', interval_ms = 100, {breaker});
        CREATE TABLE jp (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{{uri}}/empty', json_path = '$.data[*]', interval_ms = 100, {breaker});
        CREATE TABLE nd (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{{uri}}/empty', format = 'ndjson', interval_ms = 100, {breaker});
        CREATE TABLE c (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{{uri}}/empty', format = 'csv', interval_ms = 100, {breaker});
        CREATE TABLE x (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{{uri}}/empty', format = 'xml', xml_root_path = '/r/item', interval_ms = 100, {breaker});
        CREATE TABLE r (body TEXT) WITH (connector = 'polling_http_source', endpoint = '{{uri}}/empty', format = 'raw', interval_ms = 100, {breaker});"
    );
    let (server, _dir) = start(&sql, &api).await;
    for table in ["keyed", "j", "jp", "nd", "c", "x", "r"] {
        let status = wait_requests(&server, table, 4).await;
        assert_eq!(
            int(&status[0]["consecutive_failures"]),
            0,
            "{table}: {status:?}"
        );
        assert_eq!(status[0]["last_error"], Value::Null, "{table}: {status:?}");
        assert_eq!(status[0]["state"], "running", "{table}: {status:?}");
        if table != "keyed" {
            assert_eq!(
                int(&server
                    .scalar(&format!("SELECT count(*) FROM {table}"))
                    .await),
                0,
                "{table}"
            );
        }
    }
    assert_eq!(
        server.query("SELECT id, name FROM keyed ORDER BY id").await,
        expected_rows(),
        "an empty body is no snapshot: the keyed table keeps its rows"
    );
}
