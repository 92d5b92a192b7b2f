//! Which transports a program's actors use, and TLS for TCP.
//!
//! | `TRACTOR_TRANSPORT` | on this host | to other hosts |
//! | --- | --- | --- |
//! | `auto` (default) | Unix sockets in the user's private directory | TLS, if the program has a certificate; else none |
//! | `tls` | TLS over TCP | TLS over TCP |
//! | `tcp` | plain TCP | plain TCP |
//!
//! TLS is mutual: each side presents a certificate signed by the CA the
//! other trusts, and the dialer checks the listener's name (SAN) against
//! the host it dialed. An actor listens on TCP only when the policy gives
//! it a TCP transport (`auto` with a certificate, `tls`, `tcp`).
//!
//! `tcp` is the explicit opt-in for trees across hosts without
//! certificates: the opening still proves the tree's secret both ways and
//! cannot be relayed, but **nothing after the opening is authenticated or
//! encrypted** — anyone on the path can read and alter calls. Use it only
//! on a network you trust.
//!
//! Configuration is read once per process from the environment (children
//! inherit it):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `TRACTOR_TLS_CERT` | PEM certificate chain presented by this program's actors |
//! | `TRACTOR_TLS_KEY` | PEM private key of that certificate |
//! | `TRACTOR_TLS_CA` | PEM certificate(s) of the CA that signs every peer's certificate |
//! | `TRACTOR_TRANSPORT` | `auto`, `tls` or `tcp`, as above |

use std::sync::{Arc, RwLock};

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
/// `auto` (default: Unix sockets on this host, TLS to others), `tls` (TLS
/// everywhere) or `tcp` (plain TCP everywhere: unauthenticated past the
/// opening, an explicit opt-in).
pub const TRANSPORT_ENV: &str = "TRACTOR_TRANSPORT";

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
enum Policy {
    Auto,
    TlsOnly,
    PlainTcp,
}

/// This process's transport settings.
pub(crate) struct Transport {
    tls: Option<(TlsAcceptor, TlsConnector)>,
    /// What they were made from (the policy with them), for a child on
    /// another host.
    portable: Portable,
    /// Installed from a spawn spec rather than read from the environment:
    /// this actor's children get them the same way.
    handed_down: bool,
}

/// Transport settings as they travel to a child on another host, in its
/// spawn spec (over the ssh connection that starts it, like the secret):
/// that host's environment knows nothing of ours. The certificate must
/// name every host the tree places actors on.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Portable {
    policy: Policy,
    /// PEM: certificate chain, private key, CA; `None` without TLS.
    pems: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Portable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portable")
            .field("policy", &self.policy)
            .field("tls", &self.pems.is_some())
            .finish()
    }
}

/// This process's settings once known. Replaceable, for a forked child
/// whose spec brings settings other than those its fork server read from
/// its environment (see [`install`]); each is made once and kept for the
/// life of the process.
static TRANSPORT: RwLock<Option<std::result::Result<&'static Transport, String>>> =
    RwLock::new(None);

/// The settings, read from the environment on first use (or installed from
/// a spawn spec, see [`install`]).
pub(crate) fn transport() -> Result<&'static Transport> {
    let known = TRANSPORT
        .read()
        .unwrap_or_else(|err| err.into_inner())
        .clone();
    let known = match known {
        Some(known) => known,
        None => {
            let mut slot = TRANSPORT.write().unwrap_or_else(|err| err.into_inner());
            slot.get_or_insert_with(|| {
                Transport::from_env()
                    .map(|made| &*Box::leak(Box::new(made)))
                    .map_err(|err| err.to_string())
            })
            .clone()
        }
    };
    known.map_err(Error::other)
}

