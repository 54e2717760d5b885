//! Test harness: start the `siphon` binary on a free port with a temporary data directory,
//! wait until it is ready, query it, kill it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn siphon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_siphon")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a pipeline file into `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `siphon check` (or any other short command) and returns its output.
pub fn siphon(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(siphon_bin());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A running `siphon run`.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `siphon run FILES` on `data_dir` and waits until `/readyz` answers 200.
    pub async fn start(data_dir: &Path, files: &[&Path], envs: &[(&str, &str)]) -> Server {
        let server = Server::spawn(data_dir, files, envs);
        server.wait_ready().await;
        server
    }

    /// Starts the process without waiting.
    pub fn spawn(data_dir: &Path, files: &[&Path], envs: &[(&str, &str)]) -> Server {
        Server::spawn_with_args(data_dir, files, envs, &[])
    }

    /// Starts the process with extra `siphon run` arguments, without waiting.
    pub fn spawn_with_args(
        data_dir: &Path,
        files: &[&Path],
        envs: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        Server::spawn_on_port(free_port(), data_dir, files, envs, args)
    }

    /// Starts the process on `port` (a restart on the address clients know), without
    /// waiting. The log file of an earlier run on the same port is replaced.
    pub fn spawn_on_port(
        port: u16,
        data_dir: &Path,
        files: &[&Path],
        envs: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let log = data_dir.with_extension(format!("{port}.log"));
        let mut cmd = Command::new(siphon_bin());
        cmd.arg("run")
            .args(files)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        cmd.env("RUST_LOG", "info,siphon_engine=debug");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
        Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits for `/readyz`; panics with the server's log when it exits or takes too long.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "siphon did not become ready:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The server's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a query and returns the rows as JSON objects; panics on an error.
    pub async fn query(&self, sql: &str) -> Vec<Value> {
        let (status, body) = self.query_raw(sql, "json").await;
        assert_eq!(status, 200, "query {sql} failed: {body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    }

    /// Runs a query and returns status and body text.
    pub async fn query_raw(&self, sql: &str, format: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/query?format={format}", self.base))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `GET path` as text; panics unless it is a 200.
    pub async fn get_text(&self, path: &str) -> String {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    /// The data chunks of `table`'s change stream after sequence `from` (`beginning` for
    /// all), up to what is committed now: the JSON lines of `/v1/egress`, keepalives left out.
    pub async fn changes(&self, table: &str, from: &str) -> Vec<Value> {
        self.get_text(&format!("/v1/egress/{table}?from={from}&follow=false"))
            .await
            .split("\r\n")
            .filter(|l| !l.is_empty() && *l != "{}")
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The single value of a one-row, one-column query.
    pub async fn scalar(&self, sql: &str) -> Value {
        let rows = self.query(sql).await;
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone()
    }

    /// Polls `sql` until `done(rows)` holds; panics with the last rows and the log after
    /// `timeout`.
    pub async fn wait_for(
        &self,
        sql: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.query(sql).await;
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {sql}; last rows {rows:?}\nlog:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("siphon did not stop on SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The integer in a JSON value (numbers may arrive as u64 or i64).
pub fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| u as i64))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The ```sql blocks of a markdown document.
pub fn sql_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sql") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    blocks
}
