//! Views against their own definition: after every commit of a random sequence of
//! inserts, updates and deletes, each view equals its query run ad hoc on the table, and
//! its change stream replayed equals the view.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use proptest::prelude::*;

use crate::ingress::{PushFormat, UpdateFormat};
use crate::pipeline::SourceFile;
use crate::view::delta::Weighted;
use crate::{Engine, EngineOptions};

/// The pipeline: a keyed and an append-only table, and views of every kind over both.
const PIPELINE: &str = "
CREATE TABLE k (id BIGINT, g TEXT, x BIGINT, f DOUBLE, d DECIMAL(10,2), PRIMARY KEY (id));
CREATE TABLE a (id BIGINT, g TEXT, x BIGINT, f DOUBLE, d DECIMAL(10,2));
";

/// (name, query) of every view; each is checked against `SELECT * FROM (query)`.
const VIEWS: &[(&str, &str)] = &[
    (
        "k_filter",
        "SELECT id, g, x FROM k WHERE x > 3 AND g <> 'c'",
    ),
    (
        "k_project",
        "SELECT id, x * 2 + 1 AS y, upper(g) AS big, CASE WHEN x IS NULL THEN 'none' ELSE 'some' END AS c, d * 2 AS dd FROM k",
    ),
    (
        "k_group",
        "SELECT g, COUNT(*) AS n, COUNT(x) AS nx, SUM(x) AS s, MIN(x) AS lo, MAX(x) AS hi, AVG(x) AS av, \
         SUM(f) AS sf, AVG(f) AS af, MIN(f) AS lf, SUM(d) AS sd, AVG(d) AS ad, MAX(d) AS hd, MIN(id) AS first \
         FROM k GROUP BY g",
    ),
    (
        "k_having",
        "SELECT g, x > 5 AS big, SUM(x) AS s, COUNT(*) FILTER (WHERE x IS NULL) AS nulls \
         FROM k WHERE id <> 3 GROUP BY g, x > 5 HAVING COUNT(*) > 1",
    ),
    (
        "k_global",
        "SELECT COUNT(*) AS n, SUM(x) AS s, MAX(x) AS m, MIN(g) AS lo FROM k",
    ),
    (
        "k_chain",
        "SELECT g, n * 10 AS n10 FROM k_group WHERE n > 1",
    ),
    (
        "k_chain_group",
        "SELECT n, COUNT(*) AS groups, MAX(hi) AS top FROM k_group GROUP BY n",
    ),
    ("a_filter", "SELECT g, x, f FROM a WHERE x IS NULL OR x < 5"),
    (
        "a_group",
        "SELECT g, COUNT(*) AS n, SUM(x) AS s, MIN(x) AS lo, MAX(x) AS hi, AVG(f) AS af FROM a GROUP BY g",
    ),
    (
        "a_having",
        "SELECT x, COUNT(*) AS n FROM a GROUP BY x HAVING COUNT(*) >= 2 AND MAX(g) > 'a'",
    ),
];

fn pipeline() -> String {
    let mut sql = PIPELINE.to_string();
    for (name, query) in VIEWS {
        sql.push_str(&format!("CREATE VIEW {name} AS {query};\n"));
    }
    sql
}

async fn open(dir: &std::path::Path) -> Arc<Engine> {
    // A dropped engine's committer thread lets go of the store a moment later.
    for _ in 0..100 {
        let opened = Engine::open(
            dir,
            vec![SourceFile {
                path: "views.sql".into(),
                text: pipeline(),
            }],
            |_| None,
            EngineOptions::default(),
        )
        .await;
        match opened {
            Ok(engine) => return engine,
            Err(crate::EngineError::Store(crate::store::StoreError::InUse { .. })) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store stayed in use");
}

/// One row of the tests' tables.
#[derive(Clone, Debug)]
struct Row {
    id: i64,
    g: Option<&'static str>,
    x: Option<i64>,
    f: Option<f64>,
    d: Option<i64>,
}

impl Row {
    fn json(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        format!(
            r#"{{"id": {}, "g": {}, "x": {}, "f": {}, "d": {}}}"#,
            self.id,
            opt(self.g.map(|g| format!("\"{g}\""))),
            opt(self.x.map(|x| x.to_string())),
            opt(self.f.map(|f| f.to_string())),
            opt(self
                .d
                .map(|d| format!("{}.{:02}", d / 100, (d % 100).abs()))),
        )
    }
}

fn row() -> impl Strategy<Value = Row> {
    (
        0i64..8,
        prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c", "d"])),
        prop::option::weighted(0.85, -3i64..10),
        prop::option::weighted(0.8, prop::sample::select(vec![0.5, 1.25, -2.0, 10.0, 0.1])),
        prop::option::weighted(0.8, 0i64..100_000),
    )
        .prop_map(|(id, g, x, f, d)| Row { id, g, x, f, d })
}

/// One push: some inserts and deletes to one of the tables.
#[derive(Clone, Debug)]
struct Push {
    keyed: bool,
    changes: Vec<(bool, Row)>,
}

fn push() -> impl Strategy<Value = Push> {
    (
        any::<bool>(),
        prop::collection::vec((prop::bool::weighted(0.25), row()), 1..5),
    )
        .prop_map(|(keyed, changes)| Push { keyed, changes })
}

/// A batch's rows as sortable text, floats rounded (sums of floats may differ in the last
/// bits from a sum in another order).
fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(|c| {
                if matches!(c.data_type(), DataType::Float64 | DataType::Float32) {
                    let f = arrow::compute::cast(c, &DataType::Float64).unwrap();
                    let f = f
                        .as_any()
                        .downcast_ref::<arrow::array::Float64Array>()
                        .unwrap();
                    (0..f.len())
                        .map(|i| {
                            if f.is_null(i) {
                                "NULL".to_string()
                            } else {
                                format!("{:.6}", f.value(i))
                            }
                        })
                        .collect()
                } else {
                    let formatter = arrow::util::display::ArrayFormatter::try_new(
                        c.as_ref(),
                        &arrow::util::display::FormatOptions::default().with_null("NULL"),
                    )
                    .unwrap();
                    (0..c.len())
                        .map(|i| formatter.value(i).to_string())
                        .collect()
                }
            })
            .collect();
        for i in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| c[i].clone())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out.sort();
    out
}