/// Makes `portable` this process's settings, in place of any read before:
/// a child whose parent handed its settings down (one on another host,
/// whose environment knows nothing of them, and its own children), first
/// thing, before it opens a connection.
pub(crate) fn install(portable: Portable) -> Result<()> {
    let mut made = Transport::from_portable(portable)?;
    made.handed_down = true;
    let made: &'static Transport = Box::leak(Box::new(made));
    *TRANSPORT.write().unwrap_or_else(|err| err.into_inner()) = Some(Ok(made));
    Ok(())
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
        let pems = match paths {
            (Some(cert), Some(key), Some(ca)) => {
                let read = |what: &str, path: &std::ffi::OsStr| {
                    std::fs::read(path).map_err(|err| {
                        Error::other(format!(
                            "cannot read the TLS {what} from {}: {err}",
                            std::path::Path::new(path).display()
                        ))
                    })
                };
                Some((
                    read("certificate", &cert)?,
                    read("key", &key)?,
                    read("CA", &ca)?,
                ))
            }
            (None, None, None) if policy != Policy::TlsOnly => None,
            _ => {
                return Err(Error::other(format!(
                    "TLS needs all three of {TLS_CERT_ENV}, {TLS_KEY_ENV} and {TLS_CA_ENV}"
                )));
            }
        };
        Transport::from_portable(Portable { policy, pems })
    }

    fn from_portable(portable: Portable) -> Result<Transport> {
        let tls = match &portable.pems {
            Some((cert, key, ca)) => Some(tls_config(cert, key, ca)?),
            None if portable.policy == Policy::TlsOnly => {
                return Err(Error::other(format!(
                    "{TRANSPORT_ENV}=tls needs a certificate: {TLS_CERT_ENV}, {TLS_KEY_ENV} and \
                     {TLS_CA_ENV}"
                )));
            }
            None => None,
        };
        Ok(Transport {
            tls,
            portable,
            handed_down: false,
        })
    }

    /// These settings, for a child on another host.
    pub(crate) fn portable(&self) -> &Portable {
        &self.portable
    }

    /// Whether these settings came in this process's spawn spec (see
    /// [`install`]).
    pub(crate) fn handed_down(&self) -> bool {
        self.handed_down
    }

    /// Whether actors on one host talk over Unix sockets.
    pub(crate) fn unix_sockets(&self) -> bool {
        self.portable.policy == Policy::Auto
    }

    /// Whether actors listen on TCP.
    pub(crate) fn tcp(&self) -> bool {
        match self.portable.policy {
            Policy::Auto => self.tls.is_some(),
            Policy::TlsOnly | Policy::PlainTcp => true,
        }
    }

    /// Secures a TCP connection we accepted.
    pub(crate) async fn accepted(&self, stream: TcpStream) -> Result<super::transport::Stream> {
        stream.set_nodelay(true)?;
        match (&self.tls, self.portable.policy) {
            (_, Policy::PlainTcp) => Ok(super::transport::Stream::Tcp(stream)),
            (Some((acceptor, _)), _) => {
                let tls = acceptor.accept(stream).await.map_err(|err| {
                    Error::Protocol(format!("TLS handshake failed (a plaintext client?): {err}"))
                })?;
                Ok(super::transport::Stream::Tls(Box::new(tls.into())))
            }
            (None, _) => Err(Error::Protocol(
                "a TCP connection, but this program has no TCP transport".into(),
            )),
        }
    }

    /// Secures a TCP connection we dialed to `addr` (`host:port`).
    pub(crate) async fn dialed(
        &self,
        stream: TcpStream,
        addr: &str,
    ) -> Result<super::transport::Stream> {
        stream.set_nodelay(true)?;
        let host = super::local::host_of(addr);
        match (&self.tls, self.portable.policy) {
            (_, Policy::PlainTcp) => Ok(super::transport::Stream::Tcp(stream)),
            (Some((_, connector)), _) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|err| Error::other(format!("bad host name {host:?}: {err}")))?;
                let tls = connector.connect(name, stream).await.map_err(|err| {
                    Error::Protocol(format!("TLS handshake with {addr} failed: {err}"))
                })?;
                Ok(super::transport::Stream::Tls(Box::new(tls.into())))
            }
            (None, _) => Err(Error::other(format!(
                "refusing plain TCP to {addr}: give this program a certificate \
                 ({TLS_CERT_ENV}, {TLS_KEY_ENV}, {TLS_CA_ENV}) or choose unauthenticated plain \
                 TCP explicitly with {TRANSPORT_ENV}=tcp"
            ))),
        }
    }
}

fn tls_config(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<(TlsAcceptor, TlsConnector)> {
    let pem_error = |what: &str, env: &str, err: &dyn std::fmt::Display| {
        Error::other(format!("cannot read the TLS {what} (from {env}): {err}"))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<std::result::Result<_, _>>()
        .map_err(|err| pem_error("certificate", TLS_CERT_ENV, &err))?;
    let key_der =
        PrivateKeyDer::from_pem_slice(key).map_err(|err| pem_error("key", TLS_KEY_ENV, &err))?;
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca)
        .collect::<std::result::Result<_, _>>()
        .map_err(|err| pem_error("CA", TLS_CA_ENV, &err))?;
    for ca_cert in cas {
        roots
            .add(ca_cert)
            .map_err(|err| pem_error("CA", TLS_CA_ENV, &err))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots);
    let peers = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|err| Error::other(format!("bad TLS CA (from {TLS_CA_ENV}): {err}")))?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_client_cert_verifier(peers)
                .with_single_cert(chain.clone(), key_der.clone_key())
        })
        .map_err(|err| Error::other(format!("bad TLS certificate or key: {err}")))?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::other(format!("TLS setup failed: {err}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|err| Error::other(format!("bad TLS certificate or key: {err}")))?;
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}
