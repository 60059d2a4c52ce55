//! Converting one source value into the value a destination field expects.
//!
//! Pure functions over a borrowed [`Raw`] value; the per-batch column access
//! lives in `column.rs`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

use crate::destination::FieldType;
use crate::record::FieldValue;

/// What a destination field wants, derived once from its [`FieldType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Text of at most `max_len` characters (longer values are truncated).
    Text {
        max_len: Option<usize>,
    },
    Integer,
    Float,
    Boolean,
    /// `YYYY-MM-DD`
    Date,
    /// `YYYY-MM-DDTHH:MM:SSZ`
    Datetime,
}

impl Target {
    pub(crate) fn for_field(data_type: &FieldType, max_len: Option<usize>) -> Target {
        match data_type {
            FieldType::Integer => Target::Integer,
            FieldType::Float | FieldType::Currency | FieldType::Percent => Target::Float,
            FieldType::Boolean => Target::Boolean,
            FieldType::Date => Target::Date,
            FieldType::Datetime => Target::Datetime,
            _ => Target::Text { max_len },
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Text { .. } => "text",
            Target::Integer => "integer",
            Target::Float => "number",
            Target::Boolean => "boolean",
            Target::Date => "date",
            Target::Datetime => "datetime",
        }
    }
}

/// One non-null source value, borrowed from its Arrow column.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw<'a> {
    Text(&'a str),
    /// Any Arrow integer (u64 and i64 both fit).
    Int(i128),
    Float(f64),
    /// A Decimal128 value and its scale.
    Decimal(i128, i8),
    Bool(bool),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
}

/// A converted value, and whether text was cut to the field's length.
#[derive(Debug)]
pub(crate) struct Converted {
    pub value: FieldValue,
    pub truncated: bool,
}

impl Converted {
    fn of(value: FieldValue) -> Self {
        Converted {
            value,
            truncated: false,
        }
    }
}

/// Convert `raw` for a field of type `target`. The error is a reason for a
/// person, without the value itself (it is customer data).
pub(crate) fn convert(raw: Raw<'_>, target: Target) -> Result<Converted, String> {
    match target {
        Target::Text { max_len } => Ok(text(raw, max_len)?),
        Target::Integer => integer(raw).map(|v| Converted::of(FieldValue::Int(v))),
        Target::Float => float(raw).map(|v| Converted::of(FieldValue::Float(v))),
        Target::Boolean => boolean(raw).map(|v| Converted::of(FieldValue::Bool(v))),
        Target::Date => date(raw).map(|d| Converted::of(FieldValue::Text(format_date(d)))),
        Target::Datetime => {
            datetime(raw).and_then(|t| Ok(Converted::of(FieldValue::Text(format_datetime(t)?))))
        }
    }
}

fn text(raw: Raw<'_>, max_len: Option<usize>) -> Result<Converted, String> {
    let s = match raw {
        Raw::Text(s) => {
            let t = s.trim();
            if t.is_empty() {
                // A blank cell means "no value", as a null does: sending ""
                // and sending null both clear a Marketo field.
                return Ok(Converted::of(FieldValue::Null));
            }
            t.to_string()
        }
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) => {
            if !f.is_finite() {
                return Err("the number is not finite".to_string());
            }
            f.to_string()
        }
        Raw::Decimal(v, scale) => format_decimal(v, scale),
        Raw::Bool(b) => b.to_string(),
        Raw::Date(d) => format_date(d),
        Raw::Timestamp(t) => format_datetime(t)?,
    };
    let (s, truncated) = match max_len {
        Some(max) => truncate_chars(s, max),
        None => (s, false),
    };
    Ok(Converted {
        value: FieldValue::Text(s),
        truncated,
    })
}

/// Cut `s` to at most `max` characters, at a character boundary.
pub(crate) fn truncate_chars(mut s: String, max: usize) -> (String, bool) {
    // Byte length bounds character count: the common case needs no scan.
    if s.len() <= max {
        return (s, false);
    }
    match s.char_indices().nth(max) {
        Some((cut, _)) => {
            s.truncate(cut);
            (s, true)
        }
        None => (s, false),
    }
}

fn integer(raw: Raw<'_>) -> Result<i64, String> {
    let out_of_range = || "the number is outside the 64-bit integer range".to_string();
    match raw {
        Raw::Int(i) => i64::try_from(i).map_err(|_| out_of_range()),
        Raw::Float(f) => {
            if !f.is_finite() || f.fract() != 0.0 {
                return Err("not a whole number".to_string());
            }
            // Exclusive upper bound: i64::MAX as f64 rounds up to 2^63.
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                return Err(out_of_range());
            }
            Ok(f as i64)
        }
        Raw::Decimal(v, scale) => {
            let whole =
                decimal_to_whole(v, scale).ok_or_else(|| "not a whole number".to_string())?;
            i64::try_from(whole).map_err(|_| out_of_range())
        }
        Raw::Text(s) => parse_integer_text(s.trim()),
        Raw::Bool(_) => Err("a boolean is not an integer".to_string()),
        Raw::Date(_) | Raw::Timestamp(_) => Err("a date is not an integer".to_string()),
    }
}

