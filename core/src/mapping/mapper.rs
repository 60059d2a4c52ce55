//! The built-in [`FieldMapping`]: destination field -> source column, with
//! the lookup field normalised and every other value converted to its
//! field's type.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;

use super::column::{Column, Kind};
use super::value::{convert, Raw, Target};
use super::{FieldMapping, MappedBatch, RowReject, INVALID_VALUE, MISSING_COLUMN};
use crate::destination::FieldSpec;
use crate::error::{ConfigError, Error, Result};
use crate::identity::{KeyRule, KEY_TOO_LONG, MISSING_KEY};
use crate::record::{FieldValue, Record, RecordKey};

/// One mapped destination field.
#[derive(Clone, Debug)]
struct MappedField {
    field: String,
    column: String,
    target: Target,
}

/// The mapping of one export, checked once and applied to every batch.
#[derive(Clone, Debug)]
pub struct Mapper {
    lookup: MappedField,
    key_rule: Arc<dyn KeyRule>,
    lookup_max_len: Option<usize>,
    others: Vec<MappedField>,
    /// Every mapped destination field, lookup first: the order of every
    /// record's values.
    fields: Vec<String>,
}

impl Mapper {
    /// Checks before any write: every mapped column exists in `schema` (the
    /// error lists the columns that do exist) and has a type the field can
    /// take; every mapped destination field exists in `fields` and is
    /// writable; the lookup field is mapped. All problems come at once in an
    /// error of class Config, with paths `mapping.<field>` relative to the
    /// destination's block. Lookup values become keys by `key_rule`.
    pub fn new(
        mapping: &BTreeMap<String, String>,
        lookup_field: &str,
        key_rule: Arc<dyn KeyRule>,
        fields: &[FieldSpec],
        schema: &Schema,
    ) -> Result<Mapper> {
        let mut errors = Vec::new();
        let mut lookup = None;
        let mut lookup_max_len = None;
        let mut others = Vec::new();

        if !mapping.contains_key(lookup_field) {
            errors.push(
                ConfigError::new(
                    format!("mapping.{lookup_field}"),
                    format!("the lookup field `{lookup_field}` is not mapped"),
                )
                .with_hint(format!(
                    "map `{lookup_field}` to the column that holds it, e.g. `{lookup_field}: email`"
                )),
            );
        }

        for (field, column) in mapping {
            let path = format!("mapping.{field}");
            let spec = fields.iter().find(|f| f.name == *field);
            let spec = match spec {
                Some(s) => s,
                None => {
                    let mut e = ConfigError::new(
                        &path,
                        format!("`{field}` is not a field of the destination"),
                    );
                    if let Some(close) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(field))
                    {
                        e = e.with_hint(format!(
                            "field names are case-sensitive: did you mean `{}`?",
                            close.name
                        ));
                    } else {
                        e = e.with_hint(
                            "use the field's API name as the destination's describe lists it",
                        );
                    }
                    errors.push(e);
                    continue;
                }
            };
            if !spec.writable {
                errors.push(
                    ConfigError::new(&path, format!("the field `{field}` is read-only"))
                        .with_hint("remove it from the mapping"),
                );
                continue;
            }
            let target = Target::for_field(&spec.data_type, spec.max_length);
            let kind = match schema.field_with_name(column) {
                Ok(f) => Kind::of(f.data_type()).ok_or_else(|| f.data_type().to_string()),
                Err(_) => {
                    errors.push(missing_column(&path, column, schema));
                    continue;
                }
            };
            let is_lookup = field == lookup_field;
            match kind {
                Err(dt) => errors.push(ConfigError::new(
                    &path,
                    format!("column `{column}` has type {dt}, which audex cannot read"),
                )),
                Ok(kind) if is_lookup && kind != Kind::Text => errors.push(
                    ConfigError::new(
                        &path,
                        format!(
                            "column `{column}` holds {} values; the lookup field `{field}` needs text",
                            kind.name()
                        ),
                    )
                    .with_hint(format!("map the column that holds the {}", key_rule.noun())),
                ),
                Ok(kind) if !compatible(kind, target) => errors.push(ConfigError::new(
                    &path,
                    format!(
                        "column `{column}` holds {} values, which cannot become the {} field `{field}`",
                        kind.name(),
                        target.name()
                    ),
                )),
                Ok(_) => {
                    let m = MappedField {
                        field: field.clone(),
                        column: column.clone(),
                        target,
                    };
                    if is_lookup {
                        lookup_max_len = spec.max_length;
                        lookup = Some(m);
                    } else {
                        others.push(m);
                    }
                }
            }
        }

