//! Rows the sources could not read, across a run: each reported once in the
//! rejects file, counted per source table, whichever segments read it.

use std::collections::{BTreeMap, HashSet};

use super::report::TableReport;
use crate::source::UnreadableRow;

/// Where a row is: (source, table, file, line, code). A row read by two
/// segments is the same row.
type Place = (String, String, Option<String>, Option<u64>, &'static str);

#[derive(Debug, Default)]
pub(crate) struct UnreadableTally {
    seen: HashSet<Place>,
    counts: BTreeMap<(String, String), u64>,
}

impl UnreadableTally {
    /// Count `row` of `source`; `true` the first time the run meets it.
    pub(crate) fn note(&mut self, source: &str, row: &UnreadableRow) -> bool {
        let place = (
            source.to_string(),
            row.table.clone(),
            row.file.clone(),
            row.line,
            row.code,
        );
        if !self.seen.insert(place) {
            return false;
        }
        *self
            .counts
            .entry((source.to_string(), row.table.clone()))
            .or_default() += 1;
        true
    }

    /// The tables with unreadable rows, sorted by source and table.
    pub(crate) fn tables(&self) -> Vec<TableReport> {
        self.counts
            .iter()
            .map(|((source, table), n)| TableReport {
                source: source.clone(),
                table: table.clone(),
                unreadable: *n,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::unreadable;

    #[test]
    fn a_row_read_twice_counts_once() {
        let mut t = UnreadableTally::default();
        let row = |line| {
            UnreadableRow::new("profiles", unreadable::NUL_BYTE, "nul")
                .in_file("p.csv")
                .at_line(line)
        };
        assert!(t.note("files", &row(3)));
        assert!(!t.note("files", &row(3)));
        assert!(t.note("files", &row(4)));
        assert!(t.note("other", &row(3)));
        let tables = t.tables();
        assert_eq!(tables.len(), 2);
        assert_eq!(
            (tables[0].source.as_str(), tables[0].unreadable),
            ("files", 2)
        );
        assert_eq!(
            (tables[1].source.as_str(), tables[1].unreadable),
            ("other", 1)
        );
    }
}
