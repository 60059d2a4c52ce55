//! Stream a generated segment from Parquet, CSV and PostgreSQL through the
//! field mapping and report rows per second and peak memory. A benchmark,
//! not a test:
//!
//! ```text
//! cargo build --release --workspace --bins
//! target/release/audex-stream-bench [ROWS] [parquet,csv,postgres]
//! ```
//!
//! Data: `audex-datagen` profiles (seed 1, 2% bad rows, 1% duplicates)
//! written to a temporary folder and, for PostgreSQL, copied into a table on
//! `AUDEX_TEST_DATABASE_URL` or a throwaway local server. Each source's
//! segment is `table: profiles`, read with `SegmentSource::stream` and mapped
//! batch by batch with the engine's `Mapper` to a Marketo-shaped set of
//! fields (email lookup, names, place, plus a currency, a date and a
//! boolean so every conversion runs). Peak memory is the process's VmHWM,
//! reset (via /proc/self/clear_refs) before each source so each figure is
//! that source's own peak.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use audex_core::{BuildContext, FieldSpec, FieldType, SegmentQuery, SegmentSource};
use futures::StreamExt;

// Link the plugins so their `inventory` registrations are present.
use audex_files as _;
use audex_postgres as _;

/// A memory figure of this process from /proc/self/status, in MB:
/// `VmHWM` (peak RSS) or `VmRSS` (RSS now).
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn reset_hwm() {
    // "5" resets the peak RSS (Linux >= 4.0); harmless if refused.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn build(block: serde_json::Value, base: &Path) -> Arc<dyn SegmentSource> {
    let ty = block["type"].as_str().unwrap_or_default().to_string();
    let plugin = audex_core::registry::source(&ty).expect("plugin registered");
    let cfg = (plugin.parse)(block).expect("config parses");
    cfg.build(&BuildContext {
        base_dir: base.to_path_buf(),
    })
    .expect("source builds")
}

fn field(name: &str, data_type: FieldType, max_length: Option<usize>) -> FieldSpec {
    FieldSpec {
        name: name.to_string(),
        data_type,
        max_length,
        writable: true,
    }
}

/// Marketo's standard person fields plus three custom-looking ones.
fn fields() -> Vec<FieldSpec> {
    vec![
        field("email", FieldType::Email, Some(255)),
        field("firstName", FieldType::String, Some(255)),
        field("lastName", FieldType::String, Some(255)),
        field("city", FieldType::String, Some(255)),
        field("state", FieldType::String, Some(255)),
        field("country", FieldType::String, Some(255)),
        field("lifetimeValue", FieldType::Currency, None),
        field("lastPurchaseDate", FieldType::Date, None),
        field("isSubscriber", FieldType::Boolean, None),
    ]
}

fn mapping() -> BTreeMap<String, String> {
    [
        ("email", "email"),
        ("firstName", "first_name"),
        ("lastName", "last_name"),
        ("city", "city"),
        ("state", "state"),
        ("country", "country"),
        ("lifetimeValue", "lifetime_value"),
        ("lastPurchaseDate", "last_purchase_date"),
        ("isSubscriber", "is_subscriber"),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_string(), c.to_string()))
    .collect()
}

async fn measure(name: &str, src: &dyn SegmentSource, q: &SegmentQuery) {
    reset_hwm();
    let before = status_mb("VmRSS").unwrap_or(0.0);
    let start = Instant::now();
    let schema = src.schema(q).await.expect("schema");
    let mapper =
        audex_core::mapping::Mapper::new(&mapping(), "email", key_rule(), &fields(), &schema)
            .expect("mapping");
    let mut stream = src.stream(q).await.expect("stream starts");
    let (mut rows, mut records, mut rejects) = (0u64, 0u64, 0u64);
    let mut unreadable = 0u64;
    while let Some(item) = stream.next().await {
        let Some(batch) = item.expect("batch").into_rows() else {
            unreadable += 1;
            continue;
        };
        let mapped = mapper.map_batch(&batch, rows);
        rows += batch.num_rows() as u64;
        records += mapped.records.len() as u64;
        rejects += mapped.rejects.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(unreadable, 0, "the generated rows are all readable");
    let peak = status_mb("VmHWM").unwrap_or(0.0);
    println!(
        "{name:<9} {rows:>9} rows ({records} mapped, {rejects} rejected)  {secs:>6.2} s  \
         {:>9.0} rows/s  peak RSS {peak:>4.0} MB (RSS at start {before:.0} MB)",
        rows as f64 / secs,
    );
}

/// A fresh folder under the system's temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("audex-stream-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    let scratch = ScratchDir::new();
    let dir = scratch.0.as_path();
    let options = audex_datagen::Options {
        rows,
        seed: 1,
        bad_share: 0.02,
        duplicate_share: 0.01,
    };
    let t = Instant::now();
    let csv = dir.join("profiles.csv");
    let parquet = dir.join("profiles.parquet");
    audex_datagen::write_csv(&csv, &options).expect("csv");
    audex_datagen::write_parquet(&parquet, &options).expect("parquet");
    let size_mb = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    };
    eprintln!(
        "generated {rows} profiles in {:.1} s (csv {} MB, parquet {} MB)",
        t.elapsed().as_secs_f64(),
        size_mb(&csv),
        size_mb(&parquet),
    );
    let q = SegmentQuery::Table("profiles".into());
    for name in which.split(',') {
        match name {
            "parquet" | "csv" => {
                let file = format!("profiles.{name}");
                let src = build(
                    serde_json::json!({"type": "files", "tables": {"profiles": file}}),
                    dir,
                );
                measure(name, src.as_ref(), &q).await;
            }
            "postgres" => {
                let url = audex_pg_testkit::test_database_url();
                let t = Instant::now();
                audex_pg_testkit::load_csv(&url, "profiles", audex_pg_testkit::PROFILES_DDL, &csv)
                    .await
                    .expect("load into postgres");
                eprintln!(
                    "loaded into PostgreSQL in {:.1} s",
                    t.elapsed().as_secs_f64()
                );
                let src = build(serde_json::json!({"type": "postgres", "url": url}), dir);
                measure(name, src.as_ref(), &q).await;
            }
            other => eprintln!("unknown source {other:?} (parquet, csv, postgres)"),
        }
    }
}

/// The key rule the Marketo destination declares (ASCII-only email).
fn key_rule() -> std::sync::Arc<dyn audex_core::KeyRule> {
    std::sync::Arc::new(audex_core::EmailKey::new().ascii_only("ASCII only"))
}
