//! API keys: `siphon run --api-key-file` and `SIPHON_API_KEYS` make every endpoint but
//! `/healthz` and `/readyz` answer 401 (with `WWW-Authenticate: Bearer`) without one of
//! the keys; the clients send `--api-key` / `SIPHON_API_KEY` and explain a 401; a key file
//! that cannot be read stops the start with its name; keys never reach the log; an open
//! API on a non-loopback address is warned about.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, free_port, siphon, siphon_bin, write_file};

/// Status, `WWW-Authenticate` and body of a GET with an optional Authorization header.
async fn get(url: &str, authorization: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(a) = authorization {
        request = request.header("Authorization", a);
    }
    let r = request.send().await.unwrap();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), www, r.text().await.unwrap())
}

async fn query(base: &str, authorization: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/query"))
        .json(&serde_json::json!({"sql": "SELECT 1 AS n"}));
    if let Some(a) = authorization {
        request = request.header("Authorization", a);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Every protected endpoint refuses no key, a wrong key and a non-Bearer header, and
/// takes each of `keys`; the health endpoints are open.
async fn check_protected(server: &Server, keys: &[&str]) {
    let base = &server.base;
    for path in ["/v1/status", "/metrics", "/v1/query?sql=SELECT%201"] {
        let url = format!("{base}{path}");
        for auth in [None, Some("Bearer wrong-key"), Some("Basic a2V5OmtleQ==")] {
            let (status, www, body) = get(&url, auth).await;
            assert_eq!(status, 401, "{path} with {auth:?}: {body}");
            assert!(
                www.as_deref().is_some_and(|w| w.starts_with("Bearer")),
                "{path}: {www:?}"
            );
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
            assert!(v["detail"].is_null(), "{body}");
        }
        for key in keys {
            let (status, _, body) = get(&url, Some(&format!("Bearer {key}"))).await;
            assert_eq!(status, 200, "{path} with {key}: {body}");
        }
    }
    assert_eq!(query(base, None).await, 401);
    for key in keys {
        assert_eq!(query(base, Some(&format!("Bearer {key}"))).await, 200);
    }
    for path in ["/healthz", "/readyz"] {
        let (status, _, body) = get(&format!("{base}{path}"), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_key_file_protects_every_endpoint_but_health_and_the_clients_send_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_file(
        dir.path(),
        "keys.txt",
        "# the ops team\n\n  key-one-7f3a  \nkey-two-91bc\n",
    );
    let server = Server::spawn_with_args(
        &dir.path().join("data"),
        &[],
        &[],
        &["--api-key-file", keys.to_str().unwrap()],
    );
    server.wait_ready().await;
    check_protected(&server, &["key-one-7f3a", "key-two-91bc"]).await;

    // siphon sql with --api-key, and with SIPHON_API_KEY.
    let base = server.base.as_str();
    let out = siphon(
        &[
            "sql",
            "--server",
            base,
            "--format",
            "json",
            "--api-key",
            "key-one-7f3a",
            "SELECT 41 + 1 AS n",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("42"), "{stdout}");
    let out = siphon(
        &["sql", "--server", base, "--format", "csv", "SELECT 1 AS n"],
        &[("SIPHON_API_KEY", "key-two-91bc")],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Without a key: exit 2 and how to pass one; with a wrong key: that it was refused.
    let out = siphon(&["sql", "--server", base, "SELECT 1"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--api-key") && stderr.contains("SIPHON_API_KEY"),
        "{stderr}"
    );
    let out = siphon(
        &["sql", "--server", base, "--api-key", "nope", "SELECT 1"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused the API key"), "{stderr}");

    // siphon status likewise.
    let out = siphon(&["status", "--server", base, "--json"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--api-key"), "{stderr}");
    let out = siphon(
        &["status", "--server", base, "--json"],
        &[("SIPHON_API_KEY", "key-one-7f3a")],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // siphon push and siphon consume: a 401 (even for a path this build does not serve,
    // since the key is checked first) exits 2 with the hint.
    let rows = write_file(dir.path(), "rows.ndjson", "{\"id\": 1}\n");
    for args in [
        vec!["push", "--server", base, "t", rows.to_str().unwrap()],
        vec!["consume", "t", "--server", base, "-B", "-d"],
    ] {
        let out = siphon(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--api-key") && stderr.contains("SIPHON_API_KEY"),
            "{args:?}: {stderr}"
        );
    }

    let log = server.log_text();
    assert!(
        !log.contains("key-one-7f3a") && !log.contains("key-two-91bc"),
        "{log}"
    );
    assert!(log.contains("API keys required"), "{log}");
}

#[tokio::test]
async fn keys_from_the_environment_and_a_file_are_both_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_file(dir.path(), "keys.txt", "file-key-1\n");
    let server = Server::spawn_with_args(
        &dir.path().join("data"),
        &[],
        &[("SIPHON_API_KEYS", "env-key-a, env-key-b,")],
        &["--api-key-file", keys.to_str().unwrap()],
    );
    server.wait_ready().await;
    check_protected(&server, &["file-key-1", "env-key-a", "env-key-b"]).await;

    // The environment alone.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(
        &dir.path().join("data"),
        &[],
        &[("SIPHON_API_KEYS", "only-env")],
    );
    server.wait_ready().await;
    check_protected(&server, &["only-env"]).await;
    assert!(!server.log_text().contains("only-env"));
}

#[test]
fn an_unreadable_or_empty_key_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    let missing = dir.path().join("no-such-keys.txt");
    let out = siphon(
        &[
            "run",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--api-key-file",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-keys.txt"), "{stderr}");

    let empty = write_file(dir.path(), "empty-keys.txt", "# nobody\n\n");
    let out = siphon(
        &[
            "run",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--api-key-file",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("empty-keys.txt") && stderr.contains("no key"),
        "{stderr}"
    );

    let out = siphon(
        &[
            "run",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("SIPHON_API_KEYS", " , ")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SIPHON_API_KEYS"), "{stderr}");
}

#[test]
fn an_open_api_on_a_non_loopback_address_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("log.txt");
    let mut child = Command::new(siphon_bin())
        .args(["run", "--listen", &format!("0.0.0.0:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("siphon is running") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("anyone who can reach") && text.contains("--api-key-file"),
        "{text}"
    );
}
