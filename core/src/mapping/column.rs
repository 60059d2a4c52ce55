//! Typed access to one Arrow column, resolved once per batch so the per-row
//! loop does no type dispatch on `DataType` and no downcasting.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float64Type, Int64Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Date64Array, Decimal128Array, Float64Array,
    Int64Array, LargeStringArray, StringArray, StringViewArray, UInt64Array,
};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};

use super::value::Raw;

/// What a source column holds, as far as conversion cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Integer,
    Float,
    Decimal,
    Boolean,
    Date,
    Timestamp,
}

impl Kind {
    /// The kind of a column of `dt`, or `None` when its values cannot even
    /// be read as text.
    pub(crate) fn of(dt: &DataType) -> Option<Kind> {
        Some(match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Kind::Integer,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
            DataType::Decimal128(..) => Kind::Decimal,
            DataType::Boolean => Kind::Boolean,
            DataType::Date32 | DataType::Date64 => Kind::Date,
            DataType::Timestamp(..) => Kind::Timestamp,
            DataType::Dictionary(_, value) => Kind::of(value)?,
            other if arrow_cast::can_cast_types(other, &DataType::Utf8) => Kind::Text,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "integer",
            Kind::Float => "floating-point",
            Kind::Decimal => "decimal",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
        }
    }
}

/// A column ready for row access. Arrays are cheap to clone (shared buffers).
#[derive(Debug)]
pub(crate) enum Column {
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    Int64(Int64Array),
    UInt64(UInt64Array),
    Float64(Float64Array),
    Decimal(Decimal128Array, i8),
    Boolean(BooleanArray),
    Date32(Date32Array),
    Date64(Date64Array),
    /// Raw epoch values (UTC instants whether or not the type names a zone;
    /// zone-less timestamps are read as UTC) and their unit.
    Timestamp(Int64Array, TimeUnit),
}

/// A row's value could not be read at all (e.g. a timestamp out of range).
pub(crate) type ReadError = String;

impl Column {
    /// Resolve `array` for row access, widening small types losslessly and
    /// reading anything else as text. `Err` names the unsupported type.
    pub(crate) fn resolve(array: &ArrayRef) -> Result<Column, String> {
        let cast = |to: &DataType| {
            arrow_cast::cast(array, to)
                .map_err(|e| format!("cannot read a {} column: {e}", array.data_type()))
        };
        Ok(match array.data_type() {
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Column::LargeUtf8(array.as_string::<i64>().clone()),
            DataType::Utf8View => Column::Utf8View(array.as_string_view().clone()),
            DataType::Int64 => Column::Int64(array.as_primitive::<Int64Type>().clone()),
            DataType::UInt64 => Column::UInt64(array.as_primitive::<UInt64Type>().clone()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                Column::Int64(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
            }
            DataType::Float64 => Column::Float64(array.as_primitive::<Float64Type>().clone()),
            DataType::Float16 | DataType::Float32 => Column::Float64(
                cast(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            DataType::Decimal128(_, scale) => {
                Column::Decimal(array.as_primitive::<Decimal128Type>().clone(), *scale)
            }
            DataType::Boolean => Column::Boolean(array.as_boolean().clone()),
            DataType::Date32 => Column::Date32(array.as_primitive::<Date32Type>().clone()),
            DataType::Date64 => Column::Date64(array.as_primitive::<Date64Type>().clone()),
            DataType::Timestamp(unit, _) => {
                // Reinterpreting as Int64 keeps the raw epoch values, with no
                // unit conversion that could overflow for far dates.
                let raw = cast(&DataType::Int64)?;
                Column::Timestamp(raw.as_primitive::<Int64Type>().clone(), *unit)
            }
            DataType::Dictionary(_, value) => {
                let flat = cast(value)?;
                return Column::resolve(&flat);
            }
            _ => Column::Utf8(cast(&DataType::Utf8)?.as_string::<i32>().clone()),
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Column::Utf8(a) => a,
            Column::LargeUtf8(a) => a,
            Column::Utf8View(a) => a,
            Column::Int64(a) | Column::Timestamp(a, _) => a,
            Column::UInt64(a) => a,
            Column::Float64(a) => a,
            Column::Decimal(a, _) => a,
            Column::Boolean(a) => a,
            Column::Date32(a) => a,
            Column::Date64(a) => a,
        }
    }

    /// The value at `row`: `Ok(None)` for null.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Result<Option<Raw<'_>>, ReadError> {
        if self.array().is_null(row) {
            return Ok(None);
        }
        Ok(Some(match self {
            Column::Utf8(a) => Raw::Text(a.value(row)),
            Column::LargeUtf8(a) => Raw::Text(a.value(row)),
            Column::Utf8View(a) => Raw::Text(a.value(row)),
            Column::Int64(a) => Raw::Int(i128::from(a.value(row))),
            Column::UInt64(a) => Raw::Int(i128::from(a.value(row))),
            Column::Float64(a) => Raw::Float(a.value(row)),
            Column::Decimal(a, scale) => Raw::Decimal(a.value(row), *scale),
            Column::Boolean(a) => Raw::Bool(a.value(row)),
            Column::Date32(a) => {
                Raw::Date(date_from_days(i64::from(a.value(row))).ok_or_else(out_of_range)?)
            }
            Column::Date64(a) => Raw::Date(
                DateTime::from_timestamp_millis(a.value(row))
                    .ok_or_else(out_of_range)?
                    .date_naive(),
            ),
            Column::Timestamp(a, unit) => {
                Raw::Timestamp(timestamp(a.value(row), *unit).ok_or_else(out_of_range)?)
            }
        }))
    }
}

fn out_of_range() -> ReadError {
    "the date is out of range".to_string()
}

fn date_from_days(days: i64) -> Option<NaiveDate> {
    // 719_163 days from 0001-01-01 (CE day 1) to 1970-01-01.
    let ce = i32::try_from(days.checked_add(719_163)?).ok()?;
    NaiveDate::from_num_days_from_ce_opt(ce)
}

fn timestamp(v: i64, unit: TimeUnit) -> Option<DateTime<Utc>> {
    match unit {
        TimeUnit::Second => DateTime::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
    }
}
