//! The simulated instance's data: leads, lists and their members. Pure
//! in-memory logic, no HTTP. Every lookup is indexed (by id, by lowercased
//! email, members in an ordered set) so a million leads and a million-member
//! list cost no scans per call.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::config::{SimFolder, SimList};
use crate::fields::{format_datetime, Catalogue, FieldIx, Val};

/// A lead as stored: values by catalogue index, timestamps in Unix seconds.
#[derive(Debug, Clone)]
pub struct Lead {
    pub id: u64,
    values: Vec<(FieldIx, Val)>,
    pub created: i64,
    pub updated: i64,
}

impl Lead {
    pub fn get(&self, ix: FieldIx) -> Option<&Val> {
        self.values.iter().find(|(i, _)| *i == ix).map(|(_, v)| v)
    }

    fn set(&mut self, ix: FieldIx, v: Val) {
        match self.values.iter_mut().find(|(i, _)| *i == ix) {
            Some(slot) => slot.1 = v,
            None => self.values.push((ix, v)),
        }
    }

    pub fn email(&self, cat: &Catalogue) -> Option<&str> {
        match self.get(cat.email) {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// One or more leads sharing an email. Several only when seeded on purpose
/// (Marketo allows duplicates; a lookup then fails with 1007).
#[derive(Debug, Clone)]
enum Ids {
    One(u64),
    Many(Vec<u64>),
}

#[derive(Debug, Clone)]
pub struct ListRec {
    pub id: u64,
    pub name: String,
    pub description: Option<String>,
    pub static_list: bool,
    pub folder_id: u64,
    pub created: i64,
    pub updated: i64,
    pub members: BTreeSet<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateOrUpdate,
    CreateOnly,
    UpdateOnly,
    CreateDuplicate,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "createOrUpdate" => Action::CreateOrUpdate,
            "createOnly" => Action::CreateOnly,
            "updateOnly" => Action::UpdateOnly,
            "createDuplicate" => Action::CreateDuplicate,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Email,
    Id,
}

impl Lookup {
    pub fn name(self) -> &'static str {
        match self {
            Lookup::Email => "email",
            Lookup::Id => "id",
        }
    }

    pub fn parse(s: &str) -> Option<Lookup> {
        match s {
            "email" => Some(Lookup::Email),
            "id" => Some(Lookup::Id),
            _ => None,
        }
    }
}

/// What happened to one input record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created(u64),
    Updated(u64),
    Skipped(&'static str, String),
}

/// Result of one record plus the fields that were cut to length.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub outcome: Outcome,
    pub truncated: Vec<String>,
}

/// Per-list add statistics, for checking a client never re-sends.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AddStats {
    pub total_adds: u64,
    pub leads_added: u64,
    pub leads_added_more_than_once: u64,
    pub max_adds_per_lead: u32,
}

#[derive(Debug)]
pub struct Store {
    pub cat: Catalogue,
    leads: HashMap<u64, Lead>,
    by_email: HashMap<Box<str>, Ids>,
    next_lead_id: u64,
    pub lists: BTreeMap<u64, ListRec>,
    next_list_id: u64,
    pub folders: Vec<SimFolder>,
    adds: HashMap<u64, HashMap<u64, u32>>,
}

pub fn now_secs() -> i64 {
    Utc::now().timestamp()
}

pub fn fmt_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(format_datetime)
        .unwrap_or_default()
}

impl Store {
    pub fn new(cat: Catalogue, lists: &[SimList], folders: &[SimFolder]) -> Store {
        let now = now_secs();
        let folder_id = folders.first().map(|f| f.id).unwrap_or(12);
        let lists: BTreeMap<u64, ListRec> = lists
            .iter()
            .map(|l| {
                (
                    l.id,
                    ListRec {
                        id: l.id,
                        name: l.name.clone(),
                        description: None,
                        static_list: l.static_list,
                        folder_id,
                        created: now,
                        updated: now,
                        members: BTreeSet::new(),
                    },
                )
            })
            .collect();
        let next_list_id = lists.keys().max().copied().unwrap_or(1000).max(3000) + 1;
        Store {
            cat,
            leads: HashMap::new(),
            by_email: HashMap::new(),
            next_lead_id: 1,
            lists,
            next_list_id,
            folders: folders.to_vec(),
            adds: HashMap::new(),
        }
    }

    pub fn lead_count(&self) -> usize {
        self.leads.len()
    }

