//! `siphon wait` (SPEC §4) and `siphon wait -f` (seed 004) against a local job server whose
//! job moves pending → running → completed after a few polls: saved values on success, the
//! documented failure on too few attempts or too short a timeout, 503s retried on the
//! backoff schedule (checked from the request timestamps), and the seed's step files run
//! with only their host changed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{siphon, write_file};

/// Answers with `script[n]` on the n-th request (the last entry from then on), noting
/// when each request came.
#[derive(Clone)]
struct Script {
    steps: Arc<Vec<(u16, Value)>>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(steps: Vec<(u16, Value)>) -> Self {
        Script {
            steps: Arc::new(steps),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A job that is `pending` for `pending` polls, `running` for `running` polls, then
    /// `completed` with a result.
    fn job(id: &str, pending: usize, running: usize) -> Self {
        let mut steps = Vec::new();
        for _ in 0..pending {
            steps.push((200, json!({"job_id": id, "status": "pending"})));
        }
        for _ in 0..running {
            steps.push((
                200,
                json!({"job_id": id, "status": "running", "progress": 0.5}),
            ));
        }
        steps.push((
            200,
            json!({"job_id": id, "status": "completed", "result": {"rows": 7, "url": "/results/1"}, "errors": null}),
        ));
        Script::new(steps)
    }

    fn times(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Respond for Script {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        let n = seen.len();
        seen.push(Instant::now());
        let (status, body) = &self.steps[n.min(self.steps.len() - 1)];
        ResponseTemplate::new(*status)
            .set_body_json(body)
            .insert_header("X-Job-Status", body["status"].as_str().unwrap_or("none"))
    }
}

async fn job_server(script: &Script, route: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

/// Runs `siphon ARGS` off the async runtime (the mock server keeps serving meanwhile).
async fn run(args: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = siphon(&args, &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn waits_until_completed_and_prints_saved_values() {
    let script = Script::job("job-42", 2, 2);
    let server = job_server(&script, "/jobs/job-42").await;
    let url = format!("{}/jobs/job-42", server.uri());
    let (code, stdout, stderr) = run(args(&[
        "wait",
        "--url",
        &url,
        "--interval",
        "50ms",
        "--timeout",
        "30s",
        "--expect-status",
        "200",
        "--expect-json",
        ".status=completed",
        "--expect-json-exists",
        "$.result.rows",
        "--expect-json-exists",
        ".errors",
        "--expect-json-absent",
        ".error_message",
        "--expect-header",
        "X-Job-Status=completed",
        "--save",
        ".job_id=job_id",
        "--save",
        "$.result.rows=rows",
        "--save",
        ".result=result",
    ]))
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let saved: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        saved,
        json!({"job_id": "job-42", "rows": 7, "result": {"rows": 7, "url": "/results/1"}})
    );
    // pending, pending, running, running, completed: it stopped at the first completed.
    assert_eq!(script.count(), 5);
}

#[tokio::test]
async fn too_few_attempts_fail_with_attempts_status_and_body() {
    let script = Script::job("j", 1, 10);
    let server = job_server(&script, "/jobs/j").await;
    let url = format!("{}/jobs/j", server.uri());
    let (code, stdout, stderr) = run(args(&[
        "wait",
        "--url",
        &url,
        "--interval",
        "20ms",
        "--timeout",
        "30s",
        "--max-attempts",
        "3",
        "--expect-json",
        ".status=completed",
    ]))
    .await;
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("gave up after 3 attempt(s)"), "{stderr}");
    assert!(stderr.contains("last status: 200"), "{stderr}");
    assert!(stderr.contains(r#""status":"running""#), "{stderr}");
    assert!(
        stderr.contains(r#"not met: .status is "running", expected "completed""#),
        "{stderr}"
    );
    assert_eq!(script.count(), 3);
}

#[tokio::test]
async fn a_short_timeout_fails_and_never_sleeps_past_the_deadline() {
    let script = Script::job("j", 100, 0);
    let server = job_server(&script, "/jobs/j").await;
    let url = format!("{}/jobs/j", server.uri());
    // Waits of 300ms then 900ms: the second would end past the 1s deadline, so the last
    // attempt is made at the deadline instead (about 700ms after the second).
    let (code, _, stderr) = run(args(&[
        "wait",
        "--url",
        &url,
        "--interval",
        "300ms",
        "--timeout",
        "1s",
        "--backoff-coefficient",
        "3",
        "--expect-json",
        ".status=completed",
    ]))
    .await;
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("timed out after"), "{stderr}");
    assert!(stderr.contains("3 attempt(s)"), "{stderr}");
    assert!(stderr.contains("last status: 200"), "{stderr}");
    assert!(stderr.contains("pending"), "{stderr}");
    let times = script.times();
    assert_eq!(times.len(), 3, "{stderr}");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(280), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(650), "{gaps:?}");
    // Not the full 900ms backoff: the last attempt came at the deadline.
    assert!(gaps[1] < Duration::from_millis(880), "{gaps:?}");
}

#[tokio::test]
async fn server_errors_are_retried_on_the_backoff_schedule() {
    let unavailable = (503, json!({"error": "warming up"}));
    let script = Script::new(vec![
        unavailable.clone(),
        unavailable.clone(),
        unavailable,
        (200, json!({"status": "completed", "job_id": "x"})),
    ]);
    let server = job_server(&script, "/jobs/x").await;
    let url = format!("{}/jobs/x", server.uri());
    let (code, stdout, stderr) = run(args(&[
        "wait",
        "--url",
        &url,
        "--interval",
        "100ms",
        "--timeout",
        "30s",
        "--backoff-coefficient",
        "2",
        "--expect-json",
        ".status=completed",
        "--save",
        ".job_id=id",
    ]))
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(stdout.trim(), r#"{"id":"x"}"#);
    let times = script.times();
    assert_eq!(times.len(), 4);
    // interval × 2^(n−1): 100ms, 200ms, 400ms (never less; more only by scheduling).
    for (gap, expected) in times.windows(2).map(|w| w[1] - w[0]).zip([100, 200, 400]) {
        let expected = Duration::from_millis(expected);
        assert!(
            gap >= expected - Duration::from_millis(15),
            "gap {gap:?} < {expected:?}"
        );
        assert!(
            gap < expected * 2 + Duration::from_millis(300),
            "gap {gap:?} far above {expected:?}"
        );
    }
}

#[tokio::test]
async fn network_errors_are_retried_until_attempts_run_out() {
    let port = crate::harness::free_port();
    let (code, _, stderr) = run(args(&[
        "wait",
        "--url",
        &format!("http://127.0.0.1:{port}/jobs/1"),
        "--interval",
        "10ms",
        "--timeout",
        "30s",
        "--max-attempts",
        "2",
    ]))
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("gave up after 2 attempt(s)"), "{stderr}");
    assert!(stderr.contains("no response was received"), "{stderr}");
}

#[tokio::test]
async fn expected_values_compare_as_json() {
    let script = Script::new(vec![(
        200,
        json!({"done": "true", "count": 200.0, "gone": null, "zero": 0}),
    )]);
    let server = job_server(&script, "/s").await;
    let url = format!("{}/s", server.uri());
    let base = [
        "wait",
        "--url",
        &url,
        "--interval",
        "10ms",
        "--timeout",
        "5s",
        "--max-attempts",
        "1",
    ];
    let with = |extra: &[&str]| {
        let mut a = args(&base);
        a.extend(args(extra));
        a
    };
    // The string "true" is not the boolean true.
    let (code, _, stderr) = run(with(&["--expect-json", ".done=true"])).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(r#".done is "true", expected true"#),
        "{stderr}"
    );
    let (code, _, stderr) = run(with(&["--expect-json", r#".done="true""#])).await;
    assert_eq!(code, Some(0), "{stderr}");
    // 200 matches 200.0; present null and 0 exist.
    let (code, _, stderr) = run(with(&[
        "--expect-json",
        "$.count=200",
        "--expect-json-exists",
        ".gone",
        "--expect-json-exists",
        ".zero",
        "--expect-json-absent",
        ".missing",
    ]))
    .await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn invalid_input_exits_2() {
    for bad in [
        vec![
            "wait",
            "--url",
            "http://127.0.0.1:1/",
            "--interval",
            "2",
            "--timeout",
            "5m",
        ],
        vec![
            "wait",
            "--url",
            "http://127.0.0.1:1/",
            "--interval",
            "2s",
            "--timeout",
            "5m",
            "--expect-json",
            ".a[x]=1",
        ],
        vec![
            "wait",
            "--url",
            "not a url",
            "--interval",
            "2s",
            "--timeout",
            "5m",
        ],
        vec!["wait", "--url", "http://127.0.0.1:1/", "--interval", "2s"],
        vec![
            "wait",
            "--url",
            "http://127.0.0.1:1/",
            "--interval",
            "2s",
            "--timeout",
            "5m",
            "--save",
            ".a",
        ],
    ] {
        let (code, _, stderr) = run(args(&bad)).await;
        assert_eq!(code, Some(2), "{bad:?}: {stderr}");
    }
}

/// A seed 004 YAML example with its host pointed at `server`.
fn seed_file(dir: &std::path::Path, name: &str, server: &MockServer) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/tests/it/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("https://api.example.com", &server.uri());
    write_file(dir, name, &text).display().to_string()
}

#[tokio::test]
async fn seed_004_job_processing_runs() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/jobs"))
        .and(wiremock::matchers::body_json(
            json!({"data": "process this"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"job_id": "j-9"})))
        .expect(1)
        .mount(&server)
        .await;
    let script = Script::job("j-9", 0, 1);
    Mock::given(method("GET"))
        .and(path("/jobs/j-9"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = seed_file(dir.path(), "seed004_job_processing.yaml", &server);
    let (code, stdout, stderr) = run(args(&["wait", "-f", &file])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), r#"{"job_id":"j-9"}"#);
    // running once, then (5s later, the file's interval) completed.
    assert_eq!(script.count(), 2);
}

#[tokio::test]
async fn seed_004_deployment_file_and_basic_examples_run() {
    let server = MockServer::start().await;
    let deployment = Script::new(vec![(
        200,
        json!({"deployment": {"id": 123, "status": "success"}}),
    )]);
    Mock::given(method("GET"))
        .and(path("/deployments/123"))
        .respond_with(deployment.clone())
        .mount(&server)
        .await;
    let file_status = Script::new(vec![
        (200, json!({"processing_complete": false})),
        (
            200,
            json!({"processing_complete": true, "errors": ["bad row"]}),
        ),
        (200, json!({"processing_complete": true})),
    ]);
    Mock::given(method("GET"))
        .and(path("/files/f-1/status"))
        .respond_with(file_status.clone())
        .mount(&server)
        .await;
    let job = Script::job("123", 0, 1);
    Mock::given(method("GET"))
        .and(path("/jobs/123"))
        .respond_with(job.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();

    let deploy = seed_file(dir.path(), "seed004_deployment_status.yaml", &server);
    let basic = seed_file(dir.path(), "seed004_basic_polling.yaml", &server);
    let files = seed_file(dir.path(), "seed004_file_processing.yaml", &server);
    let (deploy_out, basic_out, files_out, missing_var) = tokio::join!(
        run(args(&["wait", "-f", &deploy])),
        run(args(&["wait", "-f", &basic])),
        run(args(&["wait", "-f", &files, "--var", "file_id=f-1"])),
        run(args(&["wait", "-f", &files])),
    );
    assert_eq!(deploy_out.0, Some(0), "{}", deploy_out.2);
    assert_eq!(deploy_out.1.trim(), "{}");
    assert_eq!(basic_out.0, Some(0), "{}", basic_out.2);
    assert_eq!(job.count(), 2);
    // The second status still has errors (exists: false fails), the third passes.
    assert_eq!(files_out.0, Some(0), "{}", files_out.2);
    assert_eq!(file_status.count(), 3);
    // {{ file_id }} is given by no earlier step: invalid input, before any request.
    assert_eq!(missing_var.0, Some(2), "{}", missing_var.2);
    assert!(missing_var.2.contains("{{ file_id }}"), "{}", missing_var.2);
}

#[tokio::test]
async fn a_failing_step_is_named_and_ends_the_run() {
    let server = MockServer::start().await;
    let script = Script::job("j", 50, 0);
    Mock::given(method("GET"))
        .and(path("/jobs/j"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let never = Script::new(vec![(200, json!({}))]);
    Mock::given(method("GET"))
        .and(path("/after"))
        .respond_with(never.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "steps:\n  - name: \"Wait for job\"\n    plugin: http\n    config:\n      url: \"{0}/jobs/j\"\n      polling:\n        interval: 20ms\n        timeout: 5s\n        max_attempts: 2\n        conditions:\n          - type: json_path\n            path: .status\n            expected: completed\n  - name: \"After\"\n    plugin: http\n    config:\n      url: \"{0}/after\"\n",
        server.uri()
    );
    let file = write_file(dir.path(), "steps.yaml", &text);
    let (code, stdout, stderr) = run(args(&["wait", "-f", file.to_str().unwrap()])).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(r#"step 1 of 2 ("Wait for job") failed: gave up after 2 attempt(s)"#),
        "{stderr}"
    );
    assert_eq!(never.count(), 0, "the run went on after a failed step");
}
