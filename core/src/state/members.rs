//! Records sent and list membership, per destination.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{db_err, now, FieldsHash, StateStore};
use crate::error::Result;

const OP_SAVE: i64 = 1;
const OP_FORGET: i64 = 2;
const OP_ADD: i64 = 3;
const OP_REMOVE: i64 = 4;

/// Journalled saves and adds go in in key order (each B-tree page written
/// once) and, for one key, in the order they were journalled, so the last
/// save wins.
macro_rules! fold_saves_and_adds {
    () => {
        "INSERT INTO records (destination, key, member_id, hash, updated_at)
    SELECT destination, key, member_id, hash, updated_at FROM journal
    WHERE op = 1 ORDER BY destination, key, seq
    ON CONFLICT (destination, key) DO UPDATE
    SET member_id = excluded.member_id, hash = excluded.hash, updated_at = excluded.updated_at;
INSERT INTO members (destination, list_id, key, member_id)
    SELECT destination, list_id, key, member_id FROM journal
    WHERE op = 3 ORDER BY destination, list_id, key, seq
    ON CONFLICT (destination, list_id, key) DO UPDATE SET member_id = excluded.member_id;
"
    };
}

/// Folding a journal of saves and adds only (the usual case).
const FOLD_JOURNAL: &str = concat!(fold_saves_and_adds!(), "DELETE FROM journal;");

/// Folding a journal that also forgets records or removes members: a key
/// ends deleted when its last deletion comes after its last save or add.
const FOLD_JOURNAL_WITH_DELETIONS: &str = concat!(
    "
CREATE TEMP TABLE IF NOT EXISTS fold_gone (destination TEXT, list_id TEXT, key TEXT, seq INTEGER);
CREATE TEMP TABLE IF NOT EXISTS fold_kept (destination TEXT, list_id TEXT, key TEXT, seq INTEGER);
DELETE FROM temp.fold_gone;
DELETE FROM temp.fold_kept;
INSERT INTO temp.fold_gone
    SELECT destination, list_id, key, max(seq) FROM journal WHERE op IN (2, 4)
    GROUP BY destination, list_id, key;
INSERT INTO temp.fold_kept
    SELECT j.destination, j.list_id, j.key, max(j.seq) FROM journal j
    JOIN temp.fold_gone g ON g.destination = j.destination AND g.list_id = j.list_id AND g.key = j.key
    WHERE j.op IN (1, 3) GROUP BY j.destination, j.list_id, j.key;",
    fold_saves_and_adds!(),
    "DELETE FROM records WHERE (destination, key) IN (
    SELECT g.destination, g.key FROM temp.fold_gone g
    LEFT JOIN temp.fold_kept k ON k.destination = g.destination AND k.list_id = g.list_id AND k.key = g.key
    WHERE g.list_id = '' AND g.seq > coalesce(k.seq, 0));
DELETE FROM members WHERE (destination, list_id, key) IN (
    SELECT g.destination, g.list_id, g.key FROM temp.fold_gone g
    LEFT JOIN temp.fold_kept k ON k.destination = g.destination AND k.list_id = g.list_id AND k.key = g.key
    WHERE g.list_id <> '' AND g.seq > coalesce(k.seq, 0));
DELETE FROM temp.fold_gone;
DELETE FROM temp.fold_kept;
DELETE FROM journal;
"
);

/// A record the destination confirmed: our key, its id there, and the hash of
/// the fields sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub key: String,
    pub member_id: String,
    pub hash: FieldsHash,
}

/// A confirmed member of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub key: String,
    pub member_id: String,
}

/// What one completed batch changes in the store, applied in one
/// transaction so a crash keeps all of it or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Records the destination confirmed (inserted or replaced).
    pub save_records: Vec<StoredRecord>,
    /// Records no longer known to exist there (resent on the next run).
    pub forget_records: Vec<String>,
    /// Members the destination confirmed in the list.
    pub add_members: Vec<MemberRow>,
    /// Keys the destination confirmed are no longer in the list.
    pub remove_members: Vec<String>,
    /// Keys the destination refused for good: never sent to it again.
    pub suppress: Vec<Suppression>,
}

impl Checkpoint {
    pub fn is_empty(&self) -> bool {
        self.save_records.is_empty()
            && self.forget_records.is_empty()
            && self.add_members.is_empty()
            && self.remove_members.is_empty()
            && self.suppress.is_empty()
    }
}

/// A key a destination refused for good (a compliance state), with its
/// reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// What a purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeCounts {
    pub records: u64,
    pub members: u64,
    /// Keys the destination had refused for good.
    pub suppressions: u64,
}