async fn query(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The view's change stream, replayed: every row with its net count.
fn replayed(engine: &Engine, view: &str) -> Vec<String> {
    let table = engine.table(view).unwrap();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for entry in engine.store.read_log(view, 0).unwrap() {
        let changes = Weighted::from_log(&entry.batch, &table.schema).unwrap();
        let rows = rows_of_unsorted(&changes.batch);
        for (row, w) in rows.into_iter().zip(changes.weights) {
            *counts.entry(row).or_default() += w;
        }
    }
    let mut out = Vec::new();
    for (row, n) in counts {
        assert!(
            n >= 0,
            "view {view}: row {row} deleted more often than inserted"
        );
        for _ in 0..n {
            out.push(row.clone());
        }
    }
    out.sort();
    out
}

fn rows_of_unsorted(batch: &RecordBatch) -> Vec<String> {
    // rows_of sorts; keep the order by rendering one row at a time.
    (0..batch.num_rows())
        .map(|i| rows_of(&[batch.slice(i, 1)]).pop().unwrap())
        .collect()
}

async fn check_views(engine: &Engine, step: &str) {
    for (name, query_text) in VIEWS {
        let stored = rows_of(&query(engine, &format!("SELECT * FROM {name}")).await);
        let expected = rows_of(&query(engine, &format!("SELECT * FROM ({query_text})")).await);
        assert_eq!(stored, expected, "view {name} after {step}");
        assert_eq!(
            replayed(engine, name),
            stored,
            "view {name}: its change stream replayed, after {step}"
        );
    }
}

async fn apply(engine: &Engine, push: &Push) {
    let body: String = push
        .changes
        .iter()
        .map(|(delete, row)| {
            if *delete && push.keyed {
                format!(r#"{{"delete": {{"id": {}}}}}"#, row.id) + "\n"
            } else if *delete {
                format!(r#"{{"delete": {}}}"#, row.json()) + "\n"
            } else {
                format!(r#"{{"insert": {}}}"#, row.json()) + "\n"
            }
        })
        .collect();
    // A delete of a row a table without a key does not hold is refused: that is fine.
    let pushed = engine
        .push(
            if push.keyed { "k" } else { "a" },
            bytes::Bytes::from(body),
            PushFormat::Json { array: false },
            UpdateFormat::InsertDelete,
            true,
        )
        .await;
    match pushed {
        Ok(_) => {}
        Err(crate::ingress::PushError::Record { reason, .. })
            if !push.keyed && reason.contains("not in table") => {}
        Err(e) => panic!("push {push:?}: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("VIEW_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12), ..ProptestConfig::default() })]

    #[test]
    fn views_equal_their_query_after_every_commit(pushes in prop::collection::vec(push(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let engine = open(dir.path()).await;
            check_views(&engine, "opening").await;
            for (i, push) in pushes.iter().enumerate() {
                apply(&engine, push).await;
                check_views(&engine, &format!("push {i} {push:?}")).await;
            }
            // Reopened: the views are rebuilt from the store and keep up from there.
            drop(engine);
            let engine = open(dir.path()).await;
            check_views(&engine, "reopening").await;
            if let Some(push) = pushes.first() {
                apply(&engine, push).await;
                check_views(&engine, "a push after reopening").await;
            }
        });
    }
}
