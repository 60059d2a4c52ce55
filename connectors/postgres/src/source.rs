//! The PostgreSQL source. A segment's `table:` or `query:` runs in the
//! database inside a read-only transaction; rows come back through a
//! server-side cursor one page (`fetch_rows`) at a time, so a million-row
//! segment never sits whole in memory, and any filter in the query is
//! applied by PostgreSQL, not by audex.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use audex_core::{
    Error, ErrorClass, Result, Secret, SegmentQuery, SegmentSource, SegmentStream, SourceItem,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket, Statement};

use crate::arrow::{plan, to_batch, PageSource, Plan};
use crate::config::{describe_target, parse_url, PostgresConfig};
use crate::tls::TlsOptions;

const CURSOR: &str = "audex_segment";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Segments from a PostgreSQL database.
#[derive(Debug)]
pub struct PostgresSource {
    url: Secret,
    schema: Option<String>,
    fetch_rows: usize,
    max_value_bytes: usize,
    refresh_marker: Option<String>,
    /// The config file's folder: a relative `sslrootcert` resolves here.
    base_dir: PathBuf,
}

impl PostgresSource {
    /// `base_dir` is the config file's folder.
    pub fn new(config: &PostgresConfig, base_dir: &Path) -> Self {
        PostgresSource {
            url: config.url.clone(),
            schema: config.schema.clone(),
            fetch_rows: config.fetch_rows.max(1),
            max_value_bytes: usize::try_from(config.max_value_bytes).unwrap_or(usize::MAX),
            refresh_marker: config.refresh_marker.clone(),
            base_dir: base_dir.to_path_buf(),
        }
    }

    async fn connect(&self) -> Result<Client> {
        self.connect_described().await.map(|(client, ..)| client)
    }

    /// Connect, and say to what: the target (host, port, database, never
    /// the password) and the TLS options in force.
    async fn connect_described(&self) -> Result<(Client, String, TlsOptions)> {
        let (mut config, tls) =
            parse_url(&self.url).map_err(|m| Error::new(ErrorClass::Config, m))?;
        let tls = tls.resolve(&self.base_dir);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("audex");
        let target = describe_target(&config);
        let connector = crate::tls::connector(&tls)
            .map_err(|m| Error::new(ErrorClass::Config, format!("PostgreSQL at {target}: {m}")))?;
        let client = match connector {
            None => open(&config, NoTls).await,
            Some(make) => open(&config, make).await,
        }
        .map_err(|e| connect_error(&target, &tls, &e))?;
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))
                .await
                .map_err(|e| db_error("setting the schema", &e))?;
        }
        Ok((client, target, tls))
    }
}

/// Connect with `tls` and drive the connection on its own task.
async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> std::result::Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + Send,
    T::TlsConnect: Send,
    T::Stream: Send + 'static,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Double-quote an identifier, doubling quotes inside it.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL a segment runs: a query as written (trailing semicolons dropped,
/// so it can be wrapped), or every row of a table (`schema.table` allowed).
fn segment_sql(query: &SegmentQuery) -> String {
    match query {
        SegmentQuery::Table(t) => {
            let name = t.split('.').map(quote_ident).collect::<Vec<_>>().join(".");
            format!("SELECT * FROM {name}")
        }
        SegmentQuery::Sql(q) => q.trim().trim_end_matches(';').trim_end().to_string(),
    }
}

/// What went wrong in a TLS handshake, when something did: the rustls
/// error (a certificate refused, say), or the server declining TLS.
enum TlsProblem {
    Rustls(rustls::Error),
    ServerHasNoTls,
}

fn tls_problem(e: &tokio_postgres::Error) -> Option<TlsProblem> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(TlsProblem::Rustls(r.clone()));
        }
        if let Some(r) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(TlsProblem::Rustls(r.clone()));
        }
        if s.to_string() == "server does not support TLS" {
            return Some(TlsProblem::ServerHasNoTls);
        }
        source = s.source();
    }
    None
}

