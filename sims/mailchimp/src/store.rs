//! Audiences, contacts and segments. Contacts are indexed by subscriber
//! hash; a segment is an ordered set of contact ids, so a million contacts
//! and a million-member segment stay cheap (docs/connectors/mailchimp-sim.md).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::config::{SimAudience, SimMergeField};
use crate::email::{self, Hash};
use crate::merge::Values;

/// A contact's status. `Deleted` is a permanently deleted contact's
/// tombstone (seeding a contact as `deleted` forgets its email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    Archived,
    Deleted,
}

impl Status {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Cleaned => "cleaned",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
            Status::Archived => "archived",
            Status::Deleted => "deleted",
        }
    }

    /// A status a client may write (`archived` and `deleted` are not).
    pub fn parse_write(s: &str) -> Option<Status> {
        match s {
            "subscribed" => Some(Status::Subscribed),
            "unsubscribed" => Some(Status::Unsubscribed),
            "cleaned" => Some(Status::Cleaned),
            "pending" => Some(Status::Pending),
            "transactional" => Some(Status::Transactional),
            _ => None,
        }
    }

    /// Any status the side channel can seed or a filter can name.
    pub fn parse_any(s: &str) -> Option<Status> {
        match s {
            "archived" => Some(Status::Archived),
            other => Status::parse_write(other),
        }
    }

    /// In the audience (not archived, not deleted).
    pub fn is_present(self) -> bool {
        !matches!(self, Status::Archived | Status::Deleted)
    }

    /// Whether the API may move a contact from `self` to `to`: unsubscribed
    /// contacts may only stay unsubscribed or be sent an opt-in (pending), and
    /// cleaned ones may only stay cleaned or become unsubscribed (facts §8).
    pub fn may_become(self, to: Status) -> bool {
        match self {
            Status::Unsubscribed => {
                matches!(to, Status::Unsubscribed | Status::Pending | Status::Cleaned)
            }
            Status::Cleaned => matches!(to, Status::Cleaned | Status::Unsubscribed),
            _ => true,
        }
    }
}

/// One contact of one audience.
#[derive(Debug, Clone)]
pub struct Contact {
    pub email: Box<str>,
    pub status: Status,
    pub merge: Box<[(u16, Value)]>,
    pub vip: bool,
    pub language: Box<str>,
    /// Unix seconds.
    pub created: i64,
    pub changed: i64,
}

/// A segment's kind: static segments are tags; saved ones are conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegKind {
    Static,
    Saved,
}

impl SegKind {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            SegKind::Static => "static",
            SegKind::Saved => "saved",
        }
    }
}

/// Which contacts a segment read shows besides subscribed and pending ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Include {
    pub cleaned: bool,
    pub transactional: bool,
    pub unsubscribed: bool,
}

impl Include {
    /// Whether a contact with this status shows.
    pub fn shows(self, s: Status) -> bool {
        match s {
            Status::Subscribed | Status::Pending => true,
            Status::Cleaned => self.cleaned,
            Status::Transactional => self.transactional,
            Status::Unsubscribed => self.unsubscribed,
            Status::Archived | Status::Deleted => false,
        }
    }
}

/// Where the last page of a sequential read ended, so the next page starts
/// there instead of skipping `offset` entries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    filter: u64,
    epoch: u64,
    /// How many entries pass the filter (valid for this epoch).
    total: usize,
    next_offset: usize,
    next_id: u32,
}

impl Cursor {
    /// The cached total, if it was computed for this filter and epoch.
    fn total_for(this: Option<Cursor>, filter: u64, epoch: u64) -> Option<usize> {
        this.filter(|c| c.filter == filter && c.epoch == epoch)
            .map(|c| c.total)
    }

    /// Where to resume for a read at `offset`, if the last read ended there.
    fn resume(this: Option<Cursor>, filter: u64, epoch: u64, offset: usize) -> Option<u32> {
        this.filter(|c| c.filter == filter && c.epoch == epoch && c.next_offset == offset)
            .map(|c| c.next_id)
    }
}

