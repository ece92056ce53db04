//! What a scrape answers: every series, read at scrape time from the same
//! atomics and tracker snapshot the Admin API `info` reads. A scrape costs
//! O(number of series): it never walks the sessions, never waits on the
//! worker beyond the instant it takes to copy the tracker's snapshot, and
//! never touches Janus.
//!
//! [`SERIES`] is the catalogue: every family with its type, labels, meaning
//! and the function that writes its samples, in the order of the
//! exposition. Tests check the exposition, docs/metrics.md and the Grafana
//! dashboard against it. A new family is one function here (it reads a
//! [`Scrape`] and writes through a [`Family`]) and one entry in [`SERIES`];
//! a function that writes nothing leaves its family out of the exposition
//! (`janus_core_*` before Janus 1.2 and 0.14).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use crate::bus::BusStats;
use crate::counters::{Counters, DURATION_BUCKETS, TYPE_SLOTS, TrackerSnapshot, type_label};
use crate::intake::{BULK, ChannelView};
use crate::quality::histograms::{DIRECTIONS, HistogramSnapshot, KINDS};
use crate::reason::Reason;
use crate::sinks::broker::ConnectionState;
use crate::sinks::{SinkShared, SinkStats};

/// What a scrape reads.
pub struct Sources {
    pub metrics: Arc<Counters>,
    pub sinks: Vec<Arc<SinkShared>>,
    pub bus: Arc<BusStats>,
    /// Whether `janus_events_notify_handlers` is in the process.
    pub bus_available: bool,
    /// The channel to the worker: depth, capacity, what it dropped.
    pub channel: Box<dyn Fn() -> ChannelView + Send + Sync>,
    /// Whether crash recovery (`general.state_dir`) is on.
    pub crash_state: bool,
    /// When the handler started (µs since the epoch).
    pub started_us: i64,
}

/// How a family is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
    /// A constant 1 whose labels carry the facts.
    Info,
}

/// Writes a family's samples from what a scrape read.
pub type Encode = fn(&Scrape<'_>, Family<'_, '_>) -> fmt::Result;

/// One family of series.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    /// As Prometheus stores it: counters end in `_total`, info in `_info`,
    /// a histogram's samples add `_bucket`, `_sum` and `_count`.
    pub name: &'static str,
    pub ty: Type,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub encode: Encode,
}

impl Series {
    /// The name without the suffix the encoder adds for the type.
    fn base(&self) -> &'static str {
        match self.ty {
            Type::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            Type::Info => self.name.strip_suffix("_info").unwrap_or(self.name),
            Type::Gauge | Type::Histogram => self.name,
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.ty {
            Type::Counter => MetricType::Counter,
            Type::Gauge => MetricType::Gauge,
            Type::Histogram => MetricType::Histogram,
            Type::Info => MetricType::Info,
        }
    }

    /// The sample names Prometheus stores for this family.
    pub fn sample_names(&self) -> Vec<String> {
        match self.ty {
            Type::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
            _ => vec![self.name.to_string()],
        }
    }
}

const fn s(
    name: &'static str,
    ty: Type,
    labels: &'static [&'static str],
    help: &'static str,
    encode: Encode,
) -> Series {
    Series {
        name,
        ty,
        labels,
        help,
        encode,
    }
}

use Type::{Counter, Gauge, Histogram, Info};

