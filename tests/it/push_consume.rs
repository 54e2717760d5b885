//! `siphon push` and `siphon consume` against the real server: NDJSON and CSV (with a
//! header and a quoted newline) pushed in several requests come back from `consume -B -d`
//! exactly once each, in order; `consume` follows new commits and resumes with `--from`;
//! a malformed record is refused whole with exit 2 and named.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, siphon, siphon_bin, write_file};

const PIPELINE: &str = "CREATE TABLE t (id INT, name TEXT);\n";

async fn push_table() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", PIPELINE);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    (server, dir)
}

fn push(server: &Server, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "push",
        "--server",
        &server.base,
        "t",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    siphon(&args, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `siphon consume t ARGS` as JSON.
fn consume(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["consume", "t", "--server", &server.base];
    all.extend_from_slice(args);
    let out = siphon(&all, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn inserts(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            assert!(l.get("delete").is_none(), "{l}");
            l["insert"].clone()
        })
        .collect()
}

fn sequences(lines: &[Value]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| l["sequence_number"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn pushed_ndjson_and_csv_come_back_from_consume_once_each_in_order() {
    let (server, dir) = push_table().await;
    let ndjson = write_file(
        dir.path(),
        "rows.ndjson",
        "{\"id\": 1, \"name\": \"one\"}\n\n{\"id\": 2, \"name\": \"two\"}\n{\"id\": 3, \"name\": null}\n",
    );
    let out = push(&server, &ndjson, &["--batch-size", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pushed 3 records to t in 2 requests"),
        "{}",
        stderr(&out)
    );

    // A CSV with a header and a quoted newline, split so the header must be sent again.
    let csv = write_file(
        dir.path(),
        "rows.csv",
        "id,name\r\n4,\"four\nlines\"\r\n5,five\r\n6,\"six, \"\"quoted\"\"\"\r\n",
    );
    let out = push(&server, &csv, &["--batch-size", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pushed 3 records to t in 2 requests"),
        "{}",
        stderr(&out)
    );

    // Stdin, one request.
    let mut child = Command::new(siphon_bin())
        .args(["push", "--server", &server.base, "t", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\": 7, \"name\": \"seven\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("pushed 1 records to t in 1 requests"));

    let expected = vec![
        json!({"id": 1, "name": "one"}),
        json!({"id": 2, "name": "two"}),
        json!({"id": 3, "name": null}),
        json!({"id": 4, "name": "four\nlines"}),
        json!({"id": 5, "name": "five"}),
        json!({"id": 6, "name": "six, \"quoted\""}),
        json!({"id": 7, "name": "seven"}),
    ];
    let lines = consume(&server, &["-B", "-d"]);
    assert_eq!(inserts(&lines), expected);
    let seqs = sequences(&lines);
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
    // Five requests, five commits.
    let mut distinct = seqs.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{seqs:?}");

    // --from N: the changes after commit N only (commit 2 held record 3).
    let after = consume(&server, &["--from", &distinct[1].to_string(), "-d"]);
    assert_eq!(inserts(&after), expected[3..].to_vec());
    // From now, not following: nothing.
    assert!(consume(&server, &["-d"]).is_empty());
    assert_eq!(server.scalar("SELECT count(*) FROM t").await, json!(7));
}

#[tokio::test]
async fn consume_follows_new_commits() {
    let (server, dir) = push_table().await;
    let mut child = Command::new(siphon_bin())
        .args(["consume", "t", "-B", "--server", &server.base])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    for i in 1..=3 {
        let file = write_file(
            dir.path(),
            &format!("r{i}.ndjson"),
            &format!("{{\"id\": {i}, \"name\": \"n{i}\"}}\n"),
        );
        let out = push(&server, &file, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < 3 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(serde_json::from_str::<Value>(&line).unwrap());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        inserts(&got),
        (1..=3)
            .map(|i| json!({"id": i, "name": format!("n{i}")}))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_malformed_record_is_refused_whole_named_and_exits_2() {
    let (server, dir) = push_table().await;
    let good = write_file(dir.path(), "good.ndjson", "{\"id\": 1, \"name\": \"a\"}\n");
    assert_eq!(push(&server, &good, &[]).status.code(), Some(0));

    let bad = write_file(
        dir.path(),
        "bad.ndjson",
        "{\"id\": 2, \"name\": \"b\"}\n{\"id\": \"not a number\", \"name\": \"oops\"}\n{\"id\": 4, \"name\": \"d\"}\n",
    );
    let out = push(&server, &bad, &[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("not a number") || text.contains("line 2"),
        "the record is not named: {text}"
    );
    assert!(text.contains("nothing of this batch was stored"), "{text}");
    // The whole request was refused: only the first push is there.
    assert_eq!(server.scalar("SELECT count(*) FROM t").await, json!(1));

    // With a batch per record, the first record is stored and reported as durable.
    let out = push(&server, &bad, &["--batch-size", "1"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("1 records of the 1 earlier request(s) were stored"),
        "{text}"
    );
    assert_eq!(server.scalar("SELECT count(*) FROM t").await, json!(2));

    // An unknown table is refused.
    let out = siphon(
        &[
            "push",
            "--server",
            &server.base,
            "nope",
            good.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn push_and_consume_work_straight_on_a_data_directory_no_server_holds() {
    let (mut server, dir) = push_table().await;
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let rows = write_file(
        dir.path(),
        "rows.ndjson",
        "{\"id\": 1, \"name\": \"one\"}\n{\"id\": 2, \"name\": \"two\"}\n",
    );
    let rows = rows.to_str().unwrap();

    // While the server holds the directory, a second process is refused, clearly.
    let out = siphon(&["push", "t", rows, "--data-dir", data], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by another siphon process"),
        "{}",
        stderr(&out)
    );
    let out = siphon(&["consume", "t", "-B", "--data-dir", data], &[]);
    assert!(
        stderr(&out).contains("in use by another siphon process"),
        "{}",
        stderr(&out)
    );

    // Once it stops, both work on the directory itself.
    server.terminate();
    let out = siphon(
        &["push", "t", rows, "--data-dir", data, "--batch-size", "1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pushed 2 records to t in 2 requests"),
        "{}",
        stderr(&out)
    );
    // A bad record is refused whole, as by the server.
    let bad = write_file(dir.path(), "bad.ndjson", "{\"id\": 3}\n{\"id\": \"x\"}\n");
    let out = siphon(
        &["push", "t", bad.to_str().unwrap(), "--data-dir", data],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing of this batch was stored"),
        "{}",
        stderr(&out)
    );

    let out = siphon(&["consume", "t", "-B", "--data-dir", data], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"sequence_number": 1, "insert": {"id": 1, "name": "one"}}),
            json!({"sequence_number": 2, "insert": {"id": 2, "name": "two"}}),
        ]
    );
    let out = siphon(&["consume", "t", "--from", "1", "--data-dir", data], &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    // A directory that is not a data directory, and an unknown table.
    let empty = dir.path().join("empty");
    let out = siphon(
        &["push", "t", rows, "--data-dir", empty.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!empty.exists(), "a push must not create a data directory");
    let out = siphon(&["consume", "nope", "-B", "--data-dir", data], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // And a server started again sees what was pushed without it.
    let file = dir.path().join("p.sql");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    assert_eq!(server.scalar("SELECT count(*) FROM t").await, json!(2));
}
