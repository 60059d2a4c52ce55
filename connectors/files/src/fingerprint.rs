//! The files source's fingerprint, for `run_on: source_change`: every file
//! its tables read, as [`crate::listing::list`] names them (the same files a
//! run reads), each with its size and modification time. A file added,
//! removed, rewritten or touched changes it; a marker such as `_SUCCESS`, a
//! hidden file or a file a glob does not name does not.

use std::time::UNIX_EPOCH;

use crate::listing;
use crate::source::ResolvedTable;

/// The fingerprint of `tables` (reads metadata only, never contents).
pub(crate) fn fingerprint(tables: &[ResolvedTable]) -> String {
    let mut parts = Vec::new();
    for table in tables {
        parts.push(format!("table\t{}", table.name));
        let files = match listing::list(table) {
            Ok(listing) => listing.files,
            Err(e) => {
                // The run reports it; here it is just different.
                parts.push(format!("unreadable\t{}", e.message));
                continue;
            }
        };
        for file in files {
            parts.push(match std::fs::metadata(&file) {
                Ok(meta) => {
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    format!("{}\t{}\t{modified}", file.display(), meta.len())
                }
                Err(_) => format!("{}\tmissing", file.display()),
            });
        }
    }
    audex_core::fingerprint_digest(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    fn table(base: &Path, name: &str, configured: &str) -> ResolvedTable {
        ResolvedTable {
            name: name.into(),
            configured: configured.into(),
            location: base.join(configured),
            base_dir: base.to_path_buf(),
            format: None,
            delimiter: None,
            text_columns: Vec::new(),
            max_value_bytes: 1 << 20,
        }
    }

    #[test]
    fn changes_with_the_files_and_only_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.csv"), "email\nx@example.com\n").unwrap();
        std::fs::create_dir_all(d.join("parts/day=1")).unwrap();
        std::fs::write(d.join("parts/day=1/p0.parquet"), "x").unwrap();
        std::fs::write(d.join("parts/_SUCCESS"), "").unwrap();
        std::fs::create_dir_all(d.join("g")).unwrap();
        std::fs::write(d.join("g/p-1.csv"), "email\n").unwrap();
        let tables = vec![
            table(d, "a", "a.csv"),
            table(d, "parts", "parts"),
            table(d, "g", "g/p-*.csv"),
        ];
        let first = fingerprint(&tables);
        assert_eq!(fingerprint(&tables), first, "stable");

        // A marker file is not data.
        std::fs::write(d.join("parts/_SUCCESS"), "done").unwrap();
        assert_eq!(fingerprint(&tables), first);
        // A new partition is.
        std::fs::create_dir_all(d.join("parts/day=2")).unwrap();
        std::fs::write(d.join("parts/day=2/p0.parquet"), "y").unwrap();
        let second = fingerprint(&tables);
        assert_ne!(second, first);
        // A new file matching the glob.
        std::fs::write(d.join("g/p-2.csv"), "email\n").unwrap();
        let third = fingerprint(&tables);
        assert_ne!(third, second);
        // A file that does not match it.
        std::fs::write(d.join("g/other.csv"), "email\n").unwrap();
        assert_eq!(fingerprint(&tables), third);
        // A rewritten file (another size).
        std::fs::write(d.join("a.csv"), "email\nx@example.com\ny@example.com\n").unwrap();
        assert_ne!(fingerprint(&tables), third);
    }

    /// Nested folders: the fingerprint watches the files a run reads, at any
    /// depth, and nothing else.
    #[test]
    fn watches_nested_files_as_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |rel: &str, text: &str| {
            let path = d.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("data/top.csv", "id\n1\n");
        write("data/a/p1.csv", "id\n2\n");
        write("data/b/c/p2.csv", "id\n3\n");
        let each = |configured: &str| fingerprint(&[table(d, "t", configured)]);
        let layouts = [
            "data",
            "data/**/*.csv",
            "data/*/*.csv",
            "data/[ab]/**/p*.csv",
        ];
        let before: Vec<String> = layouts.iter().map(|l| each(l)).collect();

        // Not read by any of them: a hidden file, a marker, another format.
        write("data/b/c/.p2.csv.crc", "x");
        write("data/b/_SUCCESS", "");
        write("data/b/c/notes.txt", "x");
        let after: Vec<String> = layouts.iter().map(|l| each(l)).collect();
        assert_eq!(after, before);

        // A nested file rewritten: every layout that reads it changes.
        write("data/b/c/p2.csv", "id\n3\n4\n");
        let after: Vec<String> = layouts.iter().map(|l| each(l)).collect();
        assert_ne!(after[0], before[0], "folder");
        assert_ne!(after[1], before[1], "data/**/*.csv");
        assert_eq!(
            after[2], before[2],
            "data/*/*.csv does not read data/b/c/p2.csv"
        );
        assert_ne!(after[3], before[3], "data/[ab]/**/p*.csv");

        // A glob that matches nothing is a state too, and a file appearing
        // changes it.
        let none = each("data/z/*.csv");
        write("data/z/p3.csv", "id\n5\n");
        assert_ne!(each("data/z/*.csv"), none);
    }
}