/// Every family, in the order of the exposition, with the function that
/// writes its samples.
pub const SERIES: &[Series] = &[
    // What happens in Janus, as lifecycleevh tracks it.
    s(
        "janus_info",
        Info,
        &["version", "server_name"],
        "The Janus this handler runs in, from its core started event.",
        janus_info,
    ),
    s(
        "janus_sessions_open",
        Gauge,
        &[],
        "Sessions created and not ended yet.",
        janus_sessions_open,
    ),
    s(
        "janus_sessions_created_total",
        Counter,
        &[],
        "Sessions created.",
        janus_sessions_created,
    ),
    s(
        "janus_sessions_ended_total",
        Counter,
        &["reason", "synthetic"],
        "Sessions ended, by the reason of their destroyed event, and whether lifecycleevh made that event (true) or Janus did (false).",
        janus_sessions_ended,
    ),
    s(
        "janus_session_duration_seconds",
        Histogram,
        &["reason"],
        "How long the sessions that ended lived (from created to the ending), by reason.",
        janus_session_duration_seconds,
    ),
    s(
        "janus_handles_open",
        Gauge,
        &["plugin"],
        "Handles attached to open sessions, by plugin.",
        janus_handles_open,
    ),
    s(
        "janus_transport_connections_open",
        Gauge,
        &["transport"],
        "Transport connections open (reported connected, not yet disconnected), by transport.",
        janus_transport_connections_open,
    ),
    s(
        "janus_core_sessions",
        Gauge,
        &[],
        "Sessions as Janus's core counts them, from its latest status update event (Janus >= 1.2 or 0.x >= 0.14 only; absent before).",
        janus_core_sessions,
    ),
    s(
        "janus_core_handles",
        Gauge,
        &[],
        "Handles as Janus's core counts them, from its latest status update event (Janus >= 1.2 or 0.x >= 0.14 only).",
        janus_core_handles,
    ),
    s(
        "janus_core_peerconnections",
        Gauge,
        &[],
        "PeerConnections as Janus's core counts them, from its latest status update event (Janus >= 1.2 or 0.x >= 0.14 only).",
        janus_core_peerconnections,
    ),
    // The handler's own health.
    s(
        "lifecycleevh_build_info",
        Info,
        &["version"],
        "The lifecycleevh build.",
        build_info,
    ),
    s(
        "lifecycleevh_start_time_seconds",
        Gauge,
        &[],
        "When the handler started (Unix time).",
        start_time_seconds,
    ),
    s(
        "lifecycleevh_events_received_total",
        Counter,
        &[],
        "Events Janus handed to the handler.",
        events_received,
    ),
    s(
        "lifecycleevh_events_processed_total",
        Counter,
        &["type"],
        "Events the worker took off the channel, by Janus event type (other: no known type, or not decodable).",
        events_processed,
    ),
    s(
        "lifecycleevh_events_dropped_total",
        Counter,
        &["where", "type"],
        "Events dropped before the worker saw them, by where (channel: the channel to the worker was at capacity) and type (media, plugins, webrtc, external; lifecycle: the worker was gone).",
        events_dropped,
    ),
    s(
        "lifecycleevh_events_forwarded_total",
        Counter,
        &[],
        "Events (Janus's and synthetic) taken by at least one sink.",
        events_forwarded,
    ),
    s(
        "lifecycleevh_events_suppressed_total",
        Counter,
        &[],
        "Events not forwarded because they repeat an ending already sent (duplicates and echoes).",
        events_suppressed,
    ),
    s(
        "lifecycleevh_decode_errors_total",
        Counter,
        &[],
        "Events that were not JSON objects of Janus's shape.",
        decode_errors,
    ),
    s(
        "lifecycleevh_internal_errors_total",
        Counter,
        &[],
        "Panics caught inside the handler (each one a bug to report).",
        internal_errors,
    ),
    s(
        "lifecycleevh_channel_depth",
        Gauge,
        &[],
        "Events waiting in the channel between Janus's events thread and the worker.",
        channel_depth,
    ),
    s(
        "lifecycleevh_channel_capacity",
        Gauge,
        &[],
        "Capacity of that channel (general.channel_capacity).",
        channel_capacity,
    ),
    s(
        "lifecycleevh_tracker_duplicates_total",
        Counter,
        &[],
        "Second endings of sessions that had ended already (not forwarded).",
        tracker_duplicates,
    ),
    s(
        "lifecycleevh_tracker_unknown_sessions_total",
        Counter,
        &[],
        "Endings or events for sessions the tracker never saw created.",
        tracker_unknown_sessions,
    ),
    s(
        "lifecycleevh_tracker_evicted_total",
        Counter,
        &[],
        "Sessions dropped from tracking because general.max_sessions was reached.",
        tracker_evicted,
    ),
    s(
        "lifecycleevh_tracker_claimed_total",
        Counter,
        &[],
        "Sessions found claimed by another connection after theirs closed.",
        tracker_claimed,
    ),
    s(
        "lifecycleevh_tracker_claims_retracted_total",
        Counter,
        &[],
        "Of the claimed sessions, those whose reclaim timeout came after all (late), ending reclaim_expired.",
        tracker_claims_retracted,
    ),
    s(
        "lifecycleevh_sink_enabled",
        Gauge,
        &["sink"],
        "Whether the sink is fed (1) or paused through the Admin API (0).",
        sink_enabled,
    ),
    s(
        "lifecycleevh_sink_queue_depth",
        Gauge,
        &["sink"],
        "Events waiting in the sink's memory queue.",
        sink_queue_depth,
    ),
    s(
        "lifecycleevh_sink_queue_capacity",
        Gauge,
        &["sink"],
        "Capacity of the sink's memory queue (queue_size).",
        sink_queue_capacity,
    ),
    s(
        "lifecycleevh_sink_events_accepted_total",
        Counter,
        &["sink"],
        "Events the sink took (queued or spooled).",
        sink_events_accepted,
    ),
    s(
        "lifecycleevh_sink_events_delivered_total",
        Counter,
        &["sink"],
        "Events the sink delivered (a line written, a 2xx answer, a broker's confirmation).",
        sink_events_delivered,
    ),
    s(
        "lifecycleevh_sink_events_retried_total",
        Counter,
        &["sink"],
        "Events of failed attempts kept for another attempt.",
        sink_events_retried,
    ),
    s(
        "lifecycleevh_sink_events_dropped_total",
        Counter,
        &["sink", "cause"],
        "Events the sink lost, by cause (queue_full: its memory queue was full; given_up: not spooled and still failing after the retries or at shutdown).",
        sink_events_dropped,
    ),
    s(
        "lifecycleevh_sink_lifecycle_events_dropped_total",
        Counter,
        &["sink"],
        "Of the events dropped because the queue was full, session lifecycle events.",
        sink_lifecycle_events_dropped,
    ),
    s(
        "lifecycleevh_sink_errors_total",
        Counter,
        &["sink"],
        "Failed attempts and other errors of the sink.",
        sink_errors,
    ),
    s(
        "lifecycleevh_sink_retrying",
        Gauge,
        &["sink"],
        "Consecutive failed attempts on the sink's current batch (0: healthy).",
        sink_retrying,
    ),
    s(
        "lifecycleevh_sink_spool_events",
        Gauge,
        &["sink"],
        "Events in the sink's spool not yet acknowledged by its backend (sinks with a spool only).",
        sink_spool_events,
    ),
    s(
        "lifecycleevh_sink_spool_bytes",
        Gauge,
        &["sink"],
        "Bytes of the sink's spool files (sinks with a spool only).",
        sink_spool_bytes,
    ),
    s(
        "lifecycleevh_sink_spool_oldest_age_seconds",
        Gauge,
        &["sink"],
        "Age (by its Janus timestamp) of the oldest event in the sink's spool; 0 when empty (sinks with a spool only).",
        sink_spool_oldest_age_seconds,
    ),
    s(
        "lifecycleevh_sink_spool_ack_errors_total",
        Counter,
        &["sink"],
        "Failed writes of the spool's acknowledgement: the sink sends nothing until one succeeds (sinks with a spool only).",
        sink_spool_ack_errors,
    ),
    s(
        "lifecycleevh_sink_spool_corrupt_records_total",
        Counter,
        &["sink"],
        "Records skipped as corrupt when the spool was opened, counted by their headers (sinks with a spool only).",
        sink_spool_corrupt_records,
    ),
    s(
        "lifecycleevh_sink_spool_corrupt_bytes_total",
        Counter,
        &["sink"],
        "Bytes skipped when the spool was opened in which records cannot be told apart: their records are lost too (sinks with a spool only).",
        sink_spool_corrupt_bytes,
    ),
    s(
        "lifecycleevh_sink_connected",
        Gauge,
        &["sink"],
        "Whether the sink's connection to its broker is open (broker sinks only).",
        sink_connected,
    ),
    s(
        "lifecycleevh_sink_connections_total",
        Counter,
        &["sink"],
        "Connections the sink opened to its broker: the first, then every reconnection (broker sinks only).",
        sink_connections,
    ),
    s(
        "lifecycleevh_bus_available",
        Gauge,
        &[],
        "Whether Janus's event bus (janus_events_notify_handlers) is in the process.",
        bus_available,
    ),
    s(
        "lifecycleevh_bus_injected_total",
        Counter,
        &["reason"],
        "Synthetic endings put on Janus's event bus, by reason.",
        bus_injected,
    ),
    s(
        "lifecycleevh_bus_skipped_total",
        Counter,
        &[],
        "Endings due for injection that could not be injected (the bus is missing).",
        bus_skipped,
    ),
    s(
        "lifecycleevh_bus_left_to_janus_total",
        Counter,
        &[],
        "Endings not injected because Janus puts its own on the bus.",
        bus_left_to_janus,
    ),
    s(
        "lifecycleevh_crash_state_checkpoint_age_seconds",
        Gauge,
        &[],
        "Time since the crash-recovery state was last written whole (with general.state_dir only).",
        crash_state_checkpoint_age_seconds,
    ),
    s(
        "lifecycleevh_crash_state_errors_total",
        Counter,
        &[],
        "Failed writes of the crash-recovery state.",
        crash_state_errors,
    ),
    s(
        "lifecycleevh_crash_state_recovered_total",
        Counter,
        &[],
        "Sessions a previous run left open, ended with gateway_restart at start.",
        crash_state_recovered,
    ),
    s(
        "lifecycleevh_crash_state_unacknowledged_endings",
        Gauge,
        &[],
        "Endings routed to the sinks that crash recovery still waits for.",
        crash_state_unacknowledged_endings,
    ),
    // How the media of the sessions that ended went (their quality records).
    s(
        "janus_session_loss_ratio",
        Histogram,
        &["media", "direction"],
        "Each ended session's packet loss ratio, by media kind and direction (in: what Janus received).",
        session_loss_ratio,
    ),
    s(
        "janus_session_jitter_seconds",
        Histogram,
        &["media", "direction"],
        "Each ended session's 95th percentile of jitter, by media kind and direction.",
        session_jitter_seconds,
    ),
    s(
        "janus_session_rtt_seconds",
        Histogram,
        &["media"],
        "Each ended session's 95th percentile of round-trip time, by media kind.",
        session_rtt_seconds,
    ),
    s(
        "janus_webrtc_setup_seconds",
        Histogram,
        &[],
        "Each ended session's WebRTC setup time, from negotiation to its first PeerConnection up.",
        webrtc_setup_seconds,
    ),
    s(
        "janus_webrtc_ice_failures_total",
        Counter,
        &[],
        "PeerConnections of ended sessions whose ICE failed and never recovered.",
        webrtc_ice_failures,
    ),
    s(
        "janus_webrtc_dtls_failures_total",
        Counter,
        &[],
        "DTLS handshakes that failed, in ended sessions.",
        webrtc_dtls_failures,
    ),
    s(
        "janus_sessions_relayed_total",
        Counter,
        &[],
        "Ended sessions that used a relay (TURN) candidate.",
        sessions_relayed,
    ),
];

