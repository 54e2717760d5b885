//! The web console in a real browser: `siphon run` with three sources (one failing, named
//! like markup), API keys on, and `tests/console/console.mjs` driving Debian's headless
//! Chromium through playwright-core. The script enters the key, checks the sources and
//! their states, pauses and resumes, opens a table and sees the rows this test pushes
//! arrive in its live tail, runs a query and downloads it, and fails on any browser
//! console error, page error or dialog. Its screenshots (sources, table, SQL) land in
//! `<target tmp>/console/` and are checked to be non-blank, here and in the script.
//!
//! Chromium and playwright-core are installed by `scripts/install-test-deps.sh`; when
//! either is missing the test fails (never skips) and says how to install them.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, write_file};

const KEY: &str = "console-test-key";
/// The failing source's name: markup, which the console must show as text.
const FAILING: &str = "<img src=x onerror=alert(1)>";
/// The whole browser run, launch to close.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium() -> PathBuf {
    std::env::var_os("SIPHON_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (not skips) with the way forward when the browser or its driver is missing.
fn require_browser() {
    let browser = chromium();
    assert!(
        browser.exists(),
        "{} is missing: the console test drives a real headless Chromium; run \
         scripts/install-test-deps.sh (scripts/test.sh does), which installs Debian's \
         `chromium` with apt-get, or set SIPHON_TEST_CHROMIUM to a Chromium binary",
        browser.display()
    );
    let driver = repo().join("tests/node/node_modules/playwright-core/package.json");
    assert!(
        driver.exists(),
        "{} is missing: run scripts/install-test-deps.sh (npm ci in tests/node)",
        driver.display()
    );
}

/// Checks a PNG's signature, its size and that its header says 1280×800.
fn check_png(file: &Path) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        file.display()
    );
    // A blank 1280×800 page compresses to well under 5 KB; a drawn page does not.
    assert!(
        bytes.len() > 8 * 1024,
        "{} is {} bytes: blank?",
        file.display(),
        bytes.len()
    );
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800), "{}", file.display());
}

