//! PostgreSQL rows to Arrow record batches.
//!
//! Each result column is planned once from its type and type modifier, then
//! every fetched page of rows becomes one batch. Types keep their meaning:
//! integers are Int64, `numeric(p,s)` is Decimal128(p,s), dates are Date32,
//! timestamps are microsecond Timestamps (`timestamptz` in UTC), uuids and
//! json are strings.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use audex_core::{unreadable, Error, ErrorClass, RowFaults, UnreadableRow};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use postgres_types::{FromSql, Kind, Type};
use tokio_postgres::{Column, Row};

/// Scale given to `numeric` columns declared without one.
pub const UNCONSTRAINED_NUMERIC_SCALE: i8 = 10;
const MAX_DECIMAL_PRECISION: u8 = 38;

/// How one result column is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric { precision: u8, scale: i8 },
    Text,
    Jsonb,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
}

impl ColumnKind {
    fn data_type(self) -> DataType {
        match self {
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Int2 | ColumnKind::Int4 | ColumnKind::Int8 => DataType::Int64,
            ColumnKind::Float4 | ColumnKind::Float8 => DataType::Float64,
            ColumnKind::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnKind::Text | ColumnKind::Jsonb | ColumnKind::Uuid => DataType::Utf8,
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnKind::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }
}

/// The planned columns of a query and its Arrow schema.
#[derive(Clone, Debug)]
pub struct Plan {
    pub kinds: Vec<ColumnKind>,
    pub schema: SchemaRef,
}

/// Plan a query's columns, or say which column has a type audex cannot read
/// and how to cast it.
pub fn plan(columns: &[Column]) -> Result<Plan, Error> {
    let mut kinds = Vec::with_capacity(columns.len());
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        let kind = kind_of(c.type_(), c.type_modifier()).ok_or_else(|| {
            Error::new(
                ErrorClass::Config,
                format!(
                    "column `{}` has PostgreSQL type {} which audex cannot read",
                    c.name(),
                    c.type_().name()
                ),
            )
            .with_hint(format!(
                "cast it in the segment's query, e.g. `{}::text`",
                c.name()
            ))
        })?;
        kinds.push(kind);
        fields.push(Field::new(c.name(), kind.data_type(), true));
    }
    Ok(Plan {
        kinds,
        schema: Arc::new(Schema::new(fields)),
    })
}

fn kind_of(ty: &Type, typmod: i32) -> Option<ColumnKind> {
    Some(match *ty {
        Type::BOOL => ColumnKind::Bool,
        Type::INT2 => ColumnKind::Int2,
        Type::INT4 => ColumnKind::Int4,
        Type::INT8 => ColumnKind::Int8,
        Type::FLOAT4 => ColumnKind::Float4,
        Type::FLOAT8 => ColumnKind::Float8,
        Type::NUMERIC => numeric_kind(typmod),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            ColumnKind::Text
        }
        Type::JSONB => ColumnKind::Jsonb,
        Type::UUID => ColumnKind::Uuid,
        Type::DATE => ColumnKind::Date,
        Type::TIMESTAMP => ColumnKind::Timestamp,
        Type::TIMESTAMPTZ => ColumnKind::TimestampTz,
        // Enum labels travel as text in the binary protocol too.
        _ if matches!(ty.kind(), Kind::Enum(_)) => ColumnKind::Text,
        _ => return None,
    })
}

/// `numeric(p,s)` carries `((p << 16) | s) + 4` as its modifier; `numeric`
/// without one is -1.
fn numeric_kind(typmod: i32) -> ColumnKind {
    if typmod >= 4 {
        let m = typmod - 4;
        let precision = ((m >> 16) & 0xffff) as u32;
        let scale = (m & 0xffff) as u32;
        if (1..=u32::from(MAX_DECIMAL_PRECISION)).contains(&precision) && scale <= precision {
            return ColumnKind::Numeric {
                precision: precision as u8,
                scale: scale as i8,
            };
        }
    }
    ColumnKind::Numeric {
        precision: MAX_DECIMAL_PRECISION,
        scale: UNCONSTRAINED_NUMERIC_SCALE,
    }
}

