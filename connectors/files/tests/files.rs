//! The files source against real files written by the tests.

// Record-batch streams have no `Debug`, so `expect_err` is not available on them.
#![allow(clippy::err_expect)]

use std::path::Path;
use std::sync::Arc;

use audex_core::{
    unreadable, BuildContext, ErrorClass, SegmentQuery, SegmentSource, SourceItem, UnreadableRow,
};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;

// Link the plugin so its inventory registration is kept.
use audex_files as _;

fn source(dir: &Path, tables: serde_json::Value) -> Arc<dyn SegmentSource> {
    let block = serde_json::json!({"type": "files", "tables": tables});
    let plugin = audex_core::registry::source("files").expect("files plugin registered");
    let cfg = (plugin.parse)(block).expect("valid config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg.build(&BuildContext {
        base_dir: dir.to_path_buf(),
    })
    .expect("builds")
}

async fn collect(src: &dyn SegmentSource, q: &SegmentQuery) -> Vec<RecordBatch> {
    let mut stream = src.stream(q).await.expect("stream starts");
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        if let Some(b) = b.expect("batch").into_rows() {
            out.push(b);
        }
    }
    out
}

/// The batches and the rows set aside.
async fn items(
    src: &dyn SegmentSource,
    q: &SegmentQuery,
) -> (Vec<RecordBatch>, Vec<UnreadableRow>) {
    let mut stream = src.stream(q).await.expect("stream starts");
    let (mut batches, mut bad) = (Vec::new(), Vec::new());
    while let Some(item) = stream.next().await {
        match item.expect("item") {
            SourceItem::Rows(b) => batches.push(b),
            SourceItem::Unreadable(r) => bad.push(r),
        }
    }
    (batches, bad)
}

/// Every row as `col=value` strings, NULL shown as `∅`.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("∅");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

fn sql(q: &str) -> SegmentQuery {
    SegmentQuery::Sql(q.to_string())
}

#[tokio::test]
async fn csv_as_users_export_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A BOM, a quoted comma, a quoted line break, an empty line, and
    // missing values (an empty email and an empty amount).
    let text = "\u{feff}customer_id,email,first_name,lifetime_value,is_subscriber\n\
                1,ana@example.com,\"Ana, Maria\",1200.50,true\n\
                \n\
                2,,\"Bo\nBo\",,false\n\
                3,cy@example.com,Cy,99.99,\n";
    std::fs::write(dir.path().join("profiles.csv"), text).expect("write");
    let src = source(dir.path(), serde_json::json!({"profiles": "profiles.csv"}));
    src.check().await.expect("check passes");

    let q = SegmentQuery::Table("profiles".into());
    let schema = src.schema(&q).await.expect("schema");
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "email",
            "first_name",
            "lifetime_value",
            "is_subscriber"
        ]
    );
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(4).data_type(), &DataType::Boolean);

    let got = rows(&collect(src.as_ref(), &q).await);
    assert_eq!(
        got,
        vec![
            vec!["1", "ana@example.com", "Ana, Maria", "1200.5", "true"],
            vec!["2", "∅", "Bo\nBo", "∅", "false"],
            vec!["3", "cy@example.com", "Cy", "99.99", "∅"],
        ]
    );
    assert_eq!(src.count(&q).await.expect("count"), 3);

    // The BOM-free name works in SQL too.
    let q = sql("SELECT customer_id FROM profiles WHERE lifetime_value > 1000");
    assert_eq!(rows(&collect(src.as_ref(), &q).await), vec![vec!["1"]]);
    assert_eq!(src.count(&q).await.expect("count"), 1);
}

