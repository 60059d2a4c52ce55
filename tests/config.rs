//! End-to-end tests of config loading and the config verbs (`validate`,
//! `schema`, `connectors`), through the real `audex` binary.
//!
//! Each file in `tests/fixtures/invalid/` must fail validation with exit 78
//! and the message pinned in `tests/snapshots/`. A fixture's `# env: K=V`
//! header lines are its whole environment.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

const SECRETS: [&str; 3] = ["Sup3r-Secret-Value", "8675309123", "maria@contoso.com"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace")
        .to_path_buf()
}

fn audex(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::cargo_bin("audex").expect("the audex binary is built");
    cmd.env_clear().current_dir(root()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("audex runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture_env(path: &Path) -> Vec<(String, String)> {
    let body = std::fs::read_to_string(path).expect("fixture is readable");
    body.lines()
        .filter_map(|l| l.strip_prefix("# env: "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn assert_no_secret(output: &Output) {
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    for secret in SECRETS {
        assert!(!all.contains(secret), "{secret:?} printed:\n{all}");
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_pinned_message() {
    let dir = root().join("tests/fixtures/invalid");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 20, "{} fixtures", fixtures.len());
    for path in fixtures {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let rel = format!("tests/fixtures/invalid/{name}.yaml");
        let out = audex(&["validate", "-c", &rel], &fixture_env(&path));
        assert_eq!(out.status.code(), Some(78), "{name}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{name}: {}", text(&out.stdout));
        assert_no_secret(&out);
        insta::assert_snapshot!(name.as_str(), text(&out.stderr));
    }
}

#[test]
fn five_mistakes_are_all_reported_at_once_without_the_secret() {
    let path = root().join("tests/fixtures/invalid/five_mistakes.yaml");
    let out = audex(
        &[
            "validate",
            "-c",
            "tests/fixtures/invalid/five_mistakes.yaml",
        ],
        &fixture_env(&path),
    );
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    for path in [
        "destinations.marketo_prod.endpoint (line 16)",
        "destinations.marketo_prod.data_privacy_consent (line 19)",
        "destinations.marketo_prod.exports.0.segment (line 25)",
        "destinations.marketo_prod.schedule (line 26)",
        "destinations.marketo_sandbox.client_secret (line 32)",
    ] {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
    assert!(stderr.contains("5 configuration errors"), "{stderr}");
    assert_no_secret(&out);

    let json = audex(
        &[
            "validate",
            "-c",
            "tests/fixtures/invalid/five_mistakes.yaml",
            "--output",
            "json",
        ],
        &fixture_env(&path),
    );
    assert_eq!(json.status.code(), Some(78));
    assert_no_secret(&json);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["errors"][0]["path"], "destinations.marketo_prod.endpoint");
    assert_eq!(v["errors"][0]["line"], 16);
}

#[test]
fn quickstart_validates_with_no_environment() {
    let out = audex(&["validate", "-c", "examples/quickstart/audex.yaml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: 1 sources, 2 segments, 2 destinations\n"
    );
}

fn quickstart_with(endpoint: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = std::fs::read_to_string(root().join("examples/quickstart/audex.yaml"))
        .expect("quickstart")
        .replace(
            "endpoint: http://127.0.0.1:8080",
            &format!("endpoint: {endpoint}"),
        );
    std::fs::write(dir.path().join("audex.yaml"), body).expect("write config");
    dir
}

#[test]
fn plain_http_is_allowed_only_for_loopback() {
    let bad = quickstart_with("http://example.com");
    let out = audex(
        &[
            "validate",
            "-c",
            &bad.path().join("audex.yaml").to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("destinations.marketo_quickstart.endpoint (line 35): plain http is allowed only for loopback hosts"),
        "{}",
        text(&out.stderr)
    );
    for ok in [
        "http://127.0.0.1:8080",
        "http://localhost:9000/rest",
        "https://123-ABC-456.mktorest.com/rest",
    ] {
        let dir = quickstart_with(ok);
        let out = audex(
            &[
                "validate",
                "-c",
                &dir.path().join("audex.yaml").to_string_lossy(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{ok}: {}", text(&out.stderr));
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn environment_overrides_set_keys_and_name_their_variable() {
    // AUDEX_CONFIG chooses the file and is not a key.
    let quickstart = root().join("examples/quickstart/audex.yaml");
    let q = quickstart.to_string_lossy().to_string();
    let out = audex(
        &["validate"],
        &env(&[("AUDEX_CONFIG", &q), ("AUDEX_LOG", "debug")]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A number from the environment is read as the number the schema wants.
    let out = audex(
        &["validate", "-c", &q],
        &env(&[(
            "AUDEX_DESTINATIONS__MARKETO_QUICKSTART__MAX_PROFILES",
            "5000",
        )]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // An override is validated like the file, and the error names it.
    let out = audex(
        &["validate", "-c", &q],
        &env(&[
            (
                "AUDEX_DESTINATIONS__MARKETO_QUICKSTART__ENDPOINT",
                "http://example.com",
            ),
            (
                "AUDEX_DESTINATIONS__MARKETO_QUICKSTART__MAPPING__FIRSTNAME",
                "given_name",
            ),
            (
                "AUDEX_DESTINATIONS__MARKETO_QUICKSTART__CLIENT_SECRET",
                "Sup3r-Secret-Value",
            ),
        ]),
    );
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("destinations.marketo_quickstart.endpoint: plain http is allowed only for loopback hosts; use https (value from AUDEX_DESTINATIONS__MARKETO_QUICKSTART__ENDPOINT)"),
        "{stderr}"
    );
    assert_no_secret(&out);

    // Overriding a key inside a single value is an error naming the variable.
    let out = audex(
        &["validate", "-c", &q],
        &env(&[("AUDEX_DESTINATIONS__MARKETO_QUICKSTART__MODE__X", "1")]),
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("cannot apply AUDEX_DESTINATIONS__MARKETO_QUICKSTART__MODE__X"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_a_config_error() {
    let out = audex(&["validate", "-c", "no/such/audex.yaml"], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("cannot read the config file no/such/audex.yaml"));
}

#[test]
fn every_plugin_is_registered() {
    let out = audex(&["connectors", "--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = v.as_array().expect("a list");
    let has = |name: &str, kind: &str| {
        rows.iter()
            .any(|r| r["name"] == name && r["kind"] == kind && r["description"].is_string())
    };
    // Every connector crate of the workspace: the plugin its source code
    // submits is one the binary lists (a crate not linked in the binary
    // would silently disappear).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors");
    let mut crates = 0;
    for dir in std::fs::read_dir(&root).expect("connectors/") {
        let dir = dir.expect("entry").path();
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        crates += 1;
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("src/lib.rs");
        let submitted = lib
            .split("inventory::submit!")
            .nth(1)
            .unwrap_or_else(|| panic!("{} submits no plugin", dir.display()));
        let kind = if submitted.contains("DestinationPlugin") {
            "destination"
        } else {
            "source"
        };
        let name = submitted
            .split("name: \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{}: no plugin name", dir.display()));
        assert!(
            has(name, kind),
            "the {kind} plugin {name} of {} is not in the binary (link the crate in cli/src/main.rs): {v}",
            dir.display()
        );
    }
    assert!(crates >= 3, "found {crates} connector crates");
    let text_out = audex(&["connectors"], &[]);
    assert!(text(&text_out.stdout).contains("marketo"));
}

#[test]
fn connector_schema_marks_the_secret_write_only() {
    let out = audex(&["schema", "marketo"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = &v["properties"]["client_secret"];
    assert_eq!(secret["writeOnly"], true, "{v}");
    assert_eq!(secret["x-secret"], true, "{v}");
    assert_eq!(
        v["additionalProperties"], false,
        "unknown keys must be rejected: {v}"
    );

    let unknown = audex(&["schema", "nosuch"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("marketo"));
}

/// The committed schema (docs/schema/audex.schema.json) is what `audex
/// schema` prints. When stale, this test rewrites it and fails: commit the
/// new file. By hand: `cargo run -q -p audex-cli -- schema > docs/schema/audex.schema.json`.
#[test]
fn committed_document_schema_is_fresh() {
    let out = audex(&["schema"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let fresh = text(&out.stdout);
    let path = root().join("docs/schema/audex.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        std::fs::create_dir_all(path.parent().expect("docs/schema")).expect("mkdir");
        std::fs::write(&path, &fresh).expect("write schema");
        panic!("docs/schema/audex.schema.json was stale and has been regenerated; commit it");
    }
    let v: serde_json::Value = serde_json::from_str(&fresh).expect("json");
    assert!(v["$defs"]["destination.marketo"].is_object());
}

mod no_panic {
    //! Arbitrary values in every number and many strings of a valid config,
    //! in process: validation either refuses them with a config error or
    //! accepts them, and whatever it accepts builds without a panic.

    use std::path::Path;

    use audex_core::config::{Config, Environment};
    use audex_core::BuildContext;
    use proptest::prelude::*;
    use serde_json::{json, Value};
    // Linked for their registrations.
    use audex_files as _;
    use audex_marketo as _;
    use audex_postgres as _;

    fn base() -> Value {
        json!({
            "sources": {
                "crm": {"type": "files", "tables": {"profiles": "data/profiles.csv"}},
                "pg": {"type": "postgres", "url": "postgres://audex@127.0.0.1:1/db", "fetch_rows": 100},
            },
            "segments": {
                "a": {"source": "crm", "table": "profiles"},
                "b": {"source": "pg", "query": "SELECT * FROM profiles"},
            },
            "destinations": {
                "m": {
                    "type": "marketo",
                    "display_name": "M",
                    "endpoint": "http://127.0.0.1:9",
                    "client_id": "id",
                    "client_secret": "secret",
                    "data_privacy_consent": true,
                    "export_user": "ops",
                    "mapping": {"email": "email"},
                    "list_id": 1,
                    "exports": [{"segment": "a"}, {"segment": "b", "list_id": 2, "mode": "append"}],
                    "max_profiles": 10,
                    "schedule": "0 3 * * *",
                    "timezone": "UTC",
                    "mirror_guard": {"max_removal_share": 0.5, "min_removals": 100},
                    "rate_limit": {"calls": 100, "window_secs": 20, "max_concurrency": 10, "daily_call_budget": 50000},
                }
            }
        })
    }

    /// Places a user writes values, as JSON pointers.
    const PLACES: &[&str] = &[
        "/sources/pg/fetch_rows",
        "/sources/pg/url",
        "/sources/crm/tables/profiles",
        "/destinations/m/endpoint",
        "/destinations/m/list_id",
        "/destinations/m/exports/1/list_id",
        "/destinations/m/exports/0/segment",
        "/destinations/m/max_profiles",
        "/destinations/m/schedule",
        "/destinations/m/timezone",
        "/destinations/m/mirror_guard/max_removal_share",
        "/destinations/m/mirror_guard/min_removals",
        "/destinations/m/rate_limit/calls",
        "/destinations/m/rate_limit/window_secs",
        "/destinations/m/rate_limit/max_concurrency",
        "/destinations/m/rate_limit/daily_call_budget",
        "/destinations/m/mapping/email",
        "/destinations/m/mode",
    ];

    fn value() -> impl Strategy<Value = Value> {
        let numbers = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            Just(json!(1e300)),
            Just(json!(-1e300)),
            Just(json!(1e-300)),
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
        ];
        let other = prop_oneof![
            ".{0,40}".prop_map(Value::from),
            Just(json!("")),
            Just(json!(null)),
            Just(json!(true)),
            Just(json!([1, "x"])),
            Just(json!({"k": 1})),
            Just(json!("https://[::1]:99999/rest")),
            Just(json!("60 25 * * *")),
        ];
        prop_oneof![3 => numbers, 2 => other]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn validate_then_build_never_panics(
            changes in proptest::collection::vec((0..PLACES.len(), value()), 1..5)
        ) {
            let mut doc = base();
            for (place, v) in changes {
                if let Some(slot) = doc.pointer_mut(PLACES[place]) {
                    *slot = v;
                }
            }
            // JSON is YAML.
            let text = serde_json::to_string(&doc).expect("json");
            let dir = Path::new(".");
            match Config::from_yaml_str_with(&text, dir, &Environment::empty()) {
                Err(e) => prop_assert!(e.is_config(), "{e}"),
                Ok(config) => {
                    let ctx = BuildContext { base_dir: dir.to_path_buf() };
                    for source in config.sources.values() {
                        let _ = source.build(&ctx);
                    }
                    for destination in config.destinations.values() {
                        let _ = destination.build(&ctx);
                    }
                }
            }
        }
    }
}
