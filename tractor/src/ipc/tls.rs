//! Which transport a connection may use, and TLS for TCP.
//!
//! Actors on one host talk over Unix sockets. TCP is for reaching other
//! hosts (and a registrar by its `host:port`), and there it runs over TLS
//! (rustls) when the program is given a certificate, its key and the CA to
//! trust for peers. Plain TCP is allowed to loopback addresses (it never
//! leaves the host, and the tree's secret still authenticates every
//! connection); to another host only when chosen explicitly.
//!
//! Configuration is read once per process from the environment (children
//! inherit it):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `TRACTOR_TLS_CERT` | PEM certificate chain presented by this program's actors |
//! | `TRACTOR_TLS_KEY` | PEM private key of that certificate |
//! | `TRACTOR_TLS_CA` | PEM certificate(s) of the CA that signs peers' certificates |
//! | `TRACTOR_TRANSPORT` | `auto` (default), `tls` (TLS only, no Unix sockets), or `tcp` (plain TCP allowed to any host) |

use std::sync::{Arc, OnceLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{Error, Result};

/// PEM certificate chain of this program's actors.
pub const TLS_CERT_ENV: &str = "TRACTOR_TLS_CERT";
/// PEM private key of that certificate.
pub const TLS_KEY_ENV: &str = "TRACTOR_TLS_KEY";
/// PEM certificate(s) of the CA trusted for peers.
pub const TLS_CA_ENV: &str = "TRACTOR_TLS_CA";
/// `auto`, `tls` or `tcp`: see the module documentation.
pub const TRANSPORT_ENV: &str = "TRACTOR_TRANSPORT";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    Auto,
    TlsOnly,
    PlainTcp,
}

/// This process's transport settings.
pub(crate) struct Transport {
    policy: Policy,
    tls: Option<(TlsAcceptor, TlsConnector)>,
}

/// The settings, read from the environment on first use.
pub(crate) fn transport() -> Result<&'static Transport> {
    static TRANSPORT: OnceLock<std::result::Result<Transport, String>> = OnceLock::new();
    TRANSPORT
        .get_or_init(|| Transport::from_env().map_err(|err| err.to_string()))
        .as_ref()
        .map_err(|err| Error::other(err.clone()))
}

impl Transport {
    fn from_env() -> Result<Transport> {
        let policy = match std::env::var(TRANSPORT_ENV).as_deref() {
            Err(_) | Ok("auto") | Ok("") => Policy::Auto,
            Ok("tls") => Policy::TlsOnly,
            Ok("tcp") => Policy::PlainTcp,
            Ok(other) => {
                return Err(Error::other(format!(
                    "{TRANSPORT_ENV}={other:?} is not a transport; use auto, tls or tcp"
                )));
            }
        };
        let paths = (
            std::env::var_os(TLS_CERT_ENV),
            std::env::var_os(TLS_KEY_ENV),
            std::env::var_os(TLS_CA_ENV),
        );
        let tls = match paths {
            (Some(cert), Some(key), Some(ca)) => {
                Some(tls_config(cert.as_ref(), key.as_ref(), ca.as_ref())?)
            }
            (None, None, None) if policy != Policy::TlsOnly => None,
            _ => {
                return Err(Error::other(format!(
                    "TLS needs all three of {TLS_CERT_ENV}, {TLS_KEY_ENV} and {TLS_CA_ENV}"
                )));
            }
        };
        Ok(Transport { policy, tls })
    }

    /// Whether actors on one host may talk over Unix sockets.
    pub(crate) fn unix_sockets(&self) -> bool {
        self.policy != Policy::TlsOnly
    }

    /// Secures a TCP connection we accepted.
    pub(crate) async fn accepted(&self, stream: TcpStream) -> Result<super::transport::Stream> {
        stream.set_nodelay(true)?;
        match &self.tls {
            Some((acceptor, _)) => {
                let tls = acceptor.accept(stream).await.map_err(|err| {
                    Error::Protocol(format!("TLS handshake failed (a plaintext client?): {err}"))
                })?;
                Ok(super::transport::Stream::Tls(Box::new(tls.into())))
            }
            None => Ok(super::transport::Stream::Tcp(stream)),
        }
    }

    /// Secures a TCP connection we dialed to `addr` (`host:port`).
    pub(crate) async fn dialed(
        &self,
        stream: TcpStream,
        addr: &str,
    ) -> Result<super::transport::Stream> {
        stream.set_nodelay(true)?;
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match &self.tls {
            Some((_, connector)) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|err| Error::other(format!("bad host name {host:?}: {err}")))?;
                let tls = connector.connect(name, stream).await.map_err(|err| {
                    Error::Protocol(format!("TLS handshake with {addr} failed: {err}"))
                })?;
                Ok(super::transport::Stream::Tls(Box::new(tls.into())))
            }
            None if self.policy == Policy::PlainTcp || is_loopback(&stream) => {
                Ok(super::transport::Stream::Tcp(stream))
            }
            None => Err(Error::other(format!(
                "refusing plain TCP to {addr}, another host: give this program a certificate \
                 ({TLS_CERT_ENV}, {TLS_KEY_ENV}, {TLS_CA_ENV}) or choose plain TCP explicitly \
                 with {TRANSPORT_ENV}=tcp"
            ))),
        }
    }
}

fn is_loopback(stream: &TcpStream) -> bool {
    stream.peer_addr().is_ok_and(|addr| addr.ip().is_loopback())
}

fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
) -> Result<(TlsAcceptor, TlsConnector)> {
    let pem_error = |what: &str, path: &std::path::Path, err: &dyn std::fmt::Display| {
        Error::other(format!(
            "cannot read the TLS {what} from {}: {err}",
            path.display()
        ))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|err| pem_error("certificate", cert, &err))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| pem_error("key", key, &err))?;
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect())
        .map_err(|err| pem_error("CA", ca, &err))?;
    for ca_cert in cas {
        roots
            .add(ca_cert)
            .map_err(|err| pem_error("CA", ca, &err))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
        })
        .map_err(|err| Error::other(format!("bad TLS certificate or key: {err}")))?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::other(format!("TLS setup failed: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}
