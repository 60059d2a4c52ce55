//! `audex segments` end to end: the built binary over real files, the preview
//! a user reads before exporting (columns, row counts, clear errors).

use assert_cmd::Command;
use serde_json::Value;

const CONFIG: &str = r#"
sources:
  crm:
    type: files
    tables:
      profiles: data/profiles.csv
      events: data/events.ndjson
      gone: data/missing.parquet
segments:
  everyone:
    source: crm
    table: profiles
  big_spenders:
    source: crm
    query: |
      SELECT p.email, p.first_name, SUM(e.amount) AS spent
      FROM profiles p JOIN events e ON e.customer_id = p.customer_id
      GROUP BY p.email, p.first_name
      HAVING SUM(e.amount) > 100
  broken_sql:
    source: crm
    query: SELEC email FROM profiles
  no_file:
    source: crm
    table: gone
destinations: {}
"#;

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("data");
    // A BOM, a quoted comma, a quoted newline and an empty line, as exports have them.
    std::fs::write(
        dir.path().join("data/profiles.csv"),
        "\u{feff}customer_id,email,first_name\n\
         1,a@example.com,\"Smith, Ann\"\n\
         2,b@example.com,\"Bo\nBo\"\n\
         \n\
         3,c@example.com,\n\
         4,d@example.com\n",
    )
    .expect("csv");
    std::fs::write(
        dir.path().join("data/events.ndjson"),
        "{\"customer_id\":1,\"amount\":90}\n{\"customer_id\":1,\"amount\":20}\n{\"customer_id\":2,\"amount\":50}\n",
    )
    .expect("ndjson");
    std::fs::write(dir.path().join("audex.yaml"), CONFIG).expect("config");
    dir
}

fn segments(dir: &tempfile::TempDir, json: bool) -> (i32, String) {
    let mut cmd = Command::cargo_bin("audex").expect("audex");
    cmd.arg("segments")
        .arg("-c")
        .arg(dir.path().join("audex.yaml"))
        .env_remove("AUDEX_CONFIG");
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = cmd.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn by_name<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .find(|s| s["segment"] == name)
        .unwrap_or_else(|| panic!("segment {name} in {report}"))
}

#[test]
fn columns_row_counts_and_per_segment_errors() {
    let dir = workspace();
    let (code, out) = segments(&dir, true);
    // A segment that cannot be read makes the command fail, after showing all.
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).expect("json");

    let everyone = by_name(&report, "everyone");
    // The short last row (no first_name field at all) is set aside as
    // unreadable, not counted and not an error.
    assert_eq!(everyone["rows"], 3, "{everyone}");
    let columns: Vec<&str> = everyone["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["customer_id", "email", "first_name"]);

    let big = by_name(&report, "big_spenders");
    assert_eq!(big["rows"], 1, "{big}");
    assert!(big["error"].is_null(), "{big}");

    let broken = &by_name(&report, "broken_sql")["error"];
    assert!(
        broken["message"]
            .as_str()
            .expect("message")
            .contains("SELEC"),
        "{broken}"
    );
    let missing = &by_name(&report, "no_file")["error"];
    assert!(
        missing["message"]
            .as_str()
            .expect("message")
            .contains("missing.parquet"),
        "{missing}"
    );
}

#[test]
fn the_text_preview_shows_counts_and_errors() {
    let dir = workspace();
    let (code, out) = segments(&dir, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("everyone  (source crm, table profiles)"),
        "{out}"
    );
    assert!(out.contains("rows: 3"), "{out}");
    assert!(out.contains("error ["), "{out}");
}
