//! Fluvio connector files (SPEC §6, seed 002): the seed's connect.yml, with its lost
//! `parameters:` line restored and its host pointed at a local server, stores each body once,
//! in order, in table `cat-facts` (column `value`), and `siphon consume cat-facts -B -d`
//! prints them; the snippet as printed is refused at its line with the corrected file; the
//! newer `meta:`/`http:` form works, and `filter`, `map`, `arraymap` (jq) change what is
//! stored.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, siphon, write_file};

const SEED_002: &str = include_str!("../../../shared/seeds/002_a523c18eefba7f1a.txt");

/// The connect.yml snippet exactly as the seed prints it.
fn seed_snippet() -> String {
    let start = SEED_002.find("# connect.yml").unwrap();
    let rest = &SEED_002[start..];
    let end = rest.find("\n\n").unwrap();
    format!("{}\n", &rest[..end])
}

fn facts() -> Vec<Value> {
    vec![
        json!({"fact": "A cat almost never meows at another cat, mostly just humans.", "length": 61}),
        json!({"fact": "In one stride, a cheetah can cover 23 to 26 feet.", "length": 49}),
        json!({"fact": "Phoenician cargo ships brought cats to Europe.", "length": 46}),
    ]
}

/// Serves the facts in order, one per request, then 404s.
async fn fact_server() -> MockServer {
    let server = MockServer::start().await;
    for (i, fact) in facts().into_iter().enumerate() {
        Mock::given(method("GET"))
            .and(path("/fact"))
            .respond_with(ResponseTemplate::new(200).set_body_json(fact))
            .up_to_n_times(1)
            .with_priority(i as u8 + 1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/fact"))
        .respond_with(ResponseTemplate::new(404))
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

#[test]
fn the_seed_snippet_as_printed_is_refused_at_its_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "connect.yml", &seed_snippet());
    let out = siphon(&["check", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:8:3: ", file.display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("`parameters:` line is missing"), "{err}");
    assert!(
        err.contains("direction: source\nparameters:\n  endpoint: https://catfact.ninja/fact\n  interval: 10\n"),
        "{err}"
    );
}

#[tokio::test]
async fn seed_002_connect_yml_stores_each_body_once_in_order() {
    let api = fact_server().await;
    let text = seed_snippet()
        .replace("direction: source\n", "direction: source\nparameters:\n")
        .replace("https://catfact.ninja", &api.uri());
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "connect.yml", &text);
    let check = siphon(&["check", file.to_str().unwrap()], &[]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let data = dir.path().join("data");
    let server = Server::start(&data, &[&file], &[]).await;
    // interval: 10 (seconds): the first poll at start, the second 10 s later.
    let rows = server
        .wait_for(
            r#"SELECT value FROM "cat-facts""#,
            Duration::from_secs(30),
            |rows| rows.len() >= 2,
        )
        .await;
    let expected = facts();
    // Each body once, in the order the server sent them (a third needs another 10 s).
    let stored: Vec<Value> = rows.iter().map(|r| r["value"].clone()).collect();
    assert_eq!(stored, expected[..stored.len()].to_vec());
    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        siphon(
            &["consume", "cat-facts", "-B", "-d", "--server", &base],
            &[],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["insert"]["value"].clone())
        .collect();
    assert!(printed.len() >= 2, "{printed:?}");
    assert_eq!(printed, expected[..printed.len()].to_vec());
    let status = server.get_text("/v1/status").await;
    assert!(status.contains("cat-facts"), "{status}");
}

#[tokio::test]
async fn newer_form_with_transforms_changes_what_is_stored() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/facts"))
        .and(header("Accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"fact": "short", "length": 5},
                {"fact": "a much longer fact", "length": 18},
                {"fact": "another long one", "length": 16}
            ]
        })))
        .mount(&api)
        .await;
    let text = format!(
        "apiVersion: 0.1.0\nmeta:\n  version: 0.2.5\n  name: long-facts\n  type: http-source\n  topic: long-facts\nhttp:\n  endpoint: \"{}/facts\"\n  method: GET\n  headers:\n    - \"Accept: application/json\"\n  interval: 200ms\n  arraymap: \".data\"\n  filter: \".length > 10\"\n  map: \"{{fact: (.fact | ascii_upcase)}}\"\n",
        api.uri()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "connect.yaml", &text);
    let data = dir.path().join("data");
    let server = Server::start(&data, &[&file], &[]).await;
    let rows = server
        .wait_for(
            r#"SELECT value FROM "long-facts""#,
            Duration::from_secs(20),
            |rows| rows.len() >= 4,
        )
        .await;
    let values: Vec<Value> = rows.iter().map(|r| r["value"].clone()).collect();
    // Every poll: the array split, the short fact dropped, the rest reshaped.
    assert_eq!(
        values[..4],
        [
            json!({"fact": "A MUCH LONGER FACT"}),
            json!({"fact": "ANOTHER LONG ONE"}),
            json!({"fact": "A MUCH LONGER FACT"}),
            json!({"fact": "ANOTHER LONG ONE"}),
        ]
    );
}

#[test]
fn a_bad_jq_expression_is_a_load_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "connect.yml",
        "api_version: v1\nname: t\ntype: http\ntopic: t\ndirection: source\nparameters:\n  endpoint: http://127.0.0.1:1/\n  interval: 10\nmap: \".a |\"\n",
    );
    let out = siphon(&["check", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:9:1:", file.display())) && err.contains("`.a |`"),
        "{err}"
    );
}
