//! The complete polling source: OAuth2, every pagination kind, incremental state across a
//! restart, conditional requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(20);

fn query_map(req: &Request) -> std::collections::HashMap<String, String> {
    req.url.query_pairs().into_owned().collect()
}

async fn start(sql: &str, api: &MockServer) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql.replace("{uri}", &api.uri()));
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    (server, dir)
}

#[tokio::test]
async fn oauth2_token_is_shared_cached_and_refetched_after_revocation() {
    let api = MockServer::start().await;
    let issued = Arc::new(AtomicU64::new(0));
    let valid = Arc::new(AtomicU64::new(1));
    let i = issued.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |req: &Request| {
            let body = String::from_utf8_lossy(&req.body).to_string();
            assert!(body.contains("grant_type=client_credentials") && body.contains("scope=read%3Adata"), "{body}");
            let n = i.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}))
        })
        .mount(&api)
        .await;
    let v = valid.clone();
    Mock::given(method("GET"))
        .and(path("/data"))
        .respond_with(move |req: &Request| {
            let expected = format!("Bearer tok-{}", v.load(Ordering::SeqCst));
            if req
                .headers
                .get("authorization")
                .map(|h| h.to_str().unwrap())
                == Some(expected.as_str())
            {
                ResponseTemplate::new(200).set_body_json(json!([{"x": 1}]))
            } else {
                ResponseTemplate::new(401).set_body_string("token revoked")
            }
        })
        .mount(&api)
        .await;
    let sql = "CREATE CONNECTION oauth_api FROM polling_http_source WITH (
            endpoint = '{uri}/data', interval_ms = 100, auth_type = 'oauth2',
            client_id = 'id', client_secret = 'shh-secret', token_url = '{uri}/token', scope = 'read:data');
        CREATE TABLE a (x INT) WITH (connector = 'polling_http_source', connection = 'oauth_api');
        CREATE TABLE b (x INT) WITH (connector = 'polling_http_source', connection = 'oauth_api');";
    let (server, _dir) = start(sql, &api).await;
    server
        .wait_for("SELECT count(*) AS n FROM b", WAIT, |r| {
            int(&r[0]["n"]) >= 3
        })
        .await;
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "two tables of one connection share one cached token"
    );
    let a_before = int(&server.scalar("SELECT count(*) FROM a").await);

    // The server revokes the token: the next poll gets a 401, fetches a new token once, and retries.
    valid.store(2, Ordering::SeqCst);
    server
        .wait_for("SELECT count(*) AS n FROM a", WAIT, |r| {
            int(&r[0]["n"]) >= a_before + 3
        })
        .await;
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let status = server
        .query("SELECT last_error FROM system.connector_status")
        .await;
    assert!(
        status.iter().all(|s| s["last_error"].is_null()),
        "a 401 fixed by a new token is not an error: {status:?}"
    );
}

#[tokio::test]
async fn oauth2_token_endpoint_failure_is_a_status_error_without_the_secret() {
    let api = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_client", "error_description": "bad secret shh-secret"}),
        ))
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (x INT) WITH (connector = 'polling_http', endpoint = '{uri}/data', poll_interval_ms = 100,
        auth_type = 'oauth2', client_id = 'id', client_secret = 'shh-secret', token_url = '{uri}/token');";
    let (server, _dir) = start(sql, &api).await;
    let rows = server
        .wait_for(
            "SELECT state, last_error FROM system.connector_status",
            WAIT,
            |r| !r[0]["last_error"].is_null(),
        )
        .await;
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("authentication failed") && error.contains("invalid_client"),
        "{error}"
    );
    assert!(!error.contains("shh-secret"), "{error}");
}

/// 7 items served by offset, page, cursor, link header and next URL.
fn items(from: usize, to: usize) -> Vec<Value> {
    (from..to.min(7)).map(|i| json!({"id": i})).collect()
}

