//! Latency samples and the few statistics the bench binaries report.

use std::time::Duration;

use serde_json::{json, Value};

/// Latencies of one kind of call, in seconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// Record one call's duration.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentile (p in 0..=100), in milliseconds.
    pub fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1] * 1e3
    }

    /// The slowest, in milliseconds.
    pub fn max(&self) -> f64 {
        self.pct(100.0)
    }

    /// Total seconds.
    pub fn sum(&self) -> f64 {
        self.0.iter().sum()
    }

    /// Operations per second if done back to back.
    pub fn rate(&self) -> f64 {
        self.0.len() as f64 / self.sum()
    }

    /// Samples `from..to`, or none if there are fewer.
    pub fn slice(&self, from: usize, to: usize) -> Samples {
        Samples(
            self.0
                .get(from..to)
                .map(<[f64]>::to_vec)
                .unwrap_or_default(),
        )
    }

    /// Count, p50, p99, max (ms) and the back-to-back rate.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.0.len(),
            "p50_ms": round(self.pct(50.0)),
            "p99_ms": round(self.pct(99.0)),
            "max_ms": round(self.max()),
            "per_second": round(self.rate()),
        })
    }
}

/// Element-wise sum of several sample lists of equal length.
pub fn combine(parts: &[&Samples]) -> Samples {
    let len = parts[0].0.len();
    Samples(
        (0..len)
            .map(|i| parts.iter().map(|p| p.0[i]).sum())
            .collect(),
    )
}

/// The median (upper middle for even lengths); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Three decimals, for reports.
pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples((1..=100).map(|i| f64::from(i) / 1e3).collect());
        assert_eq!(s.pct(50.0), 50.0);
        assert_eq!(s.pct(99.0), 99.0);
        assert_eq!(s.max(), 100.0);
        assert!(Samples::default().pct(50.0).is_nan());
    }

    #[test]
    fn median_and_combine() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        let a = Samples(vec![1.0, 2.0]);
        let b = Samples(vec![0.5, 0.5]);
        assert_eq!(combine(&[&a, &b]).0, vec![1.5, 2.5]);
    }
}
