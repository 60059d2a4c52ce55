//! The PostgreSQL source against a real server (a throwaway one started by
//! `audex_pg_testkit`, or AUDEX_TEST_DATABASE_URL).

use std::sync::Arc;

use audex_core::{BuildContext, ErrorClass, SegmentQuery, SegmentSource};
use audex_pg_testkit::test_database_url;
// Linked for its `inventory` registration: the tests reach the source
// through the registry only.
use audex_postgres as _;
use datafusion_free::*;
use futures::StreamExt;

/// Helpers that read Arrow arrays without DataFusion (this crate does not
/// depend on it).
mod datafusion_free {
    pub use arrow_array::cast::AsArray;
    pub use arrow_array::types::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};
    pub use arrow_array::{Array, RecordBatch};
    pub use arrow_schema::{DataType, TimeUnit};
}

fn source(extra: serde_json::Value) -> Arc<dyn SegmentSource> {
    let mut block = serde_json::json!({"type": "postgres", "url": test_database_url()});
    if let (Some(b), Some(e)) = (block.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let plugin = audex_core::registry::source("postgres").expect("registered");
    let cfg = (plugin.parse)(block).expect("parses");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg.build(&BuildContext::default()).expect("builds")
}

async fn exec(sql: &str) {
    let (client, conn) = tokio_postgres::connect(&test_database_url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client.batch_execute(sql).await.expect("setup sql");
}

async fn collect(src: &dyn SegmentSource, q: &SegmentQuery) -> Vec<RecordBatch> {
    let mut s = src.stream(q).await.expect("stream");
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        if let Some(b) = b.expect("batch").into_rows() {
            out.push(b);
        }
    }
    out
}

#[tokio::test]
async fn types_keep_their_meaning() {
    exec(
        "DROP TABLE IF EXISTS typed;
         CREATE TABLE typed (
            id int4, small int2, big int8, amount numeric(10,2), loose numeric,
            ok boolean, born date, seen timestamp, seen_tz timestamptz,
            uid uuid, name varchar(20), code char(3), doc jsonb, note text, ratio float8);
         SET TIME ZONE 'UTC';
         INSERT INTO typed VALUES
           (1, 2, 9000000000, 1234.56, 0.125, true, '2024-02-29', '2024-02-29 13:14:15.123456',
            '2024-02-29 13:14:15+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'Ana', 'abc',
            '{\"a\": 1}', 'x', 0.5),
           (2, NULL, NULL, -0.05, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let src = source(serde_json::json!({}));
    let q = SegmentQuery::Sql("SELECT * FROM typed ORDER BY id;".into());
    let schema = src.schema(&q).await.expect("schema");
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Decimal128(10, 2),
            DataType::Decimal128(38, 10),
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Float64,
        ]
    );
    let batches = collect(src.as_ref(), &q).await;
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.num_rows(), 2);
    assert_eq!(
        b.column(2).as_primitive::<Int64Type>().value(0),
        9_000_000_000
    );
    let amount = b.column(3).as_primitive::<Decimal128Type>();
    assert_eq!(amount.value(0), 123_456);
    assert_eq!(amount.value(1), -5);
    assert_eq!(
        b.column(4).as_primitive::<Decimal128Type>().value(0),
        1_250_000_000
    );
    assert!(b.column(5).as_boolean().value(0));
    // 2024-02-29 is day 19782 after 1970-01-01.
    assert_eq!(b.column(6).as_primitive::<Date32Type>().value(0), 19_782);
    let seen = b
        .column(7)
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    assert_eq!(seen, 1_709_212_455_123_456);
    let seen_tz = b
        .column(8)
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    assert_eq!(
        seen_tz, 1_709_205_255_000_000,
        "13:14:15+02 is 11:14:15 UTC"
    );
    assert_eq!(
        b.column(9).as_string::<i32>().value(0),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
    assert_eq!(b.column(11).as_string::<i32>().value(0), "abc");
    assert_eq!(b.column(12).as_string::<i32>().value(0), "{\"a\": 1}");
    // The second row is all NULL except its id and amount.
    for c in [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] {
        assert!(b.column(c).is_null(1), "column {c}");
    }
}

#[tokio::test]
async fn streams_in_pages_with_the_filter_in_the_database() {
    exec(
        "DROP TABLE IF EXISTS many;
         CREATE TABLE many AS SELECT g AS id, 'user' || g || '@example.com' AS email
         FROM generate_series(1, 20000) g;",
    )
    .await;
    let src = source(serde_json::json!({"fetch_rows": 1000}));
    let all = SegmentQuery::Table("many".into());
    let batches = collect(src.as_ref(), &all).await;
    assert_eq!(batches.len(), 20, "one batch per cursor page");
    assert!(batches.iter().all(|b| b.num_rows() == 1000));
    assert_eq!(src.count(&all).await.expect("count"), 20_000);

    let some = SegmentQuery::Sql("SELECT email FROM many WHERE id % 3 = 0".into());
    assert_eq!(src.count(&some).await.expect("count"), 6_666);
    let n: usize = collect(src.as_ref(), &some)
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(n, 6_666);
}

#[tokio::test]
async fn schema_setting_resolves_tables() {
    exec(
        "CREATE SCHEMA IF NOT EXISTS crm;
         DROP TABLE IF EXISTS crm.people;
         CREATE TABLE crm.people (email text);
         INSERT INTO crm.people VALUES ('a@example.com'), ('b@example.com');",
    )
    .await;
    let src = source(serde_json::json!({"schema": "crm"}));
    assert_eq!(
        src.count(&SegmentQuery::Table("people".into()))
            .await
            .expect("count"),
        2
    );
    let plain = source(serde_json::json!({}));
    assert_eq!(
        plain
            .count(&SegmentQuery::Table("crm.people".into()))
            .await
            .expect("qualified"),
        2
    );

    // The connection test looks the schema up: PostgreSQL itself accepts
    // a search_path naming a schema that does not exist.
    let detail = src.check().await.expect("check passes");
    assert!(detail.starts_with("PostgreSQL "), "{detail}");
    let e = source(serde_json::json!({"schema": "no_such_schema"}))
        .check()
        .await
        .expect_err("a missing schema fails the check");
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert!(
        e.message()
            .contains("schema \"no_such_schema\" does not exist"),
        "{e}"
    );
}

#[tokio::test]
async fn clear_errors() {
    exec("DROP TABLE IF EXISTS shapes; CREATE TABLE shapes (p point); INSERT INTO shapes VALUES ('(1,2)');").await;
    let src = source(serde_json::json!({}));
    src.check().await.expect("reachable");

    let e = src
        .schema(&SegmentQuery::Sql("SELEC 1".into()))
        .await
        .expect_err("syntax");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("syntax error"), "{e}");

    let e = src
        .count(&SegmentQuery::Table("no_such_table".into()))
        .await
        .expect_err("unknown table");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("no_such_table"), "{e}");

    let e = src
        .stream(&SegmentQuery::Table("shapes".into()))
        .await
        .err()
        .ok_or("unsupported type accepted")
        .unwrap_or_else(|m| panic!("{m}"));
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("point"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("p::text")), "{e}");

    // A segment only reads: a writing statement fails and changes nothing.
    let e = src
        .stream(&SegmentQuery::Sql(
            "DELETE FROM shapes RETURNING p::text".into(),
        ))
        .await
        .err()
        .ok_or("delete accepted")
        .unwrap_or_else(|m| panic!("{m}"));
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert_eq!(
        src.count(&SegmentQuery::Table("shapes".into()))
            .await
            .err()
            .map(|e| e.class()),
        Some(ErrorClass::Config),
        "point column still unreadable"
    );
    let left = src
        .count(&SegmentQuery::Sql("SELECT p::text FROM shapes".into()))
        .await
        .expect("count");
    assert_eq!(left, 1, "the row was not deleted");
}

