//! Deterministic example customer profiles.
//!
//! The same options (rows, seed, shares) always give the same rows, so tests,
//! the quickstart and the benchmarks can rely on exact counts. Rows are made
//! one at a time and written in batches: a million profiles never sit in
//! memory at once.
//!
//! Columns: `customer_id`, `email`, `first_name`, `last_name`, `city`,
//! `state`, `country`, `lifetime_value` (decimal 12,2), `last_purchase_date`
//! (date), `is_subscriber` (bool), `signup_ts` (timestamp, UTC, no zone).
//!
//! Bad rows (a share `bad_share`): an invalid email, an empty email, or an
//! over-long first name. Duplicates (a share `duplicate_share`): a new
//! customer id with the email of an earlier row in another case or with
//! surrounding spaces. Emails use reserved example domains.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate};

/// Rows per Arrow batch and per Parquet row group.
pub const BATCH_ROWS: usize = 65_536;

/// Decimal precision and scale of `lifetime_value`.
pub const VALUE_PRECISION: u8 = 12;
pub const VALUE_SCALE: i8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Write { path: String, message: String },
    #[error("{0}")]
    Options(String),
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub rows: u64,
    pub seed: u64,
    /// Share of rows with an invalid or empty email or an over-long name.
    pub bad_share: f64,
    /// Share of rows repeating an earlier row's email (other case/spaces).
    pub duplicate_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rows: 3000,
            seed: 42,
            bad_share: 0.02,
            duplicate_share: 0.01,
        }
    }
}

impl Options {
    pub fn check(&self) -> Result<(), DatagenError> {
        let share_ok = |s: f64| s.is_finite() && (0.0..=1.0).contains(&s);
        if !share_ok(self.bad_share) || !share_ok(self.duplicate_share) {
            return Err(DatagenError::Options(
                "shares must be between 0 and 1".to_string(),
            ));
        }
        if self.bad_share + self.duplicate_share > 1.0 {
            return Err(DatagenError::Options(
                "bad_share + duplicate_share must not exceed 1".to_string(),
            ));
        }
        Ok(())
    }
}

/// What kind of row was made, for the summary and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Good,
    InvalidEmail,
    EmptyEmail,
    LongName,
    Duplicate,
}

/// One profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub customer_id: String,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: String,
    /// In cents.
    pub lifetime_value_cents: i64,
    /// Days since 1970-01-01.
    pub last_purchase_date: Option<i32>,
    pub is_subscriber: bool,
    /// Microseconds since the epoch, UTC.
    pub signup_ts_micros: i64,
    pub kind: RowKind,
}

/// Counts of what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub bad: u64,
    pub duplicates: u64,
    /// Rows with `lifetime_value > 1000`.
    pub high_value: u64,
}

impl Summary {
    fn add(&mut self, p: &Profile) {
        self.rows += 1;
        match p.kind {
            RowKind::Good => {}
            RowKind::Duplicate => self.duplicates += 1,
            _ => self.bad += 1,
        }
        if p.lifetime_value_cents > 100_000 {
            self.high_value += 1;
        }
    }
}