fn connect_error(target: &str, tls: &TlsOptions, e: &tokio_postgres::Error) -> Error {
    let mode = tls.mode.as_str();
    match tls_problem(e) {
        Some(TlsProblem::ServerHasNoTls) => {
            return Error::new(
                ErrorClass::Config,
                format!("PostgreSQL at {target} does not offer TLS, and sslmode={mode} requires it"),
            )
            .with_hint("turn `ssl` on in the server, or use sslmode=prefer to connect without TLS when the server has none");
        }
        Some(TlsProblem::Rustls(rustls::Error::InvalidCertificate(cert))) => {
            use rustls::CertificateError as C;
            let hint = match cert {
                C::UnknownIssuer | C::BadSignature => {
                    "the certificate is not signed by a CA audex trusts: give the server's CA certificate (PEM) as sslrootcert=PATH in the URL, relative to the config file"
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "the certificate is not issued for the host in the URL: connect by a name the certificate carries, or use sslmode=verify-ca to check only who signed it"
                }
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                    "the certificate is outside its validity period: renew it on the server (or check this machine's clock)"
                }
                _ => "check the server's certificate, or the CA given as sslrootcert",
            };
            return Error::new(
                ErrorClass::Config,
                format!(
                    "PostgreSQL at {target}: the server's TLS certificate was refused (sslmode={mode}): {}",
                    rustls::Error::InvalidCertificate(cert)
                ),
            )
            .with_hint(hint);
        }
        Some(TlsProblem::Rustls(other)) => {
            return Error::new(
                ErrorClass::Transient,
                format!(
                    "PostgreSQL at {target}: the TLS handshake failed (sslmode={mode}): {other}"
                ),
            );
        }
        None => {}
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let class = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            ErrorClass::Auth
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            ErrorClass::Config
        } else {
            ErrorClass::Transient
        };
        return Error::new(
            class,
            format!(
                "PostgreSQL at {target} refused the connection: {}",
                db.message()
            ),
        );
    }
    // The driver's own message ("error connecting to server: Connection
    // refused") names no credentials; the target is ours.
    Error::new(
        ErrorClass::Transient,
        format!("cannot reach PostgreSQL at {target}: {e}"),
    )
    .with_hint("check that the server runs and accepts TCP connections on that host and port")
}

fn db_error(context: &str, e: &tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            let class = if *code == SqlState::SYNTAX_ERROR
                || *code == SqlState::UNDEFINED_TABLE
                || *code == SqlState::UNDEFINED_COLUMN
                || *code == SqlState::UNDEFINED_FUNCTION
                || *code == SqlState::INVALID_SCHEMA_NAME
                || *code == SqlState::DATATYPE_MISMATCH
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            {
                ErrorClass::Config
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                ErrorClass::Auth
            } else if code.code().starts_with("08") || code.code().starts_with("57") {
                ErrorClass::Transient
            } else {
                ErrorClass::Internal
            };
            let err = Error::new(class, format!("{context}: {}", db.message()));
            match db.hint() {
                Some(h) => err.with_hint(h.to_string()),
                None if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
                    err.with_hint("a segment query may only read")
                }
                None => err,
            }
        }
        None if e.is_closed() => Error::transient(format!("{context}: the connection closed")),
        None => Error::transient(format!("{context}: {e}")),
    }
}

fn label(query: &SegmentQuery) -> String {
    match query {
        SegmentQuery::Table(t) => format!("table `{t}`"),
        SegmentQuery::Sql(_) => "segment query".to_string(),
    }
}

async fn prepare(client: &Client, query: &SegmentQuery) -> Result<(Statement, Plan)> {
    let sql = segment_sql(query);
    let stmt = client
        .prepare(&sql)
        .await
        .map_err(|e| db_error(&label(query), &e))?;
    let plan = plan(stmt.columns())?;
    Ok((stmt, plan))
}

struct Cursor {
    client: Client,
    fetch: Statement,
    plan: Plan,
    /// The table a segment reads, or `query`, for rows set aside.
    table: String,
    /// Rows fetched so far.
    read: u64,
    max_value_bytes: usize,
    /// Items of the last page not yielded yet.
    queue: std::collections::VecDeque<SourceItem>,
    done: bool,
}

