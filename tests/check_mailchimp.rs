//! `audex check` end to end for the Mailchimp destination: the built binary
//! against an in-process Mailchimp simulator.

use std::path::{Path, PathBuf};

mod check_cli;
use check_cli::{line, run_check};

use audex_mailchimp_sim::{SimAudience, SimConfig, SimHandle, Simulator};

const PROFILES: &str = include_str!("fixtures/check/data/profiles.csv");

/// A config checking audience `audience`, the tag `tag`, and `FNAME` plus
/// `extra_field`, with the key `key`.
fn write_config(
    dir: &Path,
    sim: &SimHandle,
    key: &str,
    audience: &str,
    extra_field: &str,
) -> PathBuf {
    let yaml = format!(
        r#"sources:
  crm:
    type: files
    tables:
      profiles: data/profiles.csv
segments:
  everyone:
    source: crm
    table: profiles
destinations:
  mc:
    type: mailchimp
    display_name: Mailchimp simulator
    api_key: {key}
    base_url: {root}
    audience_id: {audience}
    tag: VIP
    data_privacy_consent: true
    export_user: tester
    mapping:
      email: email
      FNAME: first_name
      {extra_field}: city
    exports:
      - segment: everyone
"#,
        root = sim.api_root(),
    );
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    std::fs::write(dir.join("data/profiles.csv"), PROFILES).expect("csv");
    let path = dir.join("audex.yaml");
    std::fs::write(&path, yaml).expect("config");
    path
}

async fn sim() -> SimHandle {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let mut double = SimAudience::new("d0ub1e", "Newsletter");
    double.double_optin = true;
    sim.add_audience(&double).expect("an audience");
    for list in [audex_mailchimp_sim::DEFAULT_AUDIENCE_ID, "d0ub1e"] {
        sim.create_static_segment(list, "VIP", &[]).expect("a tag");
    }
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_and_warns_of_confirmation_emails() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = sim.api_key().to_string();
    let (code, stdout, stderr) =
        run_check(write_config(dir.path(), &sim, &key, "d0ub1e", "LNAME")).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for name in [
        "authenticate",
        "audience d0ub1e",
        "new contacts",
        "tag \"VIP\"",
        "merge fields",
    ] {
        assert!(line(&stdout, name).starts_with("ok "), "{name}: {stdout}");
    }
    let new = line(&stdout, "new contacts");
    assert!(
        new.contains("pending") && new.contains("confirmation email"),
        "{new}"
    );
    assert!(!stdout.contains(&key) && !stderr.contains(&key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_a_missing_audience_and_an_unknown_field_fail_clearly() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = "fedcba9876543210fedcba9876543210-us6";
    let (code, stdout, stderr) =
        run_check(write_config(dir.path(), &sim, wrong, "d0ub1e", "LNAME")).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let auth = line(&stdout, "authenticate");
    assert!(
        auth.starts_with("FAILED") && auth.contains("API key"),
        "{auth}"
    );
    assert!(!stdout.contains(wrong) && !stderr.contains(wrong));

    let key = sim.api_key().to_string();
    let (code, stdout, _) =
        run_check(write_config(dir.path(), &sim, &key, "n0such", "LNAME")).await;
    assert_eq!(code, 1, "{stdout}");
    let audience = line(&stdout, "audience n0such");
    assert!(
        audience.starts_with("FAILED") && audience.contains("n0such"),
        "{audience}"
    );

    let (code, stdout, _) = run_check(write_config(dir.path(), &sim, &key, "d0ub1e", "CITY")).await;
    assert_eq!(code, 1, "{stdout}");
    let fields = line(&stdout, "merge fields");
    assert!(
        fields.starts_with("FAILED") && fields.contains("CITY"),
        "{fields}"
    );
}
