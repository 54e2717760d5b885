//! A real REST server for tests: json-server 0.17.4 (pinned in `tests/node/package.json`,
//! installed by `scripts/install-test-deps.sh`), run with node on 127.0.0.1, and the tests
//! that poll it with siphon.
//!
//! json-server serves every top-level array of its db file as a resource (`GET /posts`,
//! `GET /posts/1`), takes writes through its REST API (`POST /posts`, `PATCH /posts/1`,
//! `DELETE /posts/1`, saved back to the file), reloads the file when it changes (`--watch`),
//! and sends a weak `ETag` (304 on `If-None-Match`). Its filters in 0.17.4: `field=v`,
//! `field_ne`, `field_like` (regex), `field_gte` / `field_lte` (JavaScript `<=` of the
//! query string against the value: a string field compares as text, not as a date; a
//! number field as a number); `_gt` / `_lt` do not exist and, like a filter on a field no
//! record has, are silently dropped (the whole list comes back).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, free_port, int, write_file};

/// How long json-server may take to answer after its start (node on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request to json-server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long siphon may take to show a change.
const WAIT: Duration = Duration::from_secs(20);

/// `tests/node/node_modules/json-server/lib/cli/bin.js`: the package's `bin` entry.
fn json_server_cli() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules/json-server/lib/cli/bin.js")
}

