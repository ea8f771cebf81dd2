//! Summaries of samples: count, p50, p99, max (nearest-rank percentiles, no interpolation).

/// A summary of millisecond samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Nearest-rank percentile `q` (0..=1) of sorted `v`.
fn rank(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Summarises `v` (sorted here).
pub fn summary(mut v: Vec<f64>) -> Summary {
    v.sort_by(f64::total_cmp);
    Summary {
        n: v.len(),
        p50: rank(&v, 0.5),
        p99: rank(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

/// Median and max of a few samples.
pub fn median_max(v: &[f64]) -> (f64, f64) {
    let s = summary(v.to_vec());
    (s.p50, s.max)
}

/// A number for a table: one decimal below 100, none above.
pub fn fmt(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else if x.abs() < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = summary((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        let one = summary(vec![7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
    }
}
