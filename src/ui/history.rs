//! Samples of the generator's cumulative counters, kept per tenant every ten seconds for the
//! last hour, so the UI can show rates over a window from the difference between two samples.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Samples kept per tenant: one every ten seconds for an hour.
pub const MAX_SAMPLES: usize = 360;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// A sample taken at a known time.
pub trait Timed {
    /// When the sample was taken, milliseconds since the epoch.
    fn at_ms(&self) -> i64;
}

/// Each tenant's samples, oldest first, bounded per tenant.
pub struct History<T> {
    samples: Mutex<HashMap<String, VecDeque<Arc<T>>>>,
}

impl<T> Default for History<T> {
    fn default() -> Self {
        History {
            samples: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Timed> History<T> {
    pub fn push(&self, tenant: &str, sample: T) {
        let mut samples = self.samples.lock();
        let tenant_samples = samples.entry(tenant.to_string()).or_default();
        if tenant_samples.len() >= MAX_SAMPLES {
            tenant_samples.pop_front();
        }
        tenant_samples.push_back(Arc::new(sample));
    }

    /// Forgets the samples of tenants not in `tenants` (their series are gone).
    pub fn retain(&self, tenants: &[String]) {
        self.samples
            .lock()
            .retain(|tenant, _| tenants.contains(tenant));
    }

    /// `tenant`'s oldest sample taken at or after `since_ms`, if it is older than `before_ms`.
    pub fn baseline(&self, tenant: &str, since_ms: i64, before_ms: i64) -> Option<Arc<T>> {
        self.samples
            .lock()
            .get(tenant)?
            .iter()
            .find(|sample| sample.at_ms() >= since_ms)
            .filter(|sample| sample.at_ms() < before_ms)
            .cloned()
    }

    /// `tenant`'s samples taken at or after `since_ms`, oldest first.
    pub fn since(&self, tenant: &str, since_ms: i64) -> Vec<Arc<T>> {
        self.samples
            .lock()
            .get(tenant)
            .map(|samples| {
                samples
                    .iter()
                    .filter(|sample| sample.at_ms() >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}