#[tokio::test]
async fn parquet_keeps_column_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = audex_datagen::Options {
        rows: 5000,
        seed: 11,
        bad_share: 0.0,
        duplicate_share: 0.0,
    };
    let summary =
        audex_datagen::write_parquet(&dir.path().join("p.parquet"), &opts).expect("parquet");
    let src = source(dir.path(), serde_json::json!({"profiles": "p.parquet"}));
    let q = SegmentQuery::Table("profiles".into());
    let schema = src.schema(&q).await.expect("schema");
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let expected: Vec<_> = audex_datagen::schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types, expected,
        "Utf8, Decimal128, Date32, Boolean, Timestamp survive"
    );

    assert_eq!(src.count(&q).await.expect("count"), 5000);
    let batches = collect(src.as_ref(), &q).await;
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 5000);
    assert!(batches.iter().all(|b| b.num_rows() <= 8192));
    for b in &batches {
        assert_eq!(b.schema(), schema, "batches carry the announced schema");
    }

    let high = sql("SELECT email FROM profiles WHERE lifetime_value > 1000");
    assert_eq!(src.count(&high).await.expect("count"), summary.high_value);
}

#[tokio::test]
async fn ndjson_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("people.ndjson"),
        "{\"id\": 1, \"email\": \"a@example.com\", \"vip\": true}\n\
         {\"id\": 2, \"email\": null, \"vip\": false}\n\
         {\"id\": 3, \"vip\": true}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("more.json"), "{\"id\": 4}\n").expect("write");
    let src = source(
        dir.path(),
        serde_json::json!({
            "people": "people.ndjson",
            "more": {"path": "more.json", "format": "json"},
        }),
    );
    let q = sql("SELECT id FROM people WHERE vip ORDER BY id");
    assert_eq!(
        rows(&collect(src.as_ref(), &q).await),
        vec![vec!["1"], vec!["3"]]
    );
    let schema = src
        .schema(&SegmentQuery::Table("people".into()))
        .await
        .expect("schema");
    assert_eq!(
        schema.field_with_name("id").expect("id").data_type(),
        &DataType::Int64
    );
    assert_eq!(
        src.count(&SegmentQuery::Table("more".into()))
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn folders_globs_and_explicit_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).expect("mkdir");
    for (i, rows) in [(0, "1,a\n2,b\n"), (1, "3,c\n")] {
        std::fs::write(
            parts.join(format!("part-{i}.csv")),
            format!("id,name\n{rows}"),
        )
        .expect("write");
    }
    // Markers that must be skipped.
    std::fs::write(parts.join("_SUCCESS"), "").expect("write");
    std::fs::write(dir.path().join("semi.txt"), "id;name\n7;g\n").expect("write");
    let src = source(
        dir.path(),
        serde_json::json!({
            "folder": "parts",
            "globbed": "parts/part-*.csv",
            "semi": {"path": "semi.txt", "format": "csv", "delimiter": ";"},
        }),
    );
    src.check().await.expect("check");
    for t in ["folder", "globbed"] {
        let q = sql(&format!("SELECT id FROM {t} ORDER BY id"));
        assert_eq!(
            rows(&collect(src.as_ref(), &q).await),
            vec![vec!["1"], vec!["2"], vec!["3"]],
            "{t}"
        );
    }
    let q = SegmentQuery::Table("semi".into());
    assert_eq!(rows(&collect(src.as_ref(), &q).await), vec![vec!["7", "g"]]);
}

