//! Which files a table reads. [`list`] expands a table's configured location
//! into the sorted files it names; registration with DataFusion, `audex
//! check` and the fingerprint all call it, so the files read, the files
//! reported and the files watched for changes are the same.
//!
//! - A **file** is itself, whatever its extension.
//! - A **folder** is every data file under it, at any depth. A name starting
//!   with `.` or `_` (hidden files, `_SUCCESS`, `_temporary/`) is skipped with
//!   everything under it, and so is a file whose extension belongs to another
//!   format than the table's.
//! - A **glob** names what it names in a shell (bash with `globstar`): `*`,
//!   `?`, `[…]` and `[!…]` match within one path component, `**` as a whole
//!   component matches zero or more folders, and no wildcard matches a
//!   leading `.`. Only files are read; the format comes from the pattern's
//!   extension or `format:`.
//!
//! Walking and matching are the `glob` crate's (rust-lang/glob), chosen over
//! `globset` + `walkdir`: it implements these shell semantics itself,
//! component by component (`*` stops at `/`, `**` is whole folders, the
//! leading-dot rule is one of its `MatchOptions`), it only lists the folders
//! a pattern can reach (a literal component costs a `stat`, not a listing),
//! and DataFusion already depends on it, so it adds nothing to the build.
//! `globset` matches whole paths and would need a separate walker and our
//! own code for the literal prefix and the leading-dot rule: the hand-written
//! glue this module replaces. One caveat of `glob` 0.3: its walk with
//! `require_literal_leading_dot` panics on a file name that is not UTF-8, so
//! the walk runs without it and the same crate's `Pattern` applies the rule
//! to each path found.

use std::path::{Component, Path, PathBuf};

use glob::{GlobError, MatchOptions, Pattern};

use crate::config::{has_glob, Format};
use crate::source::ResolvedTable;

/// The files a table reads (sorted, absolute) and their format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listing {
    pub(crate) format: Format,
    pub(crate) files: Vec<PathBuf>,
}

/// Why a table's files could not be listed: the message names the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListingError {
    pub(crate) message: String,
    pub(crate) hint: &'static str,
}

const RELATIVE_HINT: &str = "paths are relative to the config file's folder";
const FORMAT_HINT: &str = "add `format: csv|parquet|ndjson` to the table";
const GLOB_HINT: &str = "`*`, `?` and `[…]` match within one name; `**` must be a whole path component (`data/**/*.csv`)";
const PERMISSION_HINT: &str = "check that audex may read the file or folder";

/// How the walk matches: `*` never crosses a `/`, case matters. The
/// leading-dot rule is applied afterwards with [`SHELL`] (see the module
/// documentation).
const WALK: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// The shell's rule: a wildcard never matches a name's leading `.`.
const SHELL: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// The files `table` reads. Reads metadata and folder listings only.
pub(crate) fn list(table: &ResolvedTable) -> Result<Listing, ListingError> {
    if has_glob(&table.configured) {
        return list_glob(table);
    }
    let shown = table.location.display();
    let meta = std::fs::metadata(&table.location).map_err(|e| ListingError {
        message: if e.kind() == std::io::ErrorKind::NotFound {
            format!("file not found: {shown}")
        } else {
            format!("cannot read {shown}: {e}")
        },
        hint: RELATIVE_HINT,
    })?;
    if meta.is_dir() {
        return list_folder(table);
    }
    let format = table
        .format
        .or_else(|| Format::from_extension(&table.location.to_string_lossy()))
        .ok_or_else(|| unknown_format(table))?;
    Ok(Listing {
        format,
        files: vec![table.location.clone()],
    })
}

fn unknown_format(table: &ResolvedTable) -> ListingError {
    ListingError {
        message: format!(
            "cannot tell the format of {} from its extension",
            table.location.display()
        ),
        hint: FORMAT_HINT,
    }
}

fn not_utf8(path: &Path) -> ListingError {
    ListingError {
        message: format!(
            "the path {} is not valid UTF-8, which globs and folders need",
            path.display()
        ),
        hint: "rename the folder, or name the file itself",
    }
}

fn walk_error(e: &GlobError) -> ListingError {
    ListingError {
        message: format!("cannot list {}: {}", e.path().display(), e.error()),
        hint: PERMISSION_HINT,
    }
}