    pub fn lead(&self, id: u64) -> Option<&Lead> {
        self.leads.get(&id)
    }

    /// Ids of the leads whose email matches, case-insensitively.
    pub fn ids_by_email(&self, email: &str) -> Vec<u64> {
        match self.by_email.get(email.to_ascii_lowercase().as_str()) {
            None => Vec::new(),
            Some(Ids::One(id)) => vec![*id],
            Some(Ids::Many(v)) => v.clone(),
        }
    }

    fn index_email(&mut self, email: &str, id: u64) {
        let key: Box<str> = email.to_ascii_lowercase().into();
        match self.by_email.get_mut(&key) {
            None => {
                self.by_email.insert(key, Ids::One(id));
            }
            Some(slot) => {
                let mut v = match slot {
                    Ids::One(x) => vec![*x],
                    Ids::Many(v) => std::mem::take(v),
                };
                if !v.contains(&id) {
                    v.push(id);
                }
                v.sort_unstable();
                *slot = Ids::Many(v);
            }
        }
    }

    fn unindex_email(&mut self, email: &str, id: u64) {
        let key = email.to_ascii_lowercase();
        let remove = match self.by_email.get_mut(key.as_str()) {
            None => false,
            Some(Ids::One(x)) => *x == id,
            Some(Ids::Many(v)) => {
                v.retain(|x| *x != id);
                if v.len() == 1 {
                    let only = v[0];
                    self.by_email.insert(key.clone().into(), Ids::One(only));
                }
                false
            }
        };
        if remove {
            self.by_email.remove(key.as_str());
        }
    }

    /// Create a lead without validation (seeding from tests). Duplicate
    /// emails are allowed on purpose.
    pub fn insert_raw(&mut self, values: Vec<(FieldIx, Val)>) -> u64 {
        let id = self.next_lead_id;
        self.next_lead_id += 1;
        let now = now_secs();
        let lead = Lead {
            id,
            values,
            created: now,
            updated: now,
        };
        if let Some(e) = lead.email(&self.cat).map(str::to_string) {
            self.index_email(&e, id);
        }
        self.leads.insert(id, lead);
        id
    }

    /// Sync Leads over a batch, validated field names assumed (unknown
    /// names are refused for the whole request before this is called).
    pub fn sync(
        &mut self,
        action: Action,
        lookup: Lookup,
        input: &[Map<String, Value>],
    ) -> Vec<RecordResult> {
        let mut seen: HashSet<String> = HashSet::new();
        input
            .iter()
            .map(|rec| {
                // Duplicates inside one batch are undocumented (facts "Could not
                // confirm"); the stricter answer skips every later occurrence.
                if action != Action::CreateDuplicate {
                    if let Some(key) = lookup_key(rec, lookup) {
                        if !seen.insert(key) {
                            return RecordResult {
                                outcome: Outcome::Skipped(
                                    "1036",
                                    "Duplicate lead in input".to_string(),
                                ),
                                truncated: Vec::new(),
                            };
                        }
                    }
                }
                self.sync_one(action, lookup, rec)
            })
            .collect()
    }