        match lookup {
            Some(lookup) if errors.is_empty() => {
                let fields = std::iter::once(lookup.field.clone())
                    .chain(others.iter().map(|m| m.field.clone()))
                    .collect();
                Ok(Mapper {
                    lookup,
                    key_rule,
                    lookup_max_len,
                    others,
                    fields,
                })
            }
            _ => Err(Error::config(errors)),
        }
    }

    /// The destination's lookup field, as mapped.
    pub fn lookup_field(&self) -> &str {
        &self.lookup.field
    }

    /// The rule that makes lookup values keys.
    pub fn key_rule(&self) -> &Arc<dyn KeyRule> {
        &self.key_rule
    }

    /// The source column that holds the lookup value.
    pub fn lookup_column(&self) -> &str {
        &self.lookup.column
    }

    /// The source columns the mapping reads (a source may project to these).
    pub fn columns(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = std::iter::once(self.lookup.column.as_str())
            .chain(self.others.iter().map(|m| m.column.as_str()))
            .collect();
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// Map one batch; rows are numbered from `first_row` (0-based position
    /// in the segment).
    pub fn map_batch(&self, batch: &RecordBatch, first_row: u64) -> MappedBatch {
        let rows = batch.num_rows();
        let mut out = MappedBatch {
            records: Vec::with_capacity(rows),
            rejects: Vec::new(),
            truncated_values: 0,
        };
        let resolve = |m: &MappedField| -> std::result::Result<Column, RowReject> {
            let unreadable = |message: String| RowReject {
                row: 0,
                key: None,
                column: Some(m.column.clone()),
                code: MISSING_COLUMN.to_string(),
                message,
            };
            let array = batch.column_by_name(&m.column).ok_or_else(|| {
                unreadable(format!(
                    "the segment has no column `{}` in this batch",
                    m.column
                ))
            })?;
            Column::resolve(array).map_err(unreadable)
        };
        // Column lookups and type dispatch happen here, once per batch.
        let columns: std::result::Result<Vec<(Column, &MappedField)>, RowReject> =
            std::iter::once(&self.lookup)
                .chain(&self.others)
                .map(|m| resolve(m).map(|c| (c, m)))
                .collect();
        let columns = match columns {
            Ok(c) => c,
            Err(template) => {
                out.rejects = (0..rows as u64)
                    .map(|i| RowReject {
                        row: first_row + i,
                        ..template.clone()
                    })
                    .collect();
                return out;
            }
        };
        let (lookup_col, others) = match columns.split_first() {
            Some((l, rest)) => (&l.0, rest),
            None => return out,
        };

        for i in 0..rows {
            let row = first_row + i as u64;
            match self.map_row(lookup_col, others, i) {
                Ok((values, key, truncated)) => {
                    out.truncated_values += truncated;
                    out.records.push((row, Record { key, values }));
                }
                Err(mut reject) => {
                    reject.row = row;
                    out.rejects.push(reject);
                }
            }
        }
        out
    }

    /// Row `i` as its values in [`Mapper::fields`] order (the key first),
    /// its key, and how many values were cut to their field's length.
    fn map_row(
        &self,
        lookup_col: &Column,
        others: &[(Column, &MappedField)],
        i: usize,
    ) -> std::result::Result<(Vec<FieldValue>, RecordKey, u64), RowReject> {
        let key = self.map_key(lookup_col, i)?;
        let mut values = Vec::with_capacity(1 + others.len());
        values.push(FieldValue::Text(key.clone()));
        let mut truncated = 0;
        for (col, m) in others {
            let value = match col.get(i) {
                Ok(None) => FieldValue::Null,
                Ok(Some(raw)) => match convert(raw, m.target) {
                    Ok(c) => {
                        truncated += u64::from(c.truncated);
                        c.value
                    }
                    Err(reason) => return Err(self.invalid_value(lookup_col, i, m, &reason)),
                },
                Err(reason) => return Err(self.invalid_value(lookup_col, i, m, &reason)),
            };
            values.push(value);
        }
        Ok((values, RecordKey::new(key), truncated))
    }

    fn map_key(&self, col: &Column, i: usize) -> std::result::Result<String, RowReject> {
        let column = Some(self.lookup.column.clone());
        let reject = |key: Option<String>, code: &str, message: String| RowReject {
            row: 0,
            key,
            column: column.clone(),
            code: code.to_string(),
            message,
        };
        let noun = self.key_rule.noun();
        let raw = match col.get(i) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                return Err(reject(None, MISSING_KEY, format!("the {noun} is empty")));
            }
            Err(reason) => return Err(reject(None, INVALID_VALUE, reason)),
        };
        let text = raw_text(raw);
        match self.key_rule.normalise(&text) {
            Ok(key) => match self.lookup_max_len {
                Some(max) if key.chars().count() > max => Err(reject(
                    Some(text),
                    KEY_TOO_LONG,
                    format!(
                        "the {noun} has {} characters, more than the {max} the field `{}` holds",
                        key.chars().count(),
                        self.lookup.field
                    ),
                )),
                _ => Ok(key),
            },
            Err(problem) => {
                let key = (problem.code != MISSING_KEY).then_some(text);
                Err(reject(key, &problem.code, problem.message))
            }
        }
    }

    fn invalid_value(
        &self,
        lookup_col: &Column,
        i: usize,
        m: &MappedField,
        reason: &str,
    ) -> RowReject {
        RowReject {
            row: 0,
            key: lookup_col.get(i).ok().flatten().map(raw_text),
            column: Some(m.column.clone()),
            code: INVALID_VALUE.to_string(),
            message: format!(
                "column `{}` cannot become the {} field `{}`: {reason}",
                m.column,
                m.target.name(),
                m.field
            ),
        }
    }
}

