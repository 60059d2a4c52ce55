//! Merge-field values checked against an audience's fields (facts §3):
//! unknown tags are refused, required fields must be set on create, text is
//! truncated to 255 bytes, radio/dropdown values must be a choice, dates and
//! birthdays must parse, addresses need addr1, city, state and zip.

use serde_json::{Map, Value};

use crate::config::{MergeType, SimMergeField};
use crate::reply::FieldError;

/// Longest text value kept, in bytes.
pub const TEXT_MAX: usize = 255;

/// Values to store, by the field's index in the audience's list.
pub type Values = Vec<(u16, Value)>;

/// Checks `input` (a `merge_fields` object). `creating` makes required
/// fields mandatory unless `skip_required` (`skip_merge_validation=true`).
pub fn validate(
    fields: &[SimMergeField],
    input: Option<&Map<String, Value>>,
    creating: bool,
    skip_required: bool,
) -> Result<Values, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Values::new();
    if let Some(input) = input {
        for (tag, value) in input {
            let Some(ix) = fields.iter().position(|f| f.tag == *tag) else {
                errors.push(FieldError::new(
                    tag,
                    "This merge field does not exist in this audience.",
                ));
                continue;
            };
            let Some(def) = fields.get(ix) else { continue };
            match coerce(def, value) {
                Ok(v) => {
                    if def.required && !skip_required && is_blank(&v) {
                        errors.push(FieldError::new(tag, "Please enter a value"));
                    } else if let Ok(i) = u16::try_from(ix) {
                        out.push((i, v));
                    }
                }
                Err(msg) => errors.push(FieldError::new(tag, msg)),
            }
        }
    }
    if creating && !skip_required {
        for (ix, def) in fields.iter().enumerate() {
            let given = out.iter().any(|(i, _)| usize::from(*i) == ix);
            let refused = errors.iter().any(|e| e.field == def.tag);
            if def.required && !given && !refused && def.default_value.is_empty() {
                errors.push(FieldError::new(&def.tag, "Please enter a value"));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The default values a new contact gets for fields it was not given.
pub fn defaults(fields: &[SimMergeField], given: &Values) -> Values {
    fields
        .iter()
        .enumerate()
        .filter(|(ix, f)| {
            !f.default_value.is_empty() && !given.iter().any(|(i, _)| usize::from(*i) == *ix)
        })
        .filter_map(|(ix, f)| {
            Some((
                u16::try_from(ix).ok()?,
                Value::String(f.default_value.clone()),
            ))
        })
        .collect()
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One value for one field, or the message for `errors[].message`.
fn coerce(def: &SimMergeField, v: &Value) -> Result<Value, &'static str> {
    // An empty string clears any field.
    if let Value::String(s) = v {
        if s.is_empty() {
            return Ok(Value::String(String::new()));
        }
    }
    match def.field_type {
        MergeType::Text => match v {
            Value::String(s) => Ok(Value::String(truncate(s, TEXT_MAX))),
            _ => Err("Please enter a text value."),
        },
        MergeType::Number => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                Ok(Value::String(s.trim().to_string()))
            }
            _ => Err("Please enter a number."),
        },
        MergeType::Phone => match v {
            Value::String(s)
                if s.bytes().any(|b| b.is_ascii_digit())
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || b" +-().".contains(&b))
                    && s.len() <= 50 =>
            {
                Ok(Value::String(s.clone()))
            }
            _ => Err("Please enter a valid phone number."),
        },
        MergeType::Url | MergeType::Imageurl => match v {
            Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
                Ok(Value::String(truncate(s, TEXT_MAX)))
            }
            _ => Err("Please enter a valid URL."),
        },
        MergeType::Radio | MergeType::Dropdown => match v {
            Value::String(s) if def.choices.iter().any(|c| c == s) => Ok(v.clone()),
            _ => Err("Please choose one of the listed options."),
        },
        MergeType::Date => match v {
            Value::String(s) => parse_date(s)
                .map(Value::String)
                .ok_or("Please enter a valid date."),
            _ => Err("Please enter a valid date."),
        },
        MergeType::Birthday => match v {
            Value::String(s) => parse_birthday(s)
                .map(Value::String)
                .ok_or("Please enter a valid birthday (MM/DD)."),
            _ => Err("Please enter a valid birthday (MM/DD)."),
        },
        MergeType::Zip => match v {
            Value::String(s) if is_zip(s) => Ok(v.clone()),
            _ => Err("Please enter a valid zip code."),
        },
        MergeType::Address => address(v),
    }
}

