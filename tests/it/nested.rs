//! Real-world shapes end to end (issue 17): `field_paths` over nested JSON (objects,
//! arrays, missing fields, type mismatches, a nested state field and primary key), the
//! JSON functions and operators in queries and views over a JSON column fed by a real
//! REST server (json-server), feed dates (`timestamp_format`, RFC 2822) and real RSS 2.0
//! and Atom feeds made by the `rss` and `atom_syndication` crates.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, int, siphon, write_file};
use crate::json_server::JsonServer;

const WAIT: Duration = Duration::from_secs(20);

async fn start(sql: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    (server, dir)
}

#[tokio::test]
async fn field_paths_take_nested_objects_and_array_elements_with_nulls_and_dead_letters() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": 1, "author": {"name": "a1", "id": 10}, "tags": ["x", "y"],
             "customer": {"address": {"city": "Oslo"}}},
            {"id": 2, "author": {"name": "a2"}, "tags": []},
            {"id": 3},
            {"id": 4, "author": {"name": "a4", "id": "ten"}},
            {"id": 5, "author": {"id": 50}}
        ]})))
        .mount(&api)
        .await;
    let (server, _dir) = start(&format!(
        r#"CREATE TABLE posts (id BIGINT, author_name TEXT, author_id BIGINT, first_tag TEXT,
              last_tag TEXT, tags JSON, city TEXT, author JSON)
           WITH (connector = 'polling_http_source', endpoint = '{}/posts', json_path = '$.data[*]',
              interval_ms = 60000,
              field_paths = '{{"author_name": "$.author.name", "author_id": "$.author.id",
                  "first_tag": "$.tags[0]", "last_tag": "$.tags[-1]", "tags": "$.tags[*]",
                  "city": "$[''customer''][''address''][''city'']"}}');
           CREATE TABLE names (id BIGINT, author_name TEXT NOT NULL)
           WITH (connector = 'polling_http_source', endpoint = '{}/posts', json_path = '$.data[*]',
              interval_ms = 60000, field_paths = '{{"author_name": "$.author.name"}}');"#,
        api.uri(),
        api.uri()
    ))
    .await;
    let rows = server
        .wait_for(
            "SELECT id, author_name, author_id, first_tag, last_tag, tags, city, author FROM posts ORDER BY id",
            WAIT,
            |r| r.len() == 4,
        )
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "author_name": "a1", "author_id": 10, "first_tag": "x", "last_tag": "y",
                   "tags": ["x", "y"], "city": "Oslo", "author": {"name": "a1", "id": 10}}),
            json!({"id": 2, "author_name": "a2", "author_id": null, "first_tag": null, "last_tag": null,
                   "tags": null, "city": null, "author": {"name": "a2"}}),
            json!({"id": 3, "author_name": null, "author_id": null, "first_tag": null, "last_tag": null,
                   "tags": null, "city": null, "author": null}),
            json!({"id": 5, "author_name": null, "author_id": 50, "first_tag": null, "last_tag": null,
                   "tags": null, "city": null, "author": {"id": 50}}),
        ]
    );
    let letters = server
        .wait_for(
            "SELECT table_name, reason FROM system.dead_letters ORDER BY table_name, reason",
            WAIT,
            |r| r.len() == 3,
        )
        .await;
    assert_eq!(letters[0]["table_name"], "names");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains(r#"field "$.author.name": missing for NOT NULL TEXT column"#),
        "{letters:?}"
    );
    assert_eq!(letters[2]["table_name"], "posts");
    assert!(
        letters[2]["reason"]
            .as_str()
            .unwrap()
            .contains(r#"record 3: field "$.author.id": cannot convert string "ten" to BIGINT"#),
        "{letters:?}"
    );
    let names = server.query("SELECT id FROM names ORDER BY id").await;
    assert_eq!(
        names,
        vec![json!({"id": 1}), json!({"id": 2}), json!({"id": 4})]
    );
}

