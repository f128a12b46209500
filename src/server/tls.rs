//! TLS for every TCP listener: rustls (the aws-lc-rs provider reqwest already builds) with
//! HTTP/2 and HTTP/1.1 offered by ALPN, so gRPC clients and browsers both negotiate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The `server.tls` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate, followed by its intermediates.
    pub cert_file: String,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

impl TlsConfig {
    /// Whether TLS is on (a certificate is named).
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }

    /// Both files or neither; the key at fault and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match (self.cert_file.is_empty(), self.key_file.is_empty()) {
            (false, true) => Err((
                "key_file".into(),
                "cert_file is set, key_file is not".into(),
            )),
            (true, false) => Err((
                "cert_file".into(),
                "key_file is set, cert_file is not".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A certificate or key that cannot serve TLS, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS certificate file {path} holds no PEM certificate{detail}")]
    NoCertificate { path: String, detail: String },
    #[error("TLS key file {path} holds no PEM private key: {detail}")]
    NoKey { path: String, detail: String },
    #[error("TLS certificate {cert_file} and key {key_file} cannot be used together: {source}")]
    Unusable {
        cert_file: String,
        key_file: String,
        source: rustls::Error,
    },
}

fn read(what: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_string(),
        source,
    })
}

/// Loads the certificate chain and key of `config` into an acceptor.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read("certificate", &config.cert_file)?;
    let mut certificates = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(&cert_pem) {
        let certificate = certificate.map_err(|error| TlsError::NoCertificate {
            path: config.cert_file.clone(),
            detail: format!(": {error}"),
        })?;
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: config.cert_file.clone(),
            detail: String::new(),
        });
    }
    let key_pem = read("key", &config.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::NoKey {
        path: config.key_file.clone(),
        detail: error.to_string(),
    })?;
    let unusable = |source| TlsError::Unusable {
        cert_file: config.cert_file.clone(),
        key_file: config.key_file.clone(),
        source,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(unusable)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server_config)))
}

/// A client has this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// A listener whose connections come out TLS-established. Handshakes run in their own tasks
/// so a slow or silent client never holds up the others.
pub struct TlsListener {
    established: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_address: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp`.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local_address = tcp.local_addr()?;
        let (sender, established) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(accept_loop(tcp, acceptor, sender));
        Ok(TlsListener {
            established,
            local_address,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    sender: tokio::sync::mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "accepting a TLS connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            match handshake {
                Ok(Ok(established)) => {
                    let _ = sender.send((established, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
                Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.established.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_at_fault_are_named() {
        let directory = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
        };
        let error = acceptor(&missing).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
        let not_pem = directory.path().join("cert.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let config = TlsConfig {
            cert_file: not_pem.display().to_string(),
            key_file: not_pem.display().to_string(),
        };
        let error = acceptor(&config).err().unwrap().to_string();
        assert!(
            error.contains("no PEM certificate") && error.contains("cert.pem"),
            "{error}"
        );
        assert!(TlsConfig {
            cert_file: "a".into(),
            key_file: String::new()
        }
        .validate()
        .is_err());
    }
}
