//! Hostile and failing servers: refused connections, broken bodies, slow drips, 5xx and
//! 429 with Retry-After, invalid JSON, oversized and decompression-bomb bodies, redirect
//! loops, the circuit breaker, and isolation between sources.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(30);

/// A raw TCP server for faults an HTTP library will not produce. Each connection reads the
/// request head and answers according to its path.
async fn fault_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                match path.as_str() {
                    "/reset" => {
                        let _ = socket
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n{\"partial\":",
                            )
                            .await;
                        // Dropping the socket mid-body: the client sees a body cut short.
                    }
                    "/truncated-chunked" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{\"a\"\r\n")
                            .await;
                    }
                    "/slow-drip" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n[")
                            .await;
                        for _ in 0..400 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if socket.write_all(b" ").await.is_err() {
                                return;
                            }
                        }
                    }
                    "/big" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n")
                            .await;
                        let chunk = vec![b' '; 64 * 1024];
                        for _ in 0..46 {
                            if socket.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                    }
                    "/big-chunked" => {
                        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").await;
                        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                        for _ in 0..40 {
                            if socket.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                    "/never" => {
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    "/redirect-loop" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 302 Found\r\nLocation: /redirect-loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                    }
                    "/gzip-bomb" => {
                        let mut encoder =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                        let zeros = vec![b' '; 1 << 20];
                        for _ in 0..8 {
                            encoder.write_all(&zeros).unwrap();
                        }
                        let body = encoder.finish().unwrap();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                    }
                    _ => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                            .await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

async fn start(sql: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    (server, dir)
}

async fn error_of(server: &Server, table: &str) -> String {
    let rows = server
        .wait_for(
            &format!("SELECT last_error FROM system.connector_status WHERE table_name = '{table}'"),
            WAIT,
            |r| !r[0]["last_error"].is_null(),
        )
        .await;
    rows[0]["last_error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn transport_faults_are_errors_in_status_and_store_nothing() {
    let faults = fault_server().await;
    let closed = crate::harness::free_port();
    let sql = format!(
        "CREATE TABLE refused (a INT) WITH (connector = 'polling_http', endpoint = 'http://127.0.0.1:{closed}/', poll_interval_ms = 200, max_retries = 1, retry_backoff_ms = 10);
         CREATE TABLE reset (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/reset', poll_interval_ms = 200, max_retries = 1, retry_backoff_ms = 10);
         CREATE TABLE chunked (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/truncated-chunked', poll_interval_ms = 200, max_retries = 0);
         CREATE TABLE drip (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/slow-drip', poll_interval_ms = 200, timeout_ms = 500, max_retries = 0);
         CREATE TABLE loop (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/redirect-loop', poll_interval_ms = 200);
         CREATE TABLE big (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/big', poll_interval_ms = 200, max_response_bytes = 1048576, max_retries = 0);
         CREATE TABLE bigchunked (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/big-chunked', poll_interval_ms = 200, max_response_bytes = 1048576, max_retries = 0);
         CREATE TABLE bomb (a INT) WITH (connector = 'polling_http', endpoint = '{faults}/gzip-bomb', poll_interval_ms = 200, max_response_bytes = 1048576, max_retries = 0);"
    );
    let (server, _dir) = start(&sql).await;
    let cases = [
        ("refused", "onnection refused"),
        ("reset", "request to"),
        ("chunked", "request to"),
        ("drip", "timed out after 500 ms"),
        ("loop", "redirect"),
        ("big", "exceeds max_response_bytes"),
        ("bigchunked", "exceeds max_response_bytes"),
        ("bomb", "exceeds max_response_bytes"),
    ];
    for (table, expected) in cases {
        let error = error_of(&server, table).await;
        assert!(error.contains(expected), "{table}: {error}");
        assert_eq!(
            server
                .scalar(&format!("SELECT count(*) FROM {table}"))
                .await,
            json!(0),
            "{table}"
        );
    }
    // The refused source retried once per poll: two requests per failed poll.
    let rows = server
        .query("SELECT requests, consecutive_failures FROM system.connector_status WHERE table_name = 'refused'")
        .await;
    assert!(
        int(&rows[0]["requests"]) >= 2 * int(&rows[0]["consecutive_failures"]),
        "{rows:?}"
    );
    let loops = server
        .query("SELECT requests, consecutive_failures FROM system.connector_status WHERE table_name = 'loop'")
        .await;
    assert_eq!(
        int(&loops[0]["requests"]),
        int(&loops[0]["consecutive_failures"]),
        "a redirect loop is not retried"
    );
}

#[tokio::test]
async fn server_errors_then_success_and_429_with_retry_after() {
    let api = MockServer::start().await;
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    Mock::given(path("/flaky"))
        .respond_with(move |_: &Request| match c.fetch_add(1, Ordering::SeqCst) {
            0 => ResponseTemplate::new(503),
            1 => ResponseTemplate::new(500),
            _ => ResponseTemplate::new(200).set_body_json(json!([{"a": 1}])),
        })
        .mount(&api)
        .await;
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let t = times.clone();
    Mock::given(path("/throttled"))
        .respond_with(move |_: &Request| {
            let mut times = t.lock().unwrap();
            times.push(Instant::now());
            match times.len() {
                1 => ResponseTemplate::new(429).insert_header("Retry-After", "1"),
                2 => ResponseTemplate::new(429)
                    .insert_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
                _ => ResponseTemplate::new(200).set_body_json(json!([{"a": 2}])),
            }
        })
        .mount(&api)
        .await;
    Mock::given(path("/bad-json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"a\": 1,"))
        .mount(&api)
        .await;
    Mock::given(path("/forbidden"))
        .respond_with(ResponseTemplate::new(403).set_body_string("no access"))
        .mount(&api)
        .await;
    let sql = "
        CREATE TABLE flaky (a INT) WITH (connector = 'polling_http', endpoint = '{uri}/flaky', poll_interval_ms = 60000, retry_backoff_ms = 20);
        CREATE TABLE throttled (a INT) WITH (connector = 'polling_http', endpoint = '{uri}/throttled', poll_interval_ms = 60000, retry_backoff_ms = 20);
        CREATE TABLE bad (a INT) WITH (connector = 'polling_http', endpoint = '{uri}/bad-json', poll_interval_ms = 100, retry_backoff_ms = 10);
        CREATE TABLE forbidden (a INT) WITH (connector = 'polling_http', endpoint = '{uri}/forbidden', poll_interval_ms = 60000);"
        .replace("{uri}", &api.uri());
    let (server, _dir) = start(&sql).await;
    server
        .wait_for("SELECT * FROM flaky", WAIT, |r| r.len() == 1)
        .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two retries, then success within one poll"
    );
    server
        .wait_for("SELECT * FROM throttled", WAIT, |r| r.len() == 1)
        .await;
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "Retry-After: 1 honoured: {:?}",
        times[1] - times[0]
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(30),
        "a past HTTP date still waits the backoff"
    );
    let error = error_of(&server, "bad").await;
    assert!(
        error.contains("cannot decode") && error.contains("line 1"),
        "{error}"
    );
    assert_eq!(server.scalar("SELECT count(*) FROM bad").await, json!(0));
    let error = error_of(&server, "forbidden").await;
    assert!(
        error.contains("HTTP 403") && error.contains("no access"),
        "{error}"
    );
    let rows = server
        .query("SELECT requests FROM system.connector_status WHERE table_name = 'forbidden'")
        .await;
    assert_eq!(int(&rows[0]["requests"]), 1, "a 403 is never retried");
}

#[tokio::test]
async fn circuit_breaker_opens_after_consecutive_failed_polls() {
    let api = MockServer::start().await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&api)
        .await;
    let sql = "CREATE TABLE down (a INT) WITH (connector = 'polling_http', endpoint = '{uri}/down', poll_interval_ms = 50,
        max_retries = 0, circuit_breaker_enabled = true, circuit_breaker_threshold = 3, circuit_breaker_timeout_ms = 60000);"
        .replace("{uri}", &api.uri());
    let (server, _dir) = start(&sql).await;
    server
        .wait_for("SELECT state FROM system.connector_status", WAIT, |r| {
            r[0]["state"] == "circuit_open"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = server
        .query("SELECT state, requests, consecutive_failures FROM system.connector_status")
        .await;
    assert_eq!(rows[0]["state"], "circuit_open");
    assert_eq!(
        int(&rows[0]["requests"]),
        3,
        "no requests while open: {rows:?}"
    );
    assert_eq!(api.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_hanging_source_never_delays_the_others() {
    let faults = fault_server().await;
    let api = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"a": 1}])))
        .mount(&api)
        .await;
    let mut sql = String::new();
    for i in 0..50 {
        let endpoint = if i < 5 {
            format!("{faults}/never")
        } else {
            format!("{}/ok", api.uri())
        };
        sql.push_str(&format!(
            "CREATE TABLE s{i} (a INT) WITH (connector = 'polling_http', endpoint = '{endpoint}', poll_interval_ms = 200, timeout_ms = 30000);\n"
        ));
    }
    let (server, _dir) = start(&sql).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = server
        .query("SELECT table_name, requests FROM system.connector_status WHERE requests > 0 ORDER BY requests")
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let expected = elapsed / 0.2;
    let healthy: Vec<i64> = rows.iter().map(|r| int(&r["requests"])).collect();
    assert_eq!(
        healthy.len(),
        45,
        "the 5 hanging sources have no completed request: {rows:?}"
    );
    let worst = *healthy.iter().min().unwrap() as f64;
    println!(
        "isolation: 45 healthy sources, {:.1} polls expected in {elapsed:.2}s, worst {worst}, mean {:.1}",
        expected,
        healthy.iter().sum::<i64>() as f64 / healthy.len() as f64
    );
    assert!(
        worst >= expected * 0.3,
        "a healthy source fell behind: {worst} polls of {expected:.1}"
    );
}

#[tokio::test]
async fn the_connection_rate_limit_and_rate_limit_headers_are_honoured() {
    let api = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let t = times.clone();
    Mock::given(path("/limited"))
        .respond_with(move |_: &Request| {
            t.lock().unwrap().push(Instant::now());
            ResponseTemplate::new(200).set_body_json(json!([{"a": 1}]))
        })
        .mount(&api)
        .await;
    let quota = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let q = quota.clone();
    Mock::given(path("/quota"))
        .respond_with(move |_: &Request| {
            let mut seen = q.lock().unwrap();
            seen.push(Instant::now());
            if seen.len() == 1 {
                // Quota spent: come back in one second.
                ResponseTemplate::new(200)
                    .insert_header("X-RateLimit-Remaining", "0")
                    .insert_header("X-RateLimit-Reset", "1")
                    .set_body_json(json!([{"a": 1}]))
            } else {
                ResponseTemplate::new(200).set_body_json(json!([{"a": 2}]))
            }
        })
        .mount(&api)
        .await;
    // Two tables share one connection's limit of 3 requests per second while polling every 50 ms.
    let sql = "
        CREATE CONNECTION limited FROM polling_http_source WITH (endpoint = '{uri}/limited', interval_ms = 50,
            rate_limit_requests = 3, rate_limit_window_ms = 1000);
        CREATE TABLE a (a INT) WITH (connector = 'polling_http_source', connection = 'limited');
        CREATE TABLE b (a INT) WITH (connector = 'polling_http_source', connection = 'limited');
        CREATE TABLE quota (a INT) WITH (connector = 'polling_http_source', endpoint = '{uri}/quota', interval_ms = 50);"
        .replace("{uri}", &api.uri());
    let (server, _dir) = start(&sql).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    drop(server);
    let times = times.lock().unwrap().clone();
    assert!(times.len() >= 6, "the sources polled: {}", times.len());
    // The limiter counts permits; arrival at the server adds a little jitter, hence 800 ms.
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .filter(|t| **t - *start < Duration::from_millis(800))
            .count();
        assert!(
            in_window <= 3,
            "{in_window} requests within one second starting at request {i}"
        );
    }
    let quota = quota.lock().unwrap().clone();
    assert!(quota.len() >= 2, "{}", quota.len());
    assert!(
        quota[1] - quota[0] >= Duration::from_millis(950),
        "X-RateLimit-Remaining: 0 waits for the reset: {:?}",
        quota[1] - quota[0]
    );
}