/// Text-like values read as UTF-8 without copying through `String`.
struct RawText<'a>(&'a str);

impl<'a> FromSql<'a> for RawText<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawText(std::str::from_utf8(raw)?))
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON
        ) || matches!(ty.kind(), Kind::Enum(_))
    }
}

/// jsonb's binary form: a version byte (1), then the JSON text.
struct JsonbText<'a>(&'a str);

impl<'a> FromSql<'a> for JsonbText<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match raw.split_first() {
            Some((1, rest)) => Ok(JsonbText(std::str::from_utf8(rest)?)),
            _ => Err("unsupported jsonb version".into()),
        }
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

struct UuidText(String);

impl<'a> FromSql<'a> for UuidText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if raw.len() != 16 {
            return Err("a uuid is 16 bytes".into());
        }
        let mut s = String::with_capacity(36);
        for (i, b) in raw.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push_str(&format!("{b:02x}"));
        }
        Ok(UuidText(s))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// A `numeric` in its binary form: base-10000 digits with a weight.
#[derive(Debug, Clone, PartialEq)]
pub struct PgNumeric {
    negative: bool,
    /// NaN or an infinity: no decimal can hold it.
    special: bool,
    weight: i16,
    digits: Vec<i16>,
}

impl<'a> FromSql<'a> for PgNumeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
            raw.get(i..i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "truncated numeric".into())
        };
        let ndigits = word(0)? as usize;
        let weight = word(2)? as i16;
        let sign = word(4)?;
        let mut digits = Vec::with_capacity(ndigits);
        for k in 0..ndigits {
            digits.push(word(8 + 2 * k)? as i16);
        }
        Ok(PgNumeric {
            negative: sign == 0x4000,
            special: sign != 0 && sign != 0x4000,
            weight,
            digits,
        })
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl PgNumeric {
    /// The value times 10^scale, rounded half away from zero; None when it
    /// does not fit or is NaN/infinite.
    pub fn to_scaled_i128(&self, scale: i8) -> Option<i128> {
        if self.special {
            return None;
        }
        let mut acc: i128 = 0;
        for d in &self.digits {
            acc = acc.checked_mul(10_000)?.checked_add(i128::from(*d))?;
        }
        // acc * 10^(4 * (weight - ndigits + 1)) is the value.
        let exp10 = 4 * (i32::from(self.weight) - self.digits.len() as i32 + 1) + i32::from(scale);
        let v = if exp10 >= 0 {
            acc.checked_mul(10i128.checked_pow(exp10 as u32)?)?
        } else {
            let div = 10i128.checked_pow((-exp10) as u32);
            match div {
                None => 0,
                Some(div) => {
                    let q = acc / div;
                    if (acc % div) * 2 >= div {
                        q + 1
                    } else {
                        q
                    }
                }
            }
        };
        Some(if self.negative { -v } else { v })
    }
}

/// Where a page of rows comes from, for the rows set aside.
#[derive(Clone, Debug)]
pub struct PageSource<'a> {
    /// The table a segment reads, or `query`.
    pub table: &'a str,
    /// Rows of the result before this page.
    pub first_row: u64,
    pub max_value_bytes: usize,
}