fn parse_integer_text(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty text is not an integer".to_string());
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(i);
    }
    // "42.0" and "42.000" are whole numbers written as decimals.
    if let Some((int_part, frac)) = s.split_once('.') {
        if !frac.is_empty() && frac.bytes().all(|b| b == b'0') {
            if let Ok(i) = int_part.parse::<i64>() {
                return Ok(i);
            }
        }
        if frac.bytes().all(|b| b.is_ascii_digit()) && int_part.parse::<i64>().is_ok() {
            return Err("not a whole number".to_string());
        }
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
    {
        return Err("the number is outside the 64-bit integer range".to_string());
    }
    Err("the text is not an integer".to_string())
}

/// The value of a decimal as a whole number, if it has no fraction.
fn decimal_to_whole(v: i128, scale: i8) -> Option<i128> {
    if scale <= 0 {
        let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs()))?;
        return v.checked_mul(factor);
    }
    let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs()))?;
    (v % factor == 0).then_some(v / factor)
}

fn float(raw: Raw<'_>) -> Result<f64, String> {
    let f = match raw {
        Raw::Float(f) => f,
        Raw::Int(i) => i as f64,
        Raw::Decimal(v, scale) => format_decimal(v, scale)
            .parse::<f64>()
            .map_err(|_| "the decimal cannot be read as a number".to_string())?,
        Raw::Text(s) => {
            let t = s.trim();
            // Rust also parses "inf" and "NaN"; those are not numbers to a
            // destination, so only digits, sign, point and exponent pass.
            if t.is_empty()
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            {
                return Err("the text is not a number".to_string());
            }
            t.parse::<f64>()
                .map_err(|_| "the text is not a number".to_string())?
        }
        Raw::Bool(_) => return Err("a boolean is not a number".to_string()),
        Raw::Date(_) | Raw::Timestamp(_) => return Err("a date is not a number".to_string()),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err("the number is not finite".to_string())
    }
}

fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    match raw {
        Raw::Bool(b) => Ok(b),
        Raw::Int(0) => Ok(false),
        Raw::Int(1) => Ok(true),
        Raw::Int(_) => Err("only 0 and 1 are booleans".to_string()),
        Raw::Text(s) => {
            let t = s.trim();
            for (yes, no) in [
                ("true", "false"),
                ("yes", "no"),
                ("1", "0"),
                ("y", "n"),
                ("t", "f"),
            ] {
                if t.eq_ignore_ascii_case(yes) {
                    return Ok(true);
                }
                if t.eq_ignore_ascii_case(no) {
                    return Ok(false);
                }
            }
            Err("the text is not a boolean (true/false, yes/no, 1/0)".to_string())
        }
        _ => Err("the value is not a boolean".to_string()),
    }
}

fn date(raw: Raw<'_>) -> Result<NaiveDate, String> {
    match raw {
        Raw::Date(d) => Ok(d),
        Raw::Timestamp(t) => Ok(t.date_naive()),
        Raw::Text(s) => {
            let t = s.trim();
            if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                return Ok(d);
            }
            parse_datetime_text(t)
                .map(|t| t.date_naive())
                .ok_or_else(|| "the text is not a date (expected YYYY-MM-DD)".to_string())
        }
        _ => Err("the value is not a date".to_string()),
    }
}

fn datetime(raw: Raw<'_>) -> Result<DateTime<Utc>, String> {
    match raw {
        Raw::Timestamp(t) => Ok(t),
        Raw::Date(d) => Ok(d.and_time(chrono::NaiveTime::MIN).and_utc()),
        Raw::Text(s) => {
            let t = s.trim();
            if let Some(dt) = parse_datetime_text(t) {
                return Ok(dt);
            }
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                .map_err(|_| {
                    "the text is not a date-time (expected ISO 8601, e.g. 2024-05-01T09:30:00Z)"
                        .to_string()
                })
        }
        _ => Err("the value is not a date-time".to_string()),
    }
}

/// ISO 8601 / RFC 3339 with an offset (converted to UTC), or without one
/// (read as UTC, as exports from warehouses usually are).
fn parse_datetime_text(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc());
        }
    }
    None
}

pub(crate) fn format_date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

pub(crate) fn format_datetime(t: DateTime<Utc>) -> Result<String, String> {
    if !(0..=9999).contains(&t.year()) {
        return Err("the date is outside the years 0000-9999".to_string());
    }
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// A Decimal128 as plain decimal text: `12345, 2` -> `123.45`.
pub(crate) fn format_decimal(v: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = v.to_string();
        if v != 0 {
            s.extend(std::iter::repeat_n('0', usize::from(scale.unsigned_abs())));
        }
        return s;
    }
    let digits = v.unsigned_abs().to_string();
    let scale = usize::from(scale.unsigned_abs());
    let padded = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int_part, frac) = padded.split_at(padded.len() - scale);
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{int_part}.{frac}")
}
