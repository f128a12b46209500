//! Gauge and sum points, classic histogram points and summary points: what each checks and the
//! series each becomes (exponential histograms are in `exponential`).

use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
};

use super::convert::{exemplar_of, DataPoint, Expansion, PointInput};
use super::cumulative::{accumulate, HistogramTotal};
use super::render::{histogram_series, summary_series, Expanded};

impl DataPoint for NumberDataPoint {
    /// The point's value.
    type Checked = f64;

    fn check(&self, name: &str) -> Result<f64, String> {
        match self.value {
            Some(number_data_point::Value::AsDouble(value)) => Ok(value),
            Some(number_data_point::Value::AsInt(value)) => Ok(value as f64),
            None => Err(format!("{name}: a data point has no value")),
        }
    }

    fn expand(&self, value: f64, input: &PointInput<'_>) -> Expansion {
        let (value, accumulated) = accumulate(value, input.previous, input.delta);
        let series = vec![Expanded {
            labels: input.key.to_vec(),
            value,
            exemplars: self.exemplars.iter().filter_map(exemplar_of).collect(),
        }];
        (series, accumulated)
    }
}

impl DataPoint for HistogramDataPoint {
    type Checked = ();

    fn check(&self, name: &str) -> Result<(), String> {
        let bounds = &self.explicit_bounds;
        if !self.bucket_counts.is_empty() && self.bucket_counts.len() != bounds.len() + 1 {
            return Err(format!(
                "{name}: {} bucket counts for {} explicit bounds, expected {}",
                self.bucket_counts.len(),
                bounds.len(),
                bounds.len() + 1
            ));
        }
        if bounds.iter().any(|bound| bound.is_nan())
            || bounds.windows(2).any(|pair| pair[0] >= pair[1])
        {
            return Err(format!(
                "{name}: explicit bounds are not strictly increasing"
            ));
        }
        Ok(())
    }

    fn expand(&self, _checked: (), input: &PointInput<'_>) -> Expansion {
        let mut counts = self.bucket_counts.clone();
        counts.resize(self.explicit_bounds.len() + 1, 0);
        let point = HistogramTotal {
            bounds: self.explicit_bounds.clone(),
            counts,
            sum: self.sum,
            count: self.count,
        };
        let (total, accumulated) = accumulate(point, input.previous, input.delta);
        // The last count (`+Inf`) has no bound: the series' `+Inf` bucket is the count.
        let buckets: Vec<(f64, u64)> = total
            .bounds
            .iter()
            .copied()
            .zip(total.counts.iter().copied())
            .collect();
        let series = histogram_series(input, &buckets, total.sum, total.count, &self.exemplars);
        (series, accumulated)
    }
}

impl DataPoint for SummaryDataPoint {
    type Checked = ();

    fn check(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    fn expand(&self, _checked: (), input: &PointInput<'_>) -> Expansion {
        let series = summary_series(input, &self.quantile_values, self.sum, self.count);
        (series, None)
    }
}