/// A segment (tag) of an audience.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: u64,
    pub name: String,
    pub kind: SegKind,
    pub members: BTreeSet<u32>,
    pub created: i64,
    pub updated: i64,
    cursor: Option<Cursor>,
}

/// An audience (Mailchimp's "list").
#[derive(Debug)]
pub struct Audience {
    pub id: String,
    pub web_id: u64,
    pub name: String,
    pub double_optin: bool,
    pub created: i64,
    pub fields: Vec<SimMergeField>,
    pub contacts: Vec<Contact>,
    index: HashMap<Hash, u32>,
    forgotten: HashSet<Hash>,
    pub segments: BTreeMap<u64, Segment>,
    /// Bumped on every write, so cached read cursors know they are stale.
    epoch: u64,
    cursor: Option<Cursor>,
}

impl Audience {
    fn new(a: &SimAudience, web_id: u64, now: i64) -> Audience {
        Audience {
            id: a.id.clone(),
            web_id,
            name: a.name.clone(),
            double_optin: a.double_optin,
            created: now,
            fields: a.merge_fields.clone(),
            contacts: Vec::new(),
            index: HashMap::new(),
            forgotten: HashSet::new(),
            segments: BTreeMap::new(),
            epoch: 0,
            cursor: None,
        }
    }

    /// Marks a write.
    pub fn touch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// The contact id for a hash (deleted contacts are not found).
    pub fn lookup(&self, h: &Hash) -> Option<u32> {
        self.index.get(h).copied()
    }

    /// The contact id for an email, case-insensitively.
    pub fn lookup_email(&self, email: &str) -> Option<u32> {
        self.lookup(&email::hash(email))
    }

    /// A contact by id.
    pub fn contact(&self, id: u32) -> Option<&Contact> {
        self.contacts.get(id as usize)
    }

    /// A contact by id, to change it.
    pub fn contact_mut(&mut self, id: u32) -> Option<&mut Contact> {
        self.contacts.get_mut(id as usize)
    }

    /// Whether this email was permanently deleted.
    pub fn is_forgotten(&self, h: &Hash) -> bool {
        self.forgotten.contains(h)
    }

    /// Adds a contact whose subscriber hash is `h` (the caller checked it is
    /// new). Returns its id.
    pub fn insert(
        &mut self,
        h: Hash,
        email: &str,
        status: Status,
        merge: Values,
        now: i64,
    ) -> Option<u32> {
        let id = u32::try_from(self.contacts.len()).ok()?;
        self.contacts.push(Contact {
            email: email.into(),
            status,
            merge: merge.into_boxed_slice(),
            vip: false,
            language: "".into(),
            created: now,
            changed: now,
        });
        self.index.insert(h, id);
        self.touch();
        Some(id)
    }

    /// Merges values into a contact (later values replace earlier ones).
    pub fn set_merge(&mut self, id: u32, values: Values) {
        if values.is_empty() {
            return;
        }
        if let Some(c) = self.contacts.get_mut(id as usize) {
            let mut merged: Vec<(u16, Value)> = c.merge.to_vec();
            for (ix, v) in values {
                match merged.iter_mut().find(|(i, _)| *i == ix) {
                    Some(slot) => slot.1 = v,
                    None => merged.push((ix, v)),
                }
            }
            merged.sort_by_key(|(i, _)| *i);
            c.merge = merged.into_boxed_slice();
        }
        self.touch();
    }

    /// Permanently deletes a contact: gone from the index and every segment,
    /// and its email can never be imported again.
    pub fn delete_permanently(&mut self, id: u32) -> bool {
        let Some(c) = self.contacts.get_mut(id as usize) else {
            return false;
        };
        if c.status == Status::Deleted {
            return false;
        }
        c.status = Status::Deleted;
        c.merge = Box::new([]);
        let h = email::hash(&c.email);
        self.index.remove(&h);
        self.forgotten.insert(h);
        for s in self.segments.values_mut() {
            s.members.remove(&id);
        }
        self.touch();
        true
    }

    /// Records an email as permanently deleted (seeding).
    pub fn forget(&mut self, email: &str) {
        match self.lookup_email(email) {
            Some(id) => {
                self.delete_permanently(id);
            }
            None => {
                self.forgotten.insert(email::hash(email));
            }
        }
    }

