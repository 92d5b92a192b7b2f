//! TLS between programs: two programs on TCP with TLS only (certificates
//! made here with rcgen) form one tree and call each other; a plaintext
//! client and a plain-TCP program are refused by the TLS actors.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use tractor_tests::{Program, free_addr};

const SECRET: &str = "the secret of the TLS test tree, long enough";

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in a
/// fresh directory: (cert, key, ca).
fn certificates() -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tractor-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = params
        .signed_by(&key, &rcgen::Issuer::new(ca_params, &ca_key))
        .unwrap();
    let paths = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&paths.0, cert.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    std::fs::write(&paths.2, ca.pem()).unwrap();
    paths
}

fn program(role: &str, registrar: &str, tls: Option<&(PathBuf, PathBuf, PathBuf)>) -> Program {
    let mut env = vec![
        ("TRACTOR_REGISTRAR".to_owned(), registrar.to_owned()),
        (tractor::SECRET_ENV.to_owned(), SECRET.to_owned()),
    ];
    match tls {
        Some((cert, key, ca)) => {
            env.push((tractor::TRANSPORT_ENV.into(), "tls".into()));
            env.push((tractor::TLS_CERT_ENV.into(), cert.display().to_string()));
            env.push((tractor::TLS_KEY_ENV.into(), key.display().to_string()));
            env.push((tractor::TLS_CA_ENV.into(), ca.display().to_string()));
        }
        None => env.push((tractor::TRANSPORT_ENV.into(), "tcp".into())),
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Program::start(env!("CARGO_BIN_EXE_standalone"), role, &env)
}

#[tokio::test]
async fn two_programs_talk_over_tls_and_plaintext_is_refused() {
    let tls = certificates();
    let registrar = free_addr();
    let mut a = program("a", &registrar, Some(&tls));
    let mut pids = HashMap::new();
    a.expect("ready", &mut pids).await;

    // A plaintext client (a tractor hello, not a TLS ClientHello) gets no
    // answer but a closed connection.
    {
        let mut raw = std::net::TcpStream::connect(&registrar).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let hello = [&4u32.to_le_bytes()[..], b"\0tra"].concat();
        raw.write_all(&hello).unwrap();
        let mut answer = Vec::new();
        // Hanging up is end of stream or a reset; a read that times out
        // means it did not.
        let closed = raw.read_to_end(&mut answer);
        assert!(
            match &closed {
                Ok(_) => true,
                Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
            },
            "the TLS actor hangs up: {closed:?}"
        );
        // At most a TLS alert comes back, never a tractor challenge.
        assert!(answer.len() < 64, "{answer:?}");
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "a TLS alert: {answer:?}"
        );
    }

    // A program speaking plain TCP cannot join.
    let plain = program("b", &registrar, None);
    let (status, complaint) = plain.finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");

    // A program with the certificate joins, finds and calls over TLS.
    let mut b = program("b", &registrar, Some(&tls));
    let called = b.expect("B called: ", &mut HashMap::new()).await;
    assert!(called.contains("service_a in program a"), "{called}");
    let late = b.expect("B found late: ", &mut HashMap::new()).await;
    assert!(late.contains("late_service in program a"), "{late}");
    let from_a = a.expect("A called: ", &mut pids).await;
    assert!(from_a.contains("client_b in program b"), "{from_a}");

    drop(b);
    drop(a);
    let _ = std::fs::remove_dir_all(tls.0.parent().unwrap());
}