#[tokio::test]
async fn every_pagination_kind_walks_all_pages_in_one_commit() {
    let api = MockServer::start().await;
    Mock::given(path("/offset"))
        .respond_with(|req: &Request| {
            let q = query_map(req);
            let (o, l): (usize, usize) =
                (q["offset"].parse().unwrap(), q["limit"].parse().unwrap());
            ResponseTemplate::new(200).set_body_json(json!({"data": items(o, o + l)}))
        })
        .mount(&api)
        .await;
    Mock::given(path("/page"))
        .respond_with(|req: &Request| {
            let q = query_map(req);
            let (p, s): (usize, usize) =
                (q["page"].parse().unwrap(), q["per_page"].parse().unwrap());
            ResponseTemplate::new(200).set_body_json(json!({"data": items((p - 1) * s, p * s)}))
        })
        .mount(&api)
        .await;
    Mock::given(path("/cursor"))
        .respond_with(|req: &Request| {
            let at: usize = query_map(req)
                .get("after")
                .map(|c| c.trim_start_matches('c').parse().unwrap())
                .unwrap_or(0);
            let next = if at + 3 < 7 {
                json!(format!("c{}", at + 3))
            } else {
                Value::Null
            };
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": items(at, at + 3), "meta": {"next_cursor": next}}))
        })
        .mount(&api)
        .await;
    Mock::given(path("/link"))
        .respond_with(|req: &Request| {
            let p: usize = query_map(req)
                .get("p")
                .map(|p| p.parse().unwrap())
                .unwrap_or(0);
            let mut t = ResponseTemplate::new(200).set_body_json(json!(items(p * 3, p * 3 + 3)));
            let mut link =
                "</link?p=0>; rel=\"first\", <https://elsewhere.invalid/x>; rel=\"prev\""
                    .to_string();
            if p < 2 {
                link.push_str(&format!(
                    ", <?p={}>; rel=\"next last\"; title=\"a, b\"",
                    p + 1
                ));
            }
            t = t.insert_header("Link", link.as_str());
            t
        })
        .mount(&api)
        .await;
    Mock::given(path("/next"))
        .respond_with(|req: &Request| {
            let p: usize = query_map(req)
                .get("p")
                .map(|p| p.parse().unwrap())
                .unwrap_or(0);
            let next = if p < 2 {
                json!(format!("/next?p={}", p + 1))
            } else {
                Value::Null
            };
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": items(p * 3, p * 3 + 3), "links": {"next": next}}))
        })
        .mount(&api)
        .await;
    let sql = "
        CREATE TABLE off (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/offset', poll_interval_ms = 600000,
            json_path = '$.data[*]', pagination_type = 'offset', page_size = 2, offset_param = 'offset', limit_param = 'limit');
        CREATE TABLE pg (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/page', poll_interval_ms = 600000,
            json_path = '$.data[*]', pagination_type = 'page', page_size = 3, page_param = 'page', size_param = 'per_page');
        CREATE TABLE cur (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/cursor', poll_interval_ms = 600000,
            json_path = '$.data[*]', pagination_type = 'cursor', cursor_param = 'after', cursor_path = '$.meta.next_cursor');
        CREATE TABLE lnk (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/link', poll_interval_ms = 600000,
            pagination_type = 'link_header', link_rel = 'next');
        CREATE TABLE nxt (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/next', poll_interval_ms = 600000,
            json_path = '$.items[*]', pagination_type = 'next_url', next_url_path = '$.links.next');";
    let (server, _dir) = start(sql, &api).await;
    for table in ["off", "pg", "cur", "lnk", "nxt"] {
        let rows = server
            .wait_for(&format!("SELECT id FROM {table} ORDER BY id"), WAIT, |r| {
                !r.is_empty()
            })
            .await;
        let ids: Vec<i64> = rows.iter().map(|r| int(&r["id"])).collect();
        assert_eq!(ids, (0..7).collect::<Vec<_>>(), "{table}");
        let commits = server
            .query(&format!(
                "SELECT records FROM system.commits WHERE table_name = '{table}'"
            ))
            .await;
        assert_eq!(
            commits,
            vec![json!({"records": 7})],
            "{table}: all pages in one commit"
        );
    }
}

#[tokio::test]
async fn a_repeating_cursor_fails_the_poll_and_max_pages_bounds_it() {
    let api = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(|req: &Request| {
            // A → B → A: a cycle, not only a repeat.
            let next = match query_map(req).get("cursor").map(String::as_str) {
                None | Some("A") => "B",
                _ => "A",
            };
            ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": 1}], "next": next}))
        })
        .mount(&api)
        .await;
    Mock::given(path("/endless"))
        .respond_with(|req: &Request| {
            let p: u64 = query_map(req)
                .get("page")
                .map(|p| p.parse().unwrap())
                .unwrap_or(1);
            ResponseTemplate::new(200).set_body_json(json!([{"id": p}, {"id": p * 100}]))
        })
        .mount(&api)
        .await;
    let sql = "
        CREATE TABLE looping (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/loop', poll_interval_ms = 100,
            json_path = '$.data[*]', pagination_type = 'cursor', cursor_path = '$.next');
        CREATE TABLE endless (id BIGINT) WITH (connector = 'polling_http', endpoint = '{uri}/endless', poll_interval_ms = 600000,
            pagination_type = 'page', page_size = 2, max_pages = 4);";
    let (server, _dir) = start(sql, &api).await;
    let rows = server
        .wait_for(
            "SELECT last_error FROM system.connector_status WHERE table_name = 'looping'",
            WAIT,
            |r| !r[0]["last_error"].is_null(),
        )
        .await;
    assert!(
        rows[0]["last_error"].as_str().unwrap().contains("cursor"),
        "{rows:?}"
    );
    assert_eq!(
        server.scalar("SELECT count(*) FROM looping").await,
        json!(0),
        "a failed poll commits nothing"
    );
    let rows = server
        .wait_for("SELECT count(*) AS n FROM endless", WAIT, |r| {
            int(&r[0]["n"]) > 0
        })
        .await;
    assert_eq!(int(&rows[0]["n"]), 8, "4 pages of 2");
    assert!(
        server.log_text().contains("max_pages (4) reached"),
        "the bound is reported"
    );
}