#[tokio::test]
async fn clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ok.csv"), "id,email\n1,a@example.com\n").expect("write");
    std::fs::write(dir.path().join("broken.parquet"), b"this is not parquet").expect("write");
    let src = source(
        dir.path(),
        serde_json::json!({
            "ok": "ok.csv",
            "gone": "missing/profiles.csv",
            "broken": "broken.parquet",
            "nomatch": "nothing-*.csv",
        }),
    );

    let e = src
        .stream(&SegmentQuery::Table("gone".into()))
        .await
        .err()
        .expect("missing file");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("file not found"), "{e}");
    assert!(e.message().contains("missing/profiles.csv"), "{e}");

    let e = src
        .count(&SegmentQuery::Table("broken".into()))
        .await
        .err()
        .expect("bad parquet");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("broken.parquet"), "{e}");
    assert!(e.message().contains("as parquet"), "{e}");

    let e = src
        .schema(&SegmentQuery::Table("nomatch".into()))
        .await
        .err()
        .expect("no match");
    assert!(e.message().contains("no files match"), "{e}");

    let e = src
        .schema(&SegmentQuery::Table("nope".into()))
        .await
        .err()
        .expect("unknown table");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("unknown table `nope`"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("ok")), "{e}");

    let e = src
        .schema(&sql("SELEC id FROM ok"))
        .await
        .err()
        .expect("syntax error");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("SELEC"), "{e}");

    let e = src
        .schema(&sql("SELECT id FROM elsewhere"))
        .await
        .err()
        .expect("unknown table in SQL");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("elsewhere"), "{e}");

    let e = src
        .schema(&sql("SELECT emial FROM ok"))
        .await
        .err()
        .expect("unknown column");
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.message().contains("emial"), "{e}");

    // A SQL segment over a table that could not load says why.
    let e = src
        .schema(&sql("SELECT * FROM gone"))
        .await
        .err()
        .expect("failed table");
    assert!(e.message().contains("file not found"), "{e}");

    // Segments only read.
    let e = src
        .schema(&sql("CREATE TABLE x AS SELECT 1"))
        .await
        .err()
        .expect("ddl refused");
    assert_eq!(e.class(), ErrorClass::Config);

    // check() reports every table that cannot be read.
    let e = src.check().await.err().expect("check fails");
    assert!(e.message().contains("3 tables"), "{e}");

    // The good table still works.
    let q = SegmentQuery::Table("ok".into());
    let b = collect(src.as_ref(), &q).await;
    let emails = b[0].column(1).as_string::<i32>();
    assert_eq!(emails.value(0), "a@example.com");
    assert_eq!(emails.null_count(), 0);
}

#[test]
fn registered_with_schema_and_example() {
    let plugin = audex_core::registry::source("files").expect("registered");
    let schema = (plugin.schema)();
    let text = serde_json::to_string(&schema).expect("json");
    assert!(text.contains("tables"));
    let example: serde_json::Value =
        serde_saphyr::from_str(plugin.example).expect("example is YAML");
    let cfg = (plugin.parse)(example).expect("example parses");
    assert!(cfg.validate().is_empty());
}

#[tokio::test]
async fn text_columns_read_dirty_values_as_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 10,001 clean numbers, then one that is not: the inferred Int64 column
    // cannot hold it, and that row alone is set aside.
    let mut csv = String::from("email,ltv\n");
    for i in 0..10_001 {
        csv.push_str(&format!("p{i}@example.com,{i}\n"));
    }
    csv.push_str("late@example.com,n/a\n");
    std::fs::write(dir.path().join("p.csv"), &csv).expect("csv");
    let strict = source(dir.path(), serde_json::json!({"p": "p.csv"}));
    let (batches, bad) = items(strict.as_ref(), &SegmentQuery::Table("p".into())).await;
    assert_eq!(rows(&batches).len(), 10_001);
    assert_eq!(bad.len(), 1, "{bad:?}");
    let bad = &bad[0];
    assert_eq!(
        (
            bad.code,
            bad.line,
            bad.column.as_deref(),
            bad.file.as_deref()
        ),
        (
            unreadable::UNCASTABLE,
            Some(10_003),
            Some("ltv"),
            Some("p.csv")
        )
    );
    assert!(bad.reason.contains("text_columns"), "{}", bad.reason);
    assert_eq!(bad.value("email"), Some("late@example.com"));

    let lenient = source(
        dir.path(),
        serde_json::json!({"p": {"path": "p.csv", "text_columns": ["ltv"]}}),
    );
    let schema = lenient
        .schema(&SegmentQuery::Table("p".into()))
        .await
        .expect("schema");
    assert_eq!(
        schema.field_with_name("ltv").expect("ltv").data_type(),
        &DataType::Utf8
    );
    let got = rows(&collect(lenient.as_ref(), &SegmentQuery::Table("p".into())).await);
    assert_eq!(got.len(), 10_002);
    assert_eq!(got[10_001], ["late@example.com", "n/a"]);

    let plugin = audex_core::registry::source("files").expect("files");
    let cfg = (plugin.parse)(serde_json::json!({"type": "files", "tables":
        {"p": {"path": "p.csv", "text_columns": ["nope"]}}}))
    .expect("parses");
    let e = cfg
        .build(&BuildContext {
            base_dir: dir.path().to_path_buf(),
        })
        .expect("builds");
    let e = e
        .schema(&SegmentQuery::Table("p".into()))
        .await
        .err()
        .expect("an unknown text column is an error");
    assert!(e.message().contains("`nope`"), "{e:?}");
}