/// What one scrape reads, taken once at its start so that every family
/// sees the same moment.
pub struct Scrape<'a> {
    pub src: &'a Sources,
    /// The worker's latest published snapshot.
    pub tracker: TrackerSnapshot,
    pub channel: ChannelView,
    /// The wall clock, µs since the epoch (for ages).
    pub now_us: i64,
}

impl Scrape<'_> {
    fn metrics(&self) -> &Counters {
        &self.src.metrics
    }

    /// The sinks with a spool.
    fn spooled(&self) -> impl Iterator<Item = &Arc<SinkShared>> {
        self.src.sinks.iter().filter(|s| s.spool.is_some())
    }

    /// Seconds from `at_us` to now, never negative.
    fn age(&self, at_us: i64) -> f64 {
        self.now_us.saturating_sub(at_us).max(0) as f64 / 1e6
    }
}

/// The family being written. Each method writes the family's descriptor
/// (`# HELP`, `# TYPE`) and all its samples, and may be called once.
pub struct Family<'e, 'w> {
    enc: &'e mut DescriptorEncoder<'w>,
    series: &'static Series,
}

impl Family<'_, '_> {
    fn open(&mut self) -> Result<MetricEncoder<'_>, fmt::Error> {
        let s = self.series;
        self.enc
            .encode_descriptor(s.base(), s.help, None, s.metric_type())
    }

    /// An unlabelled counter.
    pub fn counter(mut self, v: u64) -> fmt::Result {
        self.open()?
            .encode_counter::<NoLabelSet, u64, u64>(&v, None)
    }

    /// An unlabelled gauge.
    pub fn gauge(mut self, v: impl EncodeGaugeValue) -> fmt::Result {
        self.open()?.encode_gauge(&v)
    }

    /// A counter per label set.
    pub fn counters<L: EncodeLabelSet>(
        mut self,
        rows: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        let mut f = self.open()?;
        for (labels, v) in rows {
            f.encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        Ok(())
    }

    /// A gauge per label set.
    pub fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
        mut self,
        rows: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result {
        let mut f = self.open()?;
        for (labels, v) in rows {
            f.encode_family(&labels)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    /// The constant 1 of an info family, with its facts as labels.
    pub fn info(mut self, labels: &impl EncodeLabelSet) -> fmt::Result {
        self.open()?.encode_info(labels)
    }

    /// A histogram per label set: (labels, sum, count, cumulative buckets
    /// as (upper bound, count), the last one +Inf).
    pub fn histograms<L: EncodeLabelSet>(
        mut self,
        rows: impl IntoIterator<Item = (L, f64, u64, Vec<(f64, u64)>)>,
    ) -> fmt::Result {
        let mut f = self.open()?;
        for (labels, sum, count, buckets) in rows {
            f.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// The catalogue entry of `name` (a name missing from it is a bug the
/// tests catch).
pub fn series(name: &str) -> &'static Series {
    SERIES
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("series {name} is not in the catalogue"))
}

/// The collector registered with prometheus-client's registry.
pub struct Exposition(pub Arc<Sources>);

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exposition")
    }
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let src = &*self.0;
        let scrape = Scrape {
            src,
            tracker: src.metrics.tracker(),
            channel: (src.channel)(),
            now_us: now_us(),
        };
        for series in SERIES {
            (series.encode)(
                &scrape,
                Family {
                    enc: &mut enc,
                    series,
                },
            )?;
        }
        Ok(())
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

// What happens in Janus, as tracked.

fn janus_info(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let Some(version) = s.tracker.janus.version else {
        return Ok(());
    };
    let version = version.to_string();
    let name = s.tracker.janus.server_name.as_deref().unwrap_or_default();
    f.info(&[("version", version.as_str()), ("server_name", name)])
}

fn janus_sessions_open(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauge(s.tracker.live_sessions as u64)
}

fn janus_sessions_created(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.tracker.stats.created)
}

fn janus_sessions_ended(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let stats = &s.tracker.stats;
    f.counters(Reason::ALL.iter().enumerate().flat_map(|(i, r)| {
        let synthetic = stats.synthetic_by_reason[i];
        let native = stats.endings[i].saturating_sub(synthetic);
        [
            ([("reason", r.as_str()), ("synthetic", "false")], native),
            ([("reason", r.as_str()), ("synthetic", "true")], synthetic),
        ]
    }))
}

fn janus_session_duration_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.histograms(Reason::ALL.iter().map(|r| {
        let h = s.metrics().durations.read(*r);
        let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .zip(h.buckets)
            .map(|(b, n)| (*b, n))
            .collect();
        buckets.push((f64::INFINITY, h.buckets[DURATION_BUCKETS.len()]));
        ([("reason", r.as_str())], h.sum_seconds, h.count, buckets)
    }))
}