impl FieldMapping for Mapper {
    fn fields(&self) -> &[String] {
        &self.fields
    }

    fn map_batch(&self, batch: &RecordBatch, first_row: u64) -> MappedBatch {
        Mapper::map_batch(self, batch, first_row)
    }
}

/// The lookup value as given, for the rejects file.
fn raw_text(raw: Raw<'_>) -> String {
    match raw {
        Raw::Text(s) => s.to_string(),
        other => match convert(other, Target::Text { max_len: None }) {
            Ok(c) => match c.value {
                FieldValue::Text(s) => s,
                _ => String::new(),
            },
            Err(_) => String::new(),
        },
    }
}

/// Whether every value of a column of `kind` could possibly become `target`
/// (text may or may not parse; that is decided per row).
fn compatible(kind: Kind, target: Target) -> bool {
    match target {
        Target::Text { .. } => true,
        Target::Integer | Target::Float => {
            matches!(
                kind,
                Kind::Text | Kind::Integer | Kind::Float | Kind::Decimal
            )
        }
        Target::Boolean => matches!(kind, Kind::Text | Kind::Boolean | Kind::Integer),
        Target::Date | Target::Datetime => {
            matches!(kind, Kind::Text | Kind::Date | Kind::Timestamp)
        }
    }
}

fn missing_column(path: &str, column: &str, schema: &Schema) -> ConfigError {
    let existing: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut hint = format!("the segment's columns are: {}", existing.join(", "));
    if let Some(close) = existing.iter().find(|c| c.eq_ignore_ascii_case(column)) {
        hint = format!("column names are case-sensitive: did you mean `{close}`? ({hint})");
    }
    ConfigError::new(path, format!("column `{column}` is not in the segment")).with_hint(hint)
}
