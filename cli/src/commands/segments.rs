//! `audex segments`: each segment with its source, its columns and its row
//! count — the preview a user wants before exporting.

use std::collections::BTreeMap;
use std::sync::Arc;

use audex_core::config::Config;
use audex_core::{BuildContext, SegmentQuery, SegmentSource};
use serde::Serialize;

use crate::cli::{ConfigArg, Output};
use crate::exit;

#[derive(Debug, Serialize)]
struct ColumnInfo {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

#[derive(Debug, Serialize)]
struct ErrorInfo {
    class: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
struct SegmentInfo {
    segment: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    columns: Vec<ColumnInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorInfo>,
}

#[derive(Debug, Serialize)]
struct Report {
    segments: Vec<SegmentInfo>,
}

pub fn run(config: &ConfigArg, output: Output) -> i32 {
    let cfg = match super::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = runtime.block_on(inspect(&cfg));
    let failed = report.segments.iter().any(|s| s.error.is_some());
    match output {
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("audex: {e}");
                return exit::FAILED;
            }
        },
        Output::Text => print_text(&report),
    }
    if failed {
        exit::FAILED
    } else {
        exit::OK
    }
}

async fn inspect(cfg: &Config) -> Report {
    let ctx = BuildContext {
        base_dir: cfg.base_dir.clone(),
    };
    // One built source per name: a files source registers its tables once
    // for all the segments that use it.
    let mut built: BTreeMap<&str, audex_core::Result<Arc<dyn SegmentSource>>> = BTreeMap::new();
    let mut segments = Vec::new();
    for (name, seg) in &cfg.segments {
        let (table, query) = match &seg.query {
            SegmentQuery::Table(t) => (Some(t.clone()), None),
            SegmentQuery::Sql(q) => (None, Some(q.clone())),
        };
        let mut info = SegmentInfo {
            segment: name.clone(),
            source: seg.source.clone(),
            table,
            query,
            columns: Vec::new(),
            rows: None,
            error: None,
        };
        let source = built.entry(seg.source.as_str()).or_insert_with(|| {
            match cfg.sources.get(&seg.source) {
                Some(sc) => sc.build(&ctx),
                None => Err(audex_core::Error::new(
                    audex_core::ErrorClass::Config,
                    format!("unknown source `{}`", seg.source),
                )),
            }
        });
        let result = match source {
            Ok(src) => describe(src.as_ref(), &seg.query).await,
            Err(e) => Err(audex_core::Error::new(e.class(), e.message().to_string())),
        };
        match result {
            Ok((columns, rows)) => {
                info.columns = columns;
                info.rows = Some(rows);
            }
            Err(e) => {
                info.error = Some(ErrorInfo {
                    class: e.class().to_string(),
                    message: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                })
            }
        }
        segments.push(info);
    }
    Report { segments }
}

async fn describe(
    src: &dyn SegmentSource,
    query: &SegmentQuery,
) -> audex_core::Result<(Vec<ColumnInfo>, u64)> {
    let schema = src.schema(query).await?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    let rows = src.count(query).await?;
    Ok((columns, rows))
}

fn print_text(report: &Report) {
    if report.segments.is_empty() {
        println!("no segments are configured");
        return;
    }
    for (i, s) in report.segments.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let what = match (&s.table, &s.query) {
            (Some(t), _) => format!("table {t}"),
            (_, Some(q)) => format!("query: {}", one_line(q)),
            _ => String::new(),
        };
        println!("{}  (source {}, {what})", s.segment, s.source);
        match (&s.error, s.rows) {
            (Some(e), _) => {
                println!("  error [{}]: {}", e.class, e.message);
                if let Some(h) = &e.hint {
                    println!("  hint: {h}");
                }
            }
            (None, Some(rows)) => {
                println!("  rows: {}", thousands(rows));
                let width = s.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
                println!("  columns:");
                for c in &s.columns {
                    println!("    {:width$}  {}", c.name, c.data_type);
                }
            }
            (None, None) => {}
        }
    }
}

fn one_line(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn queries_print_on_one_line() {
        assert_eq!(
            one_line("SELECT *\n  FROM p\n WHERE x > 1"),
            "SELECT * FROM p WHERE x > 1"
        );
    }
}
