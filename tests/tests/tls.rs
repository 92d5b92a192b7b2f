//! TLS between programs: two programs on TCP with TLS only (certificates
//! made here with rcgen) form one tree and call each other. TLS is mutual:
//! a program whose certificate another CA signed, a listener whose
//! certificate names another host, a client with no certificate, a
//! plaintext client and a plain-TCP program are all refused; a client that
//! says nothing is dropped within the opening deadline.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tractor_tests::{Program, TestCa, free_addr};

const SECRET: &str = "the secret of the TLS test tree, long enough";

/// The opening deadline of every connection (connect, TLS and handshake).
const OPENING_DEADLINE: Duration = Duration::from_secs(5);

fn program(role: &str, registrar: &str, tls: Option<Vec<(String, String)>>) -> Program {
    let mut env = vec![
        ("TRACTOR_REGISTRAR".to_owned(), registrar.to_owned()),
        (tractor::SECRET_ENV.to_owned(), SECRET.to_owned()),
    ];
    match tls {
        Some(tls) => env.extend(tls),
        None => env.push((tractor::TRANSPORT_ENV.into(), "tcp".into())),
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Program::start(env!("CARGO_BIN_EXE_standalone"), role, &env)
}

/// Whether the peer closes `raw` (end of stream or reset) within `within`,
/// having sent at most a TLS alert: never a tractor challenge.
fn hangs_up_without_answering(raw: &mut std::net::TcpStream, within: Duration) -> bool {
    raw.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let closed = match raw.read_to_end(&mut answer) {
        Ok(_) => true,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(answer.len() < 64, "{answer:?}");
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "at most a TLS alert comes back: {answer:?}"
    );
    closed
}

#[tokio::test]
async fn two_programs_talk_over_tls_and_strangers_are_refused() {
    let ca = TestCa::new("tree");
    let cert = ca.issue("member", &["127.0.0.1", "localhost"]);
    let registrar = free_addr();
    let mut a = program("a", &registrar, Some(ca.env(&cert)));
    let mut pids = HashMap::new();
    a.expect("ready", &mut pids).await;

    // A plaintext client (a tractor hello, not a TLS ClientHello) gets no
    // answer but a closed connection.
    let mut raw = std::net::TcpStream::connect(&registrar).unwrap();
    raw.write_all(&[&4u32.to_le_bytes()[..], b"\0tra"].concat())
        .unwrap();
    assert!(hangs_up_without_answering(&mut raw, Duration::from_secs(5)));

    // A client that says nothing at all is dropped by the deadline.
    let started = Instant::now();
    let mut silent = std::net::TcpStream::connect(&registrar).unwrap();
    assert!(
        hangs_up_without_answering(&mut silent, OPENING_DEADLINE * 2),
        "a silent client is dropped"
    );
    let held = started.elapsed();
    assert!(
        held < OPENING_DEADLINE + Duration::from_secs(2),
        "dropped after {held:?}"
    );
    println!("a silent TLS client was dropped after {held:?}");

    // A TLS client without a certificate: the listener requires one, and
    // says so with TLS's own alert.
    let refusal = without_a_certificate(&registrar, &ca).await;
    assert!(refusal.contains("CertificateRequired"), "{refusal}");

    // A program speaking plain TCP cannot join.
    let plain = program("b", &registrar, None);
    let (status, complaint) = plain.finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");

    // A program whose certificate another CA signed cannot join: a's
    // listener refuses its certificate (and it does not trust a's).
    let other = TestCa::new("other");
    let outsider = other.issue("outsider", &["127.0.0.1"]);
    let stranger = program("b", &registrar, Some(other.env(&outsider)));
    let (status, complaint) = stranger.finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");
    assert!(complaint.contains("TLS handshake"), "{complaint}");

    // A program with the tree's certificate joins, finds and calls.
    let mut b = program("b", &registrar, Some(ca.env(&cert)));
    let called = b.expect("B called: ", &mut HashMap::new()).await;
    assert!(called.contains("service_a in program a"), "{called}");
    let late = b.expect("B found late: ", &mut HashMap::new()).await;
    assert!(late.contains("late_service in program a"), "{late}");
    let from_a = a.expect("A called: ", &mut pids).await;
    assert!(from_a.contains("client_b in program b"), "{from_a}");
    drop(b);
    drop(a);
}

/// Connects to `addr` as a TLS client that trusts `ca` but presents no
/// certificate, and sends a hello; how the listener refused it (or what
/// else happened, which fails the caller's check).
async fn without_a_certificate(addr: &str, ca: &TestCa) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    // With TLS 1.3 the client may finish its side before the listener has
    // judged its (missing) certificate: the refusal then comes as an alert
    // to the first read.
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(err) => return err.to_string(),
    };
    let hello = [&4u32.to_le_bytes()[..], b"\0tra"].concat();
    let _ = tls.write_all(&hello).await;
    let mut answer = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut answer)).await {
        Ok(Err(err)) => err.to_string(),
        Ok(Ok(n)) => format!("read {n} bytes: {:?}", &answer[..n]),
        Err(_) => "no answer within 5 s".into(),
    }
}

#[tokio::test]
async fn a_listener_whose_certificate_names_another_host_is_refused() {
    // Program a listens on 127.0.0.1, but its certificate names another
    // host: its own child, dialing it back at 127.0.0.1, refuses it, so a
    // cannot even start its daemon.
    let ca = TestCa::new("names");
    let misnamed = ca.issue("misnamed", &["actors.example.org"]);
    let registrar = free_addr();
    let a = program("a", &registrar, Some(ca.env(&misnamed)));
    let (status, complaint) = a.finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");
    assert!(complaint.contains("TLS handshake"), "{complaint}");
    assert!(
        complaint.contains("certificate not valid for name \"127.0.0.1\""),
        "{complaint}"
    );
}