fn address(v: &Value) -> Result<Value, &'static str> {
    const MSG: &str = "Please enter a complete address (addr1, city, state and zip).";
    let Value::Object(m) = v else { return Err(MSG) };
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::trim);
    for k in ["addr1", "city", "state", "zip"] {
        if text(k).is_none_or(str::is_empty) {
            return Err(MSG);
        }
    }
    for k in m.keys() {
        if !["addr1", "addr2", "city", "state", "zip", "country"].contains(&k.as_str()) {
            return Err(MSG);
        }
        if !m.get(k).is_some_and(Value::is_string) {
            return Err(MSG);
        }
    }
    let mut out = Map::new();
    for k in ["addr1", "addr2", "city", "state", "zip", "country"] {
        let val = text(k).map(|s| truncate(s, TEXT_MAX)).unwrap_or_default();
        out.insert(k.to_string(), Value::String(val));
    }
    Ok(Value::Object(out))
}

fn is_zip(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
    (b.len() == 5 && digits(b))
        || (b.len() == 10 && b.get(5) == Some(&b'-') && digits(&b[..5]) && digits(&b[6..]))
}

fn valid_ymd(y: i32, m: u32, d: u32) -> bool {
    chrono::NaiveDate::from_ymd_opt(y, m, d).is_some()
}

/// `YYYY-MM-DD`, `YYYY/MM/DD`, `DD-MM-YYYY` or `MM/DD/YYYY`, stored as `YYYY-MM-DD`.
fn parse_date(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let num = |x: &str| {
        (!x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
            .then(|| x.parse::<u32>().ok())
            .flatten()
    };
    let dash = s.contains('-') && !s.contains('/');
    let slash = s.contains('/') && !s.contains('-');
    let (y, m, d) = if a.len() == 4 && (dash || slash) {
        (num(a)?, num(b)?, num(c)?)
    } else if c.len() == 4 && dash {
        (num(c)?, num(b)?, num(a)?)
    } else if c.len() == 4 && slash {
        (num(c)?, num(a)?, num(b)?)
    } else {
        return None;
    };
    let y = i32::try_from(y).ok()?;
    valid_ymd(y, m, d).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// `MM/DD` (any year; 02/29 allowed).
fn parse_birthday(s: &str) -> Option<String> {
    let (m, d) = s.split_once('/')?;
    if m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (m, d) = (m.parse::<u32>().ok()?, d.parse::<u32>().ok()?);
    valid_ymd(2000, m, d).then(|| format!("{m:02}/{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<SimMergeField> {
        let mut f = SimMergeField::defaults();
        f.push(
            SimMergeField::new("PLAN", "Plan", MergeType::Dropdown).with_choices(&["free", "pro"]),
        );
        f.push(SimMergeField::new("SINCE", "Since", MergeType::Date));
        f.push(SimMergeField::new("BDAY", "Birthday", MergeType::Birthday));
        f.push(SimMergeField::new("CODE", "Code", MergeType::Text).required());
        f
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn values_are_checked_and_normalised() {
        let f = fields();
        let input = obj(json!({
            "FNAME": "é".repeat(200),
            "PLAN": "pro",
            "SINCE": "31-12-2024",
            "BDAY": "02/29",
            "CODE": "x",
            "ADDRESS": {"addr1": "1 Main St", "city": "Oslo", "state": "OS", "zip": "0150"},
        }));
        let out = validate(&f, Some(&input), true, false).unwrap_or_default();
        let get = |tag: &str| {
            let ix = f.iter().position(|d| d.tag == tag).unwrap_or(usize::MAX);
            out.iter()
                .find(|(i, _)| usize::from(*i) == ix)
                .map(|(_, v)| v.clone())
        };
        let fname = get("FNAME").unwrap_or_default();
        assert_eq!(
            fname.as_str().map(str::len),
            Some(254),
            "truncated on a char boundary"
        );
        assert_eq!(get("SINCE"), Some(json!("2024-12-31")));
        assert_eq!(
            get("ADDRESS").and_then(|a| a.get("country").cloned()),
            Some(json!(""))
        );
    }

    #[test]
    fn refusals_name_their_field() {
        let f = fields();
        let input = obj(
            json!({"NOPE": "x", "PLAN": "gold", "SINCE": "2024-02-30", "ADDRESS": {"addr1": "x"}}),
        );
        let errs = validate(&f, Some(&input), true, false)
            .err()
            .unwrap_or_default();
        let mut tags: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        tags.sort_unstable();
        assert_eq!(tags, ["ADDRESS", "CODE", "NOPE", "PLAN", "SINCE"]);
        let code = errs
            .iter()
            .find(|e| e.field == "CODE")
            .map(|e| e.message.clone());
        assert_eq!(code.as_deref(), Some("Please enter a value"));
        // Required fields are only required on create, or not at all when skipped.
        assert!(validate(&f, None, false, false).is_ok());
        assert!(validate(&f, None, true, true).is_ok());
        assert!(validate(&f, Some(&obj(json!({"CODE": ""}))), false, false).is_err());
    }
}