impl StateStore {
    /// Apply one batch's changes for `destination` (and `list`, for member
    /// changes) in a single transaction.
    pub fn checkpoint(&self, destination: &str, list: &str, cp: &Checkpoint) -> Result<()> {
        if cp.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db_err("begin a checkpoint"))?;
        {
            let now = now();
            let mut append = tx
                .prepare_cached(
                    "INSERT INTO journal (op, destination, list_id, key, member_id, hash, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db_err("prepare a checkpoint"))?;
            let none: Option<&str> = None;
            let no_hash: Option<&[u8]> = None;
            for r in &cp.save_records {
                append
                    .execute(params![
                        OP_SAVE,
                        destination,
                        "",
                        r.key,
                        r.member_id,
                        &r.hash[..],
                        now
                    ])
                    .map_err(db_err("save a record"))?;
            }
            for key in &cp.forget_records {
                append
                    .execute(params![
                        OP_FORGET,
                        destination,
                        "",
                        key,
                        none,
                        no_hash,
                        none
                    ])
                    .map_err(db_err("forget a record"))?;
            }
            for m in &cp.add_members {
                append
                    .execute(params![
                        OP_ADD,
                        destination,
                        list,
                        m.key,
                        m.member_id,
                        no_hash,
                        none
                    ])
                    .map_err(db_err("save a member"))?;
            }
            for key in &cp.remove_members {
                append
                    .execute(params![
                        OP_REMOVE,
                        destination,
                        list,
                        key,
                        none,
                        no_hash,
                        none
                    ])
                    .map_err(db_err("remove a member"))?;
            }
            if !cp.suppress.is_empty() {
                let mut suppress = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO suppressions (destination, key, code, message, since)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(db_err("prepare a suppression"))?;
                for s in &cp.suppress {
                    suppress
                        .execute(params![destination, s.key, s.code, s.message, now])
                        .map_err(db_err("save a suppression"))?;
                }
            }
        }
        tx.commit().map_err(db_err("commit a checkpoint"))
    }

