//! The Feldera-compatible `/v0` API against Feldera's own Python client (feldera==0.369.0
//! from PyPI, in a virtual environment this test creates): seed 003's examples through
//! `tests/feldera/seed003.py`, with an API key; and pipelines that persist across a
//! SIGKILL of the server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Server;

const FELDERA: &str = "feldera==0.369.0";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtual environment with the client, created once per target directory. A package
/// index that cannot be reached fails the test: a skipped compatibility test proves
/// nothing.
fn venv() -> PathBuf {
    let dir = workspace().join("target").join("feldera-venv");
    let python = dir.join("bin").join("python");
    let stamp = dir.join(".installed");
    let wanted = format!("{FELDERA} pandas");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        made.status.success(),
        "creating a virtual environment failed (Debian needs python3-venv):\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", FELDERA, "pandas"])
        .output()
        .expect("pip runs");
    assert!(
        pip.status.success(),
        "installing {FELDERA} and pandas from the package index failed; this test needs \
         the index (pip's output follows):\n{}\n{}",
        String::from_utf8_lossy(&pip.stdout),
        String::from_utf8_lossy(&pip.stderr)
    );
    std::fs::write(&stamp, wanted).unwrap();
    python
}

#[tokio::test]
async fn seed_003_runs_with_feldera_s_own_python_client() {
    let python = tokio::task::spawn_blocking(venv).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = "feldera-test-key-0123456789";
    let server = Server::start(&data, &[], &[("SIPHON_API_KEYS", key)]).await;

    // Without the key: 401.
    let r = reqwest::get(format!("{}/v0/pipelines", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let script = workspace().join("tests").join("feldera").join("seed003.py");
    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base)
            .arg(key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all seed 003 examples passed"),
        "the seed 003 script failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
}

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_status(client: &reqwest::Client, base: &str, name: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, object) = call(
            client,
            "GET",
            format!("{base}/v0/pipelines/{name}?selector=status"),
            None,
        )
        .await;
        if object["deployment_status"] == want {
            return object;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {want}: {object}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn exists(path: &Path) -> bool {
    path.exists()
}

#[tokio::test]
async fn pipelines_persist_across_a_sigkill_and_errors_have_feldera_s_shape() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[], &[]).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // A program that does not compile: 400 with line and column, nothing created.
    let (status, error) = call(
        &client,
        "PUT",
        format!("{base}/v0/pipelines/p1"),
        Some(json!({"name": "p1", "program_code": "CREATE TABLE t (id INT);\nCREATE VIEW v AS SELECT id FROM t ORDER BY id;"})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let message = &error["details"]["sql_compilation"]["messages"][0];
    assert_eq!(message["start_line_number"], 2, "{error}");
    assert!(
        message["message"].as_str().unwrap().contains("ORDER BY"),
        "{error}"
    );
    assert!(error["message"].is_string() && error["error_code"].is_string());
    let (status, error) = call(&client, "GET", format!("{base}/v0/pipelines/p1"), None).await;
    assert_eq!(
        (status, error["error_code"].as_str()),
        (404, Some("UnknownPipelineName"))
    );

    let program = "CREATE TABLE t (id INT, name VARCHAR, at TIMESTAMP);\n\
                   CREATE MATERIALIZED VIEW n AS SELECT COUNT(*) AS c FROM t;";
    let (status, _) = call(
        &client,
        "PUT",
        format!("{base}/v0/pipelines/p1"),
        Some(json!({"name": "p1", "program_code": program, "description": "kept"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &client,
        "POST",
        format!("{base}/v0/pipelines/p1/start"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    wait_status(&client, &base, "p1", "Running").await;
    let (status, token) = call(
        &client,
        "POST",
        format!("{base}/v0/pipelines/p1/ingress/T?format=json&update_format=raw"),
        Some(json!({"id": 1, "name": "a", "at": "2024-01-12T10:30:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let (status, done) = call(
        &client,
        "GET",
        format!(
            "{base}/v0/pipelines/p1/completion_status?token={}",
            token["token"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("complete")));
    // A column the table does not have: 400, nothing stored (Feldera's rule).
    let (status, error) = call(
        &client,
        "POST",
        format!("{base}/v0/pipelines/p1/ingress/t?format=json&array=true"),
        Some(json!([{"id": 2}, {"id": 3, "colour": "red"}])),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("colour"),
        "{error}"
    );
    // Replacing a running pipeline is refused (400, not a retried 503).
    let (status, _) = call(
        &client,
        "PUT",
        format!("{base}/v0/pipelines/p1"),
        Some(json!({"name": "p1", "program_code": program})),
    )
    .await;
    assert_eq!(status, 400);

    server.kill();
    let server = Server::start(&data, &[], &[]).await;
    let base = server.base.clone();
    let object = wait_status(&client, &base, "p1", "Running").await;
    assert_eq!(object["deployment_desired_status"], "Running");
    let (_, all) = call(
        &client,
        "GET",
        format!("{base}/v0/pipelines/p1?selector=all"),
        None,
    )
    .await;
    assert_eq!(all["description"], "kept");
    assert_eq!(
        all["program_info"]["schema"]["inputs"][0]["fields"][2]["columntype"]["type"],
        "TIMESTAMP"
    );
    let r = client
        .get(format!("{base}/v0/pipelines/p1/query"))
        .query(&[("sql", "SELECT id, name, at FROM t"), ("format", "json")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(
        body.lines().count(),
        1,
        "only the first push is stored: {body}"
    );
    let row: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(
        (row["id"].as_i64(), row["name"].as_str()),
        (Some(1), Some("a"))
    );
    let r = client
        .get(format!("{base}/v0/pipelines/p1/query"))
        .query(&[("sql", "SELECT nope FROM t"), ("format", "json")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Stop, clear, delete: the pipeline's directory goes.
    call(
        &client,
        "POST",
        format!("{base}/v0/pipelines/p1/stop?force=true"),
        None,
    )
    .await;
    wait_status(&client, &base, "p1", "Stopped").await;
    let (status, _) = call(
        &client,
        "POST",
        format!("{base}/v0/pipelines/p1/clear"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = call(&client, "DELETE", format!("{base}/v0/pipelines/p1"), None).await;
    assert_eq!(status, 202);
    assert!(!exists(&data.join("pipelines").join("p1")));
}
