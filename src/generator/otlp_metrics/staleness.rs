//! Series that stop: Prometheus' stale marker, series ended by a point flagged "no recorded
//! value", and the sweep that ends series with no point for `staleness`.

use std::collections::BTreeMap;

use super::convert::Context;
use super::render::one_sample_series;
use super::{Converter, ExportOutcome};
use crate::generator::remote_write::{Label, TimeSeries};

/// Bits of Prometheus' staleness marker, a NaN that ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
pub(super) const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// Prometheus' stale marker.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// A series' stale marker at `time_ms`.
pub(super) fn stale_series(labels: Vec<Label>, time_ms: i64) -> TimeSeries {
    one_sample_series(labels, stale_nan(), time_ms, Vec::new())
}

impl Converter {
    /// Ends the series of `key` with stale markers at `time_ms` (or just after their last
    /// sample) and forgets it.
    pub(super) fn end(&mut self, key: &[Label], time_ms: i64, context: &mut Context<'_>) {
        if let Some(tracked) = self.tracked.remove(key) {
            self.active_series -= tracked.emitted.len();
            self.series_stale += tracked.emitted.len() as u64;
            let at = time_ms.max(tracked.last_ms.saturating_add(1));
            for (labels, _) in tracked.emitted {
                context.outcome.series.push(stale_series(labels, at));
            }
        }
    }

    /// Ends every series with no point since `now_ms - staleness_ms`; returns their stale
    /// markers.
    pub fn sweep(&mut self, now_ms: i64, staleness_ms: i64) -> Vec<TimeSeries> {
        let expired: Vec<Vec<Label>> = self
            .tracked
            .iter()
            .filter(|(_, tracked)| now_ms - tracked.seen_ms >= staleness_ms)
            .map(|(key, _)| key.clone())
            .collect();
        let mut outcome = ExportOutcome::default();
        let mut context = Context {
            common: BTreeMap::new(),
            now_ms,
            outcome: &mut outcome,
        };
        for key in expired {
            self.end(&key, now_ms, &mut context);
        }
        outcome.series
    }
}
