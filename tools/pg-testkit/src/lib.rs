//! audex-pg-testkit: a PostgreSQL server for tests and benchmarks.
//!
//! A test tool, never linked into a production crate: the crates whose
//! tests need a server take it as a dev-dependency, and only non-production
//! tools (the stream benchmark) as a normal one. It does not depend on
//! audex-postgres, which dev-depends on it.
//!
//! [`test_database_url`] returns `AUDEX_TEST_DATABASE_URL` when it is set;
//! otherwise it starts one throwaway server per process from the machine's
//! `initdb`/`pg_ctl` (found in PATH or /usr/lib/postgresql/*/bin) in a
//! temporary folder on a free loopback port. As root it runs them as the
//! `postgres` user, since initdb refuses to run as root.
//!
//! [`tls_server`] starts a second throwaway server, always local, with TLS
//! on and a certificate for `localhost` signed by a CA made for it (with the
//! machine's `openssl`), for the TLS tests.
//!
//! The server is stopped when the process ends, also after a panic: a small
//! watcher shell holds the read end of a pipe whose write end only this
//! process has; when the process exits the pipe closes, and the watcher
//! stops the server and removes the folder. (Statics are never dropped, so a
//! `Drop` impl could not do this.)

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Environment variable naming an existing database to test against.
pub const TEST_DATABASE_URL_VAR: &str = "AUDEX_TEST_DATABASE_URL";

#[derive(Debug)]
struct Server {
    url: String,
    port: u16,
    /// The server's temporary folder, removed when the process ends.
    dir: PathBuf,
    // Kept open for the life of the process; see the module docs.
    _watcher: Mutex<Child>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static PLAIN_SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static TLS_SERVER: OnceLock<Result<TlsServer, String>> = OnceLock::new();

/// A throwaway server with TLS on (see [`tls_server`]).
#[derive(Debug)]
pub struct TlsServer {
    /// `postgres://audex@localhost:PORT/postgres?hostaddr=127.0.0.1`: the
    /// name `localhost` (which the certificate carries), the IPv4 address.
    pub url: String,
    /// The same server by address, which the certificate does not carry.
    pub url_by_address: String,
    /// The CA that signed the server's certificate (PEM).
    pub ca_pem: PathBuf,
    /// A CA that signed nothing of this server's (PEM).
    pub other_ca_pem: PathBuf,
    _server: Server,
}

/// A URL of a database the caller may create tables in. Panics with a
/// message saying how to install PostgreSQL when no server can be had.
pub fn test_database_url() -> String {
    if let Ok(url) = std::env::var(TEST_DATABASE_URL_VAR) {
        if !url.trim().is_empty() {
            return url;
        }
    }
    match SERVER.get_or_init(|| start(None)) {
        Ok(s) => s.url.clone(),
        Err(e) => panic!("no PostgreSQL server for the tests: {e}"),
    }
}

/// The URL of a throwaway server of this process with TLS off, even when
/// `AUDEX_TEST_DATABASE_URL` is set (whose server may have it on).
pub fn plain_server_url() -> String {
    let external = std::env::var(TEST_DATABASE_URL_VAR).is_ok_and(|u| !u.trim().is_empty());
    if !external {
        // The shared server is this process's own, started with TLS off.
        return test_database_url();
    }
    match PLAIN_SERVER.get_or_init(|| start(None)) {
        Ok(s) => s.url.clone(),
        Err(e) => panic!("no PostgreSQL server for the tests: {e}"),
    }
}

/// A throwaway server of this process with TLS on. Panics with what is
/// missing (PostgreSQL, or `openssl` to make the certificates).
pub fn tls_server() -> &'static TlsServer {
    match TLS_SERVER.get_or_init(start_tls) {
        Ok(s) => s,
        Err(e) => panic!("no TLS PostgreSQL server for the tests: {e}"),
    }
}