fn janus_handles_open(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauges(
        s.tracker
            .handles_by_plugin
            .iter()
            .map(|(p, n)| ([("plugin", p.as_str())], *n)),
    )
}

fn janus_transport_connections_open(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauges(
        s.tracker
            .connections_by_transport
            .iter()
            .map(|(t, n)| ([("transport", t.as_str())], *n)),
    )
}

/// Janus's own counts exist from its first status update (Janus >= 1.2, 0.x >= 0.14).
fn core_count(f: Family<'_, '_>, count: Option<u64>) -> fmt::Result {
    match count {
        Some(v) => f.gauge(v),
        None => Ok(()),
    }
}

fn janus_core_sessions(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    core_count(f, s.tracker.janus.core.and_then(|c| c.sessions))
}

fn janus_core_handles(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    core_count(f, s.tracker.janus.core.and_then(|c| c.handles))
}

fn janus_core_peerconnections(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    core_count(f, s.tracker.janus.core.and_then(|c| c.peerconnections))
}

// The handler's events, channel and tracker.

fn build_info(_: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.info(&[("version", env!("CARGO_PKG_VERSION"))])
}

fn start_time_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauge(s.src.started_us as f64 / 1e6)
}

fn events_received(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().received.load(Relaxed))
}

fn events_processed(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let m = s.metrics();
    f.counters((0..TYPE_SLOTS).map(|i| {
        (
            [("type", type_label(i))],
            m.processed_by_type[i].load(Relaxed),
        )
    }))
}

