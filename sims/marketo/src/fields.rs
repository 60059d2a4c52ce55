//! The lead field catalogue (what describe reports) and value validation by
//! Marketo data type (facts §6, §7).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Value};

use crate::config::SimField;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    String,
    Text,
    Email,
    Integer,
    Float,
    Boolean,
    Date,
    Datetime,
    Currency,
    Percent,
    Score,
    Phone,
    Url,
    Reference,
}

impl DataType {
    pub fn parse(s: &str) -> Option<DataType> {
        Some(match s {
            "string" => DataType::String,
            "text" => DataType::Text,
            "email" => DataType::Email,
            "integer" => DataType::Integer,
            "float" => DataType::Float,
            "boolean" => DataType::Boolean,
            "date" => DataType::Date,
            "datetime" => DataType::Datetime,
            "currency" => DataType::Currency,
            "percent" => DataType::Percent,
            "score" => DataType::Score,
            "phone" => DataType::Phone,
            "url" => DataType::Url,
            "reference" => DataType::Reference,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::String => "string",
            DataType::Text => "text",
            DataType::Email => "email",
            DataType::Integer => "integer",
            DataType::Float => "float",
            DataType::Boolean => "boolean",
            DataType::Date => "date",
            DataType::Datetime => "datetime",
            DataType::Currency => "currency",
            DataType::Percent => "percent",
            DataType::Score => "score",
            DataType::Phone => "phone",
            DataType::Url => "url",
            DataType::Reference => "reference",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub id: u32,
    pub name: String,
    pub display_name: String,
    pub soap_name: String,
    pub data_type: DataType,
    pub length: Option<u32>,
    pub read_only: bool,
}

/// Index of a field in the catalogue; leads store values by it.
pub type FieldIx = u16;

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub fields: Vec<FieldDef>,
    by_name: HashMap<String, FieldIx>,
    pub email: FieldIx,
    pub id: FieldIx,
    pub created_at: FieldIx,
    pub updated_at: FieldIx,
}

/// A stored value. Strings are boxed to keep a million leads small.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Val {
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Str(s) => Value::String(s.to_string()),
            Val::Int(i) => json!(i),
            Val::Float(f) => json!(f),
            Val::Bool(b) => json!(b),
        }
    }
}

/// Why a value was refused (becomes record-level 1003).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue;

/// A value accepted for a field, and whether it had to be cut to the field's length.
#[derive(Debug, Clone, PartialEq)]
pub struct Coerced {
    pub value: Val,
    pub truncated: bool,
}

/// (rest name, display name, soap name, type, length, read only)
type StandardField = (
    &'static str,
    &'static str,
    &'static str,
    DataType,
    Option<u32>,
    bool,
);

const STANDARD: &[StandardField] = &[
    ("id", "Id", "Id", DataType::Integer, None, true),
    (
        "email",
        "Email Address",
        "Email",
        DataType::Email,
        Some(255),
        false,
    ),
    (
        "firstName",
        "First Name",
        "FirstName",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "lastName",
        "Last Name",
        "LastName",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "company",
        "Company Name",
        "Company",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "title",
        "Job Title",
        "Title",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "phone",
        "Phone Number",
        "Phone",
        DataType::Phone,
        Some(255),
        false,
    ),
    (
        "address",
        "Address",
        "Address",
        DataType::Text,
        Some(30_000),
        false,
    ),
    ("city", "City", "City", DataType::String, Some(255), false),
    (
        "state",
        "State",
        "State",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "country",
        "Country",
        "Country",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "postalCode",
        "Postal Code",
        "PostalCode",
        DataType::String,
        Some(255),
        false,
    ),
    (
        "website",
        "Website",
        "Website",
        DataType::Url,
        Some(255),
        false,
    ),
    (
        "dateOfBirth",
        "Date of Birth",
        "DateofBirth",
        DataType::Date,
        None,
        false,
    ),
    (
        "annualRevenue",
        "Annual Revenue",
        "AnnualRevenue",
        DataType::Currency,
        None,
        false,
    ),
    (
        "numberOfEmployees",
        "Num Employees",
        "NumberOfEmployees",
        DataType::Integer,
        None,
        false,
    ),
    (
        "leadScore",
        "Lead Score",
        "LeadScore",
        DataType::Score,
        None,
        false,
    ),
    (
        "unsubscribed",
        "Unsubscribed",
        "Unsubscribed",
        DataType::Boolean,
        None,
        false,
    ),
    (
        "createdAt",
        "Created At",
        "CreatedAt",
        DataType::Datetime,
        None,
        true,
    ),
    (
        "updatedAt",
        "Updated At",
        "UpdatedAt",
        DataType::Datetime,
        None,
        true,
    ),
];

