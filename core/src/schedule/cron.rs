//! A destination's schedule: a cron expression read in an IANA time zone.
//!
//! Daylight saving time follows Vixie cron (via croner): a fixed time that
//! falls in a spring-forward gap runs right after the gap the same day; a
//! fixed time in a fall-back overlap runs once, at its first occurrence.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::config::{parse_schedule, parse_timezone};
use crate::destination::DailyReset;
use crate::error::ConfigError;

/// A parsed schedule. Computation is in UTC instants; the zone only decides
/// which instants a wall-clock pattern names.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
    /// The destination's daily quota reset, when it declares one.
    quota_reset: Option<DailyReset>,
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
    /// Parse `expr` (5 fields: minute hour day-of-month month day-of-week)
    /// in `timezone` (default UTC), with the same parsers `audex validate`
    /// uses, so what validates is what runs. Errors carry the paths
    /// `schedule` and `timezone`, relative to the destination's block.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let tz = match timezone.map(str::trim) {
            None | Some("") => Some(Tz::UTC),
            Some(name) => match parse_timezone(name) {
                Ok(tz) => Some(tz),
                Err(e) => {
                    errors.push(
                        ConfigError::new("timezone", format!("`{name}` is {e}")).with_hint(
                            "use an IANA name such as `UTC`, `Europe/Paris` or `America/Chicago`",
                        ),
                    );
                    None
                }
            },
        };
        let trimmed = expr.trim();
        let cron = match parse_schedule(trimmed) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(ConfigError::new("schedule", e).with_hint(
                    "e.g. `0 3 * * *` for every day at 03:00, `*/30 * * * *` every 30 minutes",
                ));
                None
            }
        };
        match (cron, tz) {
            (Some(cron), Some(tz)) if errors.is_empty() => Ok(Schedule {
                expr: trimmed.to_string(),
                cron,
                tz,
                quota_reset: None,
            }),
            _ => Err(errors),
        }
    }

    /// With the destination's daily quota reset (see
    /// [`crate::DestinationConfig::daily_quota_reset`]).
    pub fn with_quota_reset(mut self, reset: Option<DailyReset>) -> Schedule {
        self.quota_reset = reset;
        self
    }

    /// When a run paused on the quota at `paused_at` may resume before its
    /// next tick: the destination's next quota reset, if it declares one.
    pub fn resume_after_pause(&self, paused_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.quota_reset.map(|r| r.next_after(paused_at))
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