    pub fn sync_one(
        &mut self,
        action: Action,
        lookup: Lookup,
        rec: &Map<String, Value>,
    ) -> RecordResult {
        let skip = |code: &'static str, msg: String| RecordResult {
            outcome: Outcome::Skipped(code, msg),
            truncated: Vec::new(),
        };
        if lookup == Lookup::Id && action != Action::UpdateOnly {
            return skip(
                "1003",
                format!("Lookup field 'id' not allowed with action {action:?}"),
            );
        }
        // Validate every value first: a record is applied whole or not at all.
        let mut values: Vec<(FieldIx, Val)> = Vec::with_capacity(rec.len());
        let mut truncated = Vec::new();
        for (name, raw) in rec {
            let Some(ix) = self.cat.lookup(name) else {
                return skip("1006", format!("Field '{name}' not found"));
            };
            let def = self.cat.def(ix);
            if def.read_only {
                if ix == self.cat.id && lookup == Lookup::Id {
                    continue;
                }
                return skip("1003", format!("Field '{name}' is read only"));
            }
            match self.cat.coerce(ix, raw) {
                Ok(c) => {
                    if c.truncated {
                        truncated.push(name.clone());
                    }
                    values.push((ix, c.value));
                }
                Err(_) => return skip("1003", format!("Invalid value for field '{name}'")),
            }
        }
        let existing: Vec<u64> = match lookup {
            Lookup::Email => {
                let email = values
                    .iter()
                    .find(|(i, _)| *i == self.cat.email)
                    .map(|(_, v)| v);
                match email {
                    Some(Val::Str(e)) => {
                        if action == Action::CreateDuplicate {
                            Vec::new()
                        } else {
                            self.ids_by_email(e)
                        }
                    }
                    _ if action == Action::CreateDuplicate => Vec::new(),
                    _ => {
                        return skip(
                            "1003",
                            "Value for lookup field 'email' not found".to_string(),
                        )
                    }
                }
            }
            Lookup::Id => match rec.get("id").and_then(id_of) {
                Some(id) if self.leads.contains_key(&id) => vec![id],
                Some(_) => Vec::new(),
                None => return skip("1003", "Value for lookup field 'id' not found".to_string()),
            },
        };
        if existing.len() > 1 {
            return skip("1007", "Multiple lead match lookup criteria".to_string());
        }
        let outcome = match (action, existing.first().copied()) {
            (Action::CreateOnly, Some(_)) => {
                return skip("1005", "Lead already exists".to_string())
            }
            (Action::UpdateOnly, None) => return skip("1004", "Lead not found".to_string()),
            (Action::CreateOrUpdate | Action::UpdateOnly, Some(id)) => {
                self.update(id, values);
                Outcome::Updated(id)
            }
            (_, _) => Outcome::Created(self.insert_raw(values)),
        };
        RecordResult { outcome, truncated }
    }

    fn update(&mut self, id: u64, values: Vec<(FieldIx, Val)>) {
        let email_ix = self.cat.email;
        let Some(lead) = self.leads.get_mut(&id) else {
            return;
        };
        let old_email = lead.email(&self.cat).map(str::to_string);
        for (ix, v) in values {
            lead.set(ix, v);
        }
        lead.updated = now_secs();
        let new_email = match lead.get(email_ix) {
            Some(Val::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        if old_email.as_deref().map(str::to_ascii_lowercase)
            != new_email.as_deref().map(str::to_ascii_lowercase)
        {
            if let Some(e) = old_email {
                self.unindex_email(&e, id);
            }
            if let Some(e) = new_email {
                self.index_email(&e, id);
            }
        }
    }

    /// Delete leads by id: `deleted`, or skipped 1004.
    pub fn delete(&mut self, ids: &[u64]) -> Vec<Outcome> {
        ids.iter()
            .map(|id| match self.leads.remove(id) {
                Some(lead) => {
                    if let Some(e) = lead.email(&self.cat).map(str::to_string) {
                        self.unindex_email(&e, *id);
                    }
                    for list in self.lists.values_mut() {
                        list.members.remove(id);
                    }
                    Outcome::Updated(*id)
                }
                None => Outcome::Skipped("1004", "Lead not found".to_string()),
            })
            .collect()
    }

    /// JSON for a lead with the requested fields (`id` always first; absent values null).
    pub fn lead_json(&self, lead: &Lead, fields: &[FieldIx]) -> Value {
        let mut m = Map::new();
        m.insert("id".to_string(), Value::from(lead.id));
        for &ix in fields {
            let def = self.cat.def(ix);
            let v = if ix == self.cat.id {
                continue;
            } else if ix == self.cat.created_at {
                Value::String(fmt_secs(lead.created))
            } else if ix == self.cat.updated_at {
                Value::String(fmt_secs(lead.updated))
            } else {
                lead.get(ix).map(Val::to_json).unwrap_or(Value::Null)
            };
            m.insert(def.name.clone(), v);
        }
        Value::Object(m)
    }

    /// All lead fields as a name → value map (for the side channel).
    pub fn lead_fields(&self, lead: &Lead) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        m.insert("id".to_string(), Value::from(lead.id));
        m.insert(
            "createdAt".to_string(),
            Value::String(fmt_secs(lead.created)),
        );
        m.insert(
            "updatedAt".to_string(),
            Value::String(fmt_secs(lead.updated)),
        );
        for (ix, v) in &lead.values {
            m.insert(self.cat.def(*ix).name.clone(), v.to_json());
        }
        m
    }

    pub fn static_list(&self, id: u64) -> Option<&ListRec> {
        self.lists.get(&id).filter(|l| l.static_list)
    }

    /// Add leads to a static list: `added` (again, if already a member;
    /// facts §8 [GRP]) or skipped 1004 for an unknown lead.
    pub fn add_members(&mut self, list_id: u64, ids: &[u64]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(ids.len());
        let mut changed = false;
        for &id in ids {
            if !self.leads.contains_key(&id) {
                out.push(Outcome::Skipped("1004", "Lead not found".to_string()));
                continue;
            }
            if let Some(list) = self.lists.get_mut(&list_id) {
                changed |= list.members.insert(id);
            }
            *self.adds.entry(list_id).or_default().entry(id).or_insert(0) += 1;
            out.push(Outcome::Created(id));
        }
        if changed {
            if let Some(list) = self.lists.get_mut(&list_id) {
                list.updated = now_secs();
            }
        }
        out
    }

    /// Remove leads: `removed`, skipped 1015 for a non-member, 1004 for an unknown lead.
    pub fn remove_members(&mut self, list_id: u64, ids: &[u64]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if !self.leads.contains_key(&id) {
                out.push(Outcome::Skipped("1004", "Lead not found".to_string()));
                continue;
            }
            let removed = self
                .lists
                .get_mut(&list_id)
                .map(|l| l.members.remove(&id))
                .unwrap_or(false);
            if removed {
                out.push(Outcome::Updated(id));
            } else {
                out.push(Outcome::Skipped("1015", "Lead not in list".to_string()));
            }
        }
        out
    }

    /// Side-channel seeding: no validation of existence beyond the list.
    pub fn force_member(&mut self, list_id: u64, lead_id: u64) -> bool {
        match self.lists.get_mut(&list_id) {
            Some(l) => {
                l.members.insert(lead_id);
                true
            }
            None => false,
        }
    }

    /// Members after `after` (exclusive), at most `limit`, plus whether more follow.
    pub fn members_page(&self, list_id: u64, after: Option<u64>, limit: usize) -> (Vec<u64>, bool) {
        let Some(list) = self.lists.get(&list_id) else {
            return (Vec::new(), false);
        };
        let start = after.map(|a| a.saturating_add(1)).unwrap_or(0);
        let mut it = list.members.range(start..);
        let page: Vec<u64> = it.by_ref().take(limit).copied().collect();
        let more = it.next().is_some();
        (page, more)
    }

    pub fn times_added(&self, list_id: u64, lead_id: u64) -> u32 {
        self.adds
            .get(&list_id)
            .and_then(|m| m.get(&lead_id))
            .copied()
            .unwrap_or(0)
    }

    pub fn add_stats(&self) -> BTreeMap<u64, AddStats> {
        self.adds
            .iter()
            .map(|(list, per_lead)| {
                let mut s = AddStats::default();
                for &n in per_lead.values() {
                    s.total_adds += u64::from(n);
                    s.leads_added += 1;
                    if n > 1 {
                        s.leads_added_more_than_once += 1;
                    }
                    s.max_adds_per_lead = s.max_adds_per_lead.max(n);
                }
                (*list, s)
            })
            .collect()
    }

    /// A new static list via the Asset API.
    pub fn create_list(&mut self, name: &str, description: Option<String>, folder_id: u64) -> u64 {
        let id = self.next_list_id;
        self.next_list_id += 1;
        let now = now_secs();
        self.lists.insert(
            id,
            ListRec {
                id,
                name: name.to_string(),
                description,
                static_list: true,
                folder_id,
                created: now,
                updated: now,
                members: BTreeSet::new(),
            },
        );
        id
    }

    pub fn list_by_name(&self, name: &str) -> Option<&ListRec> {
        self.lists
            .values()
            .find(|l| l.static_list && l.name == name)
    }
}

