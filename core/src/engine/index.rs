//! The compact in-memory form of a planned segment.
//!
//! A million profiles must not sit in memory as owned [`Record`]s (a
//! `Vec` of owned values per row, each text its own allocation).
//! Here each valid, deduplicated row is one fixed-size [`Entry`] (40 bytes);
//! its key and its encoded field values live side by side in a chunked byte
//! arena, and a hash table of entry numbers finds a key without storing it
//! twice. Values are encoded tightly (a field number and a tag, a varint
//! length, the bytes; the lookup field's value, which is the key, as a tag
//! alone): the 1M benchmark profiles took 131 MB here. [`Record`]s
//! are built back only for the batch being sent.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;

use hashbrown::HashTable;
use sha2::{Digest, Sha256};

use crate::record::{FieldValue, Record, RecordKey};
use crate::state::FieldsHash;

/// Where a byte string lives in an [`Arena`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    chunk: u32,
    start: u32,
    len: u32,
}

/// Append-only bytes in fixed chunks: growing never copies what is stored
/// (a single doubling `Vec` would briefly hold 1.5x its content).
#[derive(Debug, Default)]
pub(crate) struct Arena {
    chunks: Vec<Vec<u8>>,
}

const CHUNK: usize = 1 << 20;

impl Arena {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Span {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= bytes.len());
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(bytes.len())));
        }
        let chunk = self.chunks.len() - 1;
        let c = &mut self.chunks[chunk];
        let start = c.len();
        c.extend_from_slice(bytes);
        Span {
            chunk: chunk as u32,
            start: start as u32,
            len: bytes.len() as u32,
        }
    }

    pub(crate) fn get(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        &self.chunks[span.chunk as usize][start..start + span.len as usize]
    }

    pub(crate) fn bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

/// What the plan decided for an entry, and what execution achieved.
pub(crate) mod flag {
    /// The state store holds a record for this key.
    pub const HAS_RECORD: u8 = 1;
    /// The list is known to hold this key (state store, or read back).
    pub const IN_LIST: u8 = 1 << 1;
    /// The record must be sent (new, changed, or `--full`).
    pub const NEEDS_UPSERT: u8 = 1 << 2;
    /// The member must be added to the list.
    pub const NEEDS_ADD: u8 = 1 << 3;
    /// The destination confirmed the upsert.
    pub const UPSERTED: u8 = 1 << 4;
    /// The destination confirmed the add.
    pub const ADDED: u8 = 1 << 5;
    /// The destination refused the record itself.
    pub const REJECTED: u8 = 1 << 6;
    /// A call for this row failed, or the destination refused the membership.
    pub const FAILED: u8 = 1 << 7;
}

/// One valid, deduplicated row of the segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The key's bytes, then the encoded fields.
    data: Span,
    key_len: u32,
    /// 0-based position of the row in the segment (segments are bounded
    /// far below 2^32 rows: see [`MAX_ROWS`]).
    row: u32,
    pub hash: FieldsHash,
    pub flags: u8,
}

/// The most rows a segment may have: row numbers are kept as `u32`.
pub(crate) const MAX_ROWS: u64 = u32::MAX as u64;

impl Entry {
    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// 0-based position of the row in the segment.
    pub(crate) fn row(&self) -> u64 {
        u64::from(self.row)
    }

    /// The entry's key and its encoded fields, from `arena`.
    fn split<'a>(&self, arena: &'a Arena) -> (&'a [u8], &'a [u8]) {
        arena.get(self.data).split_at(self.key_len as usize)
    }
}

/// The segment's rows, keyed by normalised lookup key.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    entries: Vec<Entry>,
    table: HashTable<u32>,
    hasher: RandomState,
    data: Arena,
    /// Destination field names, in the order of every record's values;
    /// payloads refer to them by number.
    fields: Arc<[String]>,
    /// Field numbers by name: the order a record's hash covers them in (the
    /// state store's hashes have always been taken in name order).
    hash_order: Vec<usize>,
}