/// Write `text` at `rel` under `dir`, creating folders.
fn put(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

async fn ids(src: &dyn SegmentSource, table: &str) -> Vec<String> {
    let q = sql(&format!("SELECT id FROM {table} ORDER BY id"));
    rows(&collect(src, &q).await)
        .into_iter()
        .map(|r| r.join(","))
        .collect()
}

/// The issue's layout: one row in each of three files at three depths. A
/// folder and `**` read all three; `*` and `[…]` one folder level.
#[tokio::test]
async fn nested_folders_are_read_as_a_shell_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    put(d, "data/top.csv", "id,email\n1,top@example.com\n");
    put(d, "data/a/p1.csv", "id,email\n2,p1@example.com\n");
    put(d, "data/b/c/p2.csv", "id,email\n3,p2@example.com\n");
    let src = source(
        d,
        serde_json::json!({
            "folder": "data",
            "slash": "data/",
            "globstar": "data/**/*.csv",
            "one_level": "data/*/*.csv",
            "class": "data/[ab]/*.csv",
            "negated": "data/[!a]/*/*.csv",
        }),
    );
    let expected: [(&str, &[&str]); 6] = [
        ("folder", &["1", "2", "3"]),
        ("slash", &["1", "2", "3"]),
        ("globstar", &["1", "2", "3"]),
        ("one_level", &["2"]),
        ("class", &["2"]),
        ("negated", &["3"]),
    ];
    for (table, want) in expected {
        assert_eq!(ids(src.as_ref(), table).await, want, "{table}");
        let n = src
            .count(&SegmentQuery::Table(table.into()))
            .await
            .expect("count");
        assert_eq!(n, want.len() as u64, "{table}");
    }

    // check names the files each table read, relative to the config.
    let line = src.check().await.expect("check");
    assert!(line.starts_with("6 tables readable: "), "{line}");
    assert!(
        line.contains("folder (3 files: data/a/p1.csv, data/b/c/p2.csv, data/top.csv)"),
        "{line}"
    );
    assert!(
        line.contains("globstar (3 files: data/a/p1.csv, data/b/c/p2.csv, data/top.csv)"),
        "{line}"
    );
    assert!(line.contains("one_level (1 file: data/a/p1.csv)"), "{line}");
    assert!(line.contains("negated (1 file: data/b/c/p2.csv)"), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
}

/// Hidden names and `_` markers are not data in a folder, at any depth; a
/// glob follows the shell (wildcards skip hidden names only).
#[tokio::test]
async fn folders_skip_hidden_and_underscore_names_at_any_depth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    put(d, "data/a/p1.csv", "id,email\n1,a@example.com\n");
    put(d, "data/b/p2.csv", "id,email\n2,b@example.com\n");
    // Each of these would add a row (or fail the read) if it were read.
    put(d, "data/_SUCCESS", "");
    put(d, "data/a/_SUCCESS", "");
    put(d, "data/.hidden.csv", "id,email\n90,h@example.com\n");
    put(d, "data/b/.p2.csv.swp", "garbage");
    put(d, "data/.cache/c.csv", "id,email\n91,c@example.com\n");
    put(d, "data/_temporary/0/p.csv", "id,email\n92,t@example.com\n");
    put(d, "data/b/_p0.csv", "id,email\n93,u@example.com\n");
    put(d, "data/b/notes.txt", "not,a,csv,table\n");
    let src = source(
        d,
        serde_json::json!({
            "folder": "data",
            "globstar": "data/**/*.csv",
        }),
    );
    assert_eq!(ids(src.as_ref(), "folder").await, ["1", "2"]);
    assert_eq!(
        ids(src.as_ref(), "globstar").await,
        ["1", "2", "92", "93"],
        "a shell's `**/*.csv` names `_` files but no hidden ones"
    );
    let line = src.check().await.expect("check");
    assert!(
        line.contains("folder (2 files: data/a/p1.csv, data/b/p2.csv)"),
        "{line}"
    );
}