    /// Static segments that hold this contact, as `(id, name)`.
    pub fn tags_of(&self, id: u32) -> Vec<(u64, &str)> {
        self.segments
            .values()
            .filter(|s| s.kind == SegKind::Static && s.members.contains(&id))
            .map(|s| (s.id, s.name.as_str()))
            .collect()
    }

    /// The static segment with this name (tags are matched by name).
    pub fn tag_by_name(&self, name: &str) -> Option<u64> {
        self.segments
            .values()
            .find(|s| s.kind == SegKind::Static && s.name == name)
            .map(|s| s.id)
    }

    /// Any segment with this name.
    pub fn segment_named(&self, name: &str) -> Option<u64> {
        self.segments
            .values()
            .find(|s| s.name == name)
            .map(|s| s.id)
    }

    /// Counts of contacts by status (archived and deleted ones included).
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for c in &self.contacts {
            *m.entry(c.status.name()).or_insert(0) += 1;
        }
        m
    }

    /// A page of contact ids in creation order whose status passes `keep`,
    /// plus how many pass in all. `filter` names the filter for the cursor.
    pub fn page_contacts(
        &mut self,
        keep: impl Fn(Status) -> bool,
        filter: u64,
        offset: usize,
        count: usize,
    ) -> (Vec<u32>, usize) {
        let epoch = self.epoch;
        let total = Cursor::total_for(self.cursor, filter, epoch)
            .unwrap_or_else(|| self.contacts.iter().filter(|c| keep(c.status)).count());
        let start = Cursor::resume(self.cursor, filter, epoch, offset);
        let mut ids = Vec::with_capacity(count.min(total));
        let mut last = None;
        let contacts = &self.contacts;
        let candidates = (start.unwrap_or(0) as usize..contacts.len())
            .filter(|i| contacts.get(*i).is_some_and(|c| keep(c.status)));
        let skip = if start.is_some() { 0 } else { offset };
        for i in candidates.skip(skip).take(count) {
            if let Ok(id) = u32::try_from(i) {
                ids.push(id);
                last = Some(id);
            }
        }
        self.cursor = Some(Cursor {
            filter,
            epoch,
            total,
            next_offset: if ids.is_empty() {
                usize::MAX
            } else {
                offset + ids.len()
            },
            next_id: last.map_or(u32::MAX, |l| l.saturating_add(1)),
        });
        (ids, total)
    }

    /// A page of a segment's members (ascending contact id) that `include`
    /// shows, plus how many it shows in all. `None` if there is no such segment.
    pub fn page_segment(
        &mut self,
        seg: u64,
        include: Include,
        offset: usize,
        count: usize,
    ) -> Option<(Vec<u32>, usize)> {
        let contacts = &self.contacts;
        let epoch = self.epoch;
        let s = self.segments.get_mut(&seg)?;
        let shows = |id: &u32| {
            contacts
                .get(*id as usize)
                .is_some_and(|c| include.shows(c.status))
        };
        let filter = u64::from(include.cleaned)
            | (u64::from(include.transactional) << 1)
            | (u64::from(include.unsubscribed) << 2);
        let total = Cursor::total_for(s.cursor, filter, epoch)
            .unwrap_or_else(|| s.members.iter().filter(|id| shows(id)).count());
        let start = Cursor::resume(s.cursor, filter, epoch, offset);
        let ids: Vec<u32> = match start {
            Some(from) => s
                .members
                .range(from..)
                .filter(|id| shows(id))
                .take(count)
                .copied()
                .collect(),
            None => s
                .members
                .iter()
                .filter(|id| shows(id))
                .skip(offset)
                .take(count)
                .copied()
                .collect(),
        };
        s.cursor = Some(Cursor {
            filter,
            epoch,
            total,
            next_offset: if ids.is_empty() {
                usize::MAX
            } else {
                offset + ids.len()
            },
            next_id: ids.last().map_or(u32::MAX, |l| l.saturating_add(1)),
        });
        Some((ids, total))
    }

    /// How many members of a segment `include` shows.
    pub fn segment_count(&self, seg: &Segment, include: Include) -> usize {
        seg.members
            .iter()
            .filter(|id| {
                self.contacts
                    .get(**id as usize)
                    .is_some_and(|c| include.shows(c.status))
            })
            .count()
    }
}