/// The outcome of [`SegmentIndex::insert`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    New(u32),
    /// The key was already taken by this entry (its row wins).
    Duplicate(u32),
}

impl SegmentIndex {
    pub(crate) fn new(fields: &[String]) -> Self {
        let mut hash_order: Vec<usize> = (0..fields.len()).collect();
        hash_order.sort_by(|&a, &b| fields[a].cmp(&fields[b]));
        // A name mapped twice is one field (the first).
        hash_order.dedup_by(|a, b| fields[*a] == fields[*b]);
        SegmentIndex {
            entries: Vec::new(),
            table: HashTable::new(),
            hasher: RandomState::default(),
            data: Arena::default(),
            fields: fields.into(),
            hash_order,
        }
    }

    /// The field names of every record, in order.
    pub(crate) fn fields(&self) -> &Arc<[String]> {
        &self.fields
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn entry(&self, i: u32) -> &Entry {
        &self.entries[i as usize]
    }

    pub(crate) fn entry_mut(&mut self, i: u32) -> &mut Entry {
        &mut self.entries[i as usize]
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn entries_mut(&mut self) -> &mut [Entry] {
        &mut self.entries
    }

    pub(crate) fn key(&self, i: u32) -> &str {
        // Keys are stored from `&str`, so they are valid UTF-8.
        std::str::from_utf8(self.entries[i as usize].split(&self.data).0).unwrap_or_default()
    }

    /// Approximate heap use, for the memory figures in docs and benches.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.data.bytes()
    }

    pub(crate) fn find(&self, key: &str) -> Option<u32> {
        let h = self.hasher.hash_one(key.as_bytes());
        self.table
            .find(h, |&i| {
                self.entries[i as usize].split(&self.data).0 == key.as_bytes()
            })
            .copied()
    }

    /// Add a record (first row wins: a key seen before is not stored
    /// again). `row` must be at most [`MAX_ROWS`]; planning stops before.
    pub(crate) fn insert(&mut self, row: u64, record: &Record) -> Inserted {
        let key = record.key.as_str();
        if let Some(i) = self.find(key) {
            return Inserted::Duplicate(i);
        }
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(key.as_bytes());
        let hash = encode(&self.fields, &self.hash_order, record, &mut buf);
        let data = self.data.push(&buf);
        let i = self.entries.len() as u32;
        self.entries.push(Entry {
            data,
            key_len: key.len() as u32,
            row: u32::try_from(row).unwrap_or(u32::MAX),
            hash,
            flags: 0,
        });
        let h = self.hasher.hash_one(key.as_bytes());
        let (entries, arena, hasher) = (&self.entries, &self.data, &self.hasher);
        self.table.insert_unique(h, i, |&j| {
            hasher.hash_one(entries[j as usize].split(arena).0)
        });
        Inserted::New(i)
    }

    /// The record of an entry, rebuilt for sending.
    pub(crate) fn record(&self, i: u32) -> Record {
        let key = self.key(i);
        let fields = self.entries[i as usize].split(&self.data).1;
        Record {
            key: RecordKey::new(key),
            values: decode(self.fields.len(), key, fields),
        }
    }
}

// Value tags. The hash is taken over the canonical form of a value (tag,
// then: nothing; 8 little-endian bytes; or a u32 length and the bytes),
// which is what the state store has always kept; the arena holds a tighter
// form of the same value.
const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
/// Arena only: a text value equal to the entry's key (the lookup field).
const KEY_TEXT: u8 = 6;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(b: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some((&byte, rest)) = b.split_first() {
        *b = rest;
        if shift < 64 {
            v |= u64::from(byte & 0x7f) << shift;
        }
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// Append a record's values to `out` as `(field number, tag, value)*` (the
/// number and a text's length as varints) and return the hash of its field
/// names and values, taken in name order (`order`). The hash covers names,
/// so a changed mapping resends every record.
fn encode(fields: &[String], order: &[usize], record: &Record, out: &mut Vec<u8>) -> FieldsHash {
    let mut hasher = Sha256::new();
    let key = record.key.as_str();
    for &n in order {
        let (Some(name), Some(value)) = (fields.get(n), record.values.get(n)) else {
            continue;
        };
        put_varint(out, n as u64);
        hasher.update((name.len() as u32).to_le_bytes());
        hasher.update(name.as_bytes());
        match value {
            FieldValue::Null => {
                out.push(NULL);
                hasher.update([NULL]);
            }
            FieldValue::Bool(b) => {
                let tag = if *b { TRUE } else { FALSE };
                out.push(tag);
                hasher.update([tag]);
            }
            FieldValue::Int(v) => {
                out.push(INT);
                out.extend_from_slice(&v.to_le_bytes());
                hasher.update([INT]);
                hasher.update(v.to_le_bytes());
            }
            FieldValue::Float(v) => {
                let bits = v.to_bits().to_le_bytes();
                out.push(FLOAT);
                out.extend_from_slice(&bits);
                hasher.update([FLOAT]);
                hasher.update(bits);
            }
            FieldValue::Text(s) => {
                if s == key {
                    out.push(KEY_TEXT);
                } else {
                    out.push(TEXT);
                    put_varint(out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                }
                hasher.update([TEXT]);
                hasher.update((s.len() as u32).to_le_bytes());
                hasher.update(s.as_bytes());
            }
        }
    }
    let digest = hasher.finalize();
    let mut h = [0u8; 16];
    h.copy_from_slice(&digest[..16]);
    h
}

/// The values of `fields` fields from their encoded form (a field not in it
/// is null).
fn decode(fields: usize, key: &str, mut bytes: &[u8]) -> Vec<FieldValue> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
        let n = n.min(b.len());
        let (head, tail) = b.split_at(n);
        *b = tail;
        head
    }
    fn take8(b: &mut &[u8]) -> [u8; 8] {
        take(b, 8).try_into().unwrap_or([0; 8])
    }
    let mut out = vec![FieldValue::Null; fields];
    while !bytes.is_empty() {
        let n = take_varint(&mut bytes) as usize;
        let Some((&tag, rest)) = bytes.split_first() else {
            break;
        };
        bytes = rest;
        let value = match tag {
            FALSE => FieldValue::Bool(false),
            TRUE => FieldValue::Bool(true),
            INT => FieldValue::Int(i64::from_le_bytes(take8(&mut bytes))),
            FLOAT => FieldValue::Float(f64::from_bits(u64::from_le_bytes(take8(&mut bytes)))),
            TEXT => {
                let len = take_varint(&mut bytes) as usize;
                FieldValue::Text(String::from_utf8_lossy(take(&mut bytes, len)).into_owned())
            }
            KEY_TEXT => FieldValue::Text(key.to_string()),
            _ => FieldValue::Null,
        };
        if let Some(slot) = out.get_mut(n) {
            *slot = value;
        }
    }
    out
}

/// The hash of a record's values under `fields`, as the state store keeps
/// it.
#[cfg(test)]
pub(crate) fn fields_hash(fields: &[String], record: &Record) -> FieldsHash {
    let idx = SegmentIndex::new(fields);
    encode(&idx.fields, &idx.hash_order, record, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index over the names of `fields`, and the record of `key` with
    /// their values.
    fn indexed(key: &str, fields: &[(&str, FieldValue)]) -> (SegmentIndex, Record) {
        let names: Vec<String> = fields.iter().map(|(n, _)| n.to_string()).collect();
        (SegmentIndex::new(&names), record(key, fields))
    }

    fn record(key: &str, fields: &[(&str, FieldValue)]) -> Record {
        Record {
            key: RecordKey::new(key),
            values: fields.iter().map(|(_, v)| v.clone()).collect(),
        }
    }

    fn hash(key: &str, fields: &[(&str, FieldValue)]) -> FieldsHash {
        let (idx, r) = indexed(key, fields);
        fields_hash(&idx.fields, &r)
    }

    #[test]
    fn records_round_trip_through_the_arena() {
        let (mut idx, r) = indexed(
            "a@x.com",
            &[
                ("email", FieldValue::Text("A@x.com".into())),
                ("firstName", FieldValue::Text("Åsa".into())),
                ("score", FieldValue::Int(-7)),
                ("ratio", FieldValue::Float(0.25)),
                ("vip", FieldValue::Bool(true)),
                ("gone", FieldValue::Null),
            ],
        );
        let Inserted::New(i) = idx.insert(3, &r) else {
            panic!("new key")
        };
        assert_eq!(idx.record(i), r);
        assert_eq!(idx.entry(i).row(), 3);
        assert_eq!(idx.entry(i).hash, fields_hash(&idx.fields, &r));
        assert_eq!(idx.key(i), "a@x.com");
    }

    #[test]
    fn an_entry_stays_small() {
        // A million of them are held while a segment is planned.
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn first_row_wins_on_a_duplicate_key() {
        let (mut idx, a) = indexed("k", &[("f", FieldValue::Int(1))]);
        let b = record("k", &[("f", FieldValue::Int(2))]);
        assert_eq!(idx.insert(0, &a), Inserted::New(0));
        assert_eq!(idx.insert(1, &b), Inserted::Duplicate(0));
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.record(0), a);
        assert_eq!(idx.find("k"), Some(0));
        assert_eq!(idx.find("other"), None);
    }

    #[test]
    fn hash_changes_with_any_value_or_name() {
        let h = hash("k", &[("a", FieldValue::Text("x".into()))]);
        assert_ne!(h, hash("k", &[("a", FieldValue::Text("y".into()))]));
        assert_ne!(h, hash("k", &[("b", FieldValue::Text("x".into()))]));
        assert_ne!(h, hash("k", &[("a", FieldValue::Null)]));
        assert_eq!(h, hash("k", &[("a", FieldValue::Text("x".into()))]));
    }

    #[test]
    fn the_hash_does_not_depend_on_the_order_of_the_fields() {
        let a = [("a", FieldValue::Int(1)), ("b", FieldValue::Int(2))];
        let b = [("b", FieldValue::Int(2)), ("a", FieldValue::Int(1))];
        assert_eq!(hash("k", &a), hash("k", &b));
    }

    /// The hash is stored in the state store: a change would resend every
    /// record of every destination once after an upgrade. Pinned.
    #[test]
    fn the_fields_hash_is_stable_across_versions() {
        let fields = [
            ("email", FieldValue::Text("a@x.com".into())),
            ("firstName", FieldValue::Text("Åsa".into())),
            ("score", FieldValue::Int(-7)),
            ("ratio", FieldValue::Float(0.25)),
            ("vip", FieldValue::Bool(true)),
            ("off", FieldValue::Bool(false)),
            ("gone", FieldValue::Null),
        ];
        let hex: String = hash("a@x.com", &fields)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "dde03819a90f7972308a038f5f6b9a11");
        // The lookup value, stored as a reference to the key, comes back.
        let (mut idx, r) = indexed("a@x.com", &fields);
        let Inserted::New(i) = idx.insert(u64::from(u32::MAX), &r) else {
            panic!("new key")
        };
        assert_eq!(idx.record(i), r);
        assert_eq!(idx.entry(i).hash, fields_hash(&idx.fields, &r));
        assert_eq!(idx.entry(i).row(), u64::from(u32::MAX));
    }

    #[test]
    fn many_keys_are_found_after_the_table_grows() {
        let mut idx = SegmentIndex::new(&["email".into()]);
        for n in 0..5000u64 {
            let key = format!("user{n}@example.com");
            let r = record(&key, &[("email", FieldValue::Text(key.clone()))]);
            assert_eq!(idx.insert(n, &r), Inserted::New(n as u32));
        }
        for n in (0..5000u64).step_by(7) {
            assert_eq!(idx.find(&format!("user{n}@example.com")), Some(n as u32));
        }
        assert!(idx.heap_bytes() > 0);
    }
}
