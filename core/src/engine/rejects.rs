//! The rejects file: one CSV line per rejected row, for the user to fix
//! their data. It is the user's own data and may hold email addresses, so it
//! is created readable by its owner only, and only when there is a reject.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Columns of the rejects file. `row` is the 1-based position of the row in
/// its segment (the first row the source returns is row 1); it is empty for
/// list members that are not segment rows (a leaver the destination refused
/// to remove) and for rows the source could not read. Those name where they
/// are instead: `table`, `file` (empty for a database) and `line` (the line
/// a text file's row starts on, or the row's 1-based position in a Parquet
/// file or a query's result); `segment` is then the segment whose read
/// found them.
pub const REJECTS_HEADER: [&str; 9] = [
    "segment", "row", "key", "column", "code", "message", "table", "file", "line",
];

/// Reject code for a row whose lookup key an earlier row already has.
pub const DUPLICATE_KEY: &str = "duplicate_key";

/// One line of the rejects file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RejectLine<'a> {
    pub segment: &'a str,
    /// 0-based row in the segment.
    pub row: Option<u64>,
    pub key: Option<&'a str>,
    pub column: Option<&'a str>,
    pub code: &'a str,
    pub message: &'a str,
    /// Where an unreadable row is: table, file, 1-based line.
    pub place: Option<(&'a str, Option<&'a str>, Option<u64>)>,
}

#[derive(Debug)]
pub(crate) struct RejectsFile {
    path: PathBuf,
    writer: Option<csv::Writer<BufWriter<File>>>,
}

impl RejectsFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        RejectsFile { path, writer: None }
    }

    pub(crate) fn write(&mut self, line: RejectLine<'_>) -> Result<()> {
        let path = &self.path;
        let err = |e: csv::Error| {
            Error::internal(format!("cannot write the rejects file {}", path.display()))
                .with_source(e)
        };
        if self.writer.is_none() {
            let mut w = csv::Writer::from_writer(BufWriter::new(create_private(path)?));
            w.write_record(REJECTS_HEADER).map_err(err)?;
            self.writer = Some(w);
        }
        let row = line.row.map(|r| (r + 1).to_string()).unwrap_or_default();
        let (table, file, at) = match line.place {
            Some((t, f, l)) => (t, f.unwrap_or(""), l.map(|l| l.to_string())),
            None => ("", "", None),
        };
        if let Some(w) = self.writer.as_mut() {
            w.write_record([
                line.segment,
                &row,
                line.key.unwrap_or(""),
                line.column.unwrap_or(""),
                line.code,
                line.message,
                table,
                file,
                at.as_deref().unwrap_or(""),
            ])
            .map_err(err)?;
        }
        Ok(())
    }

    /// Flush what was written; the path, if anything was.
    pub(crate) fn finish(&mut self) -> Result<Option<PathBuf>> {
        match self.writer.as_mut() {
            Some(w) => {
                w.flush().map_err(|e| {
                    Error::internal(format!(
                        "cannot write the rejects file {}",
                        self.path.display()
                    ))
                    .with_source(e)
                })?;
                Ok(Some(self.path.clone()))
            }
            None => Ok(None),
        }
    }
}

fn create_private(path: &Path) -> Result<File> {
    let err = |e: std::io::Error| {
        Error::internal(format!("cannot create the rejects file {}", path.display())).with_source(e)
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(err)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_there_is_a_reject() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rejects/run-1.csv");
        let mut f = RejectsFile::new(path.clone());
        assert_eq!(f.finish().expect("finish"), None);
        assert!(!path.exists());
        f.write(RejectLine {
            segment: "vip",
            row: Some(0),
            key: Some("a,b@x.com"),
            column: Some("email"),
            code: "invalid_email",
            message: "not an email address",
            place: None,
        })
        .expect("write");
        f.write(RejectLine {
            segment: "vip",
            row: None,
            key: None,
            column: Some("name"),
            code: "invalid_utf8",
            message: "column `name` is not UTF-8",
            place: Some(("profiles", Some("data/p.csv"), Some(17))),
        })
        .expect("write");
        assert_eq!(f.finish().expect("finish"), Some(path.clone()));
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "segment,row,key,column,code,message,table,file,line\n\
             vip,1,\"a,b@x.com\",email,invalid_email,not an email address,,,\n\
             vip,,,name,invalid_utf8,column `name` is not UTF-8,profiles,data/p.csv,17\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
