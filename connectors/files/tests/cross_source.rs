//! The same segment query gives the same members from a CSV file, a Parquet
//! file and a PostgreSQL table holding the same generated profiles.

use std::collections::BTreeSet;
use std::sync::Arc;

use audex_core::{BuildContext, SegmentQuery, SegmentSource};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use futures::StreamExt;

// Link the plugins so their inventory registrations are kept.
use audex_files as _;
use audex_postgres as _;

fn build(block: serde_json::Value, base: &std::path::Path) -> Arc<dyn SegmentSource> {
    let ty = block["type"].as_str().expect("type").to_string();
    let plugin = audex_core::registry::source(&ty).expect("registered");
    let cfg = (plugin.parse)(block).expect("parses");
    cfg.build(&BuildContext {
        base_dir: base.to_path_buf(),
    })
    .expect("builds")
}

/// (customer_id, email) pairs; an empty email and a missing one are the
/// same thing to a destination.
async fn members(src: &dyn SegmentSource, q: &SegmentQuery) -> BTreeSet<(String, String)> {
    let mut s = src.stream(q).await.expect("stream");
    let mut out = BTreeSet::new();
    while let Some(b) = s.next().await {
        let Some(b) = b.expect("batch").into_rows() else {
            continue;
        };
        let id = cast(
            b.column_by_name("customer_id").expect("id"),
            &DataType::Utf8,
        )
        .expect("cast");
        let email = cast(b.column_by_name("email").expect("email"), &DataType::Utf8).expect("cast");
        let (id, email) = (id.as_string::<i32>(), email.as_string::<i32>());
        for r in 0..b.num_rows() {
            let e = if email.is_null(r) { "" } else { email.value(r) };
            out.insert((id.value(r).to_string(), e.to_string()));
        }
    }
    out
}

#[tokio::test]
async fn csv_parquet_and_postgres_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = audex_datagen::Options {
        rows: 4000,
        seed: 2026,
        bad_share: 0.05,
        duplicate_share: 0.02,
    };
    let csv = dir.path().join("profiles.csv");
    let summary = audex_datagen::write_csv(&csv, &opts).expect("csv");
    audex_datagen::write_parquet(&dir.path().join("profiles.parquet"), &opts).expect("parquet");

    let url = audex_pg_testkit::test_database_url();
    let loaded =
        audex_pg_testkit::load_csv(&url, "cross_profiles", audex_pg_testkit::PROFILES_DDL, &csv)
            .await
            .expect("load");
    assert_eq!(loaded, 4000);

    let from_csv = build(
        serde_json::json!({"type": "files", "tables": {"profiles": "profiles.csv"}}),
        dir.path(),
    );
    let from_parquet = build(
        serde_json::json!({"type": "files", "tables": {"profiles": "profiles.parquet"}}),
        dir.path(),
    );
    let from_pg = build(
        serde_json::json!({"type": "postgres", "url": url}),
        dir.path(),
    );

    let files_q = SegmentQuery::Sql(
        "SELECT customer_id, email FROM profiles \
         WHERE lifetime_value > 1000 AND is_subscriber AND country <> 'Canada'"
            .into(),
    );
    let pg_q = SegmentQuery::Sql(
        "SELECT customer_id, email FROM cross_profiles \
         WHERE lifetime_value > 1000 AND is_subscriber AND country <> 'Canada'"
            .into(),
    );
    let a = members(from_csv.as_ref(), &files_q).await;
    let b = members(from_parquet.as_ref(), &files_q).await;
    let c = members(from_pg.as_ref(), &pg_q).await;
    assert!(a.len() > 500, "a real segment: {}", a.len());
    assert!(a.len() < summary.high_value as usize);
    assert_eq!(a, b, "CSV and Parquet differ");
    assert_eq!(a, c, "files and PostgreSQL differ");

    for (src, q) in [
        (&from_csv, &files_q),
        (&from_parquet, &files_q),
        (&from_pg, &pg_q),
    ] {
        assert_eq!(src.count(q).await.expect("count"), a.len() as u64);
    }
}
