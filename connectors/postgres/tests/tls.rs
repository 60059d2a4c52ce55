//! TLS against real servers: a throwaway one with `ssl=on` and a
//! certificate for `localhost` signed by a CA made for the test
//! (`audex_pg_testkit::tls_server`), and one with TLS off. Each mode
//! is checked by what the server itself says about the session
//! (`pg_stat_ssl`), and each refusal by its class and hint.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use audex_core::{BuildContext, Error, ErrorClass, SegmentQuery, SegmentSource};
use audex_pg_testkit::{plain_server_url, tls_server};
// Linked for its `inventory` registration: the tests reach the source
// through the registry only.
use audex_postgres as _;
use futures::StreamExt;

fn source(url: &str, base_dir: &Path) -> Arc<dyn SegmentSource> {
    let block = serde_json::json!({"type": "postgres", "url": url});
    let plugin = audex_core::registry::source("postgres").expect("registered");
    let cfg = (plugin.parse)(block).expect("parses");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg.build(&BuildContext {
        base_dir: base_dir.to_path_buf(),
    })
    .expect("builds")
}

/// Whether the server says this session is encrypted, and with what.
async fn session_tls(src: &dyn SegmentSource) -> Result<(bool, String), Error> {
    let q = SegmentQuery::Sql(
        "SELECT ssl::text AS ssl, coalesce(version, '') AS version \
         FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            .into(),
    );
    let mut stream = src.stream(&q).await?;
    let batch = stream
        .next()
        .await
        .expect("one batch")
        .expect("batch reads")
        .into_rows()
        .expect("rows");
    let ssl = batch.column(0).as_string::<i32>().value(0) == "true";
    let version = batch.column(1).as_string::<i32>().value(0).to_string();
    Ok((ssl, version))
}

fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

fn no_dir() -> &'static Path {
    Path::new("/nonexistent")
}

#[tokio::test]
async fn prefer_and_require_encrypt_and_disable_does_not() {
    let server = tls_server();
    // The default is libpq's `prefer`: TLS when the server offers it. The
    // certificate is not checked (127.0.0.1 is not a name it carries).
    let (ssl, version) = session_tls(source(&server.url_by_address, no_dir()).as_ref())
        .await
        .expect("prefer connects");
    assert!(ssl, "prefer did not encrypt");
    assert!(version.starts_with("TLSv1."), "{version}");

    let (ssl, _) =
        session_tls(source(&with(&server.url_by_address, "sslmode=require"), no_dir()).as_ref())
            .await
            .expect("require connects");
    assert!(ssl, "require did not encrypt");

    let (ssl, _) =
        session_tls(source(&with(&server.url_by_address, "sslmode=disable"), no_dir()).as_ref())
            .await
            .expect("disable connects");
    assert!(!ssl, "disable encrypted");
}

#[tokio::test]
async fn verify_full_trusts_the_given_ca_for_the_right_name() {
    let server = tls_server();
    let ca = server.ca_pem.display().to_string();
    let url = with(
        &server.url,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let (ssl, _) = session_tls(source(&url, no_dir()).as_ref())
        .await
        .expect("verify-full with the right CA and name connects");
    assert!(ssl);

    // A relative sslrootcert is read from the config file's folder.
    let folder = server.ca_pem.parent().expect("folder");
    let url = with(&server.url, "sslmode=verify-full&sslrootcert=ca.pem");
    let (ssl, _) = session_tls(source(&url, folder).as_ref())
        .await
        .expect("relative sslrootcert resolves against the config folder");
    assert!(ssl);
}

#[tokio::test]
async fn verify_full_refuses_a_name_the_certificate_does_not_carry() {
    let server = tls_server();
    let ca = server.ca_pem.display().to_string();
    let url = with(
        &server.url_by_address,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = session_tls(source(&url, no_dir()).as_ref())
        .await
        .expect_err("127.0.0.1 is not in the certificate");
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert!(e.message().contains("certificate was refused"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("verify-ca")), "{e}");

    // verify-ca checks who signed it, not the name.
    let url = with(
        &server.url_by_address,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    let (ssl, _) = session_tls(source(&url, no_dir()).as_ref())
        .await
        .expect("verify-ca ignores the name");
    assert!(ssl);
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let server = tls_server();
    let other = server.other_ca_pem.display().to_string();
    for mode in ["verify-full", "verify-ca", "require"] {
        // libpq: `require` with a root certificate checks the chain.
        let url = with(&server.url, &format!("sslmode={mode}&sslrootcert={other}"));
        let e = session_tls(source(&url, no_dir()).as_ref())
            .await
            .expect_err("untrusted CA");
        assert_eq!(e.class(), ErrorClass::Config, "{mode}: {e}");
        assert!(e.message().contains(&format!("sslmode={mode}")), "{e}");
        assert!(e.hint().is_some_and(|h| h.contains("sslrootcert")), "{e}");
    }
}

#[tokio::test]
async fn a_missing_root_certificate_file_is_named() {
    let server = tls_server();
    let url = with(
        &server.url,
        "sslmode=verify-full&sslrootcert=certs/nope.pem",
    );
    let e = session_tls(source(&url, Path::new("/srv/audex")).as_ref())
        .await
        .expect_err("no such file");
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert!(e.message().contains("/srv/audex/certs/nope.pem"), "{e}");
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_clear() {
    let url = with(&plain_server_url(), "sslmode=require");
    let e = session_tls(source(&url, no_dir()).as_ref())
        .await
        .expect_err("server has no TLS");
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    assert!(e.message().contains("does not offer TLS"), "{e}");

    // prefer falls back to a plain connection.
    let (ssl, _) = session_tls(source(&plain_server_url(), no_dir()).as_ref())
        .await
        .expect("prefer falls back");
    assert!(!ssl);
}

/// `audex check` says whether the session is encrypted and how the server
/// was checked, as the server itself reports it.
#[tokio::test]
async fn check_says_how_the_connection_is_secured() {
    let server = tls_server();
    let ca = server.ca_pem.display().to_string();
    let cases = [
        (
            with(
                &server.url,
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "TLS, certificate and host name checked (sslmode=verify-full)",
        ),
        (
            with(
                &server.url_by_address,
                &format!("sslmode=verify-ca&sslrootcert={ca}"),
            ),
            "TLS, certificate checked, host name not (sslmode=verify-ca)",
        ),
        (
            server.url_by_address.clone(),
            "TLS, certificate not checked (sslmode=prefer;",
        ),
        (
            with(&server.url_by_address, "sslmode=disable"),
            "TLS off (sslmode=disable)",
        ),
        (
            plain_server_url(),
            "TLS off (sslmode=prefer: the server does not offer it)",
        ),
    ];
    for (url, expected) in cases {
        let detail = source(&url, no_dir()).check().await.expect("check passes");
        assert!(detail.starts_with("PostgreSQL "), "{detail}");
        assert!(detail.contains(expected), "{expected:?} not in {detail:?}");
    }
}