/// Every audience, and the id sequences.
#[derive(Debug)]
pub struct Store {
    pub audiences: BTreeMap<String, Audience>,
    next_segment: u64,
    next_web_id: u64,
}

impl Store {
    /// A store with these audiences.
    pub fn new(audiences: &[SimAudience]) -> Store {
        let mut s = Store {
            audiences: BTreeMap::new(),
            next_segment: 10_001,
            next_web_id: 100_001,
        };
        for a in audiences {
            s.add_audience(a);
        }
        s
    }

    /// Creates or replaces an audience (its contacts and segments are dropped).
    pub fn add_audience(&mut self, a: &SimAudience) {
        let web_id = self.next_web_id;
        self.next_web_id += 1;
        self.audiences
            .insert(a.id.clone(), Audience::new(a, web_id, now()));
    }

    /// Creates a segment, returning its id.
    pub fn create_segment(
        &mut self,
        list: &str,
        name: &str,
        kind: SegKind,
        members: BTreeSet<u32>,
    ) -> Option<u64> {
        let id = self.next_segment;
        let a = self.audiences.get_mut(list)?;
        self.next_segment += 1;
        let t = now();
        a.segments.insert(
            id,
            Segment {
                id,
                name: name.to_string(),
                kind,
                members,
                created: t,
                updated: t,
                cursor: None,
            },
        );
        a.touch();
        Some(id)
    }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Mailchimp's timestamp format: `2026-12-07T16:01:01+00:00`.
pub fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(n: usize) -> Audience {
        let mut a = Audience::new(&SimAudience::new("a1", "A"), 1, 0);
        for i in 0..n {
            let e = format!("c{i}@example.com");
            a.insert(email::hash(&e), &e, Status::Subscribed, Vec::new(), 0);
        }
        a
    }

    #[test]
    fn sequential_pages_resume_and_a_write_invalidates_the_cursor() {
        let mut a = audience(6);
        let present = |s: Status| s.is_present();
        assert_eq!(a.page_contacts(present, 0, 0, 2), (vec![0, 1], 6));
        if let Some(c) = a.contact_mut(2) {
            c.status = Status::Archived;
        }
        a.touch();
        assert_eq!(a.page_contacts(present, 0, 2, 2), (vec![3, 4], 5));
        assert_eq!(a.page_contacts(present, 0, 4, 2), (vec![5], 5));
        // Out of order, and an empty page followed by a real one at the same offset.
        assert_eq!(a.page_contacts(present, 0, 1, 1), (vec![1], 5));
        assert_eq!(a.page_contacts(present, 0, 0, 0), (vec![], 5));
        assert_eq!(a.page_contacts(present, 0, 0, 1), (vec![0], 5));
    }

    #[test]
    fn segment_pages_follow_the_include_flags() {
        let mut a = audience(4);
        let seg = 7;
        a.segments.insert(
            seg,
            Segment {
                id: seg,
                name: "s".into(),
                kind: SegKind::Static,
                members: (0..4).collect(),
                created: 0,
                updated: 0,
                cursor: None,
            },
        );
        if let Some(c) = a.contact_mut(1) {
            c.status = Status::Unsubscribed;
        }
        a.touch();
        let none = Include::default();
        let unsub = Include {
            unsubscribed: true,
            ..Include::default()
        };
        assert_eq!(a.page_segment(seg, none, 0, 2), Some((vec![0, 2], 3)));
        assert_eq!(a.page_segment(seg, unsub, 0, 2), Some((vec![0, 1], 4)));
        assert_eq!(a.page_segment(seg, unsub, 2, 2), Some((vec![2, 3], 4)));
        assert_eq!(a.page_segment(seg, none, 2, 2), Some((vec![3], 3)));
        assert!(a.delete_permanently(3));
        assert_eq!(a.page_segment(seg, unsub, 0, 10), Some((vec![0, 1, 2], 3)));
        assert_eq!(a.page_segment(99, none, 0, 1), None);
    }
}