impl Catalogue {
    /// Standard fields plus the configured custom ones. A custom field whose
    /// name clashes with a standard one or whose type is unknown is an error.
    pub fn new(custom: &[SimField]) -> Result<Catalogue, String> {
        let mut fields = Vec::new();
        for (i, (name, display, soap, dt, len, ro)) in STANDARD.iter().enumerate() {
            fields.push(FieldDef {
                id: u32::try_from(i).unwrap_or(0) + 1,
                name: (*name).to_string(),
                display_name: (*display).to_string(),
                soap_name: (*soap).to_string(),
                data_type: *dt,
                length: *len,
                read_only: *ro,
            });
        }
        for (i, f) in custom.iter().enumerate() {
            let dt = DataType::parse(&f.data_type).ok_or_else(|| {
                format!(
                    "custom field '{}': unknown data type '{}'",
                    f.name, f.data_type
                )
            })?;
            if fields.iter().any(|d| d.name.eq_ignore_ascii_case(&f.name)) {
                return Err(format!("custom field '{}' is already defined", f.name));
            }
            fields.push(FieldDef {
                id: 100_000 + u32::try_from(i).unwrap_or(0),
                name: f.name.clone(),
                display_name: f.display_name.clone(),
                soap_name: f.name.clone(),
                data_type: dt,
                length: f.length,
                read_only: false,
            });
        }
        if fields.len() > usize::from(FieldIx::MAX) {
            return Err("too many custom fields".to_string());
        }
        let by_name: HashMap<String, FieldIx> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i as FieldIx))
            .collect();
        let ix = |n: &str| by_name.get(n).copied().unwrap_or(0);
        Ok(Catalogue {
            email: ix("email"),
            id: ix("id"),
            created_at: ix("createdAt"),
            updated_at: ix("updatedAt"),
            fields,
            by_name,
        })
    }

    /// Field names are matched exactly: the facts could not confirm case
    /// insensitivity, so the stricter reading applies.
    pub fn lookup(&self, name: &str) -> Option<FieldIx> {
        self.by_name.get(name).copied()
    }

    pub fn def(&self, ix: FieldIx) -> &FieldDef {
        &self.fields[usize::from(ix)]
    }

    /// describe.json result items.
    pub fn describe(&self) -> Vec<Value> {
        self.fields
            .iter()
            .map(|f| {
                let mut v = json!({
                    "id": f.id,
                    "displayName": f.display_name,
                    "dataType": f.data_type.name(),
                    "rest": {"name": f.name, "readOnly": f.read_only},
                    "soap": {"name": f.soap_name, "readOnly": f.read_only},
                });
                if let (Some(len), Some(obj)) = (f.length, v.as_object_mut()) {
                    obj.insert("length".to_string(), json!(len));
                }
                v
            })
            .collect()
    }

    /// describe2.json result (one element).
    pub fn describe2(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                let mut v = json!({
                    "name": f.name,
                    "displayName": f.display_name,
                    "dataType": f.data_type.name(),
                    "updateable": !f.read_only,
                    "crmManaged": false,
                });
                if let (Some(len), Some(obj)) = (f.length, v.as_object_mut()) {
                    obj.insert("length".to_string(), json!(len));
                }
                v
            })
            .collect();
        json!({
            "name": "API Lead",
            "searchableFields": [["email"], ["id"]],
            "fields": fields,
        })
    }

    /// Check and normalise one input value for a field.
    pub fn coerce(&self, ix: FieldIx, v: &Value) -> Result<Coerced, InvalidValue> {
        let def = self.def(ix);
        coerce(def.data_type, def.length, v)
    }
}

fn plain(value: Val) -> Result<Coerced, InvalidValue> {
    Ok(Coerced {
        value,
        truncated: false,
    })
}

/// Marketo truncates overlong strings itself (docs/connectors/marketo-sim.md); the caller decides
/// whether that is acceptable (it is not for the lookup field).
fn text(s: &str, length: Option<u32>) -> Coerced {
    match length {
        Some(max) if s.chars().count() > max as usize => Coerced {
            value: Val::Str(s.chars().take(max as usize).collect::<String>().into()),
            truncated: true,
        },
        _ => Coerced {
            value: Val::Str(s.into()),
            truncated: false,
        },
    }
}

