//! Tests of the mapping rules, one per rule and per Arrow type, plus
//! properties over arbitrary input.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Date64Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt16Array, UInt32Array, UInt64Array,
    UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use proptest::prelude::*;

use super::*;
use crate::destination::{FieldSpec, FieldType};
use crate::identity::{EmailKey, KeyProblem, KeyRule, INVALID_EMAIL, KEY_TOO_LONG, MISSING_KEY};
use crate::record::{FieldValue, Record};

/// The key rule of an ASCII-only email destination.
fn rule() -> Arc<dyn KeyRule> {
    Arc::new(EmailKey::new().ascii_only("ASCII only"))
}

/// The value of destination field `name` in a record `m` mapped.
fn value<'a>(m: &Mapper, r: &'a Record, name: &str) -> &'a FieldValue {
    let at = m
        .fields()
        .iter()
        .position(|f| f == name)
        .expect("a mapped field");
    &r.values[at]
}

fn norm(raw: &str) -> Result<String, KeyProblem> {
    rule().normalise(raw)
}

fn spec(name: &str, data_type: FieldType, max_length: Option<usize>) -> FieldSpec {
    FieldSpec {
        name: name.to_string(),
        data_type,
        max_length,
        writable: true,
    }
}

fn marketo_fields() -> Vec<FieldSpec> {
    vec![
        spec("email", FieldType::Email, Some(255)),
        spec("firstName", FieldType::String, Some(10)),
        spec("lastName", FieldType::String, Some(255)),
        spec("score", FieldType::Integer, None),
        spec("ltv", FieldType::Currency, None),
        spec("vip", FieldType::Boolean, None),
        spec("birthday", FieldType::Date, None),
        spec("lastSeen", FieldType::Datetime, None),
        spec("notes", FieldType::Other("reference".into()), None),
        FieldSpec {
            writable: false,
            ..spec("id", FieldType::Integer, None)
        },
    ]
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns.into_iter().map(|(n, a)| (n.to_string(), a))).unwrap()
}

fn mapping(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect()
}

fn mapper(pairs: &[(&str, &str)], b: &RecordBatch) -> Mapper {
    Mapper::new(
        &mapping(pairs),
        "email",
        rule(),
        &marketo_fields(),
        &b.schema(),
    )
    .unwrap()
}

fn emails(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Map one column of one row into `field`, with a valid email beside it.
fn one(field: &str, array: ArrayRef) -> Result<FieldValue, RowReject> {
    let n = array.len();
    let b = batch(vec![
        ("mail", emails(&vec![Some("a@b.co"); n])),
        ("v", array),
    ]);
    let m = mapper(&[("email", "mail"), (field, "v")], &b);
    let out = m.map_batch(&b, 0);
    match (out.records.first(), out.rejects.first()) {
        (Some((_, r)), None) => Ok(value(&m, r, field).clone()),
        (None, Some(rej)) => Err(rej.clone()),
        other => panic!("unexpected {other:?}"),
    }
}

fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_string())
}

// ---- Mapper::new checks ----