/// Whether `path`, below `base`, has a component that `skip` says is not
/// data (a hidden name; for folders, `_` names too).
fn below_skipped(base: &Path, path: &Path, skip: impl Fn(&str) -> bool) -> bool {
    path.strip_prefix(base).is_ok_and(|rest| {
        rest.components().any(|c| match c {
            Component::Normal(name) => skip(&name.to_string_lossy()),
            _ => false,
        })
    })
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn is_not_data(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// A glob's files, as a shell with `globstar` would name them.
fn list_glob(table: &ResolvedTable) -> Result<Listing, ListingError> {
    let shown = table.location.display();
    let format = table
        .format
        .or_else(|| Format::from_extension(&table.configured))
        .ok_or_else(|| unknown_format(table))?;
    let invalid = |e: glob::PatternError| ListingError {
        message: format!("invalid glob {shown}: {}", e.msg),
        hint: GLOB_HINT,
    };
    // Reject a bad pattern as the user wrote it, before the config folder
    // is prefixed.
    Pattern::new(&table.configured).map_err(invalid)?;
    let (base, pattern) = glob_pattern(table)?;
    // The walk yields folders without their trailing `/`.
    let matcher = Pattern::new(pattern.trim_end_matches('/')).map_err(invalid)?;
    let mut files = Vec::new();
    let mut folders = 0usize;
    for found in glob::glob_with(&pattern, WALK).map_err(invalid)? {
        let path = match found {
            Ok(path) => path,
            // A folder the shell would not look into either.
            Err(e) if below_skipped(&base, e.path(), is_hidden) => continue,
            Err(e) => return Err(walk_error(&e)),
        };
        if !matcher.matches_path_with(&path, SHELL) {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push(path),
            Ok(meta) if meta.is_dir() => folders += 1,
            Ok(_) => {}
            Err(e) => {
                return Err(ListingError {
                    message: format!("cannot read {}: {e}", path.display()),
                    hint: PERMISSION_HINT,
                })
            }
        }
    }
    if files.is_empty() {
        return Err(ListingError {
            message: if folders > 0 {
                format!("no files match {shown} (it matches {folders} folder(s), and a glob reads only the files it names)")
            } else {
                format!("no files match {shown}")
            },
            hint: if folders > 0 {
                "end the pattern with the files' names, e.g. `data/*/*.csv`, or name the folder to read everything under it"
            } else {
                RELATIVE_HINT
            },
        });
    }
    files.sort();
    Ok(Listing { format, files })
}

/// The folder a glob is relative to, and the whole pattern: that folder with
/// its own wildcard characters escaped (a config folder named `exports[1]`
/// is not a pattern), then the glob as written, without `.` components.
fn glob_pattern(table: &ResolvedTable) -> Result<(PathBuf, String), ListingError> {
    let configured = Path::new(&table.configured);
    let mut parts: Vec<String> = Vec::new();
    let mut rooted = false;
    for c in configured.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => rooted = true,
            Component::CurDir => {}
            Component::ParentDir => parts.push("..".to_string()),
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
        }
    }
    let (base, mut pattern) = if rooted {
        // An absolute glob: the part before its first component is written
        // by the user, wildcards and all.
        let root: PathBuf = configured
            .components()
            .take_while(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
            .collect();
        let root_text = root.to_string_lossy().trim_end_matches('/').to_string();
        (root, root_text)
    } else {
        let base = table.base_dir.clone();
        let text = base.to_str().ok_or_else(|| not_utf8(&base))?;
        let escaped = Pattern::escape(text.trim_end_matches('/'));
        (base, escaped)
    };
    for part in &parts {
        pattern.push('/');
        pattern.push_str(part);
    }
    // `data/*/` names folders only, as in a shell.
    if table.configured.ends_with('/') && !parts.is_empty() {
        pattern.push('/');
    }
    Ok((base, pattern))
}

fn no_format(folder: &str) -> ListingError {
    ListingError {
        message: format!(
            "no .csv, .parquet or .json files in the folder or its subfolders: {folder}"
        ),
        hint: FORMAT_HINT,
    }
}

/// A folder's data files, recursively.
fn list_folder(table: &ResolvedTable) -> Result<Listing, ListingError> {
    let dir = &table.location;
    let shown = dir.display();
    let text = dir.to_str().ok_or_else(|| not_utf8(dir))?;
    let pattern = format!("{}/**/*", Pattern::escape(text.trim_end_matches('/')));
    let walk = glob::glob_with(&pattern, WALK).map_err(|e| ListingError {
        message: format!("cannot list the folder {shown}: {}", e.msg),
        hint: RELATIVE_HINT,
    })?;
    let mut all = Vec::new();
    for found in walk {
        let path = match found {
            Ok(path) => path,
            Err(e) if below_skipped(dir, e.path(), is_not_data) => continue,
            Err(e) => return Err(walk_error(&e)),
        };
        if below_skipped(dir, &path, is_not_data) {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => all.push(path),
            Ok(_) => {}
            Err(e) => {
                return Err(ListingError {
                    message: format!("cannot read {}: {e}", path.display()),
                    hint: PERMISSION_HINT,
                })
            }
        }
    }
    let format_of = |path: &PathBuf| {
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(Format::from_extension)
    };
    let format = match table.format {
        Some(format) => format,
        None => {
            let mut found: Vec<Format> = Vec::new();
            for f in all.iter().filter_map(format_of) {
                if !found.contains(&f) {
                    found.push(f);
                }
            }
            found.sort_by_key(|f| f.name());
            let names: Vec<&str> = found.iter().map(|f| f.name()).collect();
            match found.as_slice() {
                [one] => *one,
                [] => return Err(no_format(&shown.to_string())),
                _ => {
                    return Err(ListingError {
                        message: format!(
                            "the folder holds files of several formats ({}): {shown}",
                            names.join(", ")
                        ),
                        hint: FORMAT_HINT,
                    })
                }
            }
        }
    };
    let typed: Vec<PathBuf> = all
        .iter()
        .filter(|p| format_of(p) == Some(format))
        .cloned()
        .collect();
    // With `format:`, partitions without that format's extension (Hadoop's
    // `part-00000`) are read whole.
    let mut files = if typed.is_empty() && table.format.is_some() {
        all
    } else {
        typed
    };
    if files.is_empty() {
        return Err(ListingError {
            message: format!("no data files in the folder or its subfolders: {shown}"),
            hint: "names starting with `.` or `_` are skipped",
        });
    }
    files.sort();
    Ok(Listing { format, files })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(base: &Path, configured: &str, format: Option<Format>) -> ResolvedTable {
        let location = std::path::absolute(base.join(configured)).unwrap();
        ResolvedTable {
            name: "t".into(),
            configured: configured.into(),
            location,
            base_dir: base.to_path_buf(),
            format,
            delimiter: None,
            text_columns: Vec::new(),
            max_value_bytes: 1 << 20,
        }
    }

    fn write(base: &Path, rel: &str) {
        let path = base.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "id\n1\n").unwrap();
    }

    /// The files `configured` names, relative to `base`, or the error.
    fn names(base: &Path, configured: &str, format: Option<Format>) -> Result<Vec<String>, String> {
        list(&table(base, configured, format))
            .map(|l| {
                l.files
                    .iter()
                    .map(|f| f.strip_prefix(base).unwrap().display().to_string())
                    .collect()
            })
            .map_err(|e| e.message)
    }

    fn layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "data/top.csv",
            "data/a/p1.csv",
            "data/b/c/p2.csv",
            "data/b/notes.txt",
            "data/.hidden.csv",
            "data/.cache/x.csv",
            "data/_SUCCESS",
            "data/_temporary/0/p9.csv",
            "data/a/_p0.csv",
        ] {
            write(d, f);
        }
        dir
    }

    #[test]
    fn globs_name_what_a_shell_names() {
        let dir = layout();
        let d = dir.path();
        assert_eq!(
            names(d, "data/**/*.csv", None).unwrap(),
            [
                "data/_temporary/0/p9.csv",
                "data/a/_p0.csv",
                "data/a/p1.csv",
                "data/b/c/p2.csv",
                "data/top.csv"
            ],
            "** is zero or more folders, never hidden ones"
        );
        assert_eq!(
            names(d, "data/*/*.csv", None).unwrap(),
            ["data/a/_p0.csv", "data/a/p1.csv"]
        );
        assert_eq!(
            names(d, "data/[ab]/p?.csv", None).unwrap(),
            ["data/a/p1.csv"]
        );
        assert_eq!(
            names(d, "data/[!a]/*/*.csv", None).unwrap(),
            ["data/b/c/p2.csv"]
        );
        assert_eq!(
            names(d, "./data/*.csv", None).unwrap(),
            ["data/top.csv"],
            "`*` skips .hidden.csv"
        );
        assert_eq!(
            names(d, "data/.*.csv", None).unwrap(),
            ["data/.hidden.csv"],
            "a literal dot names hidden files"
        );
        assert_eq!(
            names(d, "data/b/../a/p*.csv", None).unwrap(),
            ["data/b/../a/p1.csv"]
        );
        // Format from the pattern, or `format:` for anything else.
        assert_eq!(
            names(d, "data/b/*.txt", Some(Format::Csv)).unwrap(),
            ["data/b/notes.txt"]
        );
        let e = names(d, "data/*", None).unwrap_err();
        assert!(e.contains("cannot tell the format"), "{e}");
    }

    #[test]
    fn glob_errors_say_what_and_where() {
        let dir = layout();
        let d = dir.path();
        let e = names(d, "data/*.parquet", None).unwrap_err();
        assert!(e.starts_with("no files match "), "{e}");
        assert!(e.ends_with("data/*.parquet"), "{e}");
        let e = names(d, "nowhere/*.csv", None).unwrap_err();
        assert!(e.starts_with("no files match "), "{e}");
        let e = names(d, "data/*/", Some(Format::Csv)).unwrap_err();
        assert!(e.contains("3 folder(s)"), "{e}");
        let e = names(d, "data/***.csv", None).unwrap_err();
        assert!(e.starts_with("invalid glob "), "{e}");
        let e = names(d, "data/a**/*.csv", None).unwrap_err();
        assert!(e.starts_with("invalid glob "), "{e}");
        let e = names(d, "data/[ab.csv", None).unwrap_err();
        assert!(e.starts_with("invalid glob "), "{e}");
    }

    #[test]
    fn a_config_folder_with_wildcard_characters_is_literal() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("exports[1]");
        write(&base, "data/a.csv");
        // A sibling the unescaped `exports[1]` would match.
        write(&dir.path().join("exports1"), "data/b.csv");
        assert_eq!(names(&base, "data/*.csv", None).unwrap(), ["data/a.csv"]);
        assert_eq!(names(&base, "data", None).unwrap(), ["data/a.csv"]);
        // An absolute glob is the user's own pattern.
        let absolute = format!("{}/exports*/data/*.csv", dir.path().display());
        assert_eq!(list(&table(&base, &absolute, None)).unwrap().files.len(), 2);
    }

    #[test]
    fn folders_are_read_recursively_without_markers() {
        let dir = layout();
        let d = dir.path();
        let expected = ["data/a/p1.csv", "data/b/c/p2.csv", "data/top.csv"];
        assert_eq!(names(d, "data", None).unwrap(), expected);
        assert_eq!(names(d, "data/", None).unwrap(), expected);
        assert_eq!(list(&table(d, "data", None)).unwrap().format, Format::Csv);

        // Several formats need `format:`; with it, the others are skipped.
        write(d, "data/b/c/p3.parquet");
        let e = names(d, "data", None).unwrap_err();
        assert!(e.contains("several formats (csv, parquet)"), "{e}");
        assert_eq!(
            names(d, "data", Some(Format::Parquet)).unwrap(),
            ["data/b/c/p3.parquet"]
        );

        // Partitions without an extension are read whole given `format:`.
        write(d, "hadoop/part-00000");
        write(d, "hadoop/sub/part-00001");
        write(d, "hadoop/_SUCCESS");
        assert_eq!(
            names(d, "hadoop", Some(Format::Csv)).unwrap(),
            ["hadoop/part-00000", "hadoop/sub/part-00001"]
        );
        let e = names(d, "hadoop", None).unwrap_err();
        assert!(e.contains("no .csv, .parquet or .json files"), "{e}");

        std::fs::create_dir_all(d.join("empty/_logs")).unwrap();
        let e = names(d, "empty", Some(Format::Csv)).unwrap_err();
        assert!(e.contains("no data files"), "{e}");
    }

    #[test]
    fn a_file_is_itself() {
        let dir = layout();
        let d = dir.path();
        assert_eq!(
            names(d, "data/b/notes.txt", Some(Format::Csv)).unwrap(),
            ["data/b/notes.txt"]
        );
        let e = names(d, "data/b/notes.txt", None).unwrap_err();
        assert!(e.contains("cannot tell the format"), "{e}");
        let e = names(d, "data/gone.csv", None).unwrap_err();
        assert!(e.starts_with("file not found: "), "{e}");
        assert!(e.ends_with("data/gone.csv"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_do_not_panic() {
        use std::os::unix::ffi::OsStrExt;
        let dir = layout();
        let d = dir.path();
        let odd = std::ffi::OsStr::from_bytes(b"\xff.csv");
        std::fs::write(d.join("data").join(odd), "id\n1\n").unwrap();
        std::fs::create_dir_all(d.join("data").join(std::ffi::OsStr::from_bytes(b".\xff")))
            .unwrap();
        assert!(names(d, "data/**/*.csv", None).unwrap().len() >= 5);
        assert!(list(&table(d, "data", None)).is_ok());
    }
}
