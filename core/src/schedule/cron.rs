//! A destination's schedule: a cron expression read in an IANA time zone.
//!
//! Daylight saving time follows Vixie cron (via croner): a fixed time that
//! falls in a spring-forward gap runs right after the gap the same day; a
//! fixed time in a fall-back overlap runs once, at its first occurrence.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::error::ConfigError;

/// A parsed schedule. Computation is in UTC instants; the zone only decides
/// which instants a wall-clock pattern names.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.expr, self.tz)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz)
    }
}

impl Schedule {
    /// Parse `expr` (5 fields, or an alias like `@daily`) in `timezone`
    /// (default UTC). Errors carry the paths `schedule` and `timezone`,
    /// relative to the destination's block.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let tz = match timezone.map(str::trim) {
            None | Some("") => Some(Tz::UTC),
            Some(name) => {
                match Tz::from_str(name) {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        errors.push(
                        ConfigError::new("timezone", format!("`{name}` is not a known time zone"))
                            .with_hint("use an IANA name such as `UTC`, `Europe/Paris` or `America/Chicago`"),
                    );
                        None
                    }
                }
            }
        };
        let trimmed = expr.trim();
        let fields = trimmed.split_whitespace().count();
        let cron = if !trimmed.starts_with('@') && fields != 5 {
            errors.push(
                ConfigError::new(
                    "schedule",
                    format!("a schedule has 5 fields (minute hour day-of-month month day-of-week), this one has {fields}"),
                )
                .with_hint("e.g. `0 3 * * *` for every day at 03:00"),
            );
            None
        } else {
            match Cron::from_str(trimmed) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(
                        ConfigError::new("schedule", format!("not a valid cron expression: {e}"))
                            .with_hint("e.g. `0 3 * * *` for every day at 03:00, `*/30 * * * *` every 30 minutes"),
                    );
                    None
                }
            }
        };
        match (cron, tz) {
            (Some(cron), Some(tz)) if errors.is_empty() => Ok(Schedule {
                expr: trimmed.to_string(),
                cron,
                tz,
            }),
            _ => Err(errors),
        }
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first scheduled instant strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The last scheduled instant at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The next `n` scheduled instants after `t` (for `audex schedule`'s
    /// start-up listing).
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

/// Marketo's daily quota resets at midnight US Central time.
pub const QUOTA_RESET_TZ: Tz = chrono_tz::America::Chicago;

/// The first midnight in `America/Chicago` strictly after `t` (when a
/// Marketo instance's daily call quota resets).
pub fn next_quota_reset(t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&QUOTA_RESET_TZ);
    // Midnight always exists in Chicago (its clocks change at 02:00); the
    // fallback only guards the end of chrono's calendar.
    local
        .date_naive()
        .succ_opt()
        .and_then(|day| {
            day.and_time(chrono::NaiveTime::MIN)
                .and_local_timezone(QUOTA_RESET_TZ)
                .earliest()
        })
        .map(|m| m.with_timezone(&Utc))
        .unwrap_or(t + chrono::Duration::hours(24))
}