pub fn coerce(dt: DataType, length: Option<u32>, v: &Value) -> Result<Coerced, InvalidValue> {
    use DataType as D;
    match (dt, v) {
        (D::Boolean, Value::Null) => plain(Val::Bool(false)),
        (_, Value::Null) => plain(Val::Null),
        (_, Value::Array(_) | Value::Object(_)) => Err(InvalidValue),
        (D::String | D::Text | D::Phone | D::Url | D::Reference, v) => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(InvalidValue),
            };
            Ok(text(&s, length))
        }
        (D::Email, Value::String(s)) => {
            if s.is_empty() {
                return plain(Val::Null);
            }
            if !valid_email(s) || s.len() > length.unwrap_or(255) as usize {
                return Err(InvalidValue);
            }
            plain(Val::Str(s.as_str().into()))
        }
        (D::Email, _) => Err(InvalidValue),
        (D::Integer | D::Score, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                plain(Val::Int(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => plain(Val::Int(f as i64)),
                    _ => Err(InvalidValue),
                }
            }
        }
        (D::Integer | D::Score, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Val::Int)
            .map_err(|_| InvalidValue)
            .and_then(plain),
        (D::Float | D::Currency | D::Percent, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => plain(Val::Float(f)),
            _ => Err(InvalidValue),
        },
        (D::Float | D::Currency | D::Percent, Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => plain(Val::Float(f)),
            _ => Err(InvalidValue),
        },
        (D::Boolean, Value::Bool(b)) => plain(Val::Bool(*b)),
        (D::Boolean, Value::Number(n)) => match n.as_i64() {
            Some(0) => plain(Val::Bool(false)),
            Some(1) => plain(Val::Bool(true)),
            _ => Err(InvalidValue),
        },
        (D::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => plain(Val::Bool(true)),
            "false" | "0" => plain(Val::Bool(false)),
            _ => Err(InvalidValue),
        },
        (D::Date, Value::String(s)) => parse_date(s)
            .map(|d| Val::Str(d.format("%Y-%m-%d").to_string().into()))
            .ok_or(InvalidValue)
            .and_then(plain),
        (D::Datetime, Value::String(s)) => parse_datetime(s)
            .map(|d| Val::Str(format_datetime(d).into()))
            .ok_or(InvalidValue)
            .and_then(plain),
        (_, _) => Err(InvalidValue),
    }
}

/// Plain syntax check: one `@`, a dotted domain, printable ASCII only
/// (Marketo accepts ASCII emails only, facts §6).
pub fn valid_email(s: &str) -> bool {
    if !s.is_ascii()
        || s.chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') || local.len() > 64 {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime(s).map(|d| d.date_naive()))
}

fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Lead DB datetimes read back without fractions: "…48.000Z" → "…48Z" (facts §6).
pub fn format_datetime(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalogue {
        Catalogue::new(&[
            SimField::new("score2", "float"),
            SimField::new("pct", "percent"),
            SimField::new("workEmail", "email"),
        ])
        .expect("catalogue")
    }

    fn ok(c: &Catalogue, field: &str, v: Value) -> Val {
        let ix = c.lookup(field).expect("field");
        c.coerce(ix, &v).expect("valid").value
    }

    fn bad(c: &Catalogue, field: &str, v: Value) -> bool {
        let ix = c.lookup(field).expect("field");
        c.coerce(ix, &v).is_err()
    }

    // The invalid values recorded against a real instance [GRP], facts §6.
    #[test]
    fn rejects_values_real_marketo_rejects() {
        let c = cat();
        assert!(bad(&c, "workEmail", json!("bademail")));
        assert!(bad(&c, "numberOfEmployees", json!(14.1)));
        assert!(bad(&c, "score2", json!("14c")));
        assert!(bad(&c, "createdAt", json!("yesterday")) || c.def(c.created_at).read_only);
        assert!(bad(&c, "pct", json!("100%")));
        assert!(bad(&c, "unsubscribed", json!("other")));
        assert!(bad(&c, "dateOfBirth", json!("yesterday")));
        assert!(bad(&c, "firstName", json!({"a": 1})));
    }

    #[test]
    fn normalises_accepted_values() {
        let c = cat();
        assert_eq!(ok(&c, "unsubscribed", Value::Null), Val::Bool(false));
        assert_eq!(ok(&c, "numberOfEmployees", json!("42")), Val::Int(42));
        assert_eq!(ok(&c, "score2", json!("1.5")), Val::Float(1.5));
        assert_eq!(
            ok(&c, "dateOfBirth", json!("1990-02-03")),
            Val::Str("1990-02-03".into())
        );
        let dt = coerce(DataType::Datetime, None, &json!("2020-08-30T05:49:48.000Z"))
            .expect("datetime")
            .value;
        assert_eq!(dt, Val::Str("2020-08-30T05:49:48Z".into()));
        let long = "x".repeat(300);
        let t = c
            .coerce(c.lookup("city").expect("city"), &json!(long))
            .expect("text");
        assert!(t.truncated);
        assert_eq!(t.value, Val::Str("x".repeat(255).into()));
    }

    #[test]
    fn email_syntax() {
        assert!(valid_email("a.b+c@example.co.uk"));
        for bad in [
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "ä@b.com",
            "@b.com",
            "a@-b.com",
            "a@b..com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn custom_field_clash_is_refused() {
        assert!(Catalogue::new(&[SimField::new("email", "string")]).is_err());
        assert!(Catalogue::new(&[SimField::new("x", "blob")]).is_err());
    }
}
