//! `audex check` end to end: the built binary against an in-process
//! simulator, with configs that pass and configs that fail for a reason a
//! person can act on.

use std::path::Path;

use assert_cmd::Command;
mod check_cli;
use check_cli::{line, run_check};

use audex_marketo_sim::{SimConfig, SimHandle, Simulator};

const FIXTURE: &str = include_str!("fixtures/check/audex.yaml");
const PROFILES: &str = include_str!("fixtures/check/data/profiles.csv");

struct Case<'a> {
    secret: &'a str,
    list: &'a str,
    field: &'a str,
}

const GOOD: Case<'static> = Case {
    secret: "sim-client-secret",
    list: "1002",
    field: "city",
};

fn write_config(dir: &Path, sim: &SimHandle, case: &Case<'_>) -> std::path::PathBuf {
    let yaml = FIXTURE
        .replace("__ENDPOINT__", &sim.base_url())
        .replace("__SECRET__", case.secret)
        .replace("__LIST__", case.list)
        .replace("__FIELD__", case.field);
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    std::fs::write(dir.join("data/profiles.csv"), PROFILES).expect("csv");
    let path = dir.join("audex.yaml");
    std::fs::write(&path, yaml).expect("config");
    path
}

/// Run `audex check` on a blocking thread, so the simulator keeps serving
/// on this runtime meanwhile.
async fn check(sim: &SimHandle, case: Case<'_>) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), sim, &case);
    run_check(config).await
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_against_the_simulator() {
    let sim = sim().await;
    let (code, stdout, stderr) = check(&sim, GOOD).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for name in [
        "authenticate",
        "list 1001",
        "list 1002",
        "field email",
        "field firstName",
        "field city",
        "consent",
    ] {
        assert!(line(&stdout, name).starts_with("ok "), "{name}: {stdout}");
    }
    // Consent names the destination the user configured.
    let consent = line(&stdout, "consent");
    assert!(
        consent.contains("compliance boundary for Marketo simulator (destination sim)"),
        "{consent}"
    );
    // The source the exports read, once, after the destination.
    assert_eq!(stdout.matches("source crm").count(), 1, "{stdout}");
    let source = line(&stdout, "connect");
    assert!(source.contains("1 table readable: profiles"), "{source}");
    // The files it read, relative to the config's folder.
    assert!(
        source.contains("profiles (1 file: data/profiles.csv)"),
        "{source}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(!stdout.contains("sim-client-secret") && !stderr.contains("sim-client-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_read_fails_the_check() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim, &GOOD);
    std::fs::remove_file(dir.path().join("data/profiles.csv")).expect("remove");
    let (code, stdout, stderr) = run_check(config).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The destination still passes; the source names the missing file.
    assert!(line(&stdout, "authenticate").starts_with("ok "), "{stdout}");
    let source = line(&stdout, "connect");
    assert!(source.starts_with("FAILED"), "{source}");
    assert!(source.contains("profiles.csv"), "{source}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_fails_with_a_clear_reason() {
    let sim = sim().await;
    let (code, stdout, stderr) = check(
        &sim,
        Case {
            secret: "not-the-secret",
            ..GOOD
        },
    )
    .await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let auth = line(&stdout, "authenticate");
    assert!(auth.starts_with("FAILED"), "{auth}");
    assert!(auth.contains("refused the client credentials"), "{auth}");
    assert!(auth.contains("client_secret"), "says what to check: {auth}");
    assert!(line(&stdout, "list 1001").contains("not checked"));
    assert!(!stdout.contains("not-the-secret") && !stderr.contains("not-the-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_list_fails() {
    let sim = sim().await;
    let (code, stdout, _) = check(
        &sim,
        Case {
            list: "4242",
            ..GOOD
        },
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(line(&stdout, "list 1001").starts_with("ok "));
    let missing = line(&stdout, "list 4242");
    assert!(missing.starts_with("FAILED"), "{missing}");
    assert!(missing.contains("no static list with id 4242"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_list_fails() {
    let sim = sim().await;
    let (code, stdout, _) = check(
        &sim,
        Case {
            list: "2001",
            ..GOOD
        },
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    let smart = line(&stdout, "list 2001");
    assert!(
        smart.starts_with("FAILED") && smart.contains("smart list"),
        "{smart}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_field_fails() {
    let sim = sim().await;
    let (code, stdout, _) = check(
        &sim,
        Case {
            field: "favouriteColour",
            ..GOOD
        },
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    let field = line(&stdout, "field favouriteColour");
    assert!(field.starts_with("FAILED"), "{field}");
    assert!(field.contains("no lead field"), "{field}");
    assert!(line(&stdout, "field email").starts_with("ok "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_field_fails() {
    let sim = sim().await;
    let (code, stdout, _) = check(
        &sim,
        Case {
            field: "updatedAt",
            ..GOOD
        },
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    let field = line(&stdout, "field updatedAt");
    assert!(
        field.starts_with("FAILED") && field.contains("read-only"),
        "{field}"
    );
}

#[test]
fn config_errors_exit_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audex.yaml");
    std::fs::write(&path, "destinations:\n  x:\n    type: nope\n").expect("write");
    let out = Command::cargo_bin("audex")
        .expect("audex binary")
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(78));
}