#[tokio::test]
async fn globs_that_name_no_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    put(d, "data/a/p1.csv", "id\n1\n");
    put(d, "data/.h/p.csv", "id\n2\n");
    let src = source(
        d,
        serde_json::json!({
            "nothing": "data/*/*.parquet",
            "hidden_only": "data/*/p.csv",
            "folders": {"path": "data/*/", "format": "csv"},
            "bad": "data/***.csv",
        }),
    );
    for (table, says) in [
        ("nothing", "no files match "),
        ("hidden_only", "no files match "),
        ("folders", "matches 1 folder(s)"),
        ("bad", "invalid glob "),
    ] {
        let e = src
            .count(&SegmentQuery::Table(table.into()))
            .await
            .err()
            .expect("an error");
        assert_eq!(e.class(), ErrorClass::Config, "{table}: {e}");
        assert!(e.message().contains(&format!("table `{table}`")), "{e}");
        assert!(e.message().contains(says), "{table}: {e}");
        assert!(
            e.message().contains(&d.display().to_string()),
            "the path: {e}"
        );
        assert!(e.hint().is_some(), "{table}: {e}");
    }
    let e = src.check().await.err().expect("check fails");
    assert!(e.message().contains("4 tables cannot be read"), "{e}");
}

/// File names with characters that mean something in a glob or a URL are
/// read as the files they are.
#[tokio::test]
async fn odd_file_names_are_read_literally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("config [v2]");
    put(&base, "data/p[1].csv", "id\n1\n");
    put(&base, "data/50% off #2.csv", "id\n2\n");
    put(&base, "data/p1.csv", "id\n3\n");
    let src = source(
        &base,
        serde_json::json!({"folder": "data", "globbed": "data/*.csv", "class": "data/p[1].csv"}),
    );
    assert_eq!(ids(src.as_ref(), "folder").await, ["1", "2", "3"]);
    assert_eq!(ids(src.as_ref(), "globbed").await, ["1", "2", "3"]);
    // As in a shell, `[1]` is a class: it names p1.csv.
    assert_eq!(ids(src.as_ref(), "class").await, ["3"]);
}

#[tokio::test]
async fn check_counts_many_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for day in 1..=5 {
        put(
            d,
            &format!("data/day={day}/part-0.csv"),
            &format!("id\n{day}\n"),
        );
    }
    let src = source(d, serde_json::json!({"profiles": "data"}));
    let line = src.check().await.expect("check");
    assert_eq!(
        line,
        "1 table readable: profiles (5 files: data/day=1/part-0.csv … data/day=5/part-0.csv)"
    );
    assert_eq!(ids(src.as_ref(), "profiles").await.len(), 5);
}

#[tokio::test]
async fn files_that_do_not_agree_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // CSV columns are read by position: another header is an error, not
    // values under the wrong names.
    put(d, "cols/a.csv", "id,email\n1,a@example.com\n");
    put(d, "cols/b/c.csv", "id,name\n2,Bob\n");
    put(d, "order/a.csv", "id,email\n1,a@example.com\n");
    put(d, "order/b.csv", "email,id\nb@example.com,2\n");
    // The same header, with a BOM on one file, agrees.
    put(d, "bom/a.csv", "id,email\n1,a@example.com\n");
    put(d, "bom/b.csv", "\u{feff}id,email\n2,b@example.com\n");
    put(d, "types/a/p.csv", "id,email\n1,a@example.com\n");
    put(d, "types/b/p.csv", "id,email\nx,b@example.com\n");
    put(d, "broken/b/c.parquet", "not parquet");
    let opts = audex_datagen::Options {
        rows: 10,
        seed: 1,
        bad_share: 0.0,
        duplicate_share: 0.0,
    };
    std::fs::create_dir_all(d.join("broken/ok")).expect("mkdir");
    audex_datagen::write_parquet(&d.join("broken/ok/p.parquet"), &opts).expect("parquet");
    let src = source(
        d,
        serde_json::json!({
            "cols": "cols", "order": "order", "bom": "bom", "types": "types", "broken": "broken",
        }),
    );
    let error = |table: &'static str| {
        let src = Arc::clone(&src);
        async move {
            let e = src
                .count(&SegmentQuery::Table(table.into()))
                .await
                .err()
                .expect("an error");
            assert_eq!(e.class(), ErrorClass::Config, "{e}");
            assert!(e.message().contains(&format!("table `{table}`")), "{e}");
            e
        }
    };

    let e = error("cols").await;
    assert!(
        e.message()
            .contains("cols/b/c.csv as csv: it has the columns (id, name)"),
        "{e}"
    );
    assert!(e.message().contains("cols/a.csv has (id, email)"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("same header")), "{e}");

    let e = error("order").await;
    assert!(e.message().contains("(email, id)"), "{e}");

    // Types are inferred over the rows of every file: `x` makes `id` text.
    let types = SegmentQuery::Table("types".into());
    let schema = src.schema(&types).await.expect("schema");
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(rows(&collect(src.as_ref(), &types).await).len(), 2);

    let e = error("broken").await;
    assert!(e.message().contains("broken/b/c.parquet as parquet"), "{e}");

    assert_eq!(ids(src.as_ref(), "bom").await, ["1", "2"]);
}