#[test]
fn new_reports_every_problem_at_once_with_paths() {
    let b = batch(vec![
        ("mail", emails(&[Some("a@b.co")])),
        ("first", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        ("flag", Arc::new(BooleanArray::from(vec![true])) as ArrayRef),
    ]);
    let err = Mapper::new(
        &mapping(&[
            ("firstname", "first"),
            ("lastName", "surname"),
            ("id", "first"),
            ("birthday", "flag"),
        ]),
        "email",
        rule(),
        &marketo_fields(),
        &b.schema(),
    )
    .unwrap_err();
    assert!(err.is_config());
    let by_path: BTreeMap<&str, &crate::ConfigError> = err
        .config_errors()
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    assert_eq!(by_path.len(), 5, "{err}");
    assert!(by_path["mapping.email"].message.contains("not mapped"));
    let fname = by_path["mapping.firstname"];
    assert!(fname.hint.as_deref().unwrap().contains("`firstName`"));
    let missing = by_path["mapping.lastName"];
    assert!(missing.message.contains("`surname`"));
    assert!(missing
        .hint
        .as_deref()
        .unwrap()
        .contains("mail, first, flag"));
    assert!(by_path["mapping.id"].message.contains("read-only"));
    assert!(by_path["mapping.birthday"].message.contains("boolean"));
}

#[test]
fn new_suggests_a_column_differing_in_case() {
    let b = batch(vec![("Email", emails(&[Some("a@b.co")]))]);
    let err = Mapper::new(
        &mapping(&[("email", "email")]),
        "email",
        rule(),
        &marketo_fields(),
        &b.schema(),
    )
    .unwrap_err();
    let hint = err.config_errors()[0].hint.clone().unwrap();
    assert!(hint.contains("did you mean `Email`"), "{hint}");
}

#[test]
fn new_refuses_a_non_text_lookup_column() {
    let b = batch(vec![("n", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
    let err = Mapper::new(
        &mapping(&[("email", "n")]),
        "email",
        rule(),
        &marketo_fields(),
        &b.schema(),
    )
    .unwrap_err();
    assert_eq!(err.config_errors()[0].path, "mapping.email");
    assert!(err.config_errors()[0].message.contains("needs text"));
}

#[test]
fn fields_lists_lookup_first() {
    let b = batch(vec![
        ("mail", emails(&[Some("a@b.co")])),
        ("s", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
    ]);
    let m = mapper(
        &[("email", "mail"), ("lastName", "s"), ("firstName", "s")],
        &b,
    );
    assert_eq!(FieldMapping::fields(&m), ["email", "firstName", "lastName"]);
    assert_eq!(m.columns(), ["mail", "s"]);
    assert_eq!(m.lookup_column(), "mail");
}

// ---- the lookup field ----

#[test]
fn lookup_is_normalised_and_bad_keys_rejected_with_codes() {
    let b = batch(vec![(
        "mail",
        emails(&[
            Some("  Maria@Contoso.COM "),
            None,
            Some("   "),
            Some("not-an-email"),
            Some("jos\u{e9}@example.com"),
        ]),
    )]);
    let m = mapper(&[("email", "mail")], &b);
    let out = m.map_batch(&b, 100);
    assert_eq!(out.records.len(), 1);
    let (row, rec) = &out.records[0];
    assert_eq!(*row, 100);
    assert_eq!(rec.key.as_str(), "maria@contoso.com");
    assert_eq!(*value(&m, rec, "email"), text("maria@contoso.com"));
    let codes: Vec<(u64, &str, Option<&str>)> = out
        .rejects
        .iter()
        .map(|r| (r.row, r.code.as_str(), r.key.as_deref()))
        .collect();
    assert_eq!(
        codes,
        [
            (101, MISSING_KEY, None),
            (102, MISSING_KEY, None),
            (103, INVALID_EMAIL, Some("not-an-email")),
            (104, INVALID_EMAIL, Some("jos\u{e9}@example.com")),
        ]
    );
    assert!(out
        .rejects
        .iter()
        .all(|r| r.column.as_deref() == Some("mail")));
}

#[test]
fn lookup_longer_than_its_field_is_rejected_not_truncated() {
    let fields = vec![spec("email", FieldType::Email, Some(12))];
    let b = batch(vec![(
        "mail",
        emails(&[Some("abc@defgh.com"), Some("ab@defgh.com")]),
    )]);
    let m = Mapper::new(
        &mapping(&[("email", "mail")]),
        "email",
        rule(),
        &fields,
        &b.schema(),
    )
    .unwrap();
    let out = m.map_batch(&b, 0);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.rejects[0].code, KEY_TOO_LONG);
    assert_eq!(out.truncated_values, 0);
}

#[test]
fn reject_debug_hides_the_key() {
    let r = RowReject {
        row: 3,
        key: Some("secret@example.com".into()),
        column: Some("mail".into()),
        code: INVALID_EMAIL.into(),
        message: "bad".into(),
    };
    let shown = format!("{r:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("row: 3"));
}

// ---- other fields: text, truncation, nulls ----

#[test]
fn text_is_trimmed_and_blank_is_null() {
    let a: ArrayRef = Arc::new(StringArray::from(vec![Some("  Ana "), Some("  "), None]));
    let b = batch(vec![
        (
            "mail",
            emails(&[Some("a@b.co"), Some("b@b.co"), Some("c@b.co")]),
        ),
        ("v", a),
    ]);
    let m = mapper(&[("email", "mail"), ("lastName", "v")], &b);
    let out = m.map_batch(&b, 0);
    let got: Vec<&FieldValue> = out
        .records
        .iter()
        .map(|(_, r)| value(&m, r, "lastName"))
        .collect();
    assert_eq!(got, [&text("Ana"), &FieldValue::Null, &FieldValue::Null]);
}

#[test]
fn long_text_is_truncated_at_a_char_boundary_and_counted() {
    // firstName holds 10 characters; "é" is two bytes.
    let a: ArrayRef = Arc::new(StringArray::from(vec![
        "ééééééééééééé",
        "short",
        "0123456789X",
    ]));
    let b = batch(vec![
        (
            "mail",
            emails(&[Some("a@b.co"), Some("b@b.co"), Some("c@b.co")]),
        ),
        ("v", a),
    ]);
    let m = mapper(&[("email", "mail"), ("firstName", "v")], &b);
    let out = m.map_batch(&b, 0);
    assert_eq!(out.truncated_values, 2);
    let got: Vec<&FieldValue> = out
        .records
        .iter()
        .map(|(_, r)| value(&m, r, "firstName"))
        .collect();
    assert_eq!(
        got,
        [&text("éééééééééé"), &text("short"), &text("0123456789")]
    );
}

#[test]
fn truncation_in_a_rejected_row_is_not_counted() {
    let b = batch(vec![
        ("mail", emails(&[Some("a@b.co")])),
        (
            "name",
            Arc::new(StringArray::from(vec!["much too long a name"])) as ArrayRef,
        ),
        ("s", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
    ]);
    let out = mapper(
        &[("email", "mail"), ("firstName", "name"), ("score", "s")],
        &b,
    )
    .map_batch(&b, 0);
    assert_eq!(out.rejects.len(), 1);
    assert_eq!(out.truncated_values, 0);
}

#[test]
fn bad_value_rejects_the_row_naming_the_column() {
    let b = batch(vec![
        (
            "mail",
            emails(&[Some("Secret@Example.com"), Some("b@b.co")]),
        ),
        (
            "pts",
            Arc::new(StringArray::from(vec!["12abc", "12"])) as ArrayRef,
        ),
    ]);
    let out = mapper(&[("email", "mail"), ("score", "pts")], &b).map_batch(&b, 7);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].0, 8);
    let r = &out.rejects[0];
    assert_eq!(
        (r.row, r.code.as_str(), r.column.as_deref()),
        (7, INVALID_VALUE, Some("pts"))
    );
    assert_eq!(r.key.as_deref(), Some("Secret@Example.com"));
    assert!(
        r.message.contains("`score`") && !r.message.contains("12abc"),
        "{}",
        r.message
    );
}

#[test]
fn a_column_missing_from_a_batch_rejects_every_row() {
    let good = batch(vec![
        ("mail", emails(&[Some("a@b.co")])),
        ("pts", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ]);
    let m = mapper(&[("email", "mail"), ("score", "pts")], &good);
    let bad = batch(vec![("mail", emails(&[Some("a@b.co"), Some("b@b.co")]))]);
    let out = m.map_batch(&bad, 10);
    assert!(out.records.is_empty());
    assert_eq!(
        out.rejects.iter().map(|r| r.row).collect::<Vec<_>>(),
        [10, 11]
    );
    assert!(out.rejects.iter().all(|r| r.code == MISSING_COLUMN));
}

// ---- per Arrow type ----

#[test]
fn string_kinds() {
    for a in [
        Arc::new(StringArray::from(vec![" 42 "])) as ArrayRef,
        Arc::new(LargeStringArray::from(vec![" 42 "])) as ArrayRef,
        Arc::new(StringViewArray::from(vec![" 42 "])) as ArrayRef,
    ] {
        assert_eq!(one("lastName", a.clone()), Ok(text("42")));
        assert_eq!(one("score", a.clone()), Ok(FieldValue::Int(42)));
        assert_eq!(one("ltv", a), Ok(FieldValue::Float(42.0)));
    }
}

#[test]
fn dictionary_strings() {
    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
    builder.append_value("yes");
    let a: ArrayRef = Arc::new(builder.finish());
    assert_eq!(one("vip", a.clone()), Ok(FieldValue::Bool(true)));
    assert_eq!(one("lastName", a), Ok(text("yes")));
}

#[test]
fn integer_kinds() {
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int8Array::from(vec![-7])),
        Arc::new(Int16Array::from(vec![-7])),
        Arc::new(Int32Array::from(vec![-7])),
        Arc::new(Int64Array::from(vec![-7])),
    ];
    for a in arrays {
        assert_eq!(one("score", a.clone()), Ok(FieldValue::Int(-7)));
        assert_eq!(one("ltv", a.clone()), Ok(FieldValue::Float(-7.0)));
        assert_eq!(one("lastName", a), Ok(text("-7")));
    }
    let unsigned: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from(vec![1])),
        Arc::new(UInt16Array::from(vec![1])),
        Arc::new(UInt32Array::from(vec![1])),
        Arc::new(UInt64Array::from(vec![1])),
    ];
    for a in unsigned {
        assert_eq!(one("score", a.clone()), Ok(FieldValue::Int(1)));
        assert_eq!(one("vip", a), Ok(FieldValue::Bool(true)));
    }
    let huge: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
    assert_eq!(one("score", huge.clone()).unwrap_err().code, INVALID_VALUE);
    assert_eq!(one("lastName", huge), Ok(text("18446744073709551615")));
    let two: ArrayRef = Arc::new(Int64Array::from(vec![2]));
    assert_eq!(one("vip", two).unwrap_err().code, INVALID_VALUE);
}

#[test]
fn float_kinds() {
    let a: ArrayRef = Arc::new(Float64Array::from(vec![1234.5]));
    assert_eq!(one("ltv", a.clone()), Ok(FieldValue::Float(1234.5)));
    assert_eq!(one("lastName", a.clone()), Ok(text("1234.5")));
    assert_eq!(one("score", a).unwrap_err().code, INVALID_VALUE);
    let whole: ArrayRef = Arc::new(Float32Array::from(vec![3.0f32]));
    assert_eq!(one("score", whole.clone()), Ok(FieldValue::Int(3)));
    assert_eq!(one("ltv", whole), Ok(FieldValue::Float(3.0)));
    for bad in [f64::NAN, f64::INFINITY] {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![bad]));
        assert_eq!(one("ltv", a.clone()).unwrap_err().code, INVALID_VALUE);
        assert_eq!(one("lastName", a).unwrap_err().code, INVALID_VALUE);
    }
}

