//! What every TCP listener shares: optional TLS and optional authentication in front of its
//! router. The API and UI port, the gRPC API port and every receiver are served through
//! [`Listener::serve`], so none of them can be left open by accident.

pub mod auth;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;

pub use auth::{AuthConfig, Authenticator, BasicUser};
pub use tls::TlsConfig;

/// The authentication and TLS every listener serves under, built once at startup.
#[derive(Clone, Default)]
pub struct Security {
    /// Present when at least one credential is configured.
    pub auth: Option<Arc<Authenticator>>,
    /// Present when `server.tls` names a certificate and key.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Credentials or certificates that could not be loaded at startup.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Auth(#[from] auth::AuthLoadError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

impl Security {
    /// Reads the credential files and the certificate and key named by `server.auth` and
    /// `server.tls`.
    pub fn load(auth: &AuthConfig, tls: &TlsConfig) -> Result<Security, SecurityError> {
        let auth = Authenticator::load(auth)?.map(Arc::new);
        let tls = match tls.enabled() {
            true => Some(tls::acceptor(tls)?),
            false => None,
        };
        Ok(Security { auth, tls })
    }

    /// `https` with TLS, else `http`: for the addresses vivace logs.
    pub fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }
}

/// A bound TCP listener and the security its connections are served under.
pub struct Listener {
    tcp: tokio::net::TcpListener,
    security: Security,
}

impl Listener {
    /// Wraps a bound listener.
    pub fn new(tcp: tokio::net::TcpListener, security: Security) -> Listener {
        Listener { tcp, security }
    }

    /// Binds `address` for `what` (named in the error when the port cannot be had).
    pub async fn bind(what: &str, address: &str, security: &Security) -> anyhow::Result<Listener> {
        let tcp =
            anyhow::Context::with_context(tokio::net::TcpListener::bind(address).await, || {
                format!("cannot listen for {what} on {address}")
            })?;
        Ok(Listener::new(tcp, security.clone()))
    }

    /// Serves `router` (HTTP/1.1 and HTTP/2, so gRPC too) behind authentication and TLS when
    /// they are configured, until `shutdown` resolves.
    pub async fn serve(
        self,
        router: axum::Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_wrapped(router, |protected| protected, shutdown)
            .await
    }

    /// As [`Listener::serve`], with `outer` wrapped around the authenticated router: what
    /// `outer` adds sees requests before authentication (a CORS preflight, which by the
    /// standard carries no credentials).
    pub async fn serve_wrapped(
        self,
        router: axum::Router,
        outer: impl FnOnce(axum::Router) -> axum::Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let protected = match &self.security.auth {
            Some(authenticator) => auth::protect(router, Arc::clone(authenticator)),
            None => router,
        };
        let router = outer(protected);
        match self.security.tls {
            None => {
                // As tonic's own server does: gRPC's small frames should not wait for Nagle.
                let tcp = self.tcp.tap_io(|stream| {
                    let _ = stream.set_nodelay(true);
                });
                axum::serve(
                    tcp,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await?;
            }
            Some(acceptor) => {
                let listener = tls::TlsListener::new(self.tcp, acceptor)?;
                axum::serve(listener, router.into_make_service())
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
        }
        Ok(())
    }
}