fn start_tls() -> Result<TlsServer, String> {
    // Made here, copied into the server's folder (removed with it).
    let certs = tempfile::Builder::new()
        .prefix("audex-pg-certs-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    make_certificates(certs.path())?;
    let server = start(Some(certs.path()))?;
    let port = server.port;
    Ok(TlsServer {
        url: format!("postgres://audex@localhost:{port}/postgres?hostaddr=127.0.0.1"),
        url_by_address: format!("postgres://audex@127.0.0.1:{port}/postgres"),
        ca_pem: server.dir.join("ca.pem"),
        other_ca_pem: server.dir.join("other-ca.pem"),
        _server: server,
    })
}

/// A CA, a server certificate for `localhost` (and not for 127.0.0.1)
/// signed by it, and an unrelated CA, with the machine's `openssl`.
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str], what: &str| {
        let mut c = Command::new("openssl");
        c.current_dir(dir).args(args);
        run(c, what).map_err(|e| {
            format!("{e} (the TLS tests make their certificates with the `openssl` command; install it, e.g. `apt-get install openssl`)")
        })
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for (name, subject) in [
        ("ca", "/CN=audex test CA"),
        ("other-ca", "/CN=audex other CA"),
    ] {
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        let mut args = vec!["req", "-x509", "-new", "-nodes"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "3",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args, "openssl req (CA)")?;
    }
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&args, "openssl req (server)")?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "3",
            "-extfile",
            "server.ext",
        ],
        "openssl x509 (sign)",
    )?;
    Ok(())
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    // Highest version last; version folders are numbers.
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A command, run as `postgres` when we are root.
fn pg_command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Start a server; with `tls`, a folder holding `server.pem` and
/// `server.key`, which it serves TLS with.
fn start(tls: Option<&Path>) -> Result<Server, String> {
    let bin = find_bin_dir().ok_or_else(|| {
        "PostgreSQL server binaries (initdb, pg_ctl) were not found in PATH or \
         /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`), or set AUDEX_TEST_DATABASE_URL to a \
         database the tests may write to."
            .to_string()
    })?;
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("audex-pg-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?
        .keep();
    if as_postgres {
        let mut chown = Command::new("chown");
        chown.arg("-R").arg("postgres:postgres").arg(&dir);
        run(chown, "chown of the temporary folder to postgres")?;
    }
    let data = dir.join("data");
    let mut initdb = pg_command(as_postgres, &bin.join("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-U",
        "audex",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--no-locale",
    ]);
    run(initdb, "initdb")?;

    let port = free_port()?;
    let mut options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        dir.display()
    );
    if let Some(certs) = tls {
        // The server reads its key as its own user, and only from a file
        // no one else may read.
        for file in ["server.key", "server.pem", "ca.pem", "other-ca.pem"] {
            std::fs::copy(certs.join(file), dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        }
        let key = dir.join("server.key");
        let cert = dir.join("server.pem");
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(&key);
        run(chmod, "chmod of the server key")?;
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(&key).arg(&cert);
            run(chown, "chown of the server key")?;
        }
        options.push_str(&format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        ));
    }
    let mut pg_ctl = pg_command(as_postgres, &bin.join("pg_ctl"));
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-o")
        .arg(&options)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "start"]);
    run(pg_ctl, "pg_ctl start")?;

    let watcher = spawn_watcher(as_postgres, &bin.join("pg_ctl"), &data, &dir)?;
    Ok(Server {
        url: format!("postgres://audex@127.0.0.1:{port}/postgres"),
        port,
        dir,
        _watcher: Mutex::new(watcher),
    })
}

fn spawn_watcher(
    as_postgres: bool,
    pg_ctl: &Path,
    data: &Path,
    dir: &Path,
) -> Result<Child, String> {
    let stop = if as_postgres {
        "runuser -u postgres -- \"$1\" -D \"$2\" -m immediate stop"
    } else {
        "\"$1\" -D \"$2\" -m immediate stop"
    };
    let script = format!("cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf \"$3\"");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("audex-pg-watcher")
        .arg(pg_ctl)
        .arg(data)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the server's watcher: {e}"))?;
    // Nothing is ever written; the pipe only has to stay open.
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.flush();
    }
    Ok(child)
}

/// Column definitions matching the profiles `audex-datagen` writes.
pub const PROFILES_DDL: &str = "customer_id text PRIMARY KEY, email text, first_name text, \
    last_name text, city text, state text, country text, lifetime_value numeric(12,2), \
    last_purchase_date date, is_subscriber boolean, signup_ts timestamp";

/// (Re)create `table` with `columns` and load a CSV file with a header into
/// it through `COPY FROM STDIN`, in chunks.
pub async fn load_csv(url: &str, table: &str, columns: &str, csv: &Path) -> Result<u64, String> {
    use futures::SinkExt;
    use std::io::Read;

    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({columns})"
        ))
        .await
        .map_err(|e| format!("create {table}: {e}"))?;
    let sink = client
        .copy_in::<_, std::io::Cursor<Vec<u8>>>(&format!(
            "COPY {table} FROM STDIN (FORMAT csv, HEADER true)"
        ))
        .await
        .map_err(|e| format!("copy: {e}"))?;
    futures::pin_mut!(sink);
    let mut file = std::fs::File::open(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        let n = file
            .read(&mut chunk)
            .map_err(|e| format!("{}: {e}", csv.display()))?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        sink.send(std::io::Cursor::new(chunk))
            .await
            .map_err(|e| format!("copy: {e}"))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| format!("copy: {e}"))
}
