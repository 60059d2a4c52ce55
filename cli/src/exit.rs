//! Exit codes: the contract with scripts and schedulers (docs/configuration.md).

/// The run (or command) did what was asked.
pub const OK: i32 = 0;
/// The run failed, or a check did not pass.
pub const FAILED: i32 = 1;
/// Bad command-line usage (clap's own exit code).
pub const USAGE: i32 = 2;
/// Try again later (sysexits' EX_TEMPFAIL): paused because the daily quota
/// or call budget is spent (a rerun resumes), or not started because
/// another process holds the destination's lock.
pub const PAUSED: i32 = 75;
/// `audex run` refused because another process holds the destination's
/// lock: the same "try again later" code as a pause.
pub const LOCKED: i32 = PAUSED;
/// The configuration is invalid.
pub const CONFIG: i32 = 78;
/// `audex run` stopped by SIGINT/SIGTERM after checkpointing (128 + SIGINT),
/// and any verb quitting at once on a second signal.
pub const INTERRUPTED: i32 = 130;

/// The exit code for an error from audex-core or a plugin.
pub fn for_error(e: &audex_core::Error) -> i32 {
    match e.class() {
        audex_core::ErrorClass::Config => CONFIG,
        audex_core::ErrorClass::QuotaExhausted => PAUSED,
        _ => FAILED,
    }
}

/// The first of `ranked` (most serious first) found in `codes`, else 0.
pub fn worst(codes: &[i32], ranked: &[i32]) -> i32 {
    ranked
        .iter()
        .copied()
        .find(|c| codes.contains(c))
        .unwrap_or(OK)
}
