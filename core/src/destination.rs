//! The destination trait: what the engine needs from an audience destination
//! (Marketo static lists, Mailchimp static segments, Google Ads Customer Match).
//!
//! Destination-specific shapes (lead ids, 300 records a call, error codes) stay
//! inside the plugin. The engine speaks in [`Record`]s keyed by [`RecordKey`],
//! [`Member`]s and per-record outcomes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;

use crate::error::Result;
use crate::identity::{EmailKey, KeyRule};
use crate::record::{ListId, Member, MemberOutcome, RecordOutcome, Records, RemoteMember};

/// How a destination must be driven, so the engine can schedule work and
/// estimate calls. Any limit but the batch sizes may be absent.
/// `#[non_exhaustive]`: a plugin builds it with [`Limits::new`] and the
/// `with_` methods, so a limit core learns later breaks no plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Limits {
    /// Records per upsert call.
    pub upsert_batch: usize,
    /// Members per add call (or per call's adds, when adds and removes
    /// share calls).
    pub add_batch: usize,
    /// Members per remove call (or per call's removes).
    pub remove_batch: usize,
    /// One call may add some members and remove others
    /// ([`Destination::change_members`]); the engine then sends removals
    /// with the adds instead of in calls of their own.
    pub adds_with_removes: bool,
    /// At most `calls` calls in any rolling window of `window`.
    pub rate: Option<RateWindow>,
    /// At most this many calls in flight at once.
    pub max_concurrency: Option<usize>,
    /// At most this many calls per day (the destination's quota, or the
    /// user's budget, whichever is lower).
    pub daily_budget: Option<u64>,
}

impl Limits {
    /// `batch` records or members a call for every operation, adds and
    /// removes in calls of their own, and no other limit.
    pub fn new(batch: usize) -> Self {
        let batch = batch.max(1);
        Limits {
            upsert_batch: batch,
            add_batch: batch,
            remove_batch: batch,
            adds_with_removes: false,
            rate: None,
            max_concurrency: None,
            daily_budget: None,
        }
    }

    /// A batch size per operation (each at least 1).
    pub fn with_batches(mut self, upsert: usize, add: usize, remove: usize) -> Self {
        self.upsert_batch = upsert.max(1);
        self.add_batch = add.max(1);
        self.remove_batch = remove.max(1);
        self
    }

    /// One call may carry up to `add_batch` adds and `remove_batch`
    /// removes ([`Destination::change_members`]).
    pub fn with_adds_and_removes_together(mut self) -> Self {
        self.adds_with_removes = true;
        self
    }

    /// At most `calls` calls in any rolling window of `window`.
    pub fn with_rate(mut self, calls: u32, window: Duration) -> Self {
        self.rate = Some(RateWindow { calls, window });
        self
    }

    /// At most `n` calls in flight at once.
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// At most `n` calls a day.
    pub fn with_daily_budget(mut self, n: u64) -> Self {
        self.daily_budget = Some(n);
        self
    }

    /// Calls to upsert, add and remove the given numbers of records if
    /// every one is accepted: the floor, and exactly what the engine makes
    /// then. With adds and removes together, each add call carries
    /// removals too, and the removals left over go in calls of their own.
    pub fn estimate_calls(&self, upserts: u64, adds: u64, removes: u64) -> u64 {
        let calls = |n: u64, batch: usize| n.div_ceil(batch.max(1) as u64);
        let membership = if self.adds_with_removes {
            calls(adds, self.add_batch).max(calls(removes, self.remove_batch))
        } else {
            calls(adds, self.add_batch) + calls(removes, self.remove_batch)
        };
        calls(upserts, self.upsert_batch) + membership
    }
}

/// When a destination's daily call quota starts over: midnight at a fixed
/// UTC offset (Marketo: "12:00 AM CST", read as UTC-6 all year) or in a
/// time zone, with its daylight saving time. Declared by the plugin
/// ([`crate::DestinationConfig::daily_quota_reset`]); the scheduler resumes
/// a run paused on the quota then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyReset {
    at: ResetClock,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResetClock {
    Offset(chrono::FixedOffset),
    Zone(chrono_tz::Tz),
}