fn events_dropped(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let c = &s.channel;
    f.counters(
        BULK.iter()
            .zip(c.dropped_bulk)
            .map(|((_, name), n)| ([("where", "channel"), ("type", *name)], n))
            .chain([(
                [("where", "channel"), ("type", "lifecycle")],
                c.dropped_lifecycle,
            )]),
    )
}

fn events_forwarded(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().forwarded.load(Relaxed))
}

fn events_suppressed(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().suppressed.load(Relaxed))
}

fn decode_errors(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().decode_errors.load(Relaxed))
}

fn internal_errors(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().internal_errors.load(Relaxed))
}

fn channel_depth(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauge(s.channel.depth)
}

fn channel_capacity(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauge(s.channel.capacity)
}

fn tracker_duplicates(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.tracker.stats.duplicates)
}

fn tracker_unknown_sessions(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.tracker.stats.unknown_sessions)
}

fn tracker_evicted(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.tracker.stats.evicted)
}

fn tracker_claimed(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.tracker.stats.claimed)
}

fn tracker_claims_retracted(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.tracker.stats.claims_retracted)
}

// The sinks: one sample per sink, labelled with its name.

fn sink_label(sink: &SinkShared) -> [(&'static str, &str); 1] {
    [("sink", sink.name())]
}

/// One value per sink, read from its counters.
fn per_sink<'s, V>(
    sinks: impl Iterator<Item = &'s Arc<SinkShared>>,
    value: impl Fn(&SinkShared, &SinkStats) -> V,
) -> impl Iterator<Item = ([(&'static str, &'s str); 1], V)> {
    sinks.map(move |s| (sink_label(s), value(s, s.stats())))
}

