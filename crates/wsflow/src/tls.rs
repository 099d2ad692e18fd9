//! `wss://` over rustls (feature `rustls`), for clients and servers on both runtimes.
//!
//! The crypto provider is chosen explicitly (ring) in every config built here, so no user ever
//! meets rustls' "no process-level CryptoProvider" panic. ALPN offers and accepts `http/1.1`.
//! TLS runs over the same transport the driver uses (plain TCP, or a proxy tunnel), through
//! tokio-rustls on tokio and futures-rustls on async-io.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::crypto::ring::default_provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::Error;
use crate::runtime::{Runtime, Transport};

pub use rustls;

fn tls_error(message: impl Into<String>) -> Error {
    Error::Tls(message.into())
}

/// TLS options of a client.
///
/// By default the server's certificate is checked against the webpki roots (Mozilla's list).
/// Extra roots (a private CA, a self-signed test certificate) can be added, or a whole
/// `rustls::ClientConfig` given (client certificates, custom verification).
///
/// ```
/// use wsflow::TlsClientConfig;
///
/// let tls = TlsClientConfig::default();
/// # let _ = tls;
/// ```
#[derive(Clone, Debug, Default)]
pub struct TlsClientConfig {
    extra_roots: Vec<CertificateDer<'static>>,
    custom: Option<Arc<rustls::ClientConfig>>,
}

impl TlsClientConfig {
    /// Trusts the certificates of a PEM file's content (one or more `CERTIFICATE` blocks) in
    /// addition to the webpki roots.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|err| tls_error(format!("invalid PEM certificate: {err}")))?;
            self.extra_roots.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(tls_error("no CERTIFICATE block in the PEM data"));
        }
        Ok(self)
    }

    /// Uses a complete rustls client config as given (its ALPN protocols are kept; set
    /// `http/1.1` there if the server requires ALPN).
    pub fn with_rustls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.custom = Some(config);
        self
    }

    pub(crate) fn build(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(custom) = &self.custom {
            return Ok(custom.clone());
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &self.extra_roots {
            roots.add(cert.clone()).map_err(|err| {
                tls_error(format!("cannot trust the extra root certificate: {err}"))
            })?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| tls_error(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// TLS options of a server: its certificate chain and key, or a whole rustls server config.
#[derive(Clone, Debug)]
pub struct TlsServerConfig {
    config: Arc<rustls::ServerConfig>,
}

impl TlsServerConfig {
    /// A server presenting the certificate chain (PEM, leaf first) with its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<_, _>>()
            .map_err(|err| tls_error(format!("invalid PEM certificate chain: {err}")))?;
        if chain.is_empty() {
            return Err(tls_error("no CERTIFICATE block in the certificate chain"));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|err| tls_error(format!("invalid PEM private key: {err}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| tls_error(err.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|err| tls_error(format!("the key does not match the certificate: {err}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Reads the chain and key from PEM files.
    pub fn from_pem_files(
        chain: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<Self, Error> {
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|err| tls_error(format!("cannot read {}: {err}", path.display())))
        };
        Self::from_pem(&read(chain.as_ref())?, &read(key.as_ref())?)
    }

    /// Uses a complete rustls server config as given.
    pub fn from_rustls_config(config: Arc<rustls::ServerConfig>) -> Self {
        Self { config }
    }
}

/// A transport seen as an I/O object by tokio-rustls or futures-rustls.
struct DynIo(Box<dyn Transport>);

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for DynIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(self.0.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncWrite for DynIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

impl futures_io::AsyncRead for DynIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for DynIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, bufs)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// Runs the client side of a TLS handshake over `io` for `host`.
pub(crate) async fn connect(
    io: Box<dyn Transport>,
    config: Arc<rustls::ClientConfig>,
    host: &str,
    runtime: Runtime,
) -> Result<Box<dyn Transport>, Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| tls_error(format!("`{host}` is not a valid TLS server name")))?;
    let handshake_error =
        |err: io::Error| tls_error(format!("TLS handshake with {host} failed: {err}"));
    match runtime {
        #[cfg(feature = "tokio")]
        Runtime::Tokio => {
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, DynIo(io))
                .await
                .map_err(handshake_error)?;
            Ok(crate::rt_tokio::wrap(stream))
        }
        #[cfg(feature = "async-std")]
        Runtime::AsyncStd => {
            let stream = futures_rustls::TlsConnector::from(config)
                .connect(name, DynIo(io))
                .await
                .map_err(handshake_error)?;
            Ok(crate::rt_async_std::wrap(stream))
        }
    }
}

/// Runs the server side of a TLS handshake over `io`.
pub(crate) async fn accept(
    io: Box<dyn Transport>,
    config: &TlsServerConfig,
    runtime: Runtime,
) -> io::Result<Box<dyn Transport>> {
    match runtime {
        #[cfg(feature = "tokio")]
        Runtime::Tokio => {
            let stream = tokio_rustls::TlsAcceptor::from(config.config.clone())
                .accept(DynIo(io))
                .await?;
            Ok(crate::rt_tokio::wrap(stream))
        }
        #[cfg(feature = "async-std")]
        Runtime::AsyncStd => {
            let stream = futures_rustls::TlsAcceptor::from(config.config.clone())
                .accept(DynIo(io))
                .await?;
            Ok(crate::rt_async_std::wrap(stream))
        }
    }
}