/// One page of rows as a batch, and the rows set aside: a value over
/// `max_value_bytes`, text that is not UTF-8 (a `SQL_ASCII` database), a
/// `numeric` no decimal can hold (NaN, infinity, over 38 digits), a date
/// or timestamp out of range (`infinity`).
pub fn to_batch(
    plan: &Plan,
    rows: &[Row],
    from: &PageSource<'_>,
) -> Result<(RecordBatch, Vec<UnreadableRow>), Error> {
    let n = rows.len();
    let max = from.max_value_bytes;
    let mut faults = RowFaults::new(n);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.kinds.len());
    for (i, kind) in plan.kinds.iter().enumerate() {
        let name = plan.schema.field(i).name();
        let mut fault = |k: usize, code: &'static str, e: &dyn std::fmt::Display| {
            faults.mark(k, i, code, || {
                format!("column `{name}` cannot be read: {e}")
            });
        };
        let array: ArrayRef = match kind {
            ColumnKind::Bool => {
                let mut b = BooleanBuilder::with_capacity(n);
                for (k, r) in rows.iter().enumerate() {
                    b.append_option(r.try_get::<_, Option<bool>>(i).unwrap_or_else(|e| {
                        fault(k, unreadable::UNCASTABLE, &e);
                        None
                    }));
                }
                Arc::new(b.finish())
            }
            ColumnKind::Int2 | ColumnKind::Int4 | ColumnKind::Int8 => {
                let mut b = Int64Builder::with_capacity(n);
                for (k, r) in rows.iter().enumerate() {
                    let v = match kind {
                        ColumnKind::Int2 => {
                            r.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from))
                        }
                        ColumnKind::Int4 => {
                            r.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from))
                        }
                        _ => r.try_get::<_, Option<i64>>(i),
                    };
                    b.append_option(v.unwrap_or_else(|e| {
                        fault(k, unreadable::UNCASTABLE, &e);
                        None
                    }));
                }
                Arc::new(b.finish())
            }
            ColumnKind::Float4 | ColumnKind::Float8 => {
                let mut b = Float64Builder::with_capacity(n);
                for (k, r) in rows.iter().enumerate() {
                    let v = if *kind == ColumnKind::Float4 {
                        r.try_get::<_, Option<f32>>(i).map(|v| v.map(f64::from))
                    } else {
                        r.try_get::<_, Option<f64>>(i)
                    };
                    b.append_option(v.unwrap_or_else(|e| {
                        fault(k, unreadable::UNCASTABLE, &e);
                        None
                    }));
                }
                Arc::new(b.finish())
            }
            ColumnKind::Numeric { precision, scale } => {
                let mut b = Decimal128Builder::with_capacity(n)
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| Error::internal(format!("column `{name}`: {e}")))?;
                let limit = 10i128
                    .checked_pow(u32::from(*precision))
                    .unwrap_or(i128::MAX);
                for (k, r) in rows.iter().enumerate() {
                    let v = match r.try_get::<_, Option<PgNumeric>>(i) {
                        Ok(None) => None,
                        Ok(Some(v)) => match v.to_scaled_i128(*scale) {
                            Some(x) if x.unsigned_abs() < limit.unsigned_abs() => Some(x),
                            _ => {
                                fault(
                                    k,
                                    unreadable::UNCASTABLE,
                                    &format!(
                                        "the value has no decimal({precision},{scale}) form (NaN, infinite, or too many digits)"
                                    ),
                                );
                                None
                            }
                        },
                        Err(e) => {
                            fault(k, unreadable::UNCASTABLE, &e);
                            None
                        }
                    };
                    b.append_option(v);
                }
                Arc::new(b.finish())
            }
            ColumnKind::Text | ColumnKind::Jsonb => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for (k, r) in rows.iter().enumerate() {
                    let v = if *kind == ColumnKind::Text {
                        r.try_get::<_, Option<RawText>>(i).map(|t| t.map(|t| t.0))
                    } else {
                        r.try_get::<_, Option<JsonbText>>(i).map(|t| t.map(|t| t.0))
                    };
                    match v {
                        Ok(Some(t)) if t.len() > max => {
                            fault(
                                k,
                                unreadable::VALUE_TOO_LARGE,
                                &format!("the value is over {max} bytes (max_value_bytes)"),
                            );
                            b.append_null();
                        }
                        Ok(t) => b.append_option(t),
                        Err(e) => {
                            let code = if std::error::Error::source(&e)
                                .is_some_and(|s| s.is::<std::str::Utf8Error>())
                            {
                                unreadable::INVALID_UTF8
                            } else {
                                unreadable::UNCASTABLE
                            };
                            fault(k, code, &e);
                            b.append_null();
                        }
                    }
                }
                Arc::new(b.finish())
            }
            ColumnKind::Uuid => {
                let mut b = StringBuilder::with_capacity(n, n * 36);
                for (k, r) in rows.iter().enumerate() {
                    b.append_option(
                        r.try_get::<_, Option<UuidText>>(i)
                            .unwrap_or_else(|e| {
                                fault(k, unreadable::UNCASTABLE, &e);
                                None
                            })
                            .map(|t| t.0),
                    );
                }
                Arc::new(b.finish())
            }
            ColumnKind::Date => {
                let mut b = Date32Builder::with_capacity(n);
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1);
                for (k, r) in rows.iter().enumerate() {
                    let v = r.try_get::<_, Option<NaiveDate>>(i).unwrap_or_else(|e| {
                        fault(k, unreadable::UNCASTABLE, &e);
                        None
                    });
                    b.append_option(v.zip(epoch).map(|(d, e)| (d - e).num_days() as i32));
                }
                Arc::new(b.finish())
            }
            ColumnKind::Timestamp => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(n);
                for (k, r) in rows.iter().enumerate() {
                    let v = r
                        .try_get::<_, Option<NaiveDateTime>>(i)
                        .unwrap_or_else(|e| {
                            fault(k, unreadable::UNCASTABLE, &e);
                            None
                        });
                    b.append_option(v.map(|t| t.and_utc().timestamp_micros()));
                }
                Arc::new(b.finish())
            }
            ColumnKind::TimestampTz => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
                for (k, r) in rows.iter().enumerate() {
                    let v = r
                        .try_get::<_, Option<DateTime<Utc>>>(i)
                        .unwrap_or_else(|e| {
                            fault(k, unreadable::UNCASTABLE, &e);
                            None
                        });
                    b.append_option(v.map(|t| t.timestamp_micros()));
                }
                Arc::new(b.finish())
            }
        };
        columns.push(array);
    }
    faults.split(&plan.schema, columns.clone(), &columns, |k| {
        UnreadableRow::new(from.table, unreadable::UNCASTABLE, "")
            .at_line(from.first_row + k as u64 + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(negative: bool, weight: i16, digits: &[i16]) -> PgNumeric {
        PgNumeric {
            negative,
            special: false,
            weight,
            digits: digits.to_vec(),
        }
    }

    #[test]
    fn numeric_scaling() {
        // 1234.56 = [1234, 5600], weight 0
        assert_eq!(
            num(false, 0, &[1234, 5600]).to_scaled_i128(2),
            Some(123_456)
        );
        // -0.05 = [500], weight -1
        assert_eq!(num(true, -1, &[500]).to_scaled_i128(2), Some(-5));
        // 12345678 = [1234, 5678], weight 1
        assert_eq!(
            num(false, 1, &[1234, 5678]).to_scaled_i128(0),
            Some(12_345_678)
        );
        // 10000 = [1], weight 1
        assert_eq!(num(false, 1, &[1]).to_scaled_i128(2), Some(1_000_000));
        // 0.125 rounds half away from zero to 0.13
        assert_eq!(num(false, -1, &[1250]).to_scaled_i128(2), Some(13));
        assert_eq!(num(false, 0, &[]).to_scaled_i128(2), Some(0));
        let nan = PgNumeric {
            special: true,
            ..num(false, 0, &[])
        };
        assert_eq!(nan.to_scaled_i128(2), None);
    }

    #[test]
    fn numeric_modifiers() {
        // numeric(12,2)
        assert_eq!(
            numeric_kind(((12 << 16) | 2) + 4),
            ColumnKind::Numeric {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(
            numeric_kind(-1),
            ColumnKind::Numeric {
                precision: 38,
                scale: UNCONSTRAINED_NUMERIC_SCALE
            }
        );
    }
}