/// The in-batch dedupe key of a record for its lookup field.
fn lookup_key(rec: &Map<String, Value>, lookup: Lookup) -> Option<String> {
    match lookup {
        Lookup::Email => rec
            .get("email")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase),
        Lookup::Id => rec.get("id").and_then(id_of).map(|i| i.to_string()),
    }
}

/// A lead id given as a JSON number or a numeric string.
pub fn id_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> Store {
        let cat = Catalogue::new(&[]).expect("catalogue");
        Store::new(cat, &crate::config::SimConfig::default().lists, &[])
    }

    fn rec(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn create_then_update_case_insensitively() {
        let mut s = store();
        let r = s.sync(
            Action::CreateOrUpdate,
            Lookup::Email,
            &[rec(json!({"email": "A@x.com", "firstName": "A"}))],
        );
        let Outcome::Created(id) = r[0].outcome else {
            panic!("{r:?}")
        };
        let r = s.sync(
            Action::CreateOrUpdate,
            Lookup::Email,
            &[rec(json!({"email": "a@X.com", "firstName": "B"}))],
        );
        assert_eq!(r[0].outcome, Outcome::Updated(id));
        assert_eq!(s.lead_count(), 1);
        let lead = s.lead(id).expect("lead");
        assert_eq!(
            lead.get(s.cat.lookup("firstName").expect("f")),
            Some(&Val::Str("B".into()))
        );
        // The email itself changed case: index must still find it.
        assert_eq!(s.ids_by_email("A@X.COM"), vec![id]);
    }

    #[test]
    fn record_level_reasons() {
        let mut s = store();
        let r = s.sync(
            Action::CreateOnly,
            Lookup::Email,
            &[rec(json!({"email": "a@x.com"}))],
        );
        assert!(matches!(r[0].outcome, Outcome::Created(_)));
        let r = s.sync(
            Action::CreateOnly,
            Lookup::Email,
            &[
                rec(json!({"email": "a@x.com"})),
                rec(json!({"email": "bad"})),
                rec(json!({"firstName": "no email"})),
                rec(json!({"email": "n@x.com", "numberOfEmployees": 1.5})),
            ],
        );
        let codes: Vec<&str> = r
            .iter()
            .map(|x| match &x.outcome {
                Outcome::Skipped(c, _) => *c,
                _ => "ok",
            })
            .collect();
        assert_eq!(codes, ["1005", "1003", "1003", "1003"]);
        let r = s.sync(
            Action::UpdateOnly,
            Lookup::Email,
            &[rec(json!({"email": "zz@x.com"}))],
        );
        assert_eq!(
            r[0].outcome,
            Outcome::Skipped("1004", "Lead not found".to_string())
        );
        let r = s.sync(Action::CreateOnly, Lookup::Id, &[rec(json!({"id": 1}))]);
        assert!(matches!(r[0].outcome, Outcome::Skipped("1003", _)));
    }

    #[test]
    fn duplicates_in_one_batch_are_skipped_after_the_first() {
        let mut s = store();
        let r = s.sync(
            Action::CreateOrUpdate,
            Lookup::Email,
            &[
                rec(json!({"email": "d@x.com"})),
                rec(json!({"email": "D@x.com"})),
            ],
        );
        assert!(matches!(r[0].outcome, Outcome::Created(_)));
        assert!(matches!(r[1].outcome, Outcome::Skipped("1036", _)));
    }

    #[test]
    fn seeded_duplicate_emails_give_1007() {
        let mut s = store();
        let e = s.cat.email;
        s.insert_raw(vec![(e, Val::Str("dup@x.com".into()))]);
        s.insert_raw(vec![(e, Val::Str("DUP@x.com".into()))]);
        let r = s.sync(
            Action::CreateOrUpdate,
            Lookup::Email,
            &[rec(json!({"email": "dup@x.com"}))],
        );
        assert!(matches!(r[0].outcome, Outcome::Skipped("1007", _)));
    }

    #[test]
    fn membership_and_paging() {
        let mut s = store();
        let ids: Vec<u64> = (0..10)
            .map(|i| {
                let e = s.cat.email;
                s.insert_raw(vec![(e, Val::Str(format!("m{i}@x.com").into()))])
            })
            .collect();
        let out = s.add_members(1001, &ids);
        assert!(out.iter().all(|o| matches!(o, Outcome::Created(_))));
        assert!(s
            .add_members(1001, &ids[..1])
            .iter()
            .all(|o| matches!(o, Outcome::Created(_))));
        assert_eq!(s.times_added(1001, ids[0]), 2);
        assert_eq!(
            s.add_members(1001, &[999])[0],
            Outcome::Skipped("1004", "Lead not found".to_string())
        );
        let (p1, more) = s.members_page(1001, None, 4);
        assert_eq!(p1, ids[..4]);
        assert!(more);
        let (p3, more) = s.members_page(1001, Some(ids[7]), 4);
        assert_eq!(p3, ids[8..]);
        assert!(!more);
        let out = s.remove_members(1001, &[ids[0], ids[0]]);
        assert_eq!(out[0], Outcome::Updated(ids[0]));
        assert!(matches!(out[1], Outcome::Skipped("1015", _)));
        let stats = s.add_stats();
        assert_eq!(stats[&1001].leads_added_more_than_once, 1);
    }
}