fn sink_enabled(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauges(per_sink(s.src.sinks.iter(), |sink, _| {
        u64::from(sink.enabled())
    }))
}

fn sink_queue_depth(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauges(per_sink(s.src.sinks.iter(), |sink, _| {
        sink.queue.len() as u64
    }))
}

fn sink_queue_capacity(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauges(per_sink(s.src.sinks.iter(), |sink, _| {
        sink.queue.capacity as u64
    }))
}

fn sink_events_accepted(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(per_sink(s.src.sinks.iter(), |_, st| {
        st.accepted.load(Relaxed)
    }))
}

fn sink_events_delivered(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(per_sink(s.src.sinks.iter(), |_, st| st.sent.load(Relaxed)))
}

fn sink_events_retried(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(per_sink(s.src.sinks.iter(), |_, st| {
        st.retried.load(Relaxed)
    }))
}

fn sink_events_dropped(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(s.src.sinks.iter().flat_map(|sink| {
        let st = sink.stats();
        [
            (
                [("sink", sink.name()), ("cause", "queue_full")],
                st.dropped.load(Relaxed),
            ),
            (
                [("sink", sink.name()), ("cause", "given_up")],
                st.failed.load(Relaxed),
            ),
        ]
    }))
}

fn sink_lifecycle_events_dropped(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(per_sink(s.src.sinks.iter(), |_, st| {
        st.dropped_lifecycle.load(Relaxed)
    }))
}

fn sink_errors(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(per_sink(s.src.sinks.iter(), |_, st| {
        st.errors.load(Relaxed)
    }))
}

fn sink_retrying(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauges(per_sink(s.src.sinks.iter(), |_, st| {
        st.retrying.load(Relaxed)
    }))
}

/// The spool families exist only when a sink has a spool.
fn per_spool<V: EncodeGaugeValue>(
    s: &Scrape<'_>,
    f: Family<'_, '_>,
    value: impl Fn(&SinkStats) -> V,
) -> fmt::Result {
    if s.spooled().next().is_none() {
        return Ok(());
    }
    f.gauges(per_sink(s.spooled(), |_, st| value(st)))
}

fn sink_spool_events(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    per_spool(s, f, |st| st.spool_pending.load(Relaxed))
}

fn sink_spool_bytes(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    per_spool(s, f, |st| st.spool_bytes.load(Relaxed))
}

fn sink_spool_oldest_age_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    per_spool(s, f, |st| match st.spool_oldest_us.load(Relaxed) {
        0 => 0.0,
        at => s.age(at),
    })
}

/// A spool counter, for the sinks with a spool.
fn per_spool_counter(
    s: &Scrape<'_>,
    f: Family<'_, '_>,
    value: impl Fn(&SinkStats) -> u64,
) -> fmt::Result {
    if s.spooled().next().is_none() {
        return Ok(());
    }
    f.counters(per_sink(s.spooled(), |_, st| value(st)))
}