#[test]
fn decimal128() {
    let dec = |v: i128, p: u8, s: i8| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(vec![v])
                .with_precision_and_scale(p, s)
                .unwrap(),
        )
    };
    assert_eq!(
        one("ltv", dec(123_456, 10, 2)),
        Ok(FieldValue::Float(1234.56))
    );
    assert_eq!(one("lastName", dec(123_456, 10, 2)), Ok(text("1234.56")));
    assert_eq!(one("lastName", dec(-5, 10, 3)), Ok(text("-0.005")));
    assert_eq!(one("lastName", dec(12, 10, -2)), Ok(text("1200")));
    assert_eq!(one("score", dec(4_200, 10, 2)), Ok(FieldValue::Int(42)));
    assert_eq!(
        one("score", dec(4_201, 10, 2)).unwrap_err().code,
        INVALID_VALUE
    );
    assert_eq!(one("score", dec(12, 10, -2)), Ok(FieldValue::Int(1200)));
}

#[test]
fn booleans() {
    let a: ArrayRef = Arc::new(BooleanArray::from(vec![true]));
    assert_eq!(one("vip", a.clone()), Ok(FieldValue::Bool(true)));
    assert_eq!(one("lastName", a), Ok(text("true")));
    for (s, want) in [
        ("true", true),
        ("FALSE", false),
        ("Yes", true),
        ("no", false),
        ("1", true),
        (" 0 ", false),
    ] {
        let a: ArrayRef = Arc::new(StringArray::from(vec![s]));
        assert_eq!(one("vip", a), Ok(FieldValue::Bool(want)), "{s}");
    }
    let a: ArrayRef = Arc::new(StringArray::from(vec!["other"]));
    assert_eq!(one("vip", a).unwrap_err().code, INVALID_VALUE);
}