#[async_trait]
impl SegmentSource for PostgresSource {
    async fn check(&self) -> Result<String> {
        let (client, target, tls) = self.connect_described().await?;
        let what = "checking the connection";
        // What the server itself says about this session.
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                 coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(|e| db_error(what, &e))?;
        let version: String = row.try_get(0).map_err(|e| db_error(what, &e))?;
        let encrypted: bool = row.try_get(1).map_err(|e| db_error(what, &e))?;
        if let Some(schema) = &self.schema {
            // `SET search_path` accepts a schema that does not exist.
            let found = client
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema])
                .await
                .map_err(|e| db_error(what, &e))?;
            if found.is_none() {
                return Err(Error::new(
                    ErrorClass::Config,
                    format!("PostgreSQL at {target}: schema {schema:?} does not exist"),
                )
                .with_hint("`schema` names the schema a segment's `table:` is looked up in"));
            }
        }
        Ok(format!(
            "PostgreSQL {version} at {target}; {}",
            tls.describe(encrypted)
        ))
    }

    async fn fingerprint(&self) -> Result<Option<String>> {
        let Some(marker) = self.refresh_marker.as_deref() else {
            return Ok(None);
        };
        let client = self.connect().await?;
        let what = "refresh_marker";
        client
            .batch_execute("BEGIN READ ONLY")
            .await
            .map_err(|e| db_error(what, &e))?;
        let messages = client
            .simple_query(marker)
            .await
            .map_err(|e| db_error(what, &e))?;
        let _ = client.batch_execute("ROLLBACK").await;
        // The first row's values as the server prints them; no row is a
        // value too (an empty table).
        let mut parts = vec![marker.to_string()];
        if let Some(row) = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        }) {
            for i in 0..row.len() {
                parts.push(row.get(i).unwrap_or("\\N").to_string());
            }
        } else {
            parts.push("no row".to_string());
        }
        Ok(Some(audex_core::fingerprint_digest(parts)))
    }

    async fn schema(&self, query: &SegmentQuery) -> Result<SchemaRef> {
        let client = self.connect().await?;
        let (_, plan) = prepare(&client, query).await?;
        Ok(plan.schema)
    }

    async fn stream(&self, query: &SegmentQuery) -> Result<SegmentStream> {
        let client = self.connect().await?;
        let (_, plan) = prepare(&client, query).await?;
        let what = label(query);
        client
            .batch_execute("BEGIN READ ONLY")
            .await
            .map_err(|e| db_error(&what, &e))?;
        client
            .batch_execute(&format!(
                "DECLARE {CURSOR} NO SCROLL CURSOR FOR {}",
                segment_sql(query)
            ))
            .await
            .map_err(|e| db_error(&what, &e))?;
        let fetch = client
            .prepare(&format!("FETCH FORWARD {} FROM {CURSOR}", self.fetch_rows))
            .await
            .map_err(|e| db_error(&what, &e))?;
        let cursor = Cursor {
            client,
            fetch,
            plan,
            table: match query {
                SegmentQuery::Table(t) => t.clone(),
                SegmentQuery::Sql(_) => "query".to_string(),
            },
            read: 0,
            max_value_bytes: self.max_value_bytes,
            queue: std::collections::VecDeque::new(),
            done: false,
        };
        let stream = futures::stream::unfold(cursor, move |mut c| {
            let what = what.clone();
            async move {
                if let Some(item) = c.queue.pop_front() {
                    return Some((Ok(item), c));
                }
                if c.done {
                    return None;
                }
                match c.client.query(&c.fetch, &[]).await {
                    Ok(rows) if rows.is_empty() => {
                        // Ending the transaction closes the cursor.
                        let _ = c.client.batch_execute("COMMIT").await;
                        None
                    }
                    Ok(rows) => {
                        let from = PageSource {
                            table: &c.table,
                            first_row: c.read,
                            max_value_bytes: c.max_value_bytes,
                        };
                        c.read += rows.len() as u64;
                        match to_batch(&c.plan, &rows, &from) {
                            Ok((batch, set_aside)) => {
                                c.queue
                                    .extend(set_aside.into_iter().map(SourceItem::Unreadable));
                                Some((Ok(SourceItem::Rows(batch)), c))
                            }
                            Err(e) => {
                                c.done = true;
                                Some((Err(e), c))
                            }
                        }
                    }
                    Err(e) => {
                        c.done = true;
                        Some((Err(db_error(&what, &e)), c))
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn count(&self, query: &SegmentQuery) -> Result<u64> {
        let client = self.connect().await?;
        // Planning first gives the same error as `stream` for a bad query
        // or a column type audex cannot read.
        prepare(&client, query).await?;
        let sql = format!(
            "SELECT count(*) FROM ({}) AS audex_segment",
            segment_sql(query)
        );
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| db_error(&label(query), &e))?;
        let n: i64 = row
            .try_get(0)
            .map_err(|e| Error::internal(format!("reading the count: {e}")))?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted() {
        assert_eq!(
            segment_sql(&SegmentQuery::Table("crm.Profiles".into())),
            "SELECT * FROM \"crm\".\"Profiles\""
        );
        assert_eq!(
            segment_sql(&SegmentQuery::Table("a\"b".into())),
            "SELECT * FROM \"a\"\"b\""
        );
    }

    #[test]
    fn trailing_semicolons_are_dropped() {
        assert_eq!(
            segment_sql(&SegmentQuery::Sql("SELECT 1;  \n".into())),
            "SELECT 1"
        );
    }
}
