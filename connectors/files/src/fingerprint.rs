//! The files source's fingerprint, for `run_on: source_change`: every file
//! its tables read (a file, the files under a folder of partitions, or the
//! files a glob matches), each with its size and modification time. A file
//! added, removed, rewritten or touched changes it.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::config::has_glob;
use crate::source::{wildcard_match, ResolvedTable};

/// The fingerprint of `tables` (reads metadata only, never contents).
pub(crate) fn fingerprint(tables: &[ResolvedTable]) -> String {
    let mut parts = Vec::new();
    for table in tables {
        parts.push(format!("table\t{}", table.name));
        let mut files = Vec::new();
        if has_glob(&table.configured) {
            let (base, pattern) = split_glob(&table.location);
            collect_glob(&base, &pattern, &mut files);
        } else if table.location.is_dir() {
            collect_folder(&table.location, &mut files);
        } else {
            files.push(table.location.clone());
        }
        files.sort();
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
                // The run reports a missing file; here it is just different.
                Err(_) => format!("{}\tmissing", file.display()),
            });
        }
    }
    audex_core::fingerprint_digest(parts)
}

/// The folder before the first component holding a wildcard, and the
/// components from there.
fn split_glob(pattern: &Path) -> (PathBuf, Vec<String>) {
    let mut base = PathBuf::new();
    let mut rest = Vec::new();
    for c in pattern.components() {
        let s = c.as_os_str().to_string_lossy().to_string();
        if !rest.is_empty() || has_glob(&s) {
            rest.push(s);
        } else {
            base.push(c);
        }
    }
    (base, rest)
}

fn collect_glob(dir: &Path, parts: &[String], out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !wildcard_match(first, &name) {
            continue;
        }
        let path = entry.path();
        if rest.is_empty() {
            if path.is_file() {
                out.push(path);
            }
        } else if path.is_dir() {
            collect_glob(&path, rest, out);
        }
    }
}

/// Every data file under a folder of partitions, recursively; hidden files
/// and markers such as `_SUCCESS` are not data.
fn collect_folder(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_folder(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(name: &str, configured: &str, location: PathBuf) -> ResolvedTable {
        ResolvedTable {
            name: name.into(),
            configured: configured.into(),
            location,
            format: None,
            delimiter: None,
            text_columns: Vec::new(),
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
            table("a", "a.csv", d.join("a.csv")),
            table("parts", "parts", d.join("parts")),
            table("g", "g/p-*.csv", d.join("g/p-*.csv")),
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
}
