//! One listening endpoint: its config, shared by the receivers' sections, and what a receiver
//! needs to start serving on it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::distributor::Distributor;
use crate::server::{Listener, Security};

/// What every receiver starts with: where it pushes, how its listeners are secured, when to
/// stop, and the task set its servers run in.
pub struct Startup<'a> {
    pub distributor: &'a Arc<Distributor>,
    pub security: &'a Security,
    pub stop: &'a CancellationToken,
    pub tasks: &'a mut tokio::task::JoinSet<anyhow::Result<()>>,
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
