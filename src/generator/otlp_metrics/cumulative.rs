//! Delta temporality turned into cumulative series: the running totals of delta series, and
//! the rule that holds back points not newer than the last of their series (a repeated delta
//! would otherwise count twice).

use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;

use super::exponential::ExponentialBuckets;
use super::Converter;
use crate::generator::remote_write::Label;

/// A delta series' running total.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Accumulated {
    /// A sum's total.
    Number(f64),
    /// A classic histogram's totals.
    Histogram(HistogramTotal),
    /// An exponential histogram's totals.
    Exponential(ExponentialBuckets),
}

/// A classic histogram's counts per bucket of `bounds` (the last one `+Inf`), sum and count.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct HistogramTotal {
    /// Upper bounds, without `+Inf`.
    pub(super) bounds: Vec<f64>,
    /// Count in each bucket (not cumulative), one more than `bounds`.
    pub(super) counts: Vec<u64>,
    /// Sum of the values, when the points carry one.
    pub(super) sum: Option<f64>,
    /// Number of values.
    pub(super) count: u64,
}

/// A running total of one kind of delta point.
pub(super) trait RunningTotal: Clone {
    /// The total so far, if `accumulated` is of this kind.
    fn of(accumulated: &Accumulated) -> Option<&Self>;
    /// This total with `delta` added.
    fn plus(&self, delta: Self) -> Self;
    /// The total, to remember.
    fn into_accumulated(self) -> Accumulated;
}

/// The [`RunningTotal`] items that tie a total to its [`Accumulated`] variant.
macro_rules! stored_as {
    ($variant:ident) => {
        fn of(accumulated: &Accumulated) -> Option<&Self> {
            match accumulated {
                Accumulated::$variant(total) => Some(total),
                _ => None,
            }
        }

        fn into_accumulated(self) -> Accumulated {
            Accumulated::$variant(self)
        }
    };
}

impl RunningTotal for f64 {
    stored_as!(Number);

    fn plus(&self, delta: f64) -> f64 {
        self + delta
    }
}

impl RunningTotal for HistogramTotal {
    stored_as!(Histogram);

    /// A delta with other bounds restarts the series.
    fn plus(&self, delta: HistogramTotal) -> HistogramTotal {
        if self.bounds != delta.bounds {
            return delta;
        }
        HistogramTotal {
            counts: self
                .counts
                .iter()
                .zip(&delta.counts)
                .map(|(left, right)| left + right)
                .collect(),
            sum: add_sums(self.sum, delta.sum),
            count: self.count + delta.count,
            bounds: delta.bounds,
        }
    }
}

impl RunningTotal for ExponentialBuckets {
    stored_as!(Exponential);

    fn plus(&self, delta: ExponentialBuckets) -> ExponentialBuckets {
        let mut total = self.clone();
        total.add(delta);
        total
    }
}

/// What a point exposes and what its series remembers: for a delta point, the point added to
/// its series' running total (`previous`, when of the same kind; otherwise the point starts
/// one); a cumulative point as it is, remembering nothing.
pub(super) fn accumulate<Total: RunningTotal>(
    point: Total,
    previous: Option<&Accumulated>,
    delta: bool,
) -> (Total, Option<Accumulated>) {
    if !delta {
        return (point, None);
    }
    let total = match previous.and_then(Total::of) {
        Some(previous) => previous.plus(point),
        None => point,
    };
    (total.clone(), Some(total.into_accumulated()))
}

/// Two optional sums added; when one is missing, the other.
pub(super) fn add_sums(left: Option<f64>, right: Option<f64>) -> Option<f64> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left + right),
        (left, right) => left.or(right),
    }
}

/// Whether a temporality is delta; unspecified is refused.
pub(super) fn temporality(value: i32) -> Result<bool, String> {
    match AggregationTemporality::try_from(value) {
        Ok(AggregationTemporality::Delta) => Ok(true),
        Ok(AggregationTemporality::Cumulative) => Ok(false),
        _ => Err(format!(
            "aggregation temporality {value} is neither delta nor cumulative"
        )),
    }
}

impl Converter {
    /// Whether a point is newer than the last of its series (the remote-write timestamp
    /// guard's rule, and for deltas: not a repeat); counts it as held back if not.
    pub(super) fn is_newer(
        &mut self,
        key: &[Label],
        time_ms: i64,
        delta_time: u64,
        delta: bool,
    ) -> bool {
        let newer = match self.tracked.get(key) {
            Some(tracked) if delta && tracked.accumulated.is_some() => {
                delta_time > tracked.delta_time && time_ms > tracked.last_ms
            }
            Some(tracked) => time_ms > tracked.last_ms,
            None => true,
        };
        if !newer {
            self.points_held_back += 1;
        }
        newer
    }

    /// The running total of `key`'s delta series, if it has one.
    pub(super) fn accumulated(&self, key: &[Label]) -> Option<&Accumulated> {
        self.tracked
            .get(key)
            .and_then(|tracked| tracked.accumulated.as_ref())
    }
}