/// Writes `value` to `path` atomically (a temporary file renamed over it), so json-server's
/// watcher never reads half a file.
fn write_json(path: &Path, value: &Value) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running json-server on 127.0.0.1, killed on drop.
pub struct JsonServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    db: PathBuf,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl JsonServer {
    /// Writes `db` (an object of arrays, one per resource) to a temporary `db.json`, starts
    /// `json-server --watch` on it on a free port, and waits until it answers. Panics with
    /// json-server's output when it exits or does not answer within 30 s.
    pub async fn start(db: &Value) -> JsonServer {
        let cli = json_server_cli();
        assert!(
            cli.exists(),
            "{} is missing: the integration tests need json-server 0.17.4; run \
             scripts/install-test-deps.sh (scripts/test.sh does) to install tests/node",
            cli.display()
        );
        let mut dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("db.json");
        write_json(&db_path, db);
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        // The free port may be taken between our check and node's bind: then node exits
        // with EADDRINUSE and we try another port.
        for attempt in 1..=3 {
            let port = free_port();
            let log = |ext: &str| {
                std::fs::File::create(dir.path().join(format!("json-server.{port}.{ext}"))).unwrap()
            };
            let mut cmd = Command::new("node");
            cmd.arg(&cli)
                .arg("--watch")
                .arg(&db_path)
                .arg("--port")
                .arg(port.to_string())
                .arg("--host")
                .arg("127.0.0.1")
                // Its config file (json-server.json) and snapshots are looked up in the
                // working directory: the temporary one holds neither.
                .current_dir(dir.path())
                .env("FORCE_COLOR", "0")
                .stdin(Stdio::null())
                .stdout(log("stdout"))
                .stderr(log("stderr"));
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!("cannot run `node` (needed for json-server in the integration tests): {e}")
            });
            let mut server = JsonServer {
                child: Some(child),
                base: format!("http://127.0.0.1:{port}"),
                db: db_path.clone(),
                client: client.clone(),
                dir,
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                // Our data, not just any answer: another server may hold the port.
                if let Ok(r) = server.client.get(server.url("db")).send().await
                    && r.status().is_success()
                    && r.json::<Value>().await.ok().as_ref() == Some(db)
                {
                    return server;
                }
                if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                    let text = server.output();
                    if attempt < 3 && text.contains("EADDRINUSE") {
                        break;
                    }
                    panic!("json-server exited ({status}) before answering:\n{text}");
                }
                if Instant::now() > deadline {
                    server.kill();
                    panic!(
                        "json-server did not answer on {} within {START_TIMEOUT:?}:\n{}",
                        server.base,
                        server.output()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Port taken: take the temporary directory back and try again.
            server.kill();
            dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `base/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// `GET base/path` as JSON; panics unless it is a 200.
    pub async fn get(&self, path: &str) -> Value {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Adds a record through the REST API (`POST /resource`) and returns it as stored
    /// (json-server assigns an `id` when the record has none).
    pub async fn post(&self, resource: &str, value: &Value) -> Value {
        let r = self
            .client
            .post(self.url(resource))
            .json(value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "POST {resource} {value}");
        let stored: Value = r.json().await.unwrap();
        // With --watch, json-server reloads its file after every write it makes; a write
        // that lands while an earlier write's reload is under way can be lost by it. Let
        // this write's reload settle (the record is served again) before going on.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let id = &stored["id"];
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = self
                .client
                .get(self.url(&format!("{resource}/{id}")))
                .send()
                .await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "POST {resource} {value}: the record did not stay"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        stored
    }

    /// Merges `value` into record `id` (`PATCH /resource/id`) and returns the record.
    pub async fn patch(&self, resource: &str, id: &Value, value: &Value) -> Value {
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
        let r = self
            .client
            .patch(self.url(&format!("{resource}/{id}")))
            .json(value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "PATCH {resource}/{id} {value}");
        r.json().await.unwrap()
    }

    /// Removes record `id` (`DELETE /resource/id`).
    pub async fn delete(&self, resource: &str, id: &Value) {
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
        let r = self
            .client
            .delete(self.url(&format!("{resource}/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "DELETE {resource}/{id}");
    }

    /// Replaces the whole database by rewriting the db file, and waits until json-server
    /// has reloaded it (it restarts its listener to do so: for a moment connections are
    /// refused).
    pub async fn replace_db(&self, db: &Value) {
        write_json(&self.db, db);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = self.client.get(self.url("db")).send().await
                && r.status().is_success()
                && r.json::<Value>().await.ok().as_ref() == Some(db)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "json-server did not reload {}:\n{}",
                self.db.display(),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// json-server's stdout (its log: requests, reloads, most errors) and stderr so far.
    pub fn output(&self) -> String {
        let port = self.base.rsplit(':').next().unwrap();
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.path().join(format!("json-server.{port}.{ext}")))
                .unwrap_or_default()
        };
        format!("stdout:\n{}\nstderr:\n{}", read("stdout"), read("stderr"))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts siphon on a pipeline file made of `sql` with `{base}` replaced by json-server's.
async fn siphon_on(sql: &str, api: &JsonServer) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", &sql.replace("{base}", &api.base));
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    (server, dir)
}

fn titles(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["title"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn json_server_serves_a_table_that_siphon_polls() {
    let api = JsonServer::start(&json!({"posts": [
        {"id": 1, "title": "a", "updatedAt": "2024-01-01T00:00:00Z"},
        {"id": 2, "title": "b", "updatedAt": "2024-01-02T00:00:00Z"},
        {"id": 3, "title": "c", "updatedAt": "2024-01-03T00:00:00Z"},
    ]}))
    .await;
    // A quoted column name keeps its case ("updatedAt"), so it is the JSON field's exact
    // name; an unquoted one is folded to lower case and matched ignoring case.
    let sql = r#"CREATE TABLE posts (id BIGINT, title TEXT, "updatedAt" TIMESTAMP) WITH (
        connector = 'polling_http_source', endpoint = '{base}/posts', interval_ms = 100);"#;
    let (server, _dir) = siphon_on(sql, &api).await;
    let distinct = r#"SELECT DISTINCT id, title, "updatedAt" FROM posts ORDER BY id, title"#;
    let rows = server.wait_for(distinct, WAIT, |r| r.len() == 3).await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "title": "a", "updatedAt": "2024-01-01T00:00:00Z"}),
            json!({"id": 2, "title": "b", "updatedAt": "2024-01-02T00:00:00Z"}),
            json!({"id": 3, "title": "c", "updatedAt": "2024-01-03T00:00:00Z"}),
        ],
        "json-server log:\n{}",
        api.output()
    );

    // A record added through json-server's REST API reaches the table.
    let added = api
        .post(
            "posts",
            &json!({"title": "d", "updatedAt": "2024-01-04T00:00:00Z"}),
        )
        .await;
    assert_eq!(added["id"], 4, "json-server assigns the next id: {added}");
    let rows = server
        .wait_for(distinct, WAIT, |r| titles(r).contains(&"d"))
        .await;
    assert_eq!(
        rows.last().unwrap(),
        &json!({"id": 4, "title": "d", "updatedAt": "2024-01-04T00:00:00Z"})
    );

    // So does a change to one.
    api.patch("posts", &json!(2), &json!({"title": "b2"})).await;
    server
        .wait_for(distinct, WAIT, |r| titles(r).contains(&"b2"))
        .await;
}

#[tokio::test]
async fn json_server_db_rewrites_and_deletes_reach_a_keyed_table() {
    let posts = |n: i64| -> Vec<Value> {
        (1..=n)
            .map(|i| json!({"id": i, "title": format!("t{i}")}))
            .collect()
    };
    let api = JsonServer::start(&json!({ "posts": posts(3) })).await;
    let sql = "CREATE TABLE posts (id BIGINT PRIMARY KEY, title TEXT) WITH (
        connector = 'polling_http_source', endpoint = '{base}/posts', interval_ms = 100);";
    let (server, _dir) = siphon_on(sql, &api).await;
    let all = "SELECT id, title FROM posts ORDER BY id";
    server.wait_for(all, WAIT, |r| r.len() == 3).await;

    // The db file rewritten: json-server reloads it, siphon diffs the whole list.
    let mut db = json!({ "posts": posts(3) });
    db["posts"][0]["title"] = json!("changed");
    db["posts"].as_array_mut().unwrap().remove(2);
    api.replace_db(&db).await;
    assert_eq!(api.get("posts").await, db["posts"]);
    let rows = server
        .wait_for(all, WAIT, |r| r.len() == 2 && r[0]["title"] == "changed")
        .await;
    assert_eq!(rows, db["posts"].as_array().unwrap().clone());

    // A record deleted through the REST API disappears from the table.
    api.delete("posts", &json!(1)).await;
    let rows = server.wait_for(all, WAIT, |r| r.len() == 1).await;
    assert_eq!(int(&rows[0]["id"]), 2);
}

/// An instant `second`s into 2024, as json-server stores it (its `_gte` compares text).
fn instant(second: u64) -> String {
    format!("2024-01-01T00:{:02}:{:02}Z", second / 60, second % 60)
}

/// Successful polls of the source so far (a json-server reloading its file refuses
/// connections for a moment; those polls do not count).
async fn successful_polls(server: &Server) -> i64 {
    int(&server
        .scalar("SELECT count(*) FROM system.connector_logs WHERE table_name = 'posts' AND message LIKE 'poll committed%'")
        .await)
}

/// Waits until the source has made `more` further successful polls.
async fn polls(server: &Server, more: i64) {
    let target = successful_polls(server).await + more;
    let deadline = Instant::now() + WAIT;
    while successful_polls(server).await < target {
        assert!(
            Instant::now() < deadline,
            "the source stopped polling:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `n` distinct records are stored.
async fn wait_distinct(server: &Server, n: i64) {
    server
        .wait_for("SELECT count(DISTINCT id) AS d FROM posts", WAIT, |r| {
            int(&r[0]["d"]) >= n
        })
        .await;
}

/// `(id, times stored)` for every stored id.
async fn stored_ids(server: &Server) -> Vec<(i64, i64)> {
    server
        .query("SELECT id, count(*) AS c FROM posts GROUP BY id ORDER BY id")
        .await
        .iter()
        .map(|r| (int(&r["id"]), int(&r["c"])))
        .collect()
}

/// The issue's own setup: `updatedAt_gte` returns the records at the saved maximum again.
const INCREMENTAL: &str = r#"CREATE TABLE posts (id BIGINT, title TEXT, "updatedAt" TIMESTAMP) WITH (
    connector = 'polling_http_source', endpoint = '{base}/posts', interval_ms = 50,
    state_type = 'timestamp', state_field = 'updatedAt', state_param = 'updatedAt_gte'{extra});"#;

#[tokio::test]
async fn json_server_inclusive_cursor_stores_each_record_once_and_loses_none() {
    let api = JsonServer::start(&json!({"posts": [
        {"id": 1, "title": "a", "updatedAt": instant(1)},
        {"id": 2, "title": "b", "updatedAt": instant(2)},
    ]}))
    .await;
    let (server, _dir) = siphon_on(&INCREMENTAL.replace("{extra}", ""), &api).await;
    server
        .wait_for("SELECT count(*) AS n FROM posts", WAIT, |r| {
            int(&r[0]["n"]) == 2
        })
        .await;
    polls(&server, 3).await;
    // Added between polls at the boundary instant: json-server returns 2 and 3 for
    // `updatedAt_gte` = the saved maximum; 3 is new, 2 is not.
    api.post("posts", &json!({"title": "c", "updatedAt": instant(2)}))
        .await;
    polls(&server, 3).await;
    api.post("posts", &json!({"title": "d", "updatedAt": instant(3)}))
        .await;
    api.post("posts", &json!({"title": "e", "updatedAt": instant(3)}))
        .await;
    wait_distinct(&server, 5).await;
    polls(&server, 4).await;
    assert_eq!(
        stored_ids(&server).await,
        vec![(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)],
        "json-server log:\n{}",
        api.output()
    );
    assert_eq!(
        int(&server
            .scalar(
                "SELECT boundary_records FROM system.connector_status WHERE table_name = 'posts'"
            )
            .await),
        2,
        "the records at the maximum (4 and 5) are remembered"
    );

    // The control, as the issue found it: without boundary dedup the same API duplicates.
    let (plain, _dir) = siphon_on(
        &INCREMENTAL.replace("{extra}", ", boundary_dedup = false"),
        &api,
    )
    .await;
    plain
        .wait_for("SELECT count(*) AS n FROM posts", WAIT, |r| {
            int(&r[0]["n"]) >= 5
        })
        .await;
    api.post("posts", &json!({"title": "f", "updatedAt": instant(4)}))
        .await;
    polls(&plain, 4).await;
    assert!(
        stored_ids(&plain).await.iter().any(|(_, c)| *c > 1),
        "without boundary_dedup the boundary records come back twice"
    );
}

#[tokio::test]
async fn json_server_lookback_window_catches_a_record_that_appears_late() {
    let api = JsonServer::start(&json!({"posts": [
        {"id": 1, "title": "a", "updatedAt": instant(0)},
        {"id": 2, "title": "b", "updatedAt": instant(50)},
        {"id": 3, "title": "c", "updatedAt": instant(60)},
    ]}))
    .await;
    let sql = INCREMENTAL.replace("{extra}", ", lookback_ms = 20000");
    let (server, _dir) = siphon_on(&sql, &api).await;
    server
        .wait_for("SELECT count(*) AS n FROM posts", WAIT, |r| {
            int(&r[0]["n"]) == 3
        })
        .await;
    polls(&server, 3).await;
    // Visible only now, stamped 15 s before the saved maximum: inside the window.
    api.post("posts", &json!({"title": "late", "updatedAt": instant(45)}))
        .await;
    wait_distinct(&server, 4).await;
    polls(&server, 4).await;
    assert_eq!(
        stored_ids(&server).await,
        vec![(1, 1), (2, 1), (3, 1), (4, 1)],
        "json-server log:\n{}",
        api.output()
    );
}

#[tokio::test]
async fn json_server_sigkill_at_random_moments_neither_duplicates_nor_loses() {
    let api = JsonServer::start(&json!({"posts": []})).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write_file(
        dir.path(),
        "p.sql",
        &INCREMENTAL
            .replace("{extra}", "")
            .replace("interval_ms = 50", "interval_ms = 10")
            .replace("{base}", &api.base),
    );
    // A writer adds records while siphon is killed again and again; two records share
    // each instant, so the boundary splits pairs between polls.
    const RECORDS: u64 = 60;
    let writer = {
        let client = reqwest::Client::new();
        let url = api.url("/posts");
        tokio::spawn(async move {
            for k in 0..RECORDS {
                let record = json!({"title": format!("r{k}"), "updatedAt": instant(k / 2)});
                // json-server (node) can be slow to accept under load: retry a refused
                // connection; the record is posted once it is accepted.
                let mut tries = 0;
                let r = loop {
                    match client.post(&url).json(&record).send().await {
                        Ok(r) => break r,
                        Err(e) if e.is_connect() && tries < 100 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("posting to json-server: {e}"),
                    }
                };
                assert_eq!(r.status().as_u16(), 201);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    for delay in [0u64, 35, 12, 80, 140, 21, 200, 55, 110] {
        let mut server = Server::spawn(&data, &[&file], &[]);
        if delay > 0 {
            server.wait_ready().await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }
    writer.await.unwrap();
    let server = Server::start(&data, &[&file], &[]).await;
    server
        .wait_for("SELECT count(DISTINCT id) AS d FROM posts", WAIT, |r| {
            int(&r[0]["d"]) == RECORDS as i64
        })
        .await;
    polls(&server, 4).await;
    let stored = stored_ids(&server).await;
    assert_eq!(stored.len() as u64, RECORDS, "records lost: {stored:?}");
    assert!(
        stored.iter().all(|(_, c)| *c == 1),
        "records stored twice: {stored:?}"
    );
}

#[tokio::test]
async fn json_server_ignoring_the_filter_is_handled_by_client_side_filter() {
    // json-server ignores `_gt`: every poll returns the whole list.
    let api = JsonServer::start(&json!({"posts": [
        {"id": 1, "title": "a", "updatedAt": instant(1)},
        {"id": 2, "title": "b", "updatedAt": instant(2)},
    ]}))
    .await;
    let sql = INCREMENTAL
        .replace("updatedAt_gte", "updatedAt_gt")
        .replace("{extra}", ", client_side_filter = true");
    let (server, _dir) = siphon_on(&sql, &api).await;
    server
        .wait_for("SELECT count(*) AS n FROM posts", WAIT, |r| {
            int(&r[0]["n"]) == 2
        })
        .await;
    polls(&server, 3).await;
    api.post("posts", &json!({"title": "c", "updatedAt": instant(2)}))
        .await;
    api.post("posts", &json!({"title": "d", "updatedAt": instant(5)}))
        .await;
    wait_distinct(&server, 4).await;
    polls(&server, 4).await;
    assert_eq!(
        stored_ids(&server).await,
        vec![(1, 1), (2, 1), (3, 1), (4, 1)],
        "{:?}\n{}\n{}",
        server.query("SELECT * FROM posts").await,
        api.output(),
        server.log_text()
    );
}
