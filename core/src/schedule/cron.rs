//! A destination's schedule: a cron expression read in an IANA time zone.
//!
//! Daylight saving time follows Vixie cron (via croner): a fixed time that
//! falls in a spring-forward gap runs right after the gap the same day; a
//! fixed time in a fall-back overlap runs once, at its first occurrence.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::config::{parse_schedule, parse_timezone};
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

/// Marketo's daily quota resets at "12:00 AM CST" (Adobe's documentation
/// of the REST API's limits; docs/connectors/marketo.md). Whether that follows daylight saving time is not documented, so the
/// stricter reading holds: midnight at UTC-6 all year (01:00 CDT in summer),
/// never earlier than either reading. The Marketo client's limiter and the
/// simulator count the day the same way.
pub const QUOTA_RESET_OFFSET: FixedOffset = match FixedOffset::west_opt(6 * 3600) {
    Some(cst) => cst,
    None => panic!("UTC-6 is a valid offset"),
};

/// The first quota reset (midnight CST, UTC-6) strictly after `t`.
pub fn next_quota_reset(t: DateTime<Utc>) -> DateTime<Utc> {
    let offset = QUOTA_RESET_OFFSET;
    let day = t.with_timezone(&offset).date_naive();
    day.succ_opt()
        .and_then(|next| {
            next.and_time(chrono::NaiveTime::MIN)
                .and_local_timezone(offset)
                .single()
        })
        .map(|m| m.with_timezone(&Utc))
        // Only the end of chrono's calendar has no next day.
        .unwrap_or(t + chrono::Duration::hours(24))
}
