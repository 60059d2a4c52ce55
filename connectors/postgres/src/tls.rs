//! TLS for the PostgreSQL source, with libpq's `sslmode` meanings.
//!
//! tokio-postgres parses only `disable`, `prefer` and `require` and knows no
//! `sslrootcert`, so [`split_tls_options`] takes `sslmode` and `sslrootcert`
//! out of the connection string (URL or key=value form) before the rest is
//! parsed, and [`connector`] builds a rustls connector that does what libpq
//! does for the mode:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked; checked like `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and issued for the host |
//!
//! Trusted CAs: the PEM file `sslrootcert` names (relative to the config
//! file's folder), or the system's roots when it is absent or `system`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, all five values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Option<TlsMode> {
        Some(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode tokio-postgres negotiates with: whether TLS is optional.
    pub(crate) fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// The operating system's store.
    System,
    /// A PEM file (one or more certificates).
    File(PathBuf),
}

/// The TLS options of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: TlsMode,
    /// `sslrootcert`, when given.
    pub root_cert: Option<RootCerts>,
}

/// How the server's certificate is checked, once the options are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    None,
    Chain,
    ChainAndName,
}

impl TlsOptions {
    fn check(&self) -> Check {
        match self.mode {
            TlsMode::Disable | TlsMode::Prefer => Check::None,
            // libpq: with a root certificate given, `require` checks the chain.
            TlsMode::Require if matches!(self.root_cert, Some(RootCerts::File(_))) => Check::Chain,
            TlsMode::Require => Check::None,
            TlsMode::VerifyCa => Check::Chain,
            TlsMode::VerifyFull => Check::ChainAndName,
        }
    }

    /// For `audex check`: how an encrypted session's server was checked,
    /// or, for an unencrypted one, why it is not encrypted.
    pub fn describe(&self, encrypted: bool) -> String {
        let mode = self.mode.as_str();
        match (encrypted, self.check()) {
            (false, _) if self.mode == TlsMode::Disable => "TLS off (sslmode=disable)".into(),
            (false, _) => format!("TLS off (sslmode={mode}: the server does not offer it)"),
            (true, Check::ChainAndName) => {
                format!("TLS, certificate and host name checked (sslmode={mode})")
            }
            (true, Check::Chain) => {
                format!("TLS, certificate checked, host name not (sslmode={mode})")
            }
            (true, Check::None) => format!(
                "TLS, certificate not checked (sslmode={mode}; use verify-full outside your own network)"
            ),
        }
    }

    /// Resolve a relative `sslrootcert` against the config file's folder.
    pub fn resolve(mut self, base_dir: &Path) -> TlsOptions {
        if let Some(RootCerts::File(p)) = &self.root_cert {
            if p.is_relative() {
                self.root_cert = Some(RootCerts::File(base_dir.join(p)));
            }
        }
        self
    }
}

/// Options tokio-postgres cannot parse and audex does not support, with why.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "sslcert",
        "client certificates (sslcert/sslkey) are not supported; use password authentication",
    ),
    (
        "sslkey",
        "client certificates (sslcert/sslkey) are not supported; use password authentication",
    ),
    (
        "sslcrl",
        "certificate revocation lists (sslcrl) are not supported",
    ),
];

/// Take `sslmode` and `sslrootcert` out of a connection string (URL or
/// key=value form) and return the rest, for tokio-postgres to parse, with
/// the TLS options. Errors name the option, never the string (it may hold a
/// password).
pub fn split_tls_options(conn: &str) -> Result<(String, TlsOptions), String> {
    let trimmed = conn.trim();
    let (rest, pairs) =
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            split_url(trimmed)
        } else {
            split_key_values(trimmed)?
        };
    let mut mode = None;
    let mut root_cert = None;
    for (key, value) in pairs {
        match key.as_str() {
            "sslmode" => {
                mode = Some(TlsMode::parse(&value).ok_or_else(|| {
                    format!(
                        "sslmode {value:?} is not one of disable, prefer, require, verify-ca, verify-full"
                    )
                })?)
            }
            "sslrootcert" => {
                root_cert = Some(if value == "system" {
                    RootCerts::System
                } else if value.is_empty() {
                    return Err("sslrootcert is empty".to_string());
                } else {
                    RootCerts::File(PathBuf::from(value))
                })
            }
            other => {
                if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == other) {
                    return Err((*why).to_string());
                }
            }
        }
    }
    // libpq: `sslrootcert=system` makes the default mode verify-full.
    let mode = mode.unwrap_or(if root_cert == Some(RootCerts::System) {
        TlsMode::VerifyFull
    } else {
        TlsMode::Prefer
    });
    Ok((rest, TlsOptions { mode, root_cert }))
}

/// Whether `key` is a TLS option this module takes out of the string: one
/// it handles, or one it refuses with a reason.
fn is_taken(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert" || UNSUPPORTED.iter().any(|(k, _)| *k == key)
}