#[tokio::test]
async fn unreachable_database_names_host_and_port_not_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    // Nothing listens on `port` once the listener above is dropped.
    let block = serde_json::json!({
        "type": "postgres",
        "url": format!("postgres://audex:hunter2@127.0.0.1:{port}/crm?connect_timeout=5"),
    });
    let plugin = audex_core::registry::source("postgres").expect("registered");
    let src = (plugin.parse)(block)
        .expect("parses")
        .build(&BuildContext::default())
        .expect("builds");
    let e = src.check().await.expect_err("unreachable");
    let text = format!("{e} {e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn the_refresh_marker_fingerprints_the_data() {
    exec(
        "DROP TABLE IF EXISTS loads;
         CREATE TABLE loads (id int4, loaded_at timestamptz);
         INSERT INTO loads VALUES (1, '2026-05-01 03:00:00+00');",
    )
    .await;
    // Without a marker the source cannot tell: every scheduled time exports.
    assert_eq!(
        source(serde_json::json!({}))
            .fingerprint()
            .await
            .expect("fp"),
        None
    );

    let marked = source(serde_json::json!({
        "refresh_marker": "SELECT max(id), max(loaded_at) FROM loads"
    }));
    let first = marked.fingerprint().await.expect("fp").expect("some");
    assert_eq!(
        marked.fingerprint().await.expect("fp").as_deref(),
        Some(first.as_str())
    );
    exec("INSERT INTO loads VALUES (2, '2026-05-02 03:00:00+00');").await;
    let second = marked.fingerprint().await.expect("fp").expect("some");
    assert_ne!(second, first);

    // The marker runs read-only: it cannot change the data it watches.
    let writer = source(serde_json::json!({
        "refresh_marker": "DELETE FROM loads RETURNING id"
    }));
    let err = writer.fingerprint().await.expect_err("read-only");
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert_eq!(
        marked.fingerprint().await.expect("fp").as_deref(),
        Some(second.as_str())
    );
}