/// 600 rows: a quoted value spanning two lines (row 50), then invalid UTF-8
/// (100), a NUL (200), a 2 MB value (300), 300 fields (400), two fields
/// (500). Returns the file's bytes.
fn six_hundred_rows_with_five_bad() -> Vec<u8> {
    let mut csv = b"id,email,name\n".to_vec();
    for i in 1..=600u32 {
        let email = format!("p{i}@example.com");
        let line: Vec<u8> = match i {
            50 => format!("{i},{email},\"two\nlines\"").into_bytes(),
            100 => [format!("{i},{email},Ren").as_bytes(), b"\xe9e"].concat(),
            200 => format!("{i},{email},nul\0here").into_bytes(),
            300 => format!("{i},{email},{}", "x".repeat(2 << 20)).into_bytes(),
            400 => format!("{i},{email},{}", vec!["f"; 298].join(",")).into_bytes(),
            500 => format!("{i},{email}").into_bytes(),
            _ => format!("{i},{email},Name{i}").into_bytes(),
        };
        csv.extend_from_slice(&line);
        csv.push(b'\n');
    }
    csv
}

#[tokio::test]
async fn bad_rows_are_set_aside_with_their_line_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).expect("mkdir");
    std::fs::write(d.join("data/p.csv"), six_hundred_rows_with_five_bad()).expect("csv");
    let src = source(d, serde_json::json!({"p": "data/p.csv"}));
    let q = sql("SELECT id, email FROM p WHERE id % 100 = 0 OR id < 3 ORDER BY id");
    let (batches, bad) = items(src.as_ref(), &q).await;
    // Rows 100..500 are set aside before the query sees them.
    assert_eq!(
        rows(&batches),
        [
            ["1", "p1@example.com"],
            ["2", "p2@example.com"],
            ["600", "p600@example.com"]
        ]
    );
    let got: Vec<_> = bad
        .iter()
        .map(|r| (r.line, r.code, r.column.as_deref(), r.value("email")))
        .collect();
    // Line numbers count physical lines: row 50 spans two.
    assert_eq!(
        got,
        [
            (
                Some(102),
                unreadable::INVALID_UTF8,
                Some("name"),
                Some("p100@example.com")
            ),
            (
                Some(202),
                unreadable::NUL_BYTE,
                Some("name"),
                Some("p200@example.com")
            ),
            (
                Some(302),
                unreadable::VALUE_TOO_LARGE,
                Some("name"),
                Some("p300@example.com")
            ),
            (
                Some(402),
                unreadable::COLUMN_COUNT,
                None,
                Some("p400@example.com")
            ),
            (
                Some(502),
                unreadable::COLUMN_COUNT,
                None,
                Some("p500@example.com")
            ),
        ]
    );
    assert!(bad
        .iter()
        .all(|r| r.table == "p" && r.file.as_deref() == Some("data/p.csv")));
    assert!(
        bad[3].reason.contains("300 fields, the header 3"),
        "{}",
        bad[3].reason
    );
    assert!(
        bad[2].reason.contains("max_value_bytes"),
        "{}",
        bad[2].reason
    );
    // The whole table: 595 rows, and its row 50 keeps its line break.
    let all = rows(&collect(src.as_ref(), &SegmentQuery::Table("p".into())).await);
    assert_eq!(all.len(), 595);
    assert_eq!(all[49][2], "two\nlines");

    // A larger cap lets the 2 MB value through.
    let block = serde_json::json!({"type": "files", "max_value_bytes": 4 << 20, "tables": {"p": "data/p.csv"}});
    let plugin = audex_core::registry::source("files").expect("registered");
    let cfg = (plugin.parse)(block).expect("valid config");
    let roomy = cfg
        .build(&BuildContext {
            base_dir: d.to_path_buf(),
        })
        .expect("builds");
    let (batches, bad) = items(roomy.as_ref(), &SegmentQuery::Table("p".into())).await;
    assert_eq!((rows(&batches).len(), bad.len()), (596, 4));
}