/// URL form: the options are query parameters, percent-encoded.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k);
        if is_taken(&key) {
            taken.push((key, decode(v)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// key=value form: `key = value` pairs separated by spaces; a value may be
/// single-quoted, and `\` escapes the next character.
fn split_key_values(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut kept: Vec<String> = Vec::new();
    let mut taken = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_ws(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            // Not ours to judge: the driver reports a malformed string.
            return Ok((s.to_string(), Vec::new()));
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated quoted value for {key}")),
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        if is_taken(&key) {
            taken.push((key, value));
        } else {
            kept.push(chars[start..i].iter().collect());
        }
    }
    Ok((kept.join(" "), taken))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn root_store(root: Option<&RootCerts>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        Some(RootCerts::File(path)) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert: cannot read {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert: {} holds no PEM certificate",
                    path.display()
                ));
            }
            let (_, bad) = store.add_parsable_certificates(certs);
            if store.is_empty() {
                return Err(format!(
                    "sslrootcert: {} holds no usable CA certificate ({bad} refused)",
                    path.display()
                ));
            }
        }
        None | Some(RootCerts::System) => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no trusted CA certificates found in the system's store; give the server's CA with sslrootcert=PATH"
                        .to_string(),
                );
            }
        }
    }
    Ok(store)
}

/// A rustls connector doing what libpq does for `options` (see the module
/// docs); `None` for `sslmode=disable`.
pub fn connector(options: &TlsOptions) -> Result<Option<MakeRustlsConnect>, String> {
    let provider = provider();
    if options.mode == TlsMode::Disable {
        return Ok(None);
    }
    let check = options.check();
    let webpki = match check {
        Check::None => None,
        Check::Chain | Check::ChainAndName => {
            let roots = root_store(options.root_cert.as_ref())?;
            let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot set up certificate checks: {e}"))?;
            Some(v)
        }
    };
    let verifier = Arc::new(LibpqVerifier {
        check,
        webpki,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The server certificate check of one `sslmode`. Whatever the mode, the
/// handshake's signatures are checked against the certificate the server
/// sent, so the connection is encrypted to whoever holds its key; the mode
/// decides whether who issued that certificate (and for which name) is
/// checked too:
/// - `prefer`, `require`: not (libpq's behaviour in these modes);
/// - `verify-ca`: signed by a trusted CA, for any name;
/// - `verify-full`: signed by a trusted CA and issued for the host.
#[derive(Debug)]
struct LibpqVerifier {
    check: Check,
    /// The full check; present unless `check` is `None`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, TlsOptions) {
        split_tls_options(s).expect("splits")
    }

    #[test]
    fn url_options_are_taken_out_and_the_rest_kept() {
        let (rest, tls) = split(
            "postgres://u:p%40ss@db:5432/crm?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        );
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db:5432/crm?application_name=x&connect_timeout=5"
        );
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCerts::File("/etc/ca.pem".into())));
        assert_eq!(tls.check(), Check::ChainAndName);

        let (rest, tls) = split("postgresql://u@db/crm?sslmode=require");
        assert_eq!(rest, "postgresql://u@db/crm");
        assert_eq!(tls.check(), Check::None);
    }

    #[test]
    fn key_value_options_are_taken_out_and_quoting_kept() {
        let (rest, tls) = split(
            "host=db password='it\\'s x' sslmode = verify-ca sslrootcert='/my certs/ca.pem' dbname=crm",
        );
        assert_eq!(tls.mode, TlsMode::VerifyCa);
        assert_eq!(
            tls.root_cert,
            Some(RootCerts::File("/my certs/ca.pem".into()))
        );
        assert!(rest.starts_with("host=db password="), "{rest}");
        assert!(rest.ends_with(" dbname=crm"), "{rest}");
        assert!(!rest.contains("ssl"), "{rest}");
    }

    #[test]
    fn defaults_follow_libpq() {
        assert_eq!(split("postgres://db/crm").1.mode, TlsMode::Prefer);
        let (_, tls) = split("postgres://db/crm?sslrootcert=system");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        // `require` with a root certificate checks the chain, as in libpq.
        let (_, tls) = split("postgres://db/crm?sslmode=require&sslrootcert=ca.pem");
        assert_eq!(tls.check(), Check::Chain);
        let tls = tls.resolve(Path::new("/srv/audex"));
        assert_eq!(
            tls.root_cert,
            Some(RootCerts::File("/srv/audex/ca.pem".into()))
        );
    }

    #[test]
    fn bad_and_unsupported_options_are_named_without_the_string() {
        let err =
            split_tls_options("postgres://u:hunter2@db/crm?sslmode=always").expect_err("refused");
        assert!(err.contains("sslmode \"always\""), "{err}");
        assert!(!err.contains("hunter2"));
        let err =
            split_tls_options("postgres://u:hunter2@db/crm?sslcert=c.pem").expect_err("refused");
        assert!(err.contains("client certificates"), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let options = TlsOptions {
            mode: TlsMode::VerifyFull,
            root_cert: Some(RootCerts::File("/nonexistent/ca.pem".into())),
        };
        let err = connector(&options).err().expect("fails");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
