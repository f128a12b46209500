//! Exponential histograms: sparse buckets that deltas of different scales add into, exposed as
//! classic buckets at their own boundaries.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, ExponentialHistogramDataPoint,
};

use super::convert::{DataPoint, Expansion, PointInput};
use super::cumulative::{accumulate, add_sums};
use super::render::histogram_series;

/// An exponential histogram with sparse buckets, so deltas of different scales can be added.
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialBuckets {
    scale: i32,
    zero_threshold: f64,
    zero_count: u64,
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    sum: Option<f64>,
    count: u64,
}

fn sparse(buckets: Option<&Buckets>) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    if let Some(buckets) = buckets {
        for (position, count) in buckets.bucket_counts.iter().enumerate() {
            if *count > 0 {
                let index = buckets.offset.saturating_add(position as i32);
                *out.entry(index).or_insert(0) += count;
            }
        }
    }
    out
}

fn downscale(buckets: &BTreeMap<i32, u64>, by: i32) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    for (index, count) in buckets {
        // An arithmetic shift floors, which is how indexes merge at a lower scale.
        *out.entry(index >> by.clamp(0, 31)).or_insert(0) += count;
    }
    out
}

impl ExponentialBuckets {
    /// The buckets of one point.
    fn of(point: &ExponentialHistogramDataPoint) -> ExponentialBuckets {
        ExponentialBuckets {
            scale: point.scale,
            zero_threshold: point.zero_threshold,
            zero_count: point.zero_count,
            positive: sparse(point.positive.as_ref()),
            negative: sparse(point.negative.as_ref()),
            sum: point.sum,
            count: point.count,
        }
    }

    fn rescale(&mut self, scale: i32) {
        if scale < self.scale {
            let by = self.scale - scale;
            self.positive = downscale(&self.positive, by);
            self.negative = downscale(&self.negative, by);
            self.scale = scale;
        }
    }

    /// Adds a delta, bringing both to the lower scale.
    pub(super) fn add(&mut self, mut delta: ExponentialBuckets) {
        let scale = self.scale.min(delta.scale);
        self.rescale(scale);
        delta.rescale(scale);
        for (index, count) in delta.positive {
            *self.positive.entry(index).or_insert(0) += count;
        }
        for (index, count) in delta.negative {
            *self.negative.entry(index).or_insert(0) += count;
        }
        self.zero_threshold = self.zero_threshold.max(delta.zero_threshold);
        self.zero_count += delta.zero_count;
        self.count += delta.count;
        self.sum = add_sums(self.sum, delta.sum);
    }

    /// Upper bound of bucket `index` at this scale: base^(index+1), base = 2^(2^-scale).
    fn upper_bound(&self, index: i32) -> f64 {
        ((f64::from(index) + 1.0) * (-f64::from(self.scale)).exp2()).exp2()
    }

    /// Classic buckets: (upper bound, count in the bucket) ascending, without `+Inf`. Negative
    /// buckets come first (bucket `i` holds [-base^(i+1), -base^i), bound -base^i), then the
    /// zero bucket (bound `zero_threshold`), then the positive ones.
    pub fn classic(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        if let (Some(first), Some(last)) = (
            self.negative.keys().next().copied(),
            self.negative.keys().next_back().copied(),
        ) {
            for index in (first..=last).rev() {
                let count = self.negative.get(&index).copied().unwrap_or(0);
                out.push((-self.upper_bound(index - 1), count));
            }
        }
        out.push((self.zero_threshold, self.zero_count));
        if let (Some(first), Some(last)) = (
            self.positive.keys().next().copied(),
            self.positive.keys().next_back().copied(),
        ) {
            for index in first..=last {
                let count = self.positive.get(&index).copied().unwrap_or(0);
                out.push((self.upper_bound(index), count));
            }
        }
        out
    }
}

impl DataPoint for ExponentialHistogramDataPoint {
    type Checked = ();

    fn check(&self, name: &str) -> Result<(), String> {
        if !(-10..=20).contains(&self.scale) {
            return Err(format!("{name}: scale {} is outside -10..=20", self.scale));
        }
        Ok(())
    }

    fn expand(&self, _checked: (), input: &PointInput<'_>) -> Expansion {
        let (buckets, accumulated) =
            accumulate(ExponentialBuckets::of(self), input.previous, input.delta);
        let classic = buckets.classic();
        let series = histogram_series(input, &classic, buckets.sum, buckets.count, &self.exemplars);
        (series, accumulated)
    }
}