impl DailyReset {
    /// Midnight at `east_secs` seconds east of UTC (west is negative);
    /// `None` for an offset of a day or more.
    pub fn midnight_at_offset(east_secs: i32) -> Option<DailyReset> {
        chrono::FixedOffset::east_opt(east_secs).map(|offset| DailyReset {
            at: ResetClock::Offset(offset),
        })
    }

    /// Midnight in the time zone `zone` (an IANA name such as
    /// `America/Chicago`), following its daylight saving time.
    pub fn midnight_in(zone: chrono_tz::Tz) -> DailyReset {
        DailyReset {
            at: ResetClock::Zone(zone),
        }
    }

    /// The quota day `t` falls in.
    pub fn day_of(&self, t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        match self.at {
            ResetClock::Offset(offset) => t.with_timezone(&offset).date_naive(),
            ResetClock::Zone(zone) => t.with_timezone(&zone).date_naive(),
        }
    }

    /// The first reset strictly after `t`.
    pub fn next_after(&self, t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let next = self.day_of(t).succ_opt();
        let midnight = next.and_then(|day| {
            let local = day.and_time(chrono::NaiveTime::MIN);
            match self.at {
                ResetClock::Offset(offset) => local
                    .and_local_timezone(offset)
                    .single()
                    .map(|m| m.with_timezone(&chrono::Utc)),
                // A zone whose clocks skip midnight (a DST change at 00:00)
                // resets at the first instant of the day.
                ResetClock::Zone(zone) => local
                    .and_local_timezone(zone)
                    .earliest()
                    .or_else(|| {
                        (local + chrono::Duration::hours(1))
                            .and_local_timezone(zone)
                            .earliest()
                    })
                    .map(|m| m.with_timezone(&chrono::Utc)),
            }
        });
        // Only the end of chrono's calendar has no next day.
        midnight.unwrap_or(t + chrono::Duration::hours(24))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateWindow {
    pub calls: u32,
    pub window: Duration,
}

/// What a destination can and must do; the engine plans around it.
/// `#[non_exhaustive]`: a plugin builds it with [`Capabilities::new`] and
/// the `with_`/`without_` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Records must be upserted before they can be added to a list (Marketo,
    /// Mailchimp). When false, the engine skips the upsert phase.
    pub records_must_exist: bool,
    /// The list's members can be read back (enables `--reconcile`). When
    /// false, the engine's own record of confirmed membership is the truth.
    pub can_read_members: bool,
    /// The list is audex's alone: `--reconcile` in mirror mode removes
    /// every member not in the segment. When false (a list other tools
    /// fill too, such as a Mailchimp tag), it removes only members audex
    /// added, and leaves the others.
    pub owns_lists: bool,
}

impl Capabilities {
    /// Records must exist before they join a list, the list can be read
    /// back, and it is audex's alone: what Marketo does.
    pub fn new() -> Self {
        Capabilities {
            records_must_exist: true,
            can_read_members: true,
            owns_lists: true,
        }
    }

    /// Members join a list without a record upserted first.
    pub fn without_records_first(mut self) -> Self {
        self.records_must_exist = false;
        self
    }

    /// The list cannot be read back (`--reconcile` is unavailable).
    pub fn without_reading_members(mut self) -> Self {
        self.can_read_members = false;
        self
    }

    /// Other tools add members to the list too: `--reconcile` removes only
    /// members audex added.
    pub fn sharing_lists(mut self) -> Self {
        self.owns_lists = false;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new()
    }
}

/// The type of a destination field, as its describe call reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldType {
    String,
    Text,
    Email,
    Integer,
    Float,
    Boolean,
    Date,
    Datetime,
    Currency,
    Percent,
    Phone,
    Url,
    /// Any other type the destination names; values are sent as text.
    Other(String),
}

/// One field the destination knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldSpec {
    /// The name used in the API (Marketo: the REST name, e.g. `firstName`).
    pub name: String,
    pub data_type: FieldType,
    /// Maximum length in characters, for text-like fields.
    pub max_length: Option<usize>,
    /// False for read-only fields; mapping one is a check failure.
    pub writable: bool,
}