#[tokio::test]
async fn console_in_a_real_browser() {
    require_browser();
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/weather"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "city": "Berlin", "temp": 21.5},
            {"id": 2, "city": "Oslo", "temp": 14.2},
            {"id": 3, "city": "Paris", "temp": 24.0}
        ])))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "kind": "signup"},
            {"id": "three", "kind": "not a number"}
        ])))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<b>upstream down</b>"))
        .mount(&api)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let uri = api.uri();
    let sql = format!(
        "CREATE CONNECTION api FROM polling_http_source WITH (
             auth_type = 'bearer', token = 'console-secret-token', interval_ms = 1000);
         CREATE TABLE weather (id BIGINT, city TEXT, temp DOUBLE, PRIMARY KEY (id)) WITH (
             connector = 'polling_http_source', endpoint = '{uri}/weather', interval_ms = 1000);
         CREATE TABLE events (id BIGINT, kind TEXT) WITH (
             connector = 'polling_http_source', connection = 'api',
             endpoint = '{uri}/events', emit_behavior = 'changed');
         CREATE TABLE \"{FAILING}\" (id BIGINT) WITH (
             connector = 'polling_http_source', endpoint = '{uri}/broken',
             interval_ms = 1000, max_retries = 0);"
    );
    let file = write_file(dir.path(), "console.sql", &sql);
    let data = dir.path().join("data");
    let envs = [("SIPHON_API_KEYS", KEY)];
    let mut server = Server::start(&data, &[&file], &envs).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // The page and its assets answer without a key (a browser cannot send one when it
    // loads a page), under a strict CSP; the API does not.
    let page = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("/console/app.js"));
    let status = client
        .get(format!("{}/v1/status", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 401);
    let session: serde_json::Value = client
        .get(format!("{}/console/session", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session, json!({"auth_required": true, "authorized": false}));
    let missing = client
        .get(format!("{}/console/nothing.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // `siphon run` says where the console is.
    let console_line = format!("web console: {}/", server.base);
    assert!(
        server.log_text().contains(&console_line),
        "no `{console_line}` in the log:\n{}",
        server.log_text()
    );
    // The definition endpoint never shows the token.
    let def = client
        .get(format!("{}/v1/tables/events", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !def.contains("console-secret-token") && def.contains("\"token\":\"***\""),
        "{def}"
    );

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let stderr_path = shots.join("node-stderr.txt");
    // Its own process group, so a timeout ends the browser with the script.
    let mut child = Command::new("node")
        .process_group(0)
        .arg(repo().join("tests/console/console.mjs"))
        .env("SIPHON_URL", format!("{}/", server.base))
        .env("SIPHON_KEY", KEY)
        .env("SHOT_DIR", &shots)
        .env("CHROMIUM", chromium())
        .env("OK_TABLES", "weather,events")
        .env("FAILING_TABLE", FAILING)
        .env("TAIL_TABLE", "events")
        .env("PUSH_MARKERS", "live-push-1,live-push-2,live-push-3")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("node runs the console script (install Node.js)");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + SCRIPT_TIMEOUT;
    let mut lines: Vec<String> = Vec::new();
    let report = |server: &Server, lines: &[String], why: &str| -> String {
        format!(
            "{why}\n--- script output:\n{}\n--- script stderr:\n{}\n--- siphon log (tail):\n{}",
            lines.join("\n"),
            std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            tail(&server.log_text(), 60)
        )
    };
    let push = |server: &Server, id: u32, marker: &str| {
        let request = client
            .post(format!("{}/v1/tables/events/ingress", server.base))
            .bearer_auth(KEY)
            .body(json!({"id": id, "kind": marker}).to_string());
        async move {
            let pushed = request.send().await.unwrap();
            assert_eq!(pushed.status(), 200, "{}", pushed.text().await.unwrap());
        }
    };
    loop {
        let line = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(format!("-{}", child.id()))
                    .status();
                let _ = child.wait();
                panic!(
                    "{}",
                    report(&server, &lines, "the browser script did not finish in time")
                );
            }
        };
        if line == "TAIL_OPEN" {
            // The table's page follows the stream: push two commits while it watches.
            push(&server, 1001, "live-push-1").await;
            push(&server, 1002, "live-push-2").await;
        }
        if line == "TAIL_SEEN" {
            // A restart on the same address: the stream ends, the tail reconnects after
            // the last change it saw and must show the next one once.
            let status = server.terminate();
            assert!(status.success(), "siphon stopped with {status}");
            let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
            server = Server::spawn_on_port(port, &data, &[&file], &envs, &[]);
            server.wait_ready().await;
            push(&server, 1003, "live-push-3").await;
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    let text = lines.join("\n");
    assert!(
        status.success() && lines.last().map(String::as_str) == Some("RESULT ok"),
        "{}",
        report(
            &server,
            &lines,
            &format!("the browser script failed ({status})")
        )
    );
    for step in [
        "STEP key accepted",
        &format!(
            "STEP sources {{\"weather\":\"running\",\"events\":\"running\",\"{}\":\"backoff\"}}",
            FAILING.replace('"', "\\\"")
        ),
        "STEP names are text",
        "STEP failing table page",
        "STEP sort and filter",
        "STEP pause and resume",
        "STEP zoom 200%",
        "STEP live tail 2 rows",
        "STEP tail resumed 2,3,4 (",
        "STEP table page",
        "STEP sql 3 rows in",
        "STEP csv 4 lines",
    ] {
        assert!(
            text.contains(step),
            "{}",
            report(&server, &lines, &format!("missing `{step}`"))
        );
    }
    for name in ["sources", "table", "sql"] {
        check_png(&shots.join(format!("{name}.png")));
        assert!(text.contains(&format!("SHOT {name}.png ")), "{text}");
    }
    eprintln!("{text}");
    eprintln!(
        "console test: browser run took {:.1} s; screenshots in {}",
        elapsed.as_secs_f64(),
        shots.display()
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
