//! Across hosts: three network namespaces joined by a bridge (the test
//! hosts of `tractor_tests::netns`), a root on `a`, an actor on `b`
//! placed through ssh, TLS between them. `-- hosts` (root only) builds
//! the hosts and runs this executable on `a` as `hosts-inner`, which
//! measures: the round trip of a call to `b`, next to a raw ping-pong over
//! the same veth link with the same TLS (a helper on `b`), and stream
//! throughput from `b`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls;
use tractor::ActorNursery;

use crate::stats::{Rate, median};

/// Answers at once.
#[tractor::rpc]
async fn noop() {}

/// `n` u64 items, as fast as credit allows.
#[tractor::stream]
fn count(n: u64) -> impl futures::Stream<Item = u64> {
    futures::stream::iter(0..n)
}

/// `n` items of 1 KiB.
#[tractor::stream]
fn kib_items(n: u64) -> impl futures::Stream<Item = bytes::Bytes> {
    let item = bytes::Bytes::from(vec![7u8; 1024]);
    futures::stream::iter((0..n).map(move |_| item.clone()))
}

/// The outer run: makes the hosts, runs the measures on `a`, prints their
/// rows. Returns whether it ran (it needs root).
pub fn outer() -> bool {
    let hosts = match tractor_tests::netns::Hosts::new() {
        Ok(hosts) => hosts,
        Err(why) => {
            eprintln!("hosts: skipped: {why}");
            return false;
        }
    };
    let ca = tractor_tests::TestCa::new("bench");
    let ips = [
        hosts.a.ip.as_str(),
        hosts.b.ip.as_str(),
        hosts.c.ip.as_str(),
    ];
    let cert = ca.issue("tree", &ips);
    let exe = std::env::current_exe().expect("this executable");
    let status = hosts
        .command_in(&hosts.a, exe)
        .args(["hosts-inner", &hosts.b.url()])
        .envs(ca.env(&cert))
        .env(tractor::HOST_ENV, &hosts.a.ip)
        .env(tractor::REGISTRAR_ENV, format!("{}:1616", hosts.a.ip))
        .env(tractor::SSH_COMMAND_ENV, hosts.ssh_command())
        .env("TRACTOR_BENCH_PEER", &hosts.b.netns)
        .status()
        .expect("run the measures on host a");
    assert!(status.success(), "the measures on host a failed: {status}");
    true
}

/// The rows, measured on `a` with an actor on `b` (`b_url`).
pub async fn inner(b_url: &str) -> tractor::Result<()> {
    let rounds = 20_000;
    let mut floor = raw_tls_ping_pong(rounds)
        .await
        .map_err(tractor::Error::other)?;
    let (mut calls, u64_rate, kib_rate) = tractor::open_nursery(async |n: &ActorNursery| {
        let b = n
            .start_actor("far")
            .host(b_url)
            .enable_modules([module_path!()])
            .await?;
        for _ in 0..1000 {
            b.run(noop::call()).await?;
        }
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            b.run(noop::call()).await?;
            samples.push(start.elapsed());
        }
        let u64_rate = stream_rate(&b, count::call(2_000_000), 8).await?;
        let kib_rate = stream_rate(&b, kib_items::call(200_000), 1024).await?;
        b.cancel_actor().await?;
        Ok((samples, u64_rate, kib_rate))
    })
    .await?;
    let floor = median(&mut floor);
    let call = median(&mut calls);
    crate::row(
        &format!(
            "hosts: call round trip a -> b over a veth link, TLS, p50 ({rounds}; the floor a raw \
             TLS ping-pong over the same link, just before)"
        ),
        crate::us(call),
        format!("{} (raw TLS ping-pong a <-> b)", crate::us(floor)),
        crate::ratio(call.as_secs_f64(), floor.as_secs_f64()),
        "<= 1.3x floor",
    );
    for (what, rate) in [
        ("u64 items (2 M)", u64_rate),
        ("1 KiB items (200 k)", kib_rate),
    ] {
        crate::row(
            &format!("hosts: stream b -> a over the veth link, TLS, {what}"),
            format!(
                "{:.2} M msgs/s, {:.0} MB/s",
                rate.items_per_sec / 1e6,
                rate.bytes_per_sec / 1e6
            ),
            "-".into(),
            "-".into(),
            "-",
        );
    }
    Ok(())
}

async fn stream_rate<T: serde::de::DeserializeOwned + Send + 'static>(
    portal: &tractor::Portal,
    call: tractor::StreamCall<T>,
    item_bytes: usize,
) -> tractor::Result<Rate> {
    let start = Instant::now();
    let mut items = portal.open_stream(call).await?;
    let mut received = 0u64;
    while let Some(item) = items.next().await {
        item?;
        received += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Rate {
        items_per_sec: received as f64 / secs,
        bytes_per_sec: (received as usize * item_bytes) as f64 / secs,
    })
}

/// The floor: 8-byte ping-pong over mutual TLS (the tree's certificate,
/// rustls as tractor uses it) between this process on `a` and a helper on
/// `b`, which dials us.
async fn raw_tls_ping_pong(rounds: usize) -> std::io::Result<Vec<Duration>> {
    let host = std::env::var(tractor::HOST_ENV).map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), 0)).await?;
    let addr = listener.local_addr()?.to_string();
    let peer = std::env::var("TRACTOR_BENCH_PEER").map_err(std::io::Error::other)?;
    let mut helper = tokio::process::Command::new("ip")
        .args(["netns", "exec", &peer])
        .arg(std::env::current_exe()?)
        .env(crate::floors::ROLE, format!("tls-pong {addr}"))
        .kill_on_drop(true)
        .spawn()?;
    let (stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let (server, _) = tls_configs()?;
    let stream = tokio_rustls::TlsAcceptor::from(server)
        .accept(stream)
        .await?;
    let samples = crate::floors::ping(stream, rounds).await?;
    helper.wait().await?;
    Ok(samples)
}

/// The helper on `b`: dials `addr` over TLS and echoes until hung up.
pub async fn tls_pong(addr: &str) -> std::io::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (_, client) = tls_configs()?;
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
    let stream = tokio_rustls::TlsConnector::from(client)
        .connect(name, stream)
        .await?;
    crate::floors::pong(stream).await
}

/// Mutual TLS from the tree's files (`TRACTOR_TLS_*`), with ring, as
/// tractor's own.
fn tls_configs() -> std::io::Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> {
    let path = |var: &str| std::env::var(var).map_err(std::io::Error::other);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(path(tractor::TLS_CERT_ENV)?)
            .and_then(|certs| certs.collect())
            .map_err(std::io::Error::other)?;
    let key =
        PrivateKeyDer::from_pem_file(path(tractor::TLS_KEY_ENV)?).map_err(std::io::Error::other)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in
        CertificateDer::pem_file_iter(path(tractor::TLS_CA_ENV)?).map_err(std::io::Error::other)?
    {
        roots
            .add(ca.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(std::io::Error::other)?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(std::io::Error::other)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(std::io::Error::other)?;
    Ok((Arc::new(server), Arc::new(client)))
}