#[test]
fn dates() {
    // 2024-02-29 is day 19782 since the epoch.
    let d32: ArrayRef = Arc::new(Date32Array::from(vec![19_782]));
    assert_eq!(one("birthday", d32.clone()), Ok(text("2024-02-29")));
    assert_eq!(
        one("lastSeen", d32.clone()),
        Ok(text("2024-02-29T00:00:00Z"))
    );
    assert_eq!(one("lastName", d32), Ok(text("2024-02-29")));
    let d64: ArrayRef = Arc::new(Date64Array::from(vec![19_782i64 * 86_400_000]));
    assert_eq!(one("birthday", d64), Ok(text("2024-02-29")));
    let before_epoch: ArrayRef = Arc::new(Date32Array::from(vec![-1]));
    assert_eq!(one("birthday", before_epoch), Ok(text("1969-12-31")));
    let too_far: ArrayRef = Arc::new(Date32Array::from(vec![i32::MAX]));
    assert_eq!(one("birthday", too_far).unwrap_err().code, INVALID_VALUE);
}

#[test]
fn timestamps_in_every_unit_with_and_without_zone() {
    // 2024-03-10T07:30:15Z
    let secs = 1_710_055_815i64;
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(TimestampSecondArray::from(vec![secs])),
        Arc::new(TimestampMillisecondArray::from(vec![secs * 1_000 + 999])),
        Arc::new(TimestampMicrosecondArray::from(vec![secs * 1_000_000]).with_timezone("UTC")),
        Arc::new(
            TimestampNanosecondArray::from(vec![secs * 1_000_000_000])
                .with_timezone("America/New_York"),
        ),
        Arc::new(TimestampSecondArray::from(vec![secs]).with_timezone("+05:30")),
    ];
    for a in arrays {
        assert_eq!(
            one("lastSeen", a.clone()),
            Ok(text("2024-03-10T07:30:15Z")),
            "{:?}",
            a.data_type()
        );
        assert_eq!(one("birthday", a.clone()), Ok(text("2024-03-10")));
        assert_eq!(one("lastName", a), Ok(text("2024-03-10T07:30:15Z")));
    }
}