/// SplitMix64: tiny, fast, and stable across library versions, which is what
/// "deterministic from a seed" needs.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const FIRST: &[&str] = &[
    "Maria", "James", "Aiko", "Liam", "Sofia", "Noah", "Olga", "Mateo", "Chloe", "Arjun", "Fatima",
    "Lucas", "Emma", "Kenji", "Zoe", "Ivan", "Amara", "Diego", "Hannah", "Omar", "Ingrid", "Chen",
    "Nora", "Pedro", "Leila", "Tomás", "Elif", "Jonas", "Priya", "Renée",
];
const LAST: &[&str] = &[
    "Garcia",
    "Smith",
    "Tanaka",
    "Murphy",
    "Rossi",
    "Johnson",
    "Ivanova",
    "Fernandez",
    "Martin",
    "Patel",
    "Khan",
    "Silva",
    "Müller",
    "Sato",
    "Dubois",
    "Petrov",
    "Okafor",
    "Lopez",
    "Schmidt",
    "Haddad",
    "Larsen",
    "Wang",
    "Nguyen",
    "O'Brien",
    "Kowalski",
    "Costa",
    "Yilmaz",
    "Berg",
    "Singh",
    "Moreau",
];
/// (city, state, country)
const PLACES: &[(&str, &str, &str)] = &[
    ("Seattle", "WA", "United States"),
    ("Austin", "TX", "United States"),
    ("Boston", "MA", "United States"),
    ("Denver", "CO", "United States"),
    ("Chicago", "IL", "United States"),
    ("Portland", "OR", "United States"),
    ("Miami", "FL", "United States"),
    ("San Diego", "CA", "United States"),
    ("Toronto", "ON", "Canada"),
    ("Vancouver", "BC", "Canada"),
    ("London", "England", "United Kingdom"),
    ("Manchester", "England", "United Kingdom"),
    ("Berlin", "Berlin", "Germany"),
    ("Munich", "Bavaria", "Germany"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("Sydney", "NSW", "Australia"),
    ("Osaka", "Osaka", "Japan"),
    ("São Paulo", "SP", "Brazil"),
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
];
const INVALID_EMAILS: &[&str] = &[
    "not-an-email",
    "john.smith@",
    "@example.com",
    "two@@example.com",
    "space in@example.com",
    "missing-domain@.com",
];

/// How many earlier emails duplicates are drawn from (bounded memory).
const RECENT: usize = 1024;

/// An endless-until-`rows` iterator of profiles.
#[derive(Clone, Debug)]
pub struct Profiles {
    options: Options,
    rng: Rng,
    next: u64,
    recent: Vec<String>,
}

impl Profiles {
    pub fn new(options: Options) -> Self {
        Profiles {
            rng: Rng(options.seed ^ 0x5EED_0A0D_E7A0_0001),
            options,
            next: 0,
            recent: Vec::with_capacity(RECENT),
        }
    }

    fn make(&mut self) -> Profile {
        let i = self.next;
        let rng = &mut self.rng;
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let (city, state, country) = PLACES[rng.below(PLACES.len())];
        let domain = rng.pick(DOMAINS);
        let ascii = |s: &str| -> String {
            s.chars()
                .filter_map(|c| match c {
                    'á' | 'à' | 'ã' => Some('a'),
                    'é' | 'è' => Some('e'),
                    'ó' | 'ô' => Some('o'),
                    'ü' | 'ú' => Some('u'),
                    c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        };
        let mut email = Some(format!(
            "{}.{}{}@{}",
            ascii(first),
            ascii(last),
            i + 1,
            domain
        ));
        let mut first_name = first.to_string();

        // lifetime value: skewed towards small amounts, about a third above 1000.
        let u = rng.unit();
        let lifetime_value_cents = (u.powi(4) * 500_000.0).round() as i64;
        let last_purchase_date = if rng.unit() < 0.05 {
            None
        } else {
            // 2019-01-01 .. 2025-12-31
            Some(17_897 + rng.below(2_556) as i32)
        };
        let is_subscriber = rng.unit() < 0.6;
        // 2015-01-01T00:00:00 .. about 2025-12-31, whole seconds
        let signup_ts_micros = (1_420_070_400 + rng.below(347_000_000) as i64) * 1_000_000;
        let (city, state) = if rng.unit() < 0.03 {
            (None, None)
        } else {
            (Some(city.to_string()), Some(state.to_string()))
        };

        let roll = rng.unit();
        let bad = self.options.bad_share;
        let dup = self.options.duplicate_share;
        let kind = if roll < bad {
            match rng.below(3) {
                0 => RowKind::InvalidEmail,
                1 => RowKind::EmptyEmail,
                _ => RowKind::LongName,
            }
        } else if roll < bad + dup && !self.recent.is_empty() {
            RowKind::Duplicate
        } else {
            RowKind::Good
        };
        match kind {
            RowKind::InvalidEmail => email = Some(rng.pick(INVALID_EMAILS).to_string()),
            RowKind::EmptyEmail => {
                email = if rng.unit() < 0.5 {
                    None
                } else {
                    Some(String::new())
                }
            }
            RowKind::LongName => first_name = first.repeat(300 / first.chars().count().max(1) + 1),
            RowKind::Duplicate => {
                let original = self.recent[rng.below(self.recent.len())].clone();
                email = Some(match rng.below(3) {
                    0 => original.to_uppercase(),
                    1 => format!("  {original} "),
                    _ => {
                        let mut c = original.chars();
                        let head: String = c
                            .next()
                            .map(|h| h.to_uppercase().collect())
                            .unwrap_or_default();
                        format!("{head}{}", c.as_str())
                    }
                });
            }
            RowKind::Good => {}
        }
        if kind == RowKind::Good {
            if let Some(e) = &email {
                if self.recent.len() < RECENT {
                    self.recent.push(e.clone());
                } else {
                    let slot = (i as usize) % RECENT;
                    self.recent[slot] = e.clone();
                }
            }
        }
        self.next += 1;
        Profile {
            customer_id: format!("C{:08}", i + 1),
            email,
            first_name,
            last_name: last.to_string(),
            city,
            state,
            country: country.to_string(),
            lifetime_value_cents,
            last_purchase_date,
            is_subscriber,
            signup_ts_micros,
            kind,
        }
    }
}

impl Iterator for Profiles {
    type Item = Profile;

    fn next(&mut self) -> Option<Profile> {
        (self.next < self.options.rows).then(|| self.make())
    }
}

/// The Arrow schema of the generated profiles.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("first_name", DataType::Utf8, false),
        Field::new("last_name", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, false),
        Field::new(
            "lifetime_value",
            DataType::Decimal128(VALUE_PRECISION, VALUE_SCALE),
            false,
        ),
        Field::new("last_purchase_date", DataType::Date32, true),
        Field::new("is_subscriber", DataType::Boolean, false),
        Field::new(
            "signup_ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
}

/// Profiles as Arrow batches of up to `batch_rows` rows, with a running
/// summary.
pub fn batches(options: Options, batch_rows: usize) -> Batches {
    Batches {
        profiles: Profiles::new(options),
        batch_rows: batch_rows.max(1),
        summary: Summary::default(),
    }
}

#[derive(Debug)]
pub struct Batches {
    profiles: Profiles,
    batch_rows: usize,
    summary: Summary,
}

impl Batches {
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

impl Iterator for Batches {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        let n = self.batch_rows;
        let mut id = StringBuilder::new();
        let mut email = StringBuilder::new();
        let mut first = StringBuilder::new();
        let mut last = StringBuilder::new();
        let mut city = StringBuilder::new();
        let mut state = StringBuilder::new();
        let mut country = StringBuilder::new();
        let mut value = Decimal128Builder::with_capacity(n)
            .with_precision_and_scale(VALUE_PRECISION, VALUE_SCALE)
            .ok()?;
        let mut date = Date32Builder::with_capacity(n);
        let mut sub = BooleanBuilder::with_capacity(n);
        let mut ts = TimestampMicrosecondBuilder::with_capacity(n);
        let mut rows = 0;
        for p in self.profiles.by_ref().take(n) {
            self.summary.add(&p);
            id.append_value(&p.customer_id);
            email.append_option(p.email.as_deref());
            first.append_value(&p.first_name);
            last.append_value(&p.last_name);
            city.append_option(p.city.as_deref());
            state.append_option(p.state.as_deref());
            country.append_value(&p.country);
            value.append_value(i128::from(p.lifetime_value_cents));
            date.append_option(p.last_purchase_date);
            sub.append_value(p.is_subscriber);
            ts.append_value(p.signup_ts_micros);
            rows += 1;
        }
        if rows == 0 {
            return None;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(email.finish()),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(city.finish()),
            Arc::new(state.finish()),
            Arc::new(country.finish()),
            Arc::new(value.finish()),
            Arc::new(date.finish()),
            Arc::new(sub.finish()),
            Arc::new(ts.finish()),
        ];
        RecordBatch::try_new(schema(), columns).ok()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatagenError + '_ {
    move |source| DatagenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Format cents as a decimal with two places.
pub fn format_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Write the profiles as CSV with a header. Missing values are empty fields;
/// dates are `YYYY-MM-DD`, timestamps `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn write_csv(path: &Path, options: &Options) -> Result<Summary, DatagenError> {
    options.check()?;
    let file = File::create(path).map_err(io_err(path))?;
    let mut out = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    let csv_err = |e: csv::Error| DatagenError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    out.write_record(schema().fields().iter().map(|f| f.name().as_str()))
        .map_err(csv_err)?;
    let mut summary = Summary::default();
    for p in Profiles::new(options.clone()) {
        summary.add(&p);
        let date = p
            .last_purchase_date
            .and_then(|d| NaiveDate::from_num_days_from_ce_opt(d + 719_163))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let ts = DateTime::from_timestamp_micros(p.signup_ts_micros)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        out.write_record([
            p.customer_id.as_str(),
            p.email.as_deref().unwrap_or(""),
            &p.first_name,
            &p.last_name,
            p.city.as_deref().unwrap_or(""),
            p.state.as_deref().unwrap_or(""),
            &p.country,
            &format_cents(p.lifetime_value_cents),
            &date,
            if p.is_subscriber { "true" } else { "false" },
            &ts,
        ])
        .map_err(csv_err)?;
    }
    let mut inner = out.into_inner().map_err(|e| DatagenError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    inner.flush().map_err(io_err(path))?;
    Ok(summary)
}

/// Write the profiles as Parquet (zstd, one row group per [`BATCH_ROWS`]).
pub fn write_parquet(path: &Path, options: &Options) -> Result<Summary, DatagenError> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    options.check()?;
    let write_err = |e: parquet::errors::ParquetError| DatagenError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = File::create(path).map_err(io_err(path))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(BATCH_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(write_err)?;
    let mut batches = batches(options.clone(), BATCH_ROWS);
    for batch in batches.by_ref() {
        writer.write(&batch).map_err(write_err)?;
    }
    writer.close().map_err(write_err)?;
    Ok(batches.summary().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(rows: u64, seed: u64) -> Options {
        Options {
            rows,
            seed,
            bad_share: 0.1,
            duplicate_share: 0.05,
        }
    }

    #[test]
    fn same_seed_same_rows() {
        let a: Vec<_> = Profiles::new(opts(500, 7)).collect();
        let b: Vec<_> = Profiles::new(opts(500, 7)).collect();
        let c: Vec<_> = Profiles::new(opts(500, 8)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 500);
    }

    #[test]
    fn shares_are_roughly_respected() {
        let rows: Vec<_> = Profiles::new(opts(20_000, 1)).collect();
        let bad = rows
            .iter()
            .filter(|p| !matches!(p.kind, RowKind::Good | RowKind::Duplicate))
            .count();
        let dup = rows.iter().filter(|p| p.kind == RowKind::Duplicate).count();
        assert!((1_600..2_400).contains(&bad), "bad {bad}");
        assert!((700..1_300).contains(&dup), "dup {dup}");
        for p in rows.iter().filter(|p| p.kind == RowKind::LongName) {
            assert!(p.first_name.chars().count() > 255);
        }
        // A duplicate's email equals an earlier good row's once normalised.
        let good: std::collections::HashSet<_> = rows
            .iter()
            .filter(|p| p.kind == RowKind::Good)
            .filter_map(|p| p.email.clone())
            .collect();
        for p in rows.iter().filter(|p| p.kind == RowKind::Duplicate) {
            let norm = p.email.as_deref().unwrap_or("").trim().to_lowercase();
            assert!(good.contains(&norm), "duplicate of nothing");
            assert_ne!(p.email.as_deref(), Some(norm.as_str()));
        }
    }

    #[test]
    fn batches_match_rows() {
        let mut b = batches(opts(1000, 3), 300);
        let sizes: Vec<_> = b.by_ref().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [300, 300, 300, 100]);
        assert_eq!(b.summary().rows, 1000);
    }

    #[test]
    fn writes_csv_and_parquet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = opts(2000, 9);
        let a = write_csv(&dir.path().join("p.csv"), &o).expect("csv");
        let b = write_parquet(&dir.path().join("p.parquet"), &o).expect("parquet");
        assert_eq!(a, b);
        let text = std::fs::read_to_string(dir.path().join("p.csv")).expect("read");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("customer_id,email,first_name,last_name,city,state,country,lifetime_value,last_purchase_date,is_subscriber,signup_ts")
        );
        assert!(text.contains(",true,") && text.contains(",false,"));
    }

    #[test]
    fn bad_shares_are_refused() {
        let o = Options {
            bad_share: 1.5,
            ..Options::default()
        };
        assert!(o.check().is_err());
    }

    #[test]
    fn cents_format() {
        assert_eq!(format_cents(123_456), "1234.56");
        assert_eq!(format_cents(5), "0.05");
    }
}
