//! `rediss://`: a real redis-server serving TLS with a certificate from a CA made here.

mod common;

use std::time::{Duration, Instant};

use common::limit;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tollgate_core::Algorithm;
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::{RedisServer, free_port};

/// A CA, and a certificate it signed for localhost: (CA PEM, server cert PEM, server key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().expect("key");
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn rediss_with_a_private_ca() {
    let (ca, cert, key) = certificates();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).expect("write");
        p.to_string_lossy().into_owned()
    };
    let (ca_file, cert_file, key_file) = (
        path("ca.pem", &ca),
        path("cert.pem", &cert),
        path("key.pem", &key),
    );
    let tls_port = free_port().expect("port").to_string();
    let _server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert_file,
        "--tls-key-file",
        &key_file,
        "--tls-ca-cert-file",
        &ca_file,
        "--tls-auth-clients",
        "no",
    ])
    .expect("redis-server with TLS starts");
    let url = format!("rediss://localhost:{tls_port}/0");

    let config = RedisConfig::parse(&url)
        .expect("url")
        .tls_ca_pem(ca.clone());
    let store = RedisStore::connect(&config).await.expect("TLS connects");
    let l = limit("2/min", Algorithm::Gcra, None);
    assert!(store.check("k", &l, 2).await.expect("decides").allowed);
    assert!(!store.check("k", &l, 1).await.expect("decides").allowed);

    // Without the CA the certificate is not trusted: a clear error, not a hang.
    let started = Instant::now();
    let err = RedisStore::connect(&RedisConfig::parse(&url).expect("url"))
        .await
        .expect_err("untrusted certificate");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    assert_eq!(err.code(), "store_unavailable");
    assert!(
        !err.is_transient(),
        "a certificate does not heal by waiting: {err}"
    );
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}

#[tokio::test]
async fn rediss_to_a_plain_server_fails_cleanly() {
    let server = common::server();
    let url = format!("rediss://127.0.0.1:{}/0", server.port());
    let config = RedisConfig::parse(&url)
        .expect("url")
        .connect_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = RedisStore::connect(&config)
        .await
        .expect_err("no TLS there");
    assert!(started.elapsed() < Duration::from_millis(1500), "{err}");
    assert_eq!(err.code(), "store_unavailable");
}