#[tokio::test]
async fn a_nested_primary_key_and_a_nested_state_field() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"user": {"login": "ann", "id": 1}, "meta": {"updated_at": "2024-01-12T10:00:00Z"}, "n": 1},
            {"user": {"login": "bob", "id": 2}, "meta": {"updated_at": "2024-01-13T10:00:00Z"}, "n": 1},
            {"user": {"login": "ann", "id": 1}, "meta": {"updated_at": "2024-01-14T10:00:00Z"}, "n": 2},
            {"user": {"id": 3}, "meta": {"updated_at": "2024-01-15T10:00:00Z"}, "n": 1}
        ])))
        .mount(&api)
        .await;
    let (server, _dir) = start(&format!(
        r#"CREATE TABLE users (login TEXT, n BIGINT, updated TIMESTAMP, PRIMARY KEY (login))
           WITH (connector = 'polling_http_source', endpoint = '{}/users', interval_ms = 300,
              state_type = 'timestamp', state_field = 'updated', state_param = 'since',
              field_paths = '{{"login": "$.user.login", "updated": "$.meta.updated_at"}}');"#,
        api.uri()
    ))
    .await;
    let rows = server
        .wait_for("SELECT login, n FROM users ORDER BY login", WAIT, |r| {
            r.len() == 2
        })
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"login": "ann", "n": 2}),
            json!({"login": "bob", "n": 1})
        ]
    );
    // The record without `user.login` is a dead letter, never a NULL key.
    server
        .wait_for(
            "SELECT reason FROM system.dead_letters WHERE table_name = 'users'",
            WAIT,
            |r| {
                r.iter().any(|l| {
                    l["reason"]
                        .as_str()
                        .unwrap()
                        .contains(r#"field "$.user.login": missing for NOT NULL TEXT column"#)
                })
            },
        )
        .await;
    // The next poll sends the maximum of the nested state field over the stored records
    // (the dead letter's date is not taken).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let requests = api.received_requests().await.unwrap();
        let since: Vec<String> = requests
            .iter()
            .filter_map(|r| {
                r.url
                    .query_pairs()
                    .find(|(k, _)| k == "since")
                    .map(|(_, v)| v.into_owned())
            })
            .collect();
        if since.iter().any(|s| s.starts_with("2024-01-14T10:00:00")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request sent the nested state: {since:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn field_paths_errors_are_load_time_errors_that_name_the_option() {
    let dir = tempfile::tempdir().unwrap();
    for (columns, paths, expect) in [
        ("tag TEXT", r#"{"tag": "$.tags[*]"}"#, "needs a JSON column"),
        (
            "tag TEXT",
            r#"{"nope": "$.tags[0]"}"#,
            "not a column of the table",
        ),
        ("tag TEXT", r#"{"tag": "$.tags["}"#, "not a valid JSONPath"),
        ("tag TEXT", r#"["$.a"]"#, "JSON object"),
    ] {
        let file = write_file(
            dir.path(),
            "bad.sql",
            &format!(
                "CREATE TABLE t ({columns}) WITH (connector = 'polling_http_source', \
                 endpoint = 'http://127.0.0.1:9/', field_paths = '{paths}');"
            ),
        );
        let out = siphon(&["check", file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{paths}: {stderr}");
        assert!(
            stderr.contains("field_paths") && stderr.contains(expect),
            "{paths}: {stderr}"
        );
    }
}

/// Every JSON operator and function over a JSON column, in an ad hoc query and in a view,
/// against json-server serving `{"id": 1, "author": {"name": "a1"}, ...}` records.
#[tokio::test]
async fn json_functions_and_operators_over_a_json_column_in_queries_and_views() {
    let db = json!({"posts": [
        {"id": 1, "author": {"name": "a1", "id": 10, "score": 1.5, "active": true}, "tags": ["x", "y"]},
        {"id": 2, "author": {"name": "a2", "id": 20, "score": 2.5, "active": false}, "tags": ["z"]},
        {"id": 3, "author": {"name": "a1", "id": 10, "score": 0.5, "active": true}, "tags": []}
    ]});
    let api = JsonServer::start(&db).await;
    let (server, _dir) = start(&format!(
        r#"CREATE TABLE posts (id BIGINT, author JSON, tags JSON, PRIMARY KEY (id))
           WITH (connector = 'polling_http_source', endpoint = '{}', interval_ms = 300);
           CREATE VIEW by_author AS SELECT author->>'name' AS name, count(*) AS posts
              FROM posts GROUP BY 1;
           CREATE VIEW post_facts AS SELECT id,
              author->'name' AS arrow_json,
              author->>'name' AS arrow_text,
              author ? 'score' AS has_score,
              json_get(author, 'id') AS get_json,
              json_get_str(author, 'name') AS get_str,
              json_get_int(author, 'id') AS get_int,
              json_get_float(author, 'score') AS get_float,
              json_get_bool(author, 'active') AS get_bool,
              json_contains(author, 'active') AS contains,
              json_length(tags) AS tag_count,
              json_as_text(author, 'id') AS as_text
              FROM posts WHERE json_get_bool(author, 'active');"#,
        api.url("/posts")
    ))
    .await;
    server
        .wait_for("SELECT id FROM posts", WAIT, |r| r.len() == 3)
        .await;
    let ad_hoc = server
        .query("SELECT author->>'name' AS name, count(*) AS posts FROM posts GROUP BY 1 ORDER BY 1")
        .await;
    let expected = vec![
        json!({"name": "a1", "posts": 2}),
        json!({"name": "a2", "posts": 1}),
    ];
    assert_eq!(ad_hoc, expected);
    assert_eq!(
        server
            .query("SELECT name, posts FROM by_author ORDER BY name")
            .await,
        expected
    );
    let facts_sql = "SELECT id, author->'name' AS arrow_json, author->>'name' AS arrow_text, \
        author ? 'score' AS has_score, json_get(author, 'id') AS get_json, \
        json_get_str(author, 'name') AS get_str, json_get_int(author, 'id') AS get_int, \
        json_get_float(author, 'score') AS get_float, json_get_bool(author, 'active') AS get_bool, \
        json_contains(author, 'active') AS contains, json_length(tags) AS tag_count, \
        json_as_text(author, 'id') AS as_text FROM posts WHERE json_get_bool(author, 'active') ORDER BY id";
    let expected_facts = vec![
        json!({"id": 1, "arrow_json": "a1", "arrow_text": "a1", "has_score": true, "get_json": 10,
               "get_str": "a1", "get_int": 10, "get_float": 1.5, "get_bool": true,
               "contains": true, "tag_count": 2, "as_text": "10"}),
        json!({"id": 3, "arrow_json": "a1", "arrow_text": "a1", "has_score": true, "get_json": 10,
               "get_str": "a1", "get_int": 10, "get_float": 0.5, "get_bool": true,
               "contains": true, "tag_count": 0, "as_text": "10"}),
    ];
    assert_eq!(server.query(facts_sql).await, expected_facts);
    assert_eq!(
        server.query("SELECT * FROM post_facts ORDER BY id").await,
        expected_facts
    );
    // A change at the source flows through the views.
    api.patch(
        "posts",
        &json!(2),
        &json!({"author": {"name": "a1", "id": 20, "active": true}}),
    )
    .await;
    let rows = server
        .wait_for(
            "SELECT name, posts FROM by_author ORDER BY name",
            WAIT,
            |r| r == [json!({"name": "a1", "posts": 3})],
        )
        .await;
    assert_eq!(rows.len(), 1);
    let facts = server
        .wait_for(
            "SELECT id, has_score FROM post_facts ORDER BY id",
            WAIT,
            |r| r.len() == 3,
        )
        .await;
    assert_eq!(facts[1], json!({"id": 2, "has_score": false}));
}

#[tokio::test]
async fn timestamp_format_reads_the_dates_an_api_writes() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "at": "12/01/2024 00:00", "day": "12.01.2024", "mail": "Fri, 12 Jan 2024 00:00:00 +0000"},
            {"id": 2, "at": "2024-01-12T00:00:00Z", "day": "2024-01-12", "mail": "Fri, 12 Jan 2024 00:00:00 GMT"}
        ])))
        .mount(&api)
        .await;
    let (server, _dir) = start(&format!(
        r#"CREATE TABLE events (id BIGINT, at TIMESTAMP, day DATE, mail TIMESTAMP)
           WITH (connector = 'polling_http_source', endpoint = '{}/e', interval_ms = 60000,
              timestamp_format = '{{"at": "%d/%m/%Y %H:%M", "day": "%d.%m.%Y"}}');"#,
        api.uri()
    ))
    .await;
    let rows = server
        .wait_for(
            "SELECT id, CAST(at AS TEXT) AS at, CAST(day AS TEXT) AS day, CAST(mail AS TEXT) AS mail FROM events ORDER BY id",
            WAIT,
            |r| r.len() == 2,
        )
        .await;
    for row in &rows {
        assert_eq!(row["at"], "2024-01-12T00:00:00Z", "{row}");
        assert_eq!(row["day"], "2024-01-12", "{row}");
        assert_eq!(row["mail"], "2024-01-12T00:00:00Z", "{row}");
    }
    assert!(
        server
            .query("SELECT * FROM system.dead_letters")
            .await
            .is_empty()
    );
}

fn rss_feed(items: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-12T00:00:00+00:00").unwrap();
    let channel = rss::Channel {
        title: "siphon test feed".into(),
        link: "http://example.com/".into(),
        description: "twelve items".into(),
        items: (0..items)
            .map(|i| rss::Item {
                title: Some(format!("item {i}")),
                link: Some(format!("http://example.com/{i}")),
                description: Some(format!("<p>body {i}</p>")),
                guid: Some(rss::Guid {
                    value: format!("urn:item:{i}"),
                    permalink: false,
                }),
                pub_date: Some((start + chrono::Duration::hours(i as i64)).to_rfc2822()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    channel.to_string()
}

fn atom_feed(entries: usize) -> String {
    use atom_syndication::{Entry, Feed, Link, Person, Text};
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-12T00:00:00+01:00").unwrap();
    let feed = Feed {
        title: Text::plain("siphon atom feed"),
        id: "urn:feed".into(),
        updated: start,
        entries: (0..entries)
            .map(|i| Entry {
                title: Text::plain(format!("entry {i}")),
                id: format!("urn:entry:{i}"),
                updated: start + chrono::Duration::hours(i as i64),
                authors: vec![Person {
                    name: format!("author {i}"),
                    ..Default::default()
                }],
                links: vec![Link {
                    href: format!("http://example.com/e/{i}"),
                    rel: "alternate".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    feed.to_string()
}

#[tokio::test]
async fn real_rss_and_atom_feeds_decode_with_typed_dates_and_text_guids() {
    let rss = rss_feed(12);
    assert!(rss.contains("isPermaLink=\"false\""), "{rss}");
    let atom = atom_feed(5);
    let api = MockServer::start().await;
    Mock::given(path("/rss"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(rss, "application/rss+xml"))
        .mount(&api)
        .await;
    Mock::given(path("/atom"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(atom, "application/atom+xml"))
        .mount(&api)
        .await;
    let (server, _dir) = start(&format!(
        r#"CREATE TABLE rss_items (title TEXT, link TEXT, guid TEXT, pubDate TIMESTAMP,
              permalink BOOLEAN, raw_guid JSON, PRIMARY KEY (guid))
           WITH (connector = 'polling_http_source', endpoint = '{uri}/rss', interval_ms = 60000,
              format = 'xml', xml_root_path = '/rss/channel/item',
              field_paths = '{{"permalink": "$.guid[''@isPermaLink'']", "raw_guid": "$.guid"}}');
           CREATE TABLE atom_entries (id TEXT, title TEXT, updated TIMESTAMP, link TEXT, author TEXT)
           WITH (connector = 'polling_http_source', endpoint = '{uri}/atom', interval_ms = 60000,
              format = 'xml', xml_root_path = '/feed/entry',
              field_paths = '{{"link": "$.link[''@href'']", "author": "$.author.name"}}');"#,
        uri = api.uri()
    ))
    .await;
    let rows = server
        .wait_for(
            "SELECT title, link, guid, CAST(pubdate AS TEXT) AS at, permalink, raw_guid FROM rss_items ORDER BY pubdate",
            WAIT,
            |r| r.len() == 12,
        )
        .await;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["title"], format!("item {i}"));
        assert_eq!(row["link"], format!("http://example.com/{i}"));
        assert_eq!(row["guid"], format!("urn:item:{i}"));
        assert_eq!(row["at"], format!("2024-01-12T{i:02}:00:00Z"));
        assert_eq!(row["permalink"], false);
        assert_eq!(
            row["raw_guid"],
            json!({"@isPermaLink": "false", "#text": format!("urn:item:{i}")})
        );
    }
    let entries = server
        .wait_for(
            "SELECT id, title, CAST(updated AS TEXT) AS at, link, author FROM atom_entries ORDER BY updated",
            WAIT,
            |r| r.len() == 5,
        )
        .await;
    for (i, row) in entries.iter().enumerate() {
        assert_eq!(row["id"], format!("urn:entry:{i}"));
        assert_eq!(row["title"], format!("entry {i}"));
        // 00:00 at +01:00 is 23:00 UTC the day before.
        let hour = (23 + i) % 24;
        let day = if i == 0 { 11 } else { 12 };
        assert_eq!(row["at"], format!("2024-01-{day}T{hour:02}:00:00Z"));
        assert_eq!(row["link"], format!("http://example.com/e/{i}"));
        assert_eq!(row["author"], format!("author {i}"));
    }
    let letters: Vec<Value> = server.query("SELECT * FROM system.dead_letters").await;
    assert!(letters.is_empty(), "{letters:?}");
    assert_eq!(
        int(&server.scalar("SELECT count(*) FROM rss_items").await),
        12
    );
}