#[tokio::test]
async fn timestamp_state_advances_and_survives_a_restart() {
    let api = MockServer::start().await;
    let sinces = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s = sinces.clone();
    Mock::given(path("/changes"))
        .respond_with(move |req: &Request| {
            let since = query_map(req).get("since").cloned().unwrap_or_default();
            s.lock().unwrap().push(since.clone());
            // Everything updated after `since`, from a fixed history.
            let history = [
                ("a", "2024-01-01T10:00:00Z"),
                ("b", "2024-01-02T10:00:00+02:00"),
                ("c", "2024-01-03T00:00:00Z"),
            ];
            let since_t = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
            let rows: Vec<Value> = history
                .iter()
                .filter(|(_, t)| chrono::DateTime::parse_from_rfc3339(t).unwrap() > since_t)
                .map(|(id, t)| json!({"id": id, "updated_at": t}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"data": rows}))
        })
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE CONNECTION http_api FROM polling_http_source WITH (endpoint = '{uri}/changes', interval_ms = 100, json_path = '$.data[*]');
        CREATE TABLE incremental_data (id TEXT, updated_at TIMESTAMP, data JSON) WITH (
            connector = 'polling_http_source', connection = 'http_api',
            state_type = 'timestamp', state_field = 'updated_at', state_param = 'since', initial_state = '2024-01-01T12:00:00Z');"
        .replace("{uri}", &api.uri());
    let file = write_file(dir.path(), "p.sql", &sql);
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[&file], &[]).await;
    server
        .wait_for("SELECT count(*) AS n FROM incremental_data", WAIT, |r| {
            int(&r[0]["n"]) == 2
        })
        .await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 3
        })
        .await;
    assert_eq!(
        server
            .query("SELECT id FROM incremental_data ORDER BY id")
            .await,
        vec![json!({"id": "b"}), json!({"id": "c"})]
    );
    server.kill();
    {
        let seen = sinces.lock().unwrap();
        assert_eq!(
            seen[0], "2024-01-01T12:00:00Z",
            "the first poll sends initial_state"
        );
        assert!(
            seen[1..].iter().all(|s| s == "2024-01-03T00:00:00Z"),
            "then the maximum: {seen:?}"
        );
        drop(seen);
        sinces.lock().unwrap().clear();
    }
    let server = Server::start(&data, &[&file], &[]).await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 2
        })
        .await;
    assert_eq!(
        sinces.lock().unwrap()[0],
        "2024-01-03T00:00:00Z",
        "the state survived the restart"
    );
    assert_eq!(
        int(&server.scalar("SELECT count(*) FROM incremental_data").await),
        2,
        "nothing stored twice"
    );
}

#[tokio::test]
async fn checkpoint_state_is_compared_as_a_number() {
    let api = MockServer::start().await;
    Mock::given(path("/seq"))
        .respond_with(|req: &Request| {
            let after: i64 = query_map(req)
                .get("after_sequence")
                .map(|s| s.parse().unwrap())
                .unwrap_or(0);
            let rows: Vec<Value> = [9i64, 10, 11]
                .iter()
                .filter(|s| **s > after)
                .map(|s| json!({"id": s.to_string(), "sequence": s}))
                .collect();
            ResponseTemplate::new(200).set_body_json(rows)
        })
        .mount(&api)
        .await;
    let sql = "CREATE TABLE checkpoint_data (id TEXT, sequence BIGINT, data JSON) WITH (connector = 'polling_http_source',
        endpoint = '{uri}/seq', interval_ms = 100, state_type = 'checkpoint', state_field = 'sequence', state_param = 'after_sequence');";
    let (server, _dir) = start(sql, &api).await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 4
        })
        .await;
    assert_eq!(
        int(&server.scalar("SELECT count(*) FROM checkpoint_data").await),
        3
    );
    let last = api.received_requests().await.unwrap().pop().unwrap();
    assert_eq!(
        query_map(&last)["after_sequence"],
        "11",
        "11 > 10 > 9 as numbers, not text"
    );
}

