//! The state store's schema, as an ordered list of migrations. A database
//! records which versions it has applied; opening it applies the rest, each
//! in its own transaction. Never edit a released migration: add a new one.

use rusqlite::Connection;

use super::db_err;
use crate::error::{Error, Result};

/// Migrations in order; the version of `MIGRATIONS[i]` is `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: records sent, list membership, run history.
    r#"
    -- Per destination, every record the destination confirmed: our key, its
    -- id there, and a hash of the fields last sent (to send only changes).
    CREATE TABLE records (
        destination TEXT NOT NULL,
        key         TEXT NOT NULL,
        member_id   TEXT NOT NULL,
        hash        BLOB NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (destination, key)
    ) WITHOUT ROWID;
    CREATE INDEX records_by_member_id ON records (destination, member_id);

    -- Per (destination, list), the members the destination confirmed.
    CREATE TABLE members (
        destination TEXT NOT NULL,
        list_id     TEXT NOT NULL,
        key         TEXT NOT NULL,
        member_id   TEXT NOT NULL,
        PRIMARY KEY (destination, list_id, key)
    ) WITHOUT ROWID;

    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        destination  TEXT NOT NULL,
        display_name TEXT NOT NULL,
        export_user  TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        status       TEXT NOT NULL,
        dry_run      INTEGER NOT NULL,
        full         INTEGER NOT NULL,
        reconcile    INTEGER NOT NULL,
        pid          INTEGER NOT NULL,
        calls_total  INTEGER NOT NULL DEFAULT 0,
        duration_ms  INTEGER,
        error_class  TEXT,
        error        TEXT,
        rejects_file TEXT
    );
    CREATE INDEX runs_by_destination ON runs (destination, id);

    CREATE TABLE run_segments (
        run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        segment    TEXT NOT NULL,
        list_id    TEXT NOT NULL,
        mode       TEXT NOT NULL,
        read       INTEGER NOT NULL,
        rejected   INTEGER NOT NULL,
        upserted   INTEGER NOT NULL,
        added      INTEGER NOT NULL,
        removed    INTEGER NOT NULL,
        unchanged  INTEGER NOT NULL,
        failed     INTEGER NOT NULL,
        calls      INTEGER NOT NULL,
        truncated_values INTEGER NOT NULL,
        PRIMARY KEY (run_id, position)
    ) WITHOUT ROWID;
    "#,
    // 2: the checkpoint journal.
    r#"
    -- Each call's checkpoint, appended in order. Writing 300 random keys
    -- into `records` and `members` per call rewrote hundreds of B-tree pages
    -- a call; appending here touches a few. Folded into `records` and
    -- `members` (in key order, the last change of a key winning) before
    -- anything reads them. op: 1 save record, 2 forget record, 3 add member,
    -- 4 remove member.
    -- Kept up on every fold, this index cost more than the fold itself
    -- (1M random inserts); the rare lookups by member id scan instead.
    DROP INDEX records_by_member_id;
    CREATE TABLE journal (
        seq         INTEGER PRIMARY KEY,
        op          INTEGER NOT NULL,
        destination TEXT NOT NULL,
        list_id     TEXT NOT NULL,
        key         TEXT NOT NULL,
        member_id   TEXT,
        hash        BLOB,
        updated_at  TEXT
    );
    "#,
    // 3: rows a stopped run never sent, apart from the ones that failed.
    // Runs recorded before count them in `failed`.
    r#"
    ALTER TABLE run_segments ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: members a mirror run kept because their row could not be read, and
    // per source table the rows that could not be read.
    r#"
    ALTER TABLE run_segments ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE run_tables (
        run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        source     TEXT NOT NULL,
        table_name TEXT NOT NULL,
        unreadable INTEGER NOT NULL,
        PRIMARY KEY (run_id, source, table_name)
    ) WITHOUT ROWID;
    "#,
    // 5: each export's target as its destination names it (a JSON object,
    // e.g. {"list_id": 1001} or {"tag": "VIP"}). Runs recorded before have
    // none: their list id stands for it.
    r#"
    ALTER TABLE run_segments ADD COLUMN target TEXT;
    "#,
    // 6: keys a destination refused for good (a compliance state such as an
    // unsubscribe): never sent to it again.
    r#"
    CREATE TABLE suppressions (
        destination TEXT NOT NULL,
        key         TEXT NOT NULL,
        code        TEXT NOT NULL,
        message     TEXT NOT NULL,
        since       TEXT NOT NULL,
        PRIMARY KEY (destination, key)
    ) WITHOUT ROWID;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         );",
    )
    .map_err(db_err("create the migration table"))?;
    let current = current_version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "the state store has schema version {current}, newer than this audex knows ({SCHEMA_VERSION})"
        ))
        .with_hint("use the audex version that wrote it, or a newer one"));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let tx = conn.transaction().map_err(db_err("begin a migration"))?;
        tx.execute_batch(sql)
            .map_err(db_err(&format!("apply migration {version}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, super::now()],
        )
        .map_err(db_err("record a migration"))?;
        tx.commit().map_err(db_err("commit a migration"))?;
    }
    Ok(())
}

pub(super) fn current_version(conn: &Connection) -> Result<u32> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get::<_, u32>(0),
    )
    .map_err(db_err("read the schema version"))
}
