//! What a scrape answers: every series, read at scrape time from the same
//! atomics and tracker snapshot the Admin API `info` reads. A scrape costs
//! O(number of series): it never walks the sessions, never waits on the
//! worker beyond the instant it takes to copy the tracker's snapshot, and
//! never touches Janus.
//!
//! [`SERIES`] is the catalogue: every family with its type, labels and
//! meaning. The collector takes names and help texts from it, and tests
//! check the exposition, the README and the Grafana dashboard against it.

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
use crate::intake::{BULK, ChannelView};
use crate::metrics::{DURATION_BUCKETS, Metrics, TYPE_SLOTS, type_label};
use crate::reason::Reason;
use crate::sinks::SinkShared;

/// What a scrape reads.
pub struct Sources {
    pub metrics: Arc<Metrics>,
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

/// One family of series.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    /// As Prometheus stores it: counters end in `_total`, info in `_info`,
    /// a histogram's samples add `_bucket`, `_sum` and `_count`.
    pub name: &'static str,
    pub ty: Type,
    pub labels: &'static [&'static str],
    pub help: &'static str,
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
) -> Series {
    Series {
        name,
        ty,
        labels,
        help,
    }
}

use Type::{Counter, Gauge, Histogram, Info};

/// Every family, in the order of the exposition.
pub const SERIES: &[Series] = &[
    // What happens in Janus, as lifecycleevh tracks it.
    s(
        "janus_info",
        Info,
        &["version", "server_name"],
        "The Janus this handler runs in, from its core started event.",
    ),
    s(
        "janus_sessions_open",
        Gauge,
        &[],
        "Sessions created and not ended yet.",
    ),
    s(
        "janus_sessions_created_total",
        Counter,
        &[],
        "Sessions created.",
    ),
    s(
        "janus_sessions_ended_total",
        Counter,
        &["reason", "synthetic"],
        "Sessions ended, by the reason of their destroyed event, and whether lifecycleevh made that event (true) or Janus did (false).",
    ),
    s(
        "janus_session_duration_seconds",
        Histogram,
        &["reason"],
        "How long the sessions that ended lived (from created to the ending), by reason.",
    ),
    s(
        "janus_handles_open",
        Gauge,
        &["plugin"],
        "Handles attached to open sessions, by plugin.",
    ),
    s(
        "janus_transport_connections_open",
        Gauge,
        &["transport"],
        "Transport connections open (reported connected, not yet disconnected), by transport.",
    ),
    s(
        "janus_core_sessions",
        Gauge,
        &[],
        "Sessions as Janus's core counts them, from its latest status update event (Janus >= 1.2 only; absent before).",
    ),
    s(
        "janus_core_handles",
        Gauge,
        &[],
        "Handles as Janus's core counts them, from its latest status update event (Janus >= 1.2 only).",
    ),
    s(
        "janus_core_peerconnections",
        Gauge,
        &[],
        "PeerConnections as Janus's core counts them, from its latest status update event (Janus >= 1.2 only).",
    ),
    // The handler's own health.
    s(
        "lifecycleevh_build_info",
        Info,
        &["version"],
        "The lifecycleevh build.",
    ),
    s(
        "lifecycleevh_start_time_seconds",
        Gauge,
        &[],
        "When the handler started (Unix time).",
    ),
    s(
        "lifecycleevh_events_received_total",
        Counter,
        &[],
        "Events Janus handed to the handler.",
    ),
    s(
        "lifecycleevh_events_processed_total",
        Counter,
        &["type"],
        "Events the worker took off the channel, by Janus event type (other: no known type, or not decodable).",
    ),
    s(
        "lifecycleevh_events_dropped_total",
        Counter,
        &["where", "type"],
        "Events dropped before the worker saw them, by where (channel: the channel to the worker was at capacity) and type (media, plugins, webrtc, external; lifecycle: the worker was gone).",
    ),
    s(
        "lifecycleevh_events_forwarded_total",
        Counter,
        &[],
        "Events (Janus's and synthetic) taken by at least one sink.",
    ),
    s(
        "lifecycleevh_events_suppressed_total",
        Counter,
        &[],
        "Events not forwarded because they repeat an ending already sent (duplicates and echoes).",
    ),
    s(
        "lifecycleevh_decode_errors_total",
        Counter,
        &[],
        "Events that were not JSON objects of Janus's shape.",
    ),
    s(
        "lifecycleevh_internal_errors_total",
        Counter,
        &[],
        "Panics caught inside the handler (each one a bug to report).",
    ),
    s(
        "lifecycleevh_channel_depth",
        Gauge,
        &[],
        "Events waiting in the channel between Janus's events thread and the worker.",
    ),
    s(
        "lifecycleevh_channel_capacity",
        Gauge,
        &[],
        "Capacity of that channel (general.channel_capacity).",
    ),
    s(
        "lifecycleevh_tracker_duplicates_total",
        Counter,
        &[],
        "Second endings of sessions that had ended already (not forwarded).",
    ),
    s(
        "lifecycleevh_tracker_unknown_sessions_total",
        Counter,
        &[],
        "Endings or events for sessions the tracker never saw created.",
    ),
    s(
        "lifecycleevh_tracker_evicted_total",
        Counter,
        &[],
        "Sessions dropped from tracking because general.max_sessions was reached.",
    ),
    s(
        "lifecycleevh_tracker_claimed_total",
        Counter,
        &[],
        "Sessions found claimed by another connection after theirs closed.",
    ),
    s(
        "lifecycleevh_sink_enabled",
        Gauge,
        &["sink"],
        "Whether the sink is fed (1) or paused through the Admin API (0).",
    ),
    s(
        "lifecycleevh_sink_queue_depth",
        Gauge,
        &["sink"],
        "Events waiting in the sink's memory queue.",
    ),
    s(
        "lifecycleevh_sink_queue_capacity",
        Gauge,
        &["sink"],
        "Capacity of the sink's memory queue (queue_size).",
    ),
    s(
        "lifecycleevh_sink_events_accepted_total",
        Counter,
        &["sink"],
        "Events the sink took (queued or spooled).",
    ),
    s(
        "lifecycleevh_sink_events_delivered_total",
        Counter,
        &["sink"],
        "Events the sink delivered (a line written, a 2xx answer).",
    ),
    s(
        "lifecycleevh_sink_events_retried_total",
        Counter,
        &["sink"],
        "Events of failed attempts kept for another attempt.",
    ),
    s(
        "lifecycleevh_sink_events_dropped_total",
        Counter,
        &["sink", "cause"],
        "Events the sink lost, by cause (queue_full: its memory queue was full; given_up: not spooled and still failing after the retries or at shutdown).",
    ),
    s(
        "lifecycleevh_sink_lifecycle_events_dropped_total",
        Counter,
        &["sink"],
        "Of the events dropped because the queue was full, session lifecycle events.",
    ),
    s(
        "lifecycleevh_sink_errors_total",
        Counter,
        &["sink"],
        "Failed attempts and other errors of the sink.",
    ),
    s(
        "lifecycleevh_sink_retrying",
        Gauge,
        &["sink"],
        "Consecutive failed attempts on the sink's current batch (0: healthy).",
    ),
    s(
        "lifecycleevh_sink_spool_events",
        Gauge,
        &["sink"],
        "Events in the sink's spool not yet acknowledged by its backend (sinks with a spool only).",
    ),
    s(
        "lifecycleevh_sink_spool_bytes",
        Gauge,
        &["sink"],
        "Bytes of the sink's spool files (sinks with a spool only).",
    ),
    s(
        "lifecycleevh_sink_spool_oldest_age_seconds",
        Gauge,
        &["sink"],
        "Age (by its Janus timestamp) of the oldest event in the sink's spool; 0 when empty (sinks with a spool only).",
    ),
    s(
        "lifecycleevh_bus_available",
        Gauge,
        &[],
        "Whether Janus's event bus (janus_events_notify_handlers) is in the process.",
    ),
    s(
        "lifecycleevh_bus_injected_total",
        Counter,
        &["reason"],
        "Synthetic endings put on Janus's event bus, by reason.",
    ),
    s(
        "lifecycleevh_bus_skipped_total",
        Counter,
        &[],
        "Endings due for injection that could not be injected (the bus is missing).",
    ),
    s(
        "lifecycleevh_bus_left_to_janus_total",
        Counter,
        &[],
        "Endings not injected because Janus puts its own on the bus.",
    ),
    s(
        "lifecycleevh_crash_state_checkpoint_age_seconds",
        Gauge,
        &[],
        "Time since the crash-recovery state was last written whole (with general.state_dir only).",
    ),
    s(
        "lifecycleevh_crash_state_errors_total",
        Counter,
        &[],
        "Failed writes of the crash-recovery state.",
    ),
    s(
        "lifecycleevh_crash_state_recovered_total",
        Counter,
        &[],
        "Sessions a previous run left open, ended with gateway_restart at start.",
    ),
    s(
        "lifecycleevh_crash_state_unacknowledged_endings",
        Gauge,
        &[],
        "Endings routed to the sinks that crash recovery still waits for.",
    ),
];