/// The result of one step of a connection test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Short name of what was checked, e.g. `authenticate`, `list 1001`.
    pub name: String,
    pub ok: bool,
    /// What was found, or what to do about a failure. No secrets.
    pub detail: String,
}

impl CheckResult {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }
    pub fn failed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// A destination, built from its validated config.
///
/// Calls may be made concurrently from many tasks; an implementation enforces
/// its own rate limits and concurrency cap (shared by every export to the same
/// account in the process) and retries what is safe to retry. An `Err` means
/// the whole call failed after retries; per-record problems are `Ok` outcomes
/// with a [`crate::Rejection`].
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    /// Limits the engine schedules against and estimates calls with.
    fn limits(&self) -> Limits;

    fn capabilities(&self) -> Capabilities;

    /// The destination field that identifies a record (Marketo: `email`).
    /// The engine normalises its value into the [`crate::RecordKey`] by
    /// [`Destination::key_rule`].
    fn lookup_field(&self) -> &str;

    /// How a lookup value becomes a key: one normalisation for the dedupe,
    /// the state key and the value sent. The default is an email address as
    /// a mail system accepts it, trimmed and lowercased ([`EmailKey`]); a
    /// destination with its own rules (ASCII only, a phone number) says so.
    fn key_rule(&self) -> Arc<dyn KeyRule> {
        Arc::new(EmailKey::new())
    }

    /// Connection test that mimics the write path: authenticate, find each
    /// list, confirm the mapped fields exist and are writable. Never fails as
    /// a whole; each step reports its own outcome.
    async fn check(&self, lists: &[ListId], mapped_fields: &[String]) -> Vec<CheckResult>;

    /// The fields the destination knows (Marketo: describe).
    async fn fields(&self) -> Result<Vec<FieldSpec>>;

    /// Create or update records (at most `limits().upsert_batch`). One outcome
    /// per input record, keyed by the record's key. The batch names its
    /// fields once; serialise each record from `records.iter()`.
    async fn upsert(&self, records: &Records) -> Result<Vec<RecordOutcome>>;

    /// Add members to a list (at most `limits().add_batch`). Idempotent.
    async fn add_members(&self, list: &ListId, members: &[Member]) -> Result<Vec<MemberOutcome>>;

    /// Remove members from a list (at most `limits().remove_batch`). Idempotent:
    /// removing a non-member is not an error.
    async fn remove_members(&self, list: &ListId, members: &[Member])
        -> Result<Vec<MemberOutcome>>;

    /// Add `adds` and remove `removes` in one call (at most
    /// `limits().add_batch` and `limits().remove_batch`), for a destination
    /// that declares [`Limits::with_adds_and_removes_together`]. One outcome
    /// per member of either, keyed by its key (a key is never in both).
    /// The default makes the two calls in turn; a destination that
    /// declares the capability makes one.
    async fn change_members(
        &self,
        list: &ListId,
        adds: &[Member],
        removes: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        let mut out = Vec::with_capacity(adds.len() + removes.len());
        if !adds.is_empty() {
            out.extend(self.add_members(list, adds).await?);
        }
        if !removes.is_empty() {
            out.extend(self.remove_members(list, removes).await?);
        }
        Ok(out)
    }

    /// What a person should know before an export to `list` runs, given
    /// that it would send `new_records` records audex never sent to this
    /// destination before (an upper bound of the people new to it): e.g.
    /// "up to 1,200 new contacts will each get a confirmation email".
    /// Printed by `--dry-run` and with the run's summary, and logged. The
    /// default has nothing to say. No call may be made here.
    fn notices(&self, list: &ListId, new_records: u64) -> Vec<String> {
        let _ = (list, new_records);
        Vec::new()
    }

    /// Page through the list's current members, when `can_read_members`.
    /// The default, for a destination that cannot read its lists back
    /// (and says so with [`Capabilities::without_reading_members`]), is
    /// one config error: the engine refuses `--reconcile` before asking.
    fn read_members<'a>(&'a self, list: &'a ListId) -> BoxStream<'a, Result<Vec<RemoteMember>>> {
        let _ = list;
        Box::pin(futures::stream::once(async {
            Err(crate::error::Error::new(
                crate::error::ErrorClass::Config,
                "this destination cannot read its lists back",
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_capabilities_build_step_by_step() {
        let l = Limits::new(300)
            .with_rate(100, Duration::from_secs(20))
            .with_max_concurrency(10)
            .with_daily_budget(50_000);
        assert_eq!(
            (l.upsert_batch, l.add_batch, l.remove_batch),
            (300, 300, 300)
        );
        assert!(!l.adds_with_removes);
        let m = Limits::new(0)
            .with_batches(500, 500, 0)
            .with_adds_and_removes_together();
        assert_eq!((m.upsert_batch, m.add_batch, m.remove_batch), (500, 500, 1));
        assert!(m.adds_with_removes);
        assert_eq!(
            l.rate,
            Some(RateWindow {
                calls: 100,
                window: Duration::from_secs(20)
            })
        );
        assert_eq!(
            (l.max_concurrency, l.daily_budget),
            (Some(10), Some(50_000))
        );
        assert_eq!(Limits::new(5).rate, None);
        let c = Capabilities::new().without_reading_members();
        assert!(c.records_must_exist && !c.can_read_members);
        assert!(
            !Capabilities::default()
                .without_records_first()
                .records_must_exist
        );
    }

    #[test]
    fn a_quota_day_may_follow_a_time_zone() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("an instant")
                .with_timezone(&chrono::Utc)
        };
        let paris = DailyReset::midnight_in(chrono_tz::Europe::Paris);
        // Winter: midnight is 23:00 UTC; summer: 22:00 UTC.
        assert_eq!(
            paris.next_after(at("2026-01-15T12:00:00Z")),
            at("2026-01-15T23:00:00Z")
        );
        assert_eq!(
            paris.next_after(at("2026-07-15T12:00:00Z")),
            at("2026-07-15T22:00:00Z")
        );
        assert_eq!(
            paris.day_of(at("2026-07-15T22:30:00Z")),
            chrono::NaiveDate::from_ymd_opt(2026, 7, 16).expect("a date")
        );
        // São Paulo's clocks went from 00:00 to 01:00 on 2018-11-04: that
        // day starts at 01:00 local (03:00 UTC).
        let sp = DailyReset::midnight_in(chrono_tz::America::Sao_Paulo);
        assert_eq!(
            sp.next_after(at("2018-11-03T12:00:00Z")),
            at("2018-11-04T03:00:00Z")
        );
    }

    /// A destination that writes only what it must.
    #[derive(Debug)]
    struct Minimal;

    #[async_trait]
    impl Destination for Minimal {
        fn limits(&self) -> Limits {
            Limits::new(10)
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new().without_reading_members()
        }
        fn lookup_field(&self) -> &str {
            "email"
        }
        async fn check(&self, _: &[ListId], _: &[String]) -> Vec<CheckResult> {
            Vec::new()
        }
        async fn fields(&self) -> Result<Vec<FieldSpec>> {
            Ok(Vec::new())
        }
        async fn upsert(&self, _: &Records) -> Result<Vec<RecordOutcome>> {
            Ok(Vec::new())
        }
        async fn add_members(&self, _: &ListId, _: &[Member]) -> Result<Vec<MemberOutcome>> {
            Ok(Vec::new())
        }
        async fn remove_members(&self, _: &ListId, _: &[Member]) -> Result<Vec<MemberOutcome>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn reading_members_back_is_optional() {
        use futures::StreamExt;
        let list = ListId("1".into());
        let pages: Vec<_> = Minimal.read_members(&list).collect().await;
        assert_eq!(pages.len(), 1);
        let e = pages
            .into_iter()
            .next()
            .and_then(|p| p.err())
            .expect("an error");
        assert_eq!(e.class(), crate::error::ErrorClass::Config);
        assert!(e.message().contains("cannot read its lists back"), "{e}");
    }
}
