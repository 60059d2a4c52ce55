//! The `audex-marketo-sim` binary: prints its base URL, serves, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[tokio::test]
async fn binary_prints_its_url_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_audex-marketo-sim"))
        .args([
            "--port",
            "0",
            "--time-scale",
            "10",
            "--rate-calls",
            "7",
            "--daily-quota",
            "99",
        ])
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
    let tok: Value = http
        .post(format!("{base}/identity/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
        ])
        .send()
        .await
        .expect("identity")
        .json()
        .await
        .expect("json");
    // TTL 3600 s at time scale 10.
    assert_eq!(tok["expires_in"], 360);
    let token = tok["access_token"].as_str().expect("token");
    let v: Value = http
        .get(format!("{base}/rest/v1/lists/1001.json"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["result"][0]["name"], "Quickstart");
    for _ in 0..7 {
        http.get(format!("{base}/rest/v1/leads/describe.json"))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
    }
    let v: Value = http
        .get(format!("{base}/rest/v1/leads/describe.json"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["errors"][0]["code"], "606", "--rate-calls applied");
    let c: Value = http
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(c["quota_used"], 9);

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
    let out = Command::new(env!("CARGO_BIN_EXE_audex-marketo-sim"))
        .args(["--port", "0", "--time-scale", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("time-scale"));
    let out = Command::new(env!("CARGO_BIN_EXE_audex-marketo-sim"))
        .args(["--fault-kinds", "gremlins"])
        .output()
        .expect("run");
    assert!(!out.status.success());
}
