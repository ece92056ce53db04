//! A fixed-size sketch of a series of small integers (milliseconds, or
//! bitrate units), from which percentiles are read: 40 log-spaced buckets
//! of one byte each, plus the exact maximum. It never grows, whatever the
//! length of the call.
//!
//! Buckets: 0 to 7 exactly, then four per octave (8, 10, 12, 14, 16, 20,
//! ...) up to 2048: a value is known within 12.5 % (the reported value is
//! the middle of its bucket, never above the maximum). Values from 2048 up
//! share the last bucket; a percentile that falls there is reported as the
//! maximum.
//!
//! Counts are bytes: when one would pass 255, every count is halved
//! (rounding up, so that no seen bucket empties). Halving keeps the
//! proportions between buckets, so percentiles stay where they were, within
//! one count of rounding per bucket.

/// Number of buckets.
pub const BUCKETS: usize = 40;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    counts: [u8; BUCKETS],
    max: u32,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            counts: [0; BUCKETS],
            max: 0,
        }
    }
}

/// Percentiles of a series, as the quality record writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
    pub max: u64,
}

/// The bucket of a value.
fn index(v: u64) -> usize {
    if v < 8 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // floor(log2(v)), >= 3
    let sub = ((v >> (e - 2)) & 3) as usize;
    (8 + (e - 3) * 4 + sub).min(BUCKETS - 1)
}

/// The lowest value of a bucket, and its width.
fn bounds(i: usize) -> (u64, u64) {
    if i < 8 {
        return (i as u64, 1);
    }
    let e = 3 + (i - 8) / 4;
    let sub = ((i - 8) % 4) as u64;
    ((4 + sub) << (e - 2), 1 << (e - 2))
}

impl Sketch {
    pub fn observe(&mut self, v: u64) {
        let i = index(v);
        if self.counts[i] == u8::MAX {
            for c in &mut self.counts {
                *c = c.div_ceil(2);
            }
        }
        self.counts[i] += 1;
        self.max = self.max.max(v.min(u64::from(u32::MAX)) as u32);
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| *c == 0)
    }

    /// The value at quantile `q` (0 < q <= 1): the middle of the bucket
    /// holding the sample of rank ceil(q * n), at most the maximum.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n: u64 = self.counts.iter().map(|c| u64::from(*c)).sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                let max = u64::from(self.max);
                if i == BUCKETS - 1 {
                    return Some(max);
                }
                let (lo, width) = bounds(i);
                return Some((lo + width / 2).min(max));
            }
        }
        Some(u64::from(self.max))
    }

    /// p50, p95 and the maximum, each multiplied by `unit`; None when
    /// nothing was observed.
    pub fn percentiles(&self, unit: u64) -> Option<Percentiles> {
        Some(Percentiles {
            p50: self.quantile(0.5)? * unit,
            p95: self.quantile(0.95)? * unit,
            max: u64::from(self.max) * unit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_in_order() {
        let mut last = 0;
        for v in 0..5000u64 {
            let i = index(v);
            assert!(i >= last, "{v}");
            last = i;
            if i < BUCKETS - 1 {
                let (lo, w) = bounds(i);
                assert!(
                    lo <= v && v < lo + w,
                    "{v} in bucket {i} = [{lo}, {})",
                    lo + w
                );
                // Within 12.5 % of the middle.
                let mid = lo + w / 2;
                assert!(mid.abs_diff(v) * 8 <= v.max(1), "{v}: {mid}");
            }
        }
        assert_eq!(index(2047), BUCKETS - 1);
        assert_eq!(bounds(BUCKETS - 1), (1792, 256));
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_by_rank() {
        let mut s = Sketch::default();
        assert_eq!(s.percentiles(1), None);
        for v in 1..=100u64 {
            s.observe(v);
        }
        // Rank 50 is the value 50, in [48, 56): reported 52; rank 95 is
        // 95, in [80, 96): 88.
        assert_eq!(
            s.percentiles(1),
            Some(Percentiles {
                p50: 52,
                p95: 88,
                max: 100
            })
        );
        // Never above the maximum.
        let mut one = Sketch::default();
        one.observe(9);
        assert_eq!(one.quantile(0.5), Some(9));
        // Above the range: the maximum.
        let mut big = Sketch::default();
        big.observe(5000);
        assert_eq!(
            big.percentiles(2),
            Some(Percentiles {
                p50: 10000,
                p95: 10000,
                max: 10000
            })
        );
    }

    #[test]
    fn halving_keeps_the_percentiles() {
        let mut s = Sketch::default();
        // A day of samples: 95 % at 2, 5 % at 40.
        for k in 0..86_400u64 {
            s.observe(if k % 20 == 0 { 40 } else { 2 });
        }
        assert_eq!(s.quantile(0.5), Some(2));
        assert_eq!(s.quantile(0.94), Some(2));
        // 40 is in [40, 48): its middle, 44, is above the maximum.
        assert_eq!(s.quantile(0.96), Some(40));
        assert_eq!(std::mem::size_of::<Sketch>(), 44);
    }
}