fn sink_spool_ack_errors(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    per_spool_counter(s, f, |st| st.ack_errors.load(Relaxed))
}

fn sink_spool_corrupt_records(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    per_spool_counter(s, f, |st| st.spool_corrupt_records.load(Relaxed))
}

fn sink_spool_corrupt_bytes(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    per_spool_counter(s, f, |st| st.spool_corrupt_bytes.load(Relaxed))
}

// The broker sinks' connections: families only when a sink has one.

/// The sinks that keep a connection (brokers').
fn connected_sinks<'s>(
    s: &'s Scrape<'_>,
) -> impl Iterator<Item = (&'s Arc<SinkShared>, &'s ConnectionState)> {
    s.src
        .sinks
        .iter()
        .filter_map(|sink| sink.connection().map(|c| (sink, c)))
}

fn sink_connected(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    if connected_sinks(s).next().is_none() {
        return Ok(());
    }
    f.gauges(connected_sinks(s).map(|(sink, c)| (sink_label(sink), u64::from(c.connected()))))
}

fn sink_connections(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    if connected_sinks(s).next().is_none() {
        return Ok(());
    }
    f.counters(connected_sinks(s).map(|(sink, c)| (sink_label(sink), c.connections())))
}

// Janus's event bus.

/// The reasons a synthetic ending can be injected for.
const INJECTABLE: [Reason; 4] = [
    Reason::TransportGone,
    Reason::Timeout,
    Reason::ReclaimExpired,
    Reason::Shutdown,
];

fn bus_available(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauge(u64::from(s.src.bus_available))
}

fn bus_injected(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counters(INJECTABLE.iter().map(|r| {
        let i = Reason::ALL.iter().position(|x| x == r).unwrap_or(0);
        (
            [("reason", r.as_str())],
            s.src.bus.injected[i].load(Relaxed),
        )
    }))
}

fn bus_skipped(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.src.bus.skipped.load(Relaxed))
}

fn bus_left_to_janus(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.src.bus.left_to_janus.load(Relaxed))
}

// Crash recovery.

fn crash_state_checkpoint_age_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let at = s.metrics().checkpointed_at_us.load(Relaxed);
    if !s.src.crash_state || at <= 0 {
        return Ok(());
    }
    f.gauge(s.age(at))
}

fn crash_state_errors(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().state_errors.load(Relaxed))
}

fn crash_state_recovered(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().recovered.load(Relaxed))
}

fn crash_state_unacknowledged_endings(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.gauge(s.tracker.unacknowledged as u64)
}

// The quality records (`crate::quality::histograms`).

/// A histogram's row: labels, sum, count, buckets (then +Inf).
fn histogram_row<L>(labels: L, h: HistogramSnapshot) -> (L, f64, u64, Vec<(f64, u64)>) {
    (labels, h.sum, h.count, h.buckets)
}

fn session_loss_ratio(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let q = &s.metrics().quality;
    f.histograms(KINDS.iter().enumerate().flat_map(|(k, media)| {
        DIRECTIONS.iter().enumerate().map(move |(d, direction)| {
            histogram_row(
                [("media", *media), ("direction", *direction)],
                q.loss[k][d].read(),
            )
        })
    }))
}

fn session_jitter_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let q = &s.metrics().quality;
    f.histograms(KINDS.iter().enumerate().flat_map(|(k, media)| {
        DIRECTIONS.iter().enumerate().map(move |(d, direction)| {
            histogram_row(
                [("media", *media), ("direction", *direction)],
                q.jitter[k][d].read(),
            )
        })
    }))
}

fn session_rtt_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let q = &s.metrics().quality;
    f.histograms(
        KINDS
            .iter()
            .enumerate()
            .map(|(k, media)| histogram_row([("media", *media)], q.rtt[k].read())),
    )
}

fn webrtc_setup_seconds(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    let h = s.metrics().quality.setup.read();
    let unlabelled: [(&str, &str); 0] = [];
    f.histograms([histogram_row(unlabelled, h)])
}

fn webrtc_ice_failures(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().quality.ice_failures.load(Relaxed))
}

fn webrtc_dtls_failures(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().quality.dtls_failures.load(Relaxed))
}

fn sessions_relayed(s: &Scrape<'_>, f: Family<'_, '_>) -> fmt::Result {
    f.counter(s.metrics().quality.relayed.load(Relaxed))
}
