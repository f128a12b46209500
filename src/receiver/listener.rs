//! One listening endpoint: its config, shared by the receivers' sections, and what a receiver
//! needs to start serving on it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::distributor::Distributor;
use crate::server::{Listener, Security};

/// What every receiver starts with: where it pushes, how its listeners are secured, when to
/// stop, and the task set its servers run in; and the HTTP addresses receivers share.
pub struct Startup<'a> {
    pub distributor: &'a Arc<Distributor>,
    pub security: &'a Security,
    pub stop: &'a CancellationToken,
    pub tasks: &'a mut tokio::task::JoinSet<anyhow::Result<()>>,
    /// Routes added with [`Startup::share`], bound by [`Startup::serve_shared`].
    shared: Vec<SharedAddress>,
}

/// One HTTP address that several receivers serve routes on.
struct SharedAddress {
    endpoint: String,
    /// The receivers' names, each once, for the log and the bind error.
    names: Vec<String>,
    router: axum::Router,
}

impl<'a> Startup<'a> {
    /// A startup with no shared address yet.
    pub fn new(
        distributor: &'a Arc<Distributor>,
        security: &'a Security,
        stop: &'a CancellationToken,
        tasks: &'a mut tokio::task::JoinSet<anyhow::Result<()>>,
    ) -> Startup<'a> {
        Startup {
            distributor,
            security,
            stop,
            tasks,
            shared: Vec::new(),
        }
    }
}

impl Startup<'_> {
    /// Binds a TCP listener for `what` on `endpoint` and logs that it listens.
    pub async fn bind(&self, what: &str, endpoint: &str) -> anyhow::Result<Listener> {
        let listener = Listener::bind(what, endpoint, self.security).await?;
        tracing::info!(endpoint, receiver = what, "receiver listening");
        Ok(listener)
    }

    /// Serves `router` on `listener` until the receivers stop.
    pub fn serve(&mut self, listener: Listener, router: axum::Router) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            listener
                .serve(router, async move { stop.cancelled().await })
                .await
        });
    }

    /// Adds `router` to the one HTTP listener on `endpoint` that receivers share (Zipkin v2
    /// and v1 on the Zipkin port), bound by [`Startup::serve_shared`] once every receiver has
    /// added its routes. The routers' paths must not overlap and at most one may have a
    /// fallback (axum refuses to merge them otherwise).
    pub fn share(&mut self, what: &str, endpoint: &str, router: axum::Router) {
        match self
            .shared
            .iter_mut()
            .find(|shared| shared.endpoint == endpoint)
        {
            Some(shared) => {
                if !shared.names.iter().any(|name| name == what) {
                    shared.names.push(what.to_string());
                }
                shared.router = std::mem::take(&mut shared.router).merge(router);
            }
            None => self.shared.push(SharedAddress {
                endpoint: endpoint.to_string(),
                names: vec![what.to_string()],
                router,
            }),
        }
    }

    /// [`Startup::share`] of the router `router` builds, when `enabled`.
    pub fn share_when(
        &mut self,
        enabled: bool,
        what: &str,
        endpoint: &str,
        router: impl FnOnce(Arc<Distributor>) -> axum::Router,
    ) {
        if enabled {
            let built = router(Arc::clone(self.distributor));
            self.share(what, endpoint, built);
        }
    }

    /// Binds and serves every address added with [`Startup::share`].
    pub async fn serve_shared(&mut self) -> anyhow::Result<()> {
        for shared in std::mem::take(&mut self.shared) {
            let listener = self
                .bind(&shared.names.join(" and "), &shared.endpoint)
                .await?;
            self.serve(listener, shared.router);
        }
        Ok(())
    }
}

/// One listening receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Whether this receiver listens at all.
    pub enabled: bool,
    /// `address:port` to listen on; `0.0.0.0:<port>` to accept from other machines.
    pub endpoint: String,
}

/// A receiver as written in the config file: what is not written comes from the receiver's
/// default, except `enabled`, which a listed receiver has unless it says `enabled: false`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerInput {
    enabled: Option<bool>,
    endpoint: Option<String>,
}

impl ListenerInput {
    /// The receiver's settings: `written` over `default`, or `default` when not listed.
    pub fn resolve(written: Option<ListenerInput>, default: ListenerConfig) -> ListenerConfig {
        match written {
            None => default,
            Some(written) => ListenerConfig {
                enabled: written.enabled.unwrap_or(true),
                endpoint: written.endpoint.unwrap_or(default.endpoint),
            },
        }
    }
}
