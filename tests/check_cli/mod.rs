//! `audex check` through the binary, for the check tests of every
//! destination.

use std::path::PathBuf;

use assert_cmd::Command;

/// `audex check -c CONFIG` on a blocking thread, so a simulator in this
/// process keeps serving: exit code, stdout, stderr.
pub async fn run_check(config: PathBuf) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("audex")
            .expect("audex binary")
            .args(["check", "-c"])
            .arg(&config)
            .env_remove("AUDEX_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The check's line for step `name` (`ok name  …` or `FAILED name  …`).
pub fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            let rest = l
                .strip_prefix("ok ")
                .or_else(|| l.strip_prefix("FAILED "))
                .unwrap_or("");
            rest.trim_start().starts_with(&format!("{name}  "))
        })
        .unwrap_or_else(|| panic!("no line for {name:?} in:\n{stdout}"))
}