/// The catalogue entry of `name` (a name missing from it is a bug the
/// tests catch).
pub fn series(name: &str) -> &'static Series {
    SERIES
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("series {name} is not in the catalogue"))
}

/// The reasons a synthetic ending can be injected for.
const INJECTABLE: [Reason; 4] = [
    Reason::TransportGone,
    Reason::Timeout,
    Reason::ReclaimExpired,
    Reason::Shutdown,
];

/// The collector registered with prometheus-client's registry.
pub struct Exposition(pub Arc<Sources>);

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exposition")
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn family<'a>(
    enc: &'a mut DescriptorEncoder<'_>,
    name: &str,
) -> Result<MetricEncoder<'a>, fmt::Error> {
    let s = series(name);
    enc.encode_descriptor(s.base(), s.help, None, s.metric_type())
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, v: u64) -> fmt::Result {
    family(enc, name)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, v: impl EncodeGaugeValue) -> fmt::Result {
    family(enc, name)?.encode_gauge(&v)
}

fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut f = family(enc, name)?;
    for (labels, v) in rows {
        f.encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    Ok(())
}

fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut f = family(enc, name)?;
    for (labels, v) in rows {
        f.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let src = &*self.0;
        let m = &*src.metrics;
        let t = m.tracker();
        let enc = &mut enc;

        // Janus, as tracked.
        if let Some(v) = t.janus.version {
            let version = v.to_string();
            let name = t.janus.server_name.clone().unwrap_or_default();
            family(enc, "janus_info")?.encode_info(&[
                ("version", version.as_str()),
                ("server_name", name.as_str()),
            ])?;
        }
        gauge(enc, "janus_sessions_open", t.live_sessions as u64)?;
        counter(enc, "janus_sessions_created_total", t.stats.created)?;
        counters(
            enc,
            "janus_sessions_ended_total",
            Reason::ALL.iter().enumerate().flat_map(|(i, r)| {
                let synthetic = t.stats.synthetic_by_reason[i];
                let native = t.stats.endings[i].saturating_sub(synthetic);
                [
                    ([("reason", r.as_str()), ("synthetic", "false")], native),
                    ([("reason", r.as_str()), ("synthetic", "true")], synthetic),
                ]
            }),
        )?;
        {
            let mut f = family(enc, "janus_session_duration_seconds")?;
            for r in Reason::ALL {
                let h = m.durations.read(r);
                let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                    .iter()
                    .zip(h.buckets)
                    .map(|(b, n)| (*b, n))
                    .collect();
                buckets.push((f64::INFINITY, h.buckets[DURATION_BUCKETS.len()]));
                f.encode_family(&[("reason", r.as_str())])?
                    .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)?;
            }
        }
        gauges(
            enc,
            "janus_handles_open",
            t.handles_by_plugin
                .iter()
                .map(|(p, n)| ([("plugin", p.as_str())], *n)),
        )?;
        gauges(
            enc,
            "janus_transport_connections_open",
            t.connections_by_transport
                .iter()
                .map(|(p, n)| ([("transport", p.as_str())], *n)),
        )?;
        if let Some(core) = t.janus.core {
            for (name, v) in [
                ("janus_core_sessions", core.sessions),
                ("janus_core_handles", core.handles),
                ("janus_core_peerconnections", core.peerconnections),
            ] {
                if let Some(v) = v {
                    gauge(enc, name, v)?;
                }
            }
        }

        // The handler.
        family(enc, "lifecycleevh_build_info")?
            .encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        gauge(
            enc,
            "lifecycleevh_start_time_seconds",
            src.started_us as f64 / 1e6,
        )?;
        counter(
            enc,
            "lifecycleevh_events_received_total",
            m.received.load(Relaxed),
        )?;
        counters(
            enc,
            "lifecycleevh_events_processed_total",
            (0..TYPE_SLOTS).map(|i| {
                (
                    [("type", type_label(i))],
                    m.processed_by_type[i].load(Relaxed),
                )
            }),
        )?;
        let channel = (src.channel)();
        counters(
            enc,
            "lifecycleevh_events_dropped_total",
            BULK.iter()
                .zip(channel.dropped_bulk)
                .map(|((_, name), n)| ([("where", "channel"), ("type", *name)], n))
                .chain([(
                    [("where", "channel"), ("type", "lifecycle")],
                    channel.dropped_lifecycle,
                )]),
        )?;
        counter(
            enc,
            "lifecycleevh_events_forwarded_total",
            m.forwarded.load(Relaxed),
        )?;
        counter(
            enc,
            "lifecycleevh_events_suppressed_total",
            m.suppressed.load(Relaxed),
        )?;
        counter(
            enc,
            "lifecycleevh_decode_errors_total",
            m.decode_errors.load(Relaxed),
        )?;
        counter(
            enc,
            "lifecycleevh_internal_errors_total",
            m.internal_errors.load(Relaxed),
        )?;
        gauge(enc, "lifecycleevh_channel_depth", channel.depth)?;
        gauge(enc, "lifecycleevh_channel_capacity", channel.capacity)?;
        counter(
            enc,
            "lifecycleevh_tracker_duplicates_total",
            t.stats.duplicates,
        )?;
        counter(
            enc,
            "lifecycleevh_tracker_unknown_sessions_total",
            t.stats.unknown_sessions,
        )?;
        counter(enc, "lifecycleevh_tracker_evicted_total", t.stats.evicted)?;
        counter(enc, "lifecycleevh_tracker_claimed_total", t.stats.claimed)?;

        // Sinks.
        let sink = |s: &Arc<SinkShared>| [("sink", s.name().to_string())];
        let sinks = &src.sinks;
        gauges(
            enc,
            "lifecycleevh_sink_enabled",
            sinks.iter().map(|s| (sink(s), u64::from(s.enabled()))),
        )?;
        gauges(
            enc,
            "lifecycleevh_sink_queue_depth",
            sinks.iter().map(|s| (sink(s), s.queue.len() as u64)),
        )?;
        gauges(
            enc,
            "lifecycleevh_sink_queue_capacity",
            sinks.iter().map(|s| (sink(s), s.queue.capacity as u64)),
        )?;
        let stat = |f: fn(&crate::sinks::SinkStats) -> u64| {
            sinks.iter().map(move |s| (sink(s), f(s.stats())))
        };
        counters(
            enc,
            "lifecycleevh_sink_events_accepted_total",
            stat(|s| s.accepted.load(Relaxed)),
        )?;
        counters(
            enc,
            "lifecycleevh_sink_events_delivered_total",
            stat(|s| s.sent.load(Relaxed)),
        )?;
        counters(
            enc,
            "lifecycleevh_sink_events_retried_total",
            stat(|s| s.retried.load(Relaxed)),
        )?;
        counters(
            enc,
            "lifecycleevh_sink_events_dropped_total",
            sinks.iter().flat_map(|s| {
                let st = s.stats();
                [
                    (
                        [("sink", s.name()), ("cause", "queue_full")],
                        st.dropped.load(Relaxed),
                    ),
                    (
                        [("sink", s.name()), ("cause", "given_up")],
                        st.failed.load(Relaxed),
                    ),
                ]
            }),
        )?;
        counters(
            enc,
            "lifecycleevh_sink_lifecycle_events_dropped_total",
            stat(|s| s.dropped_lifecycle.load(Relaxed)),
        )?;
        counters(
            enc,
            "lifecycleevh_sink_errors_total",
            stat(|s| s.errors.load(Relaxed)),
        )?;
        gauges(
            enc,
            "lifecycleevh_sink_retrying",
            stat(|s| s.retrying.load(Relaxed)),
        )?;
        let spooled: Vec<&Arc<SinkShared>> = sinks.iter().filter(|s| s.spool.is_some()).collect();
        if !spooled.is_empty() {
            gauges(
                enc,
                "lifecycleevh_sink_spool_events",
                spooled
                    .iter()
                    .map(|s| (sink(s), s.stats().spool_pending.load(Relaxed))),
            )?;
            gauges(
                enc,
                "lifecycleevh_sink_spool_bytes",
                spooled
                    .iter()
                    .map(|s| (sink(s), s.stats().spool_bytes.load(Relaxed))),
            )?;
            let now = now_us();
            gauges(
                enc,
                "lifecycleevh_sink_spool_oldest_age_seconds",
                spooled.iter().map(|s| {
                    let age = match s.stats().spool_oldest_us.load(Relaxed) {
                        0 => 0.0,
                        ts => now.saturating_sub(ts).max(0) as f64 / 1e6,
                    };
                    (sink(s), age)
                }),
            )?;
        }

        // Janus's event bus.
        gauge(
            enc,
            "lifecycleevh_bus_available",
            u64::from(src.bus_available),
        )?;
        counters(
            enc,
            "lifecycleevh_bus_injected_total",
            INJECTABLE.iter().map(|r| {
                let i = Reason::ALL.iter().position(|x| x == r).unwrap_or(0);
                ([("reason", r.as_str())], src.bus.injected[i].load(Relaxed))
            }),
        )?;
        counter(
            enc,
            "lifecycleevh_bus_skipped_total",
            src.bus.skipped.load(Relaxed),
        )?;
        counter(
            enc,
            "lifecycleevh_bus_left_to_janus_total",
            src.bus.left_to_janus.load(Relaxed),
        )?;

        // Crash recovery.
        if src.crash_state {
            let at = m.checkpointed_at_us.load(Relaxed);
            if at > 0 {
                gauge(
                    enc,
                    "lifecycleevh_crash_state_checkpoint_age_seconds",
                    now_us().saturating_sub(at).max(0) as f64 / 1e6,
                )?;
            }
        }
        counter(
            enc,
            "lifecycleevh_crash_state_errors_total",
            m.state_errors.load(Relaxed),
        )?;
        counter(
            enc,
            "lifecycleevh_crash_state_recovered_total",
            m.recovered.load(Relaxed),
        )?;
        gauge(
            enc,
            "lifecycleevh_crash_state_unacknowledged_endings",
            t.unacknowledged as u64,
        )?;
        Ok(())
    }
}
