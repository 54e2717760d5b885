//! Every `CREATE CONNECTION` / `CREATE TABLE` example of seed 000, read from the seed file,
//! with its hosts pointed at a local server that speaks every protocol the examples use
//! (auth kinds, OAuth2 token endpoint, offset/page/cursor/Link pagination, `since` and
//! `after_sequence` state, CSV and XML bodies), loads and produces rows.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{Server, int, sql_blocks, write_file};

const SEED_000: &str = include_str!("../../../shared/seeds/000_fb54a79568d4ac55.txt");

const ITEMS: usize = 7;

/// One record with every field any seed table asks for.
fn item(i: usize) -> Value {
    json!({
        "id": format!("i{i}"), "timestamp": format!("2024-03-0{}T12:00:00Z", i + 1), "value": i as f64 * 1.5,
        "metadata": {"source": "seed", "n": i}, "data": {"n": i}, "name": format!("item {i}"),
        "updated_at": format!("2024-0{}-01T00:00:00Z", i + 1), "sequence": 100 + i,
        "location": "NYC", "temperature": 20.5, "humidity": 40, "conditions": "sunny",
        "symbol": "AAPL", "price": "187.25", "volume": 1000 + i,
        "repo": "laminar/laminar", "stars": 10 + i, "forks": 2, "issues": 1
    })
}

fn respond(req: &Request, body_kind: &str) -> ResponseTemplate {
    let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
    if req.url.path() == "/token" {
        return ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "seed-token", "token_type": "Bearer", "expires_in": 3600}),
        );
    }
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
    let (from, to, next_cursor, next_link) = if let (Some(o), Some(l)) =
        (num("offset"), num("limit"))
    {
        (o, o + l, None, None)
    } else if let (Some(p), Some(s)) = (num("page"), num("per_page")) {
        ((p - 1) * s, p * s, None, None)
    } else if q.contains_key("after") || body_kind == "cursor" {
        let at = q
            .get("after")
            .and_then(|a| a.trim_start_matches('c').parse().ok())
            .unwrap_or(0);
        (
            at,
            at + 3,
            (at + 3 < ITEMS).then(|| format!("c{}", at + 3)),
            None,
        )
    } else if body_kind == "link" {
        let p = num("lp").unwrap_or(0);
        (
            p * 3,
            p * 3 + 3,
            None,
            (p * 3 + 3 < ITEMS).then(|| format!("<{}?lp={}>; rel=\"next\"", req.url.path(), p + 1)),
        )
    } else {
        (0, ITEMS, None, None)
    };
    let mut rows: Vec<Value> = (from..to.min(ITEMS)).map(item).collect();
    if let Some(since) = q.get("since") {
        rows.retain(|r| r["updated_at"].as_str().unwrap() > since.as_str());
    }
    if let Some(after) = num("after_sequence") {
        rows.retain(|r| r["sequence"].as_u64().unwrap() as usize > after);
    }
    let mut t = match body_kind {
        "csv" => {
            let mut text = String::from("id,name,value\n");
            for (i, _) in rows.iter().enumerate() {
                text.push_str(&format!("{},\"item, {i}\",{}\n", i + 1, i as f64 / 2.0));
            }
            ResponseTemplate::new(200).set_body_string(text)
        }
        "xml" => {
            let mut text = String::from("<?xml version=\"1.0\"?><response><items>");
            for (i, _) in rows.iter().enumerate() {
                text.push_str(&format!(
                    "<item id=\"{i}\"><name>n{i}</name><tags><tag>a</tag><tag>b</tag></tags></item>"
                ));
            }
            text.push_str("</items></response>");
            ResponseTemplate::new(200).set_body_string(text)
        }
        _ => ResponseTemplate::new(200)
            .set_body_json(json!({"data": rows, "meta": {"next_cursor": next_cursor}})),
    };
    if let Some(link) = next_link {
        t = t.insert_header("Link", link.as_str());
    }
    t
}

/// The names of the tables and connections a block declares.
fn declared(block: &str, what: &str) -> Vec<String> {
    block
        .split(what)
        .skip(1)
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('(')
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_seed_example_produces_rows_against_a_local_server() {
    let blocks = sql_blocks(SEED_000);
    let mut checked = 0;
    for (i, block) in blocks.iter().enumerate() {
        let tables = declared(block, "CREATE TABLE ");
        let connections = declared(block, "CREATE CONNECTION ");
        if tables.is_empty() && connections.is_empty() {
            continue; // the SELECT examples run in the observability tests
        }
        let kind = if block.contains("'csv'") {
            "csv"
        } else if block.contains("'xml'") {
            "xml"
        } else if block.contains("'cursor'") {
            "cursor"
        } else if block.contains("'link_header'") {
            "link"
        } else {
            "json"
        };
        let api = MockServer::start().await;
        let k = kind.to_string();
        Mock::given(wiremock::matchers::any())
            .respond_with(move |req: &Request| respond(req, &k))
            .mount(&api)
            .await;
        let uri = api.uri();
        let point = |text: &str| {
            [
                "https://api.example.com",
                "https://auth.example.com",
                "https://api.weather.com",
                "https://api.stocks.com",
                "https://api.github.com",
            ]
            .iter()
            .fold(text.to_string(), |t, host| t.replace(host, &uri))
        };
        let mut sql = String::new();
        let uses = |name: &str| block.contains(&format!("connection = '{name}'"));
        if uses("http_api") && !connections.contains(&"http_api".to_string()) {
            sql.push_str(&point(blocks[0].split("CREATE TABLE").next().unwrap()));
        }
        for conn in ["weather_api", "stock_api", "github_api"] {
            if uses(conn) {
                sql.push_str(&format!("CREATE CONNECTION {conn} FROM polling_http_source WITH (endpoint = '{uri}/', interval_ms = 60000);\n"));
            }
        }
        sql.push_str(&point(block));
        // A connection alone gets a table to feed.
        let mut to_check = tables.clone();
        for conn in &connections {
            if !block.contains(&format!("connection = '{conn}'")) {
                let table = format!("t_{conn}");
                sql.push_str(&format!(
                    "\nCREATE TABLE {table} (id TEXT, value FLOAT) WITH (connector = 'polling_http_source', connection = '{conn}', json_path = '$.data[*]');\n"
                ));
                to_check.push(table);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), &format!("block{i}.sql"), &sql);
        let envs = [
            ("API_TOKEN", "t"),
            ("API_PASSWORD", "p"),
            ("BEARER_TOKEN", "b"),
            ("API_KEY", "k"),
            ("CLIENT_ID", "c"),
            ("CLIENT_SECRET", "s"),
        ];
        let server = Server::start(&dir.path().join("data"), &[&file], &envs).await;
        for table in &to_check {
            let rows = server
                .wait_for(
                    &format!("SELECT count(*) AS n FROM {table}"),
                    Duration::from_secs(20),
                    |r| int(&r[0]["n"]) > 0,
                )
                .await;
            let n = int(&rows[0]["n"]);
            let paginated = block.contains("pagination_type");
            if paginated {
                assert_eq!(
                    n, ITEMS as i64,
                    "block {i}, table {table}: every page walked\n{sql}"
                );
            }
            checked += 1;
        }
        let errors = server.query("SELECT table_name, last_error FROM system.connector_status WHERE last_error IS NOT NULL").await;
        assert!(errors.is_empty(), "block {i}: {errors:?}\n{sql}");
    }
    assert!(checked >= 20, "only {checked} tables checked");
}