#[test]
fn date_and_datetime_text() {
    let cases = [
        (
            "2024-03-10",
            Some("2024-03-10"),
            Some("2024-03-10T00:00:00Z"),
        ),
        (
            "2024-03-10T07:30:15Z",
            Some("2024-03-10"),
            Some("2024-03-10T07:30:15Z"),
        ),
        (
            "2024-03-10T01:30:15-08:00",
            Some("2024-03-10"),
            Some("2024-03-10T09:30:15Z"),
        ),
        (
            "2024-03-10 07:30:15",
            Some("2024-03-10"),
            Some("2024-03-10T07:30:15Z"),
        ),
        (
            "2024-03-10T07:30:15.123456",
            Some("2024-03-10"),
            Some("2024-03-10T07:30:15Z"),
        ),
        ("2024-02-30", None, None),
        ("yesterday", None, None),
        ("10/03/2024", None, None),
    ];
    for (input, date, datetime) in cases {
        let a: ArrayRef = Arc::new(StringArray::from(vec![input]));
        assert_eq!(one("birthday", a.clone()).ok(), date.map(text), "{input}");
        assert_eq!(one("lastSeen", a).ok(), datetime.map(text), "{input}");
    }
}

#[test]
fn numeric_text() {
    for (input, int, float) in [
        ("42", Some(42), Some(42.0)),
        ("-42", Some(-42), Some(-42.0)),
        ("42.000", Some(42), Some(42.0)),
        ("14.1", None, Some(14.1)),
        ("1e3", None, Some(1000.0)),
        ("14c", None, None),
        ("100%", None, None),
        ("NaN", None, None),
        ("inf", None, None),
        ("99999999999999999999", None, Some(1e20)),
        ("", None, None),
    ] {
        let a: ArrayRef = Arc::new(StringArray::from(vec![input]));
        assert_eq!(
            one("score", a.clone()).ok(),
            int.map(FieldValue::Int),
            "{input}"
        );
        assert_eq!(one("ltv", a).ok(), float.map(FieldValue::Float), "{input}");
    }
}

#[test]
fn other_field_types_are_sent_as_text() {
    let a: ArrayRef = Arc::new(Int32Array::from(vec![5]));
    assert_eq!(one("notes", a), Ok(text("5")));
}

#[test]
fn nulls_become_null_in_every_type() {
    let b = batch(vec![
        ("mail", emails(&[Some("a@b.co")])),
        ("i", Arc::new(Int64Array::from(vec![None])) as ArrayRef),
        ("d", Arc::new(Date32Array::from(vec![None])) as ArrayRef),
        (
            "s",
            Arc::new(StringArray::from(vec![None::<&str>])) as ArrayRef,
        ),
    ]);
    let m = mapper(
        &[
            ("email", "mail"),
            ("score", "i"),
            ("birthday", "d"),
            ("vip", "s"),
        ],
        &b,
    );
    let out = m.map_batch(&b, 0);
    let r = &out.records[0].1;
    for f in ["score", "birthday", "vip"] {
        assert_eq!(*value(&m, r, f), FieldValue::Null, "{f}");
    }
}