#[tokio::test]
async fn ndjson_lines_that_cannot_be_read_are_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Types come from the first 10,000 readable lines; the bad lines follow.
    let mut text = Vec::new();
    for i in 1..=10_050u32 {
        let line: Vec<u8> = match i {
            10_010 => br#"{"id": 10010, "email": "p10010@example.com", "name": "cut"#.to_vec(),
            10_020 => b"[10020, \"p10020@example.com\"]".to_vec(),
            10_030 => format!(r#"{{"id": "thirty", "email": "p{i}@example.com"}}"#).into_bytes(),
            10_040 => format!(r#"{{"id": {i}, "email": "p{i}@example.com", "name": "a\u0000b"}}"#)
                .into_bytes(),
            10_045 => [
                format!(r#"{{"id": {i}, "email": "p{i}@example.com", "name": ""#).as_bytes(),
                &b"\xff"[..],
                b"\"}",
            ]
            .concat(),
            // A number where later lines have text: read as its text.
            _ => format!(r#"{{"id": {i}, "email": "p{i}@example.com", "name": {i}}}"#).into_bytes(),
        };
        text.extend_from_slice(&line);
        text.extend_from_slice(b"\n\n");
    }
    std::fs::write(dir.path().join("p.ndjson"), text).expect("write");
    let src = source(dir.path(), serde_json::json!({"p": "p.ndjson"}));
    let (batches, bad) = items(src.as_ref(), &SegmentQuery::Table("p".into())).await;
    assert_eq!(rows(&batches).len(), 10_045);
    let mut got: Vec<_> = bad.iter().map(|r| (r.line, r.code)).collect();
    // Type faults are found a batch at a time, after the others.
    got.sort();
    // Blank lines count: line n*2-1 holds object n.
    assert_eq!(
        got,
        [
            (Some(20_019), unreadable::MALFORMED),
            (Some(20_039), unreadable::MALFORMED),
            (Some(20_059), unreadable::UNCASTABLE),
            (Some(20_079), unreadable::NUL_BYTE),
            (Some(20_089), unreadable::INVALID_UTF8),
        ]
    );
    // A line whose email can be read carries it, to hold its member.
    let nul = bad
        .iter()
        .find(|r| r.code == unreadable::NUL_BYTE)
        .expect("nul");
    assert_eq!(nul.value("email"), Some("p10040@example.com"));
    let thirty = bad
        .iter()
        .find(|r| r.code == unreadable::UNCASTABLE)
        .expect("uncastable");
    assert_eq!(thirty.value("email"), Some("p10030@example.com"));
}

#[tokio::test]
async fn a_file_that_is_not_csv_at_all_fails_before_anything_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("image.csv"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe",
    )
    .expect("write");
    std::fs::write(d.join("semi.csv"), "id;email;name\n1;a@example.com;Ann\n").expect("write");
    std::fs::write(d.join("broken.csv"), "id,email\n1,a,b,c\n2\n").expect("write");
    let src = source(
        d,
        serde_json::json!({"image": "image.csv", "semi": "semi.csv", "broken": "broken.csv"}),
    );
    let e = src
        .count(&SegmentQuery::Table("image".into()))
        .await
        .err()
        .expect("binary");
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert!(e.message().contains("is it a CSV file?"), "{e}");
    let e = src
        .stream(&SegmentQuery::Table("semi".into()))
        .await
        .err()
        .expect("delimiter");
    assert!(e.message().contains("separate fields with `;`"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("delimiter")), "{e}");
    let e = src
        .stream(&SegmentQuery::Table("broken".into()))
        .await
        .err()
        .expect("no row");
    assert!(
        e.message()
            .contains("no row could be read (line 2: the row has 4 fields, the header 2)"),
        "{e}"
    );
}

/// Write `columns` as a Parquet file.
fn write_parquet(path: &Path, columns: Vec<(&str, datafusion::arrow::array::ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create");
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
        .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[tokio::test]
async fn parquet_values_that_cannot_be_read_set_aside_their_rows() {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // a.parquet declares `id` as Int64; b.parquet has it as text.
    let ids: Vec<i64> = (1..=300).collect();
    let emails: Vec<String> = ids.iter().map(|i| format!("p{i}@example.com")).collect();
    let notes: Vec<String> = ids
        .iter()
        .map(|&i| match i {
            100 => "x".repeat(2 << 20),
            200 => "nul\0here".to_string(),
            _ => format!("n{i}"),
        })
        .collect();
    write_parquet(
        &d.join("t/a.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("email", Arc::new(StringArray::from(emails)) as ArrayRef),
            ("note", Arc::new(StringArray::from(notes)) as ArrayRef),
        ],
    );
    write_parquet(
        &d.join("t/b.parquet"),
        vec![
            (
                "id",
                Arc::new(StringArray::from(vec!["301", "n/a", "303"])) as ArrayRef,
            ),
            (
                "email",
                Arc::new(StringArray::from(vec![
                    "p301@example.com",
                    "p302@example.com",
                    "p303@example.com",
                ])) as ArrayRef,
            ),
        ],
    );
    let src = source(d, serde_json::json!({"t": "t"}));
    let schema = src
        .schema(&SegmentQuery::Table("t".into()))
        .await
        .expect("schema");
    assert_eq!(
        schema.field_with_name("id").expect("id").data_type(),
        &DataType::Int64
    );
    let (batches, bad) = items(src.as_ref(), &sql("SELECT id, note FROM t ORDER BY id")).await;
    let got = rows(&batches);
    assert_eq!(got.len(), 300, "298 of a, 2 of b");
    assert_eq!(got[299], ["303", "∅"]);
    let mut seen: Vec<_> = bad
        .iter()
        .map(|r| {
            (
                r.file.clone().unwrap_or_default(),
                r.line,
                r.code,
                r.value("email").map(String::from),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "t/a.parquet".to_string(),
                Some(100),
                unreadable::VALUE_TOO_LARGE,
                Some("p100@example.com".to_string())
            ),
            (
                "t/a.parquet".to_string(),
                Some(200),
                unreadable::NUL_BYTE,
                Some("p200@example.com".to_string())
            ),
            (
                "t/b.parquet".to_string(),
                Some(2),
                unreadable::UNCASTABLE,
                Some("p302@example.com".to_string())
            ),
        ]
    );

    // A damaged file fails clearly, naming it.
    let bytes = std::fs::read(d.join("t/a.parquet")).expect("read");
    let mut cut = bytes.clone();
    // Keep the footer, damage the data pages.
    for b in cut.iter_mut().skip(8).take(bytes.len() / 2) {
        *b = 0xA5;
    }
    std::fs::write(d.join("t/a.parquet"), cut).expect("write");
    let src = source(d, serde_json::json!({"t": "t"}));
    let mut stream = src
        .stream(&SegmentQuery::Table("t".into()))
        .await
        .expect("starts");
    let mut error = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            error = Some(e);
            break;
        }
    }
    let e = error.expect("a damaged file is an error");
    assert!(e.message().contains("t/a.parquet as parquet"), "{e}");
}
