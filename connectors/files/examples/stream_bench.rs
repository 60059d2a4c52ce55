//! Stream a generated segment from Parquet, CSV and PostgreSQL and report
//! rows per second and peak memory. A benchmark, not a test:
//!
//! ```text
//! cargo run --release -p audex-files --example stream_bench -- [ROWS] [parquet,csv,postgres]
//! ```
//!
//! Data: `audex-datagen` profiles (seed 1, 2% bad rows, 1% duplicates)
//! written to a temporary folder and, for PostgreSQL, copied into a table on
//! `AUDEX_TEST_DATABASE_URL` or a throwaway local server. Peak memory is the
//! process's VmHWM, reset (via /proc/self/clear_refs) before each source so
//! each figure is that source's own peak.

use std::sync::Arc;
use std::time::Instant;

use audex_core::{BuildContext, SegmentQuery, SegmentSource};
use futures::StreamExt;

fn vm_hwm_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn reset_hwm() {
    // "5" resets the peak RSS (Linux >= 4.0); harmless if refused.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn build(block: serde_json::Value, base: &std::path::Path) -> Arc<dyn SegmentSource> {
    let ty = block["type"].as_str().unwrap_or_default().to_string();
    let plugin = audex_core::registry::source(&ty).expect("plugin registered");
    let cfg = (plugin.parse)(block).expect("config parses");
    cfg.build(&BuildContext {
        base_dir: base.to_path_buf(),
    })
    .expect("source builds")
}

async fn measure(name: &str, src: &dyn SegmentSource, q: &SegmentQuery) {
    reset_hwm();
    let before = vm_hwm_mb().unwrap_or(0.0);
    let start = Instant::now();
    let mut stream = src.stream(q).await.expect("stream starts");
    let (mut rows, mut bytes) = (0u64, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("batch");
        rows += batch.num_rows() as u64;
        bytes += batch.get_array_memory_size();
    }
    let secs = start.elapsed().as_secs_f64();
    let peak = vm_hwm_mb().unwrap_or(0.0);
    println!(
        "{name:<9} {rows:>9} rows  {secs:>6.2} s  {:>10.0} rows/s  peak RSS {peak:>6.0} MB (at start {before:.0} MB)  arrow data {:.0} MB total",
        rows as f64 / secs,
        bytes as f64 / 1e6,
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let which = args
        .next()
        .unwrap_or_else(|| "parquet,csv,postgres".to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let options = audex_datagen::Options {
        rows,
        seed: 1,
        bad_share: 0.02,
        duplicate_share: 0.01,
    };
    let t = Instant::now();
    let csv = dir.path().join("profiles.csv");
    audex_datagen::write_csv(&csv, &options).expect("csv");
    audex_datagen::write_parquet(&dir.path().join("profiles.parquet"), &options).expect("parquet");
    eprintln!(
        "generated {rows} profiles in {:.1} s (csv {} MB, parquet {} MB)",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&csv)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0),
        std::fs::metadata(dir.path().join("profiles.parquet"))
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0),
    );
    let q = SegmentQuery::Table("profiles".into());
    for name in which.split(',') {
        match name {
            "parquet" | "csv" => {
                let file = format!("profiles.{name}");
                let src = build(
                    serde_json::json!({"type": "files", "tables": {"profiles": file}}),
                    dir.path(),
                );
                measure(name, src.as_ref(), &q).await;
            }
            "postgres" => {
                let url = audex_postgres::testing::test_database_url();
                let t = Instant::now();
                audex_postgres::testing::load_csv(
                    &url,
                    "profiles",
                    audex_postgres::testing::PROFILES_DDL,
                    &csv,
                )
                .await
                .expect("load into postgres");
                eprintln!(
                    "loaded into PostgreSQL in {:.1} s",
                    t.elapsed().as_secs_f64()
                );
                let src = build(
                    serde_json::json!({"type": "postgres", "url": url}),
                    dir.path(),
                );
                measure(name, src.as_ref(), &q).await;
            }
            other => eprintln!("unknown source {other:?} (parquet, csv, postgres)"),
        }
    }
}