#[test]
fn null_typed_column_maps_to_null() {
    let a: ArrayRef = Arc::new(arrow_array::NullArray::new(1));
    assert_eq!(a.data_type(), &DataType::Null);
    assert_eq!(one("lastName", a), Ok(FieldValue::Null));
}

#[test]
fn schema_with_unreadable_type_is_a_config_error() {
    let schema = Schema::new(vec![
        Field::new("mail", DataType::Utf8, true),
        Field::new(
            "tags",
            DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(
                        vec![
                            Field::new("k", DataType::Utf8, false),
                            Field::new("v", DataType::Utf8, true),
                        ]
                        .into(),
                    ),
                    false,
                )),
                false,
            ),
            true,
        ),
    ]);
    let err = Mapper::new(
        &mapping(&[("email", "mail"), ("lastName", "tags")]),
        "email",
        rule(),
        &marketo_fields(),
        &schema,
    )
    .unwrap_err();
    assert_eq!(err.config_errors()[0].path, "mapping.lastName");
}

// ---- properties ----

proptest! {
    #[test]
    fn normalise_email_is_idempotent(raw in "[ A-Za-z0-9._+@-]{0,40}") {
        if let Ok(once) = norm(&raw) {
            prop_assert_eq!(norm(&once), Ok(once.clone()));
            prop_assert_eq!(once.trim(), once.as_str());
            prop_assert_eq!(once.to_ascii_lowercase(), once.clone());
        }
    }

    #[test]
    fn valid_looking_emails_pass(local in "[a-z0-9]{1,20}", domain in "[a-z0-9]{1,20}", tld in "[a-z]{2,6}") {
        let e = format!("{local}@{domain}.{tld}");
        prop_assert_eq!(norm(&format!(" {} ", e.to_uppercase())), Ok(e));
    }

    #[test]
    fn truncation_respects_max_and_char_boundaries(s in "\\PC{0,40}", max in 0usize..30) {
        let (cut, truncated) = super::value::truncate_chars(s.clone(), max);
        prop_assert!(cut.chars().count() <= max);
        prop_assert!(s.starts_with(&cut));
        prop_assert_eq!(truncated, s.chars().count() > max);
        if !truncated {
            prop_assert_eq!(cut, s);
        }
    }

    #[test]
    fn every_row_is_mapped_or_rejected_exactly_once(
        rows in proptest::collection::vec(
            (proptest::option::of("[ a-zA-Z@.]{0,12}"), proptest::option::of("[0-9a.]{0,4}"), proptest::option::of("\\PC{0,14}")),
            0..60,
        ),
        first_row in 0u64..1_000_000,
    ) {
        let mail: Vec<Option<String>> = rows.iter().map(|r| r.0.clone()).collect();
        let pts: Vec<Option<String>> = rows.iter().map(|r| r.1.clone()).collect();
        let name: Vec<Option<String>> = rows.iter().map(|r| r.2.clone()).collect();
        let b = batch(vec![
            ("mail", Arc::new(StringArray::from(mail)) as ArrayRef),
            ("pts", Arc::new(StringArray::from(pts)) as ArrayRef),
            ("name", Arc::new(StringArray::from(name)) as ArrayRef),
        ]);
        let m = mapper(&[("email", "mail"), ("score", "pts"), ("firstName", "name")], &b);
        let out = m.map_batch(&b, first_row);
        let mut seen: Vec<u64> = out.records.iter().map(|(r, _)| *r)
            .chain(out.rejects.iter().map(|r| r.row))
            .collect();
        seen.sort_unstable();
        let want: Vec<u64> = (first_row..first_row + rows.len() as u64).collect();
        prop_assert_eq!(seen, want);
        prop_assert!(out.truncated_values <= out.records.len() as u64);
        for (_, rec) in &out.records {
            prop_assert_eq!(rec.values.len(), 3);
            if let FieldValue::Text(n) = value(&m, rec, "firstName") {
                prop_assert!(n.chars().count() <= 10);
            }
            prop_assert_eq!(norm(rec.key.as_str()), Ok(rec.key.as_str().to_string()));
        }
    }
}
