//! The `distributor` section: the receivers and the request limits. It lives with the config,
//! not with the distributor, so that the distributor does not depend on the receivers that
//! depend on it.

use serde::{Deserialize, Serialize};

use crate::distributor::DistributorLimits;
use crate::receiver::ReceiversConfig;

/// The `distributor` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorConfig {
    /// Which receivers listen, and on which address.
    pub receivers: ReceiversConfig,
    /// Largest request accepted, in bytes, after decompression. Larger requests get
    /// 413 / RESOURCE_EXHAUSTED. The OpenTelemetry SDKs batch 512 spans by default, well under this.
    pub max_request_bytes: usize,
    /// Request bytes being decoded and written at once across all receivers. Past it,
    /// requests are refused with 429 / RESOURCE_EXHAUSTED so memory stays bounded; clients retry.
    pub max_inflight_bytes: usize,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        DistributorConfig {
            receivers: ReceiversConfig::default(),
            max_request_bytes: 16 * 1024 * 1024,
            max_inflight_bytes: 256 * 1024 * 1024,
        }
    }
}

impl DistributorConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.max_request_bytes == 0 {
            return Err(("max_request_bytes".into(), "must be positive".into()));
        }
        if self.max_inflight_bytes < self.max_request_bytes {
            return Err((
                "max_inflight_bytes".into(),
                format!(
                    "must be at least max_request_bytes ({})",
                    self.max_request_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The limits the distributor enforces.
    pub fn limits(&self) -> DistributorLimits {
        DistributorLimits {
            max_request_bytes: self.max_request_bytes,
            max_inflight_bytes: self.max_inflight_bytes,
        }
    }
}