#[tokio::test]
async fn not_modified_costs_no_decode_and_stores_nothing() {
    let api = MockServer::start().await;
    Mock::given(path("/etag"))
        .respond_with(|req: &Request| {
            if req
                .headers
                .get("if-none-match")
                .map(|v| v.to_str().unwrap())
                == Some("\"v1\"")
            {
                ResponseTemplate::new(304)
            } else {
                ResponseTemplate::new(200)
                    .insert_header("ETag", "\"v1\"")
                    .insert_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
                    .set_body_json(json!([{"id": 1}]))
            }
        })
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (id INT) WITH (connector = 'polling_http', endpoint = '{uri}/etag', poll_interval_ms = 100);";
    let (server, _dir) = start(sql, &api).await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 4
        })
        .await;
    assert_eq!(int(&server.scalar("SELECT count(*) FROM t").await), 1);
    let reqs = api.received_requests().await.unwrap();
    assert_eq!(
        reqs[1].headers.get("if-modified-since").unwrap(),
        "Wed, 21 Oct 2015 07:28:00 GMT"
    );
}

#[tokio::test]
async fn primary_key_snapshot_diff_emits_only_changes_and_survives_restart() {
    let api = MockServer::start().await;
    let served = Arc::new(AtomicU64::new(0));
    let s = served.clone();
    Mock::given(path("/list"))
        .respond_with(move |_: &Request| {
            let k = s.fetch_add(1, Ordering::SeqCst);
            let list = match k {
                0 => {
                    json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}])
                }
                1 => {
                    json!([{"id": 1, "name": "a"}, {"id": 2, "name": "B"}, {"id": 4, "name": "d"}])
                }
                _ => json!([{"id": 4, "name": "d"}, {"id": 2, "name": "B"}]),
            };
            ResponseTemplate::new(200).set_body_json(list)
        })
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT) WITH (connector = 'polling_http', endpoint = '{uri}/list', poll_interval_ms = 100);"
        .replace("{uri}", &api.uri());
    let file = write_file(dir.path(), "p.sql", &sql);
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[&file], &[]).await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 5
        })
        .await;
    let expected = vec![json!({"id": 2, "name": "B"}), json!({"id": 4, "name": "d"})];
    assert_eq!(
        server.query("SELECT * FROM items ORDER BY id").await,
        expected
    );
    // Poll 1: 3 inserts. Poll 2: update 2 (delete + insert), delete 3, insert 4. Poll 3: delete 1.
    // Later polls change nothing and store nothing.
    let commits = server
        .query("SELECT records FROM system.commits ORDER BY sequence_number")
        .await;
    assert_eq!(
        commits,
        vec![
            json!({"records": 3}),
            json!({"records": 4}),
            json!({"records": 1})
        ]
    );
    server.kill();
    let server = Server::start(&data, &[&file], &[]).await;
    assert_eq!(
        server.query("SELECT * FROM items ORDER BY id").await,
        expected,
        "rows rebuilt from the log"
    );
}

#[tokio::test]
async fn credentials_never_follow_a_next_link_to_another_origin() {
    let other = MockServer::start().await;
    Mock::given(path("/p2"))
        .respond_with(|req: &Request| {
            let leaked = req.headers.contains_key("authorization");
            ResponseTemplate::new(200).set_body_json(json!([{"id": 2, "leaked": leaked}]))
        })
        .mount(&other)
        .await;
    let api = MockServer::start().await;
    let next = format!("<{}/p2>; rel=\"next\"", other.uri());
    Mock::given(path("/p1"))
        .respond_with(move |req: &Request| {
            let leaked = !req.headers.contains_key("authorization");
            ResponseTemplate::new(200)
                .insert_header("Link", next.as_str())
                .set_body_json(json!([{"id": 1, "leaked": leaked}]))
        })
        .mount(&api)
        .await;
    let sql = "CREATE TABLE t (id INT, leaked BOOLEAN) WITH (connector = 'polling_http', endpoint = '{uri}/p1',
        poll_interval_ms = 600000, pagination_type = 'link_header', auth_type = 'bearer', token = 'tok-123');";
    let (server, _dir) = start(sql, &api).await;
    let rows = server
        .wait_for("SELECT id, leaked FROM t ORDER BY id", WAIT, |r| {
            r.len() == 2
        })
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "leaked": false}),
            json!({"id": 2, "leaked": false})
        ],
        "the endpoint's origin gets the token, the other origin does not"
    );
}
