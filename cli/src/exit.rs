//! Exit codes: the contract with scripts and schedulers (docs/configuration.md).

/// The run (or command) did what was asked.
pub const OK: i32 = 0;
/// The run failed, or a check did not pass.
pub const FAILED: i32 = 1;
/// Bad command-line usage (clap's own exit code).
pub const USAGE: i32 = 2;
/// Paused: the daily quota or call budget is spent; a rerun resumes.
pub const PAUSED: i32 = 75;
/// The configuration is invalid.
pub const CONFIG: i32 = 78;

/// The exit code for an error from audex-core or a plugin.
pub fn for_error(e: &audex_core::Error) -> i32 {
    match e.class() {
        audex_core::ErrorClass::Config => CONFIG,
        audex_core::ErrorClass::QuotaExhausted => PAUSED,
        _ => FAILED,
    }
}