#[tokio::test]
async fn rows_with_values_that_cannot_be_read_are_set_aside() {
    // 600 rows over pages of 64; row 100 holds a 2 MB note, row 200 a NaN
    // amount, row 300 an infinite date, row 400 a number too long for
    // numeric(10,2)'s decimal (only in an unconstrained column).
    exec(
        "DROP TABLE IF EXISTS dirty;
         CREATE TABLE dirty (id int4, email text, note text, amount numeric(10,2), loose numeric, born date);
         INSERT INTO dirty
         SELECT i, 'p' || i || '@example.com',
                CASE WHEN i = 100 THEN repeat('x', 2 * 1024 * 1024) ELSE 'n' || i END,
                CASE WHEN i = 200 THEN 'NaN'::numeric ELSE i END,
                CASE WHEN i = 400 THEN 1e40 ELSE i END,
                CASE WHEN i = 300 THEN 'infinity'::date ELSE DATE '2000-01-01' END
         FROM generate_series(1, 600) AS i;",
    )
    .await;
    let src = source(serde_json::json!({"fetch_rows": 64}));
    let q = SegmentQuery::Sql("SELECT * FROM dirty ORDER BY id".into());
    let mut stream = src.stream(&q).await.expect("stream");
    let (mut ids, mut bad) = (Vec::new(), Vec::new());
    while let Some(item) = stream.next().await {
        match item.expect("item") {
            audex_core::SourceItem::Rows(b) => {
                let col = b.column(0).as_primitive::<Int64Type>();
                ids.extend(col.iter().flatten());
            }
            audex_core::SourceItem::Unreadable(r) => bad.push(r),
        }
    }
    assert_eq!(ids.len(), 596);
    assert!(!ids.contains(&100) && !ids.contains(&400), "{ids:?}");
    let got: Vec<_> = bad
        .iter()
        .map(|r| (r.line, r.code, r.column.as_deref(), r.value("email")))
        .collect();
    assert_eq!(
        got,
        [
            (
                Some(100),
                audex_core::unreadable::VALUE_TOO_LARGE,
                Some("note"),
                Some("p100@example.com")
            ),
            (
                Some(200),
                audex_core::unreadable::UNCASTABLE,
                Some("amount"),
                Some("p200@example.com")
            ),
            (
                Some(300),
                audex_core::unreadable::UNCASTABLE,
                Some("born"),
                Some("p300@example.com")
            ),
            (
                Some(400),
                audex_core::unreadable::UNCASTABLE,
                Some("loose"),
                Some("p400@example.com")
            ),
        ]
    );
    assert!(bad.iter().all(|r| r.table == "query" && r.file.is_none()));
    assert!(
        bad[0].reason.contains("max_value_bytes"),
        "{}",
        bad[0].reason
    );

    // A larger cap lets the note through.
    let roomy = source(serde_json::json!({"max_value_bytes": 4 << 20}));
    let mut stream = roomy
        .stream(&SegmentQuery::Table("dirty".into()))
        .await
        .expect("stream");
    let mut set_aside = Vec::new();
    while let Some(item) = stream.next().await {
        if let audex_core::SourceItem::Unreadable(r) = item.expect("item") {
            set_aside.push((r.table, r.line));
        }
    }
    assert_eq!(set_aside.len(), 3, "{set_aside:?}");
    assert!(set_aside.iter().all(|(t, _)| t == "dirty"));
}
