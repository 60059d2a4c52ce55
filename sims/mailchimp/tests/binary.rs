//! The `audex-mailchimp-sim` binary: prints its base URL, serves, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const KEY: &str = "ffffffffffffffffffffffffffffffff-us9";

#[tokio::test]
async fn binary_prints_its_url_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_audex-mailchimp-sim"))
        .args([
            "--port",
            "0",
            "--max-concurrency",
            "3",
            "--fake-domains",
            "example.org",
        ])
        .env("AUDEX_SIM_MAILCHIMP_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read line");
    let base = line.trim().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = reqwest::Client::new();
    let ping = http
        .get(format!("{base}/3.0/ping"))
        .basic_auth("any", Some(KEY))
        .send()
        .await
        .expect("send");
    assert_eq!(ping.status(), 200);
    let default_key = http
        .get(format!("{base}/3.0/ping"))
        .basic_auth("any", Some(audex_mailchimp_sim::DEFAULT_API_KEY))
        .send()
        .await
        .expect("send");
    assert_eq!(
        default_key.status(),
        401,
        "--api-key from the environment replaced the default"
    );
    let fake: Value = http
        .post(format!("{base}/3.0/lists/{}", audex_mailchimp_sim::DEFAULT_AUDIENCE_ID))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"members": [{"email_address": "a@example.org", "status": "subscribed"}]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(fake["error_count"], 1, "--fake-domains applied: {fake}");
    let c: Value = http
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(c["total_calls"], 3);
    assert_eq!(c["statuses"]["401"], 1);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("join");
    assert!(exit.expect("exited after SIGTERM").success());
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        vec!["--port", "0", "--time-scale", "0"],
        vec!["--port", "0", "--fault-kinds", "gremlins"],
        vec!["--port", "0", "--fault-rate", "2"],
        vec!["--port", "0", "--api-key", "not-a-key"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_audex-mailchimp-sim"))
            .args(&args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains(audex_mailchimp_sim::DEFAULT_API_KEY), "{err}");
    }
}