    /// Lift suppressions of `destination`: the given keys, or every one
    /// with `None`. Returns how many were lifted; the next run sends them
    /// again.
    pub fn forget_suppressions(&self, destination: &str, keys: Option<&[String]>) -> Result<u64> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(db_err("begin lifting suppressions"))?;
        let mut n = 0;
        match keys {
            None => {
                n += tx
                    .execute(
                        "DELETE FROM suppressions WHERE destination = ?1",
                        params![destination],
                    )
                    .map_err(db_err("lift the suppressions"))?;
            }
            Some(keys) => {
                let mut stmt = tx
                    .prepare_cached("DELETE FROM suppressions WHERE destination = ?1 AND key = ?2")
                    .map_err(db_err("lift a suppression"))?;
                for key in keys {
                    n += stmt
                        .execute(params![destination, key])
                        .map_err(db_err("lift a suppression"))?;
                }
            }
        }
        tx.commit().map_err(db_err("commit lifting suppressions"))?;
        Ok(n as u64)
    }

    /// Call `f` with every key `destination` refused for good: its code,
    /// message and since when (RFC 3339). Returns how many there were.
    pub fn for_each_suppression(
        &self,
        destination: &str,
        mut f: impl FnMut(&str, &str, &str, &str),
    ) -> Result<u64> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, code, message, since FROM suppressions WHERE destination = ?1",
            )
            .map_err(db_err("read the suppressions"))?;
        let mut rows = stmt
            .query(params![destination])
            .map_err(db_err("read the suppressions"))?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(db_err("read a suppression"))? {
            let text = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_str().ok());
            if let (Some(key), Some(code), Some(message), Some(since)) =
                (text(0), text(1), text(2), text(3))
            {
                f(key, code, message, since);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Fold the checkpoint journal into `records` and `members`: per key the
    /// last change wins, written in key order, in one transaction (a crash
    /// keeps the journal whole, to be folded next time). Every read of
    /// records or members calls this first; it costs one lookup when the
    /// journal is empty.
    pub(crate) fn fold_journal(conn: &mut Connection) -> Result<()> {
        let pending: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM journal)", [], |r| r.get(0))
            .map_err(db_err("read the checkpoint journal"))?;
        if !pending {
            return Ok(());
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("begin folding the checkpoint journal"))?;
        let deletions: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM journal WHERE op IN (2, 4))",
                [],
                |r| r.get(0),
            )
            .map_err(db_err("read the checkpoint journal"))?;
        tx.execute_batch(if deletions {
            FOLD_JOURNAL_WITH_DELETIONS
        } else {
            FOLD_JOURNAL
        })
        .map_err(db_err("fold the checkpoint journal"))?;
        tx.commit()
            .map_err(db_err("commit the folded checkpoint journal"))
    }

    /// Call `f(key, member_id, hash)` for every record of `destination`,
    /// streaming (the records never sit in memory together). Returns the
    /// number of records.
    pub fn for_each_record(
        &self,
        destination: &str,
        mut f: impl FnMut(&str, &str, &FieldsHash),
    ) -> Result<u64> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        let mut stmt = conn
            .prepare_cached("SELECT key, member_id, hash FROM records WHERE destination = ?1")
            .map_err(db_err("read the records"))?;
        let mut rows = stmt
            .query(params![destination])
            .map_err(db_err("read the records"))?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(db_err("read a record"))? {
            let key = row.get_ref(0).map_err(db_err("read a key"))?;
            let id = row.get_ref(1).map_err(db_err("read a member id"))?;
            let hash = row.get_ref(2).map_err(db_err("read a hash"))?;
            let (Ok(key), Ok(id), Ok(hash)) = (key.as_str(), id.as_str(), hash.as_blob()) else {
                continue;
            };
            // A hash of another length cannot match; the record is resent.
            let hash: FieldsHash = hash.try_into().unwrap_or([0; 16]);
            f(key, id, &hash);
            n += 1;
        }
        Ok(n)
    }

    /// One record of `destination`, by key.
    pub fn record(&self, destination: &str, key: &str) -> Result<Option<StoredRecord>> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        conn.query_row(
            "SELECT member_id, hash FROM records WHERE destination = ?1 AND key = ?2",
            params![destination, key],
            |r| {
                let member_id: String = r.get(0)?;
                let hash: Vec<u8> = r.get(1)?;
                Ok(StoredRecord {
                    key: key.to_string(),
                    member_id,
                    hash: hash.as_slice().try_into().unwrap_or([0; 16]),
                })
            },
        )
        .optional()
        .map_err(db_err("read a record"))
    }

    /// Our key of the record the destination knows as `member_id`. Scans the
    /// destination's records: for many ids use [`Self::keys_for_member_ids`].
    pub fn key_for_member_id(&self, destination: &str, member_id: &str) -> Result<Option<String>> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        conn.query_row(
            "SELECT key FROM records WHERE destination = ?1 AND member_id = ?2 LIMIT 1",
            params![destination, member_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err("look up a member id"))
    }

    /// Our keys of the records the destination knows by these ids, in one
    /// pass over the destination's records.
    pub fn keys_for_member_ids(
        &self,
        destination: &str,
        ids: &std::collections::HashSet<String>,
    ) -> Result<std::collections::HashMap<String, String>> {
        let mut found = std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        self.for_each_record(destination, |key, id, _| {
            if ids.contains(id) {
                found.insert(id.to_string(), key.to_string());
            }
        })?;
        Ok(found)
    }

    /// Call `f(key, member_id)` for every confirmed member of the list,
    /// streaming. Returns the number of members.
    pub fn for_each_member(
        &self,
        destination: &str,
        list: &str,
        mut f: impl FnMut(&str, &str),
    ) -> Result<u64> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, member_id FROM members WHERE destination = ?1 AND list_id = ?2",
            )
            .map_err(db_err("read the members"))?;
        let mut rows = stmt
            .query(params![destination, list])
            .map_err(db_err("read the members"))?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(db_err("read a member"))? {
            let key = row.get_ref(0).map_err(db_err("read a key"))?;
            let id = row.get_ref(1).map_err(db_err("read a member id"))?;
            if let (Ok(key), Ok(id)) = (key.as_str(), id.as_str()) {
                f(key, id);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Replace the list's confirmed members with `members` (after reading
    /// the real list back), in one transaction.
    pub fn replace_members(
        &self,
        destination: &str,
        list: &str,
        members: &[MemberRow],
    ) -> Result<()> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        let tx = conn
            .transaction()
            .map_err(db_err("begin a member refresh"))?;
        tx.execute(
            "DELETE FROM members WHERE destination = ?1 AND list_id = ?2",
            params![destination, list],
        )
        .map_err(db_err("clear the members"))?;
        {
            let mut add = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO members (destination, list_id, key, member_id)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db_err("prepare a member insert"))?;
            for m in members {
                add.execute(params![destination, list, m.key, m.member_id])
                    .map_err(db_err("save a member"))?;
            }
        }
        tx.commit().map_err(db_err("commit a member refresh"))
    }

    /// How many records `destination` has.
    pub fn record_count(&self, destination: &str) -> Result<u64> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        conn.query_row(
            "SELECT COUNT(*) FROM records WHERE destination = ?1",
            params![destination],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
        .map_err(db_err("count the records"))
    }

    /// How many confirmed members the list has.
    pub fn member_count(&self, destination: &str, list: &str) -> Result<u64> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        conn.query_row(
            "SELECT COUNT(*) FROM members WHERE destination = ?1 AND list_id = ?2",
            params![destination, list],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
        .map_err(db_err("count the members"))
    }

    /// Delete everything stored for `destination` (records, members and
    /// suppressions; the run history stays), in one transaction.
    pub fn purge_destination(&self, destination: &str) -> Result<PurgeCounts> {
        let mut conn = self.lock();
        Self::fold_journal(&mut conn)?;
        let tx = conn.transaction().map_err(db_err("begin a purge"))?;
        let members = tx
            .execute(
                "DELETE FROM members WHERE destination = ?1",
                params![destination],
            )
            .map_err(db_err("purge the members"))?;
        let records = tx
            .execute(
                "DELETE FROM records WHERE destination = ?1",
                params![destination],
            )
            .map_err(db_err("purge the records"))?;
        let suppressions = tx
            .execute(
                "DELETE FROM suppressions WHERE destination = ?1",
                params![destination],
            )
            .map_err(db_err("purge the suppressions"))?;
        super::fingerprints::forget(&tx, destination)?;
        tx.commit().map_err(db_err("commit a purge"))?;
        Ok(PurgeCounts {
            records: records as u64,
            members: members as u64,
            suppressions: suppressions as u64,
        })
    }
}
