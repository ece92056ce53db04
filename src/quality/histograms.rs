//! The Prometheus side of the quality record: each ending's record is
//! observed into a few fleet-wide histograms and counters (labels: the
//! media kind and the direction, never the session), kept in atomics that
//! the worker writes and the exporter reads without blocking it.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::record::{KindSummary, Summary};

/// Upper bounds of the loss-ratio buckets (0 to 1).
pub const LOSS_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/// Upper bounds of the jitter buckets, seconds.
pub const JITTER_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/// Upper bounds of the round-trip-time buckets, seconds.
pub const RTT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];
/// Upper bounds of the WebRTC setup-time buckets, seconds.
pub const SETUP_BUCKETS: [f64; 10] = [0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];

/// The media kinds with loss, jitter and RTT (label `media`).
pub const KINDS: [&str; 2] = ["audio", "video"];
/// The directions (label `direction`): `in` what Janus received, `out`
/// what it sent.
pub const DIRECTIONS: [&str; 2] = ["in", "out"];

/// A histogram in atomics: observations per bucket (not cumulative, the
/// last slot above every bound) and their sum in `1 / scale` units.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    scale: f64,
    counts: [AtomicU64; N],
    over: AtomicU64,
    sum: AtomicU64,
}

/// A histogram as read: buckets as (upper bound, observations at or below
/// it) pairs ending with +Inf, the count and the sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N], scale: f64) -> Histogram<N> {
        Histogram {
            bounds,
            scale,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        match self.bounds.iter().position(|b| v <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        self.sum.fetch_add((v * self.scale).round() as u64, Relaxed);
    }

    /// Per bucket, not cumulative (the encoder wants them so), then +Inf.
    pub fn read(&self) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| (*b, c.load(Relaxed)))
            .collect();
        buckets.push((f64::INFINITY, self.over.load(Relaxed)));
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum: self.sum.load(Relaxed) as f64 / self.scale,
            buckets,
        }
    }
}

/// What `/metrics` shows of the quality records (see docs/metrics.md,
/// "Series"): indexed `[kind][direction]` like [`KINDS`] and [`DIRECTIONS`].
#[derive(Debug)]
pub struct QualityMetrics {
    pub loss: [[Histogram<9>; 2]; 2],
    pub jitter: [[Histogram<10>; 2]; 2],
    pub rtt: [Histogram<10>; 2],
    pub setup: Histogram<10>,
    pub ice_failures: AtomicU64,
    pub dtls_failures: AtomicU64,
    pub relayed: AtomicU64,
}

impl Default for QualityMetrics {
    fn default() -> Self {
        let loss = || Histogram::new(&LOSS_BUCKETS, 1e6);
        let jitter = || Histogram::new(&JITTER_BUCKETS, 1e3);
        QualityMetrics {
            loss: [[loss(), loss()], [loss(), loss()]],
            jitter: [[jitter(), jitter()], [jitter(), jitter()]],
            rtt: [
                Histogram::new(&RTT_BUCKETS, 1e3),
                Histogram::new(&RTT_BUCKETS, 1e3),
            ],
            setup: Histogram::new(&SETUP_BUCKETS, 1e3),
            ice_failures: AtomicU64::new(0),
            dtls_failures: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
        }
    }
}

impl QualityMetrics {
    /// Observes one ending's record: per media kind its loss ratios, its
    /// jitter's and its RTT's 95th percentiles; the setup time of a
    /// session that came up; its failures; whether it was relayed.
    pub fn observe(&self, q: &Summary) {
        for (k, kind) in [&q.media.audio, &q.media.video].into_iter().enumerate() {
            let Some(kind) = kind else {
                continue;
            };
            self.observe_kind(k, kind);
        }
        if let Some(ms) = q.webrtc.setup_ms {
            self.setup.observe(ms as f64 / 1e3);
        }
        self.ice_failures
            .fetch_add(u64::from(q.webrtc.ice_failed), Relaxed);
        self.dtls_failures
            .fetch_add(u64::from(q.webrtc.dtls_failed), Relaxed);
        if q.webrtc.relay {
            self.relayed.fetch_add(1, Relaxed);
        }
    }

    fn observe_kind(&self, k: usize, kind: &KindSummary) {
        for (d, dir) in [&kind.inbound, &kind.outbound].into_iter().enumerate() {
            if let Some(loss) = dir.loss {
                self.loss[k][d].observe(loss);
            }
            if let Some(j) = dir.jitter_ms {
                self.jitter[k][d].observe(j.p95 as f64 / 1e3);
            }
        }
        if let Some(rtt) = kind.rtt_ms {
            self.rtt[k].observe(rtt.p95 as f64 / 1e3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::{Direction, KindSummary, MediaSummary, Percentiles, WebRtcSummary};

    #[test]
    fn an_ending_lands_in_its_buckets() {
        let m = QualityMetrics::default();
        let p = |v| Percentiles {
            p50: v,
            p95: v,
            max: v,
        };
        let audio = KindSummary {
            inbound: Direction {
                loss: Some(0.033),
                jitter_ms: Some(p(9)),
                ..Direction::default()
            },
            outbound: Direction {
                loss: Some(0.0),
                ..Direction::default()
            },
            rtt_ms: Some(p(60)),
            ..KindSummary::default()
        };
        m.observe(&Summary {
            webrtc: WebRtcSummary {
                up: true,
                setup_ms: Some(412),
                ice_failed: 1,
                relay: true,
                ..WebRtcSummary::default()
            },
            media: MediaSummary {
                audio: Some(audio),
                ..MediaSummary::default()
            },
            ..Summary::default()
        });
        // No media at all: only the counters move (none here).
        m.observe(&Summary::default());
        let loss = m.loss[0][0].read();
        assert_eq!(loss.count, 1);
        assert_eq!(loss.buckets[5], (0.05, 1), "0.033 is in le=0.05");
        assert!((loss.sum - 0.033).abs() < 1e-9);
        assert_eq!(m.loss[0][1].read().buckets[0], (0.001, 1));
        assert_eq!(m.jitter[0][0].read().buckets[3], (0.01, 1));
        assert_eq!(m.jitter[0][1].read().count, 0);
        assert_eq!(m.rtt[0].read().buckets[4], (0.1, 1));
        assert_eq!(m.loss[1][0].read().count, 0, "no video");
        let setup = m.setup.read();
        assert_eq!(setup.buckets[3], (0.5, 1));
        assert_eq!(setup.sum, 0.412);
        assert_eq!(m.ice_failures.load(Relaxed), 1);
        assert_eq!(m.relayed.load(Relaxed), 1);
        assert_eq!(m.setup.read().buckets.last(), Some(&(f64::INFINITY, 0)));
    }
}
