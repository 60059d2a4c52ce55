//! Records sent and list membership, per destination.

use rusqlite::{params, OptionalExtension};

use super::{db_err, now, FieldsHash, StateStore};
use crate::error::Result;

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
}

impl Checkpoint {
    pub fn is_empty(&self) -> bool {
        self.save_records.is_empty()
            && self.forget_records.is_empty()
            && self.add_members.is_empty()
            && self.remove_members.is_empty()
    }
}

/// What a purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeCounts {
    pub records: u64,
    pub members: u64,
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
            let mut save = tx
                .prepare_cached(
                    "INSERT INTO records (destination, key, member_id, hash, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (destination, key) DO UPDATE
                     SET member_id = excluded.member_id, hash = excluded.hash,
                         updated_at = excluded.updated_at",
                )
                .map_err(db_err("prepare a record update"))?;
            for r in &cp.save_records {
                save.execute(params![destination, r.key, r.member_id, &r.hash[..], now])
                    .map_err(db_err("save a record"))?;
            }
            let mut forget = tx
                .prepare_cached("DELETE FROM records WHERE destination = ?1 AND key = ?2")
                .map_err(db_err("prepare a record deletion"))?;
            for key in &cp.forget_records {
                forget
                    .execute(params![destination, key])
                    .map_err(db_err("forget a record"))?;
            }
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO members (destination, list_id, key, member_id)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (destination, list_id, key) DO UPDATE
                     SET member_id = excluded.member_id",
                )
                .map_err(db_err("prepare a member insert"))?;
            for m in &cp.add_members {
                add.execute(params![destination, list, m.key, m.member_id])
                    .map_err(db_err("save a member"))?;
            }
            let mut remove = tx
                .prepare_cached(
                    "DELETE FROM members WHERE destination = ?1 AND list_id = ?2 AND key = ?3",
                )
                .map_err(db_err("prepare a member deletion"))?;
            for key in &cp.remove_members {
                remove
                    .execute(params![destination, list, key])
                    .map_err(db_err("remove a member"))?;
            }
        }
        tx.commit().map_err(db_err("commit a checkpoint"))
    }

    /// Call `f(key, member_id, hash)` for every record of `destination`,
    /// streaming (the records never sit in memory together). Returns the
    /// number of records.
    pub fn for_each_record(
        &self,
        destination: &str,
        mut f: impl FnMut(&str, &str, &FieldsHash),
    ) -> Result<u64> {
        let conn = self.lock();
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
        let conn = self.lock();
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

    /// Our key of the record the destination knows as `member_id`.
    pub fn key_for_member_id(&self, destination: &str, member_id: &str) -> Result<Option<String>> {
        let conn = self.lock();
        conn.query_row(
            "SELECT key FROM records WHERE destination = ?1 AND member_id = ?2 LIMIT 1",
            params![destination, member_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err("look up a member id"))
    }

    /// Call `f(key, member_id)` for every confirmed member of the list,
    /// streaming. Returns the number of members.
    pub fn for_each_member(
        &self,
        destination: &str,
        list: &str,
        mut f: impl FnMut(&str, &str),
    ) -> Result<u64> {
        let conn = self.lock();
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
        let conn = self.lock();
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
        let conn = self.lock();
        conn.query_row(
            "SELECT COUNT(*) FROM members WHERE destination = ?1 AND list_id = ?2",
            params![destination, list],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
        .map_err(db_err("count the members"))
    }

    /// Delete everything stored for `destination` (records and members; the
    /// run history stays), in one transaction.
    pub fn purge_destination(&self, destination: &str) -> Result<PurgeCounts> {
        let mut conn = self.lock();
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
        super::fingerprints::forget(&tx, destination)?;
        tx.commit().map_err(db_err("commit a purge"))?;
        Ok(PurgeCounts {
            records: records as u64,
            members: members as u64,
        })
    }
}
