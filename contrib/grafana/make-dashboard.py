#!/usr/bin/env python3
"""Writes lifecycleevh-dashboard.json, the Grafana dashboard for lifecycleevh's
Prometheus endpoint. Edit the panels here, run it, commit both files.

The Rust test exporter::tests::the_dashboard_names_only_existing_series checks
that every series and label the dashboard names is one the endpoint exposes.
"""
import json
import os

SEL = '{instance=~"$instance"}'
RATE = "$__rate_interval"
SYNTHETIC = '{instance=~"$instance",synthetic="true"}'


panels = []
y = 0


def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1


def panel(title, targets, x, w=8, h=8, kind="timeseries", unit="short", description="",
          stack=False, overrides=None):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": overrides or []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for i, (expr, legend) in enumerate(targets)
        ],
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "stacking": {"mode": "normal" if stack else "none"}, "fillOpacity": 20 if stack else 0}
    return p


def add(*ps):
    global y
    panels.extend(ps)
    y += max(p["gridPos"]["h"] for p in ps)


row("Sessions")
add(
    panel("Open sessions", [
        (f"janus_sessions_open{SEL}", "tracked by lifecycleevh ({{instance}})"),
        (f"janus_core_sessions{SEL}", "Janus's own count ({{instance}}, Janus >= 1.2)"),
    ], 0, description="Sessions created and not ended yet; Janus >= 1.2 also reports its own count every 15 s."),
    panel("Sessions ended, by reason", [
        (f"sum by (reason) (rate(janus_sessions_ended_total{SEL}[{RATE}]))", "{{reason}}"),
    ], 8, unit="ops", stack=True,
        description="The reason of each destroyed event, per second. timeout, transport_gone and shutdown are the endings Janus itself does not report on 1.1.x."),
    panel("Sessions created and ended", [
        (f"sum(rate(janus_sessions_created_total{SEL}[{RATE}]))", "created"),
        (f"sum(rate(janus_sessions_ended_total{SEL}[{RATE}]))", "ended"),
        (f"sum(rate(janus_sessions_ended_total{SYNTHETIC}[{RATE}]))",
         "ended, destroyed made by lifecycleevh"),
    ], 16, unit="ops"),
)
add(
    panel("Session duration", [
        (f"histogram_quantile(0.5, sum by (le) (rate(janus_session_duration_seconds_bucket{SEL}[{RATE}])))", "median"),
        (f"histogram_quantile(0.95, sum by (le) (rate(janus_session_duration_seconds_bucket{SEL}[{RATE}])))", "95th percentile"),
        (f"sum(rate(janus_session_duration_seconds_sum{SEL}[{RATE}])) / sum(rate(janus_session_duration_seconds_count{SEL}[{RATE}]))", "mean"),
    ], 0, unit="s", description="How long the sessions that ended lived (created to ending)."),
    panel("Median duration, by reason", [
        (f"histogram_quantile(0.5, sum by (le, reason) (rate(janus_session_duration_seconds_bucket{SEL}[{RATE}])))", "{{reason}}"),
    ], 8, unit="s"),
    panel("Drift against Janus's own count (Janus >= 1.2)", [
        (f"janus_core_sessions{SEL} - janus_sessions_open{SEL}", "sessions ({{instance}})"),
        (f"janus_core_handles{SEL} - on (instance) sum by (instance) (janus_handles_open{SEL})", "handles ({{instance}})"),
    ], 16, description="Janus's core counts minus lifecycleevh's. Stays near 0 (briefly off by the sessions that change between Janus's 15 s updates); a lasting difference on either side is drift. Empty on Janus 1.1.x, which does not report its counts."),
)
add(
    panel("Open handles, by plugin", [
        (f"janus_handles_open{SEL}", "{{plugin}}"),
        (f"janus_core_peerconnections{SEL}", "PeerConnections (Janus's count)"),
    ], 0, stack=False),
    panel("Open connections, by transport", [
        (f"janus_transport_connections_open{SEL}", "{{transport}}"),
    ], 8),
    panel("Janus", [
        (f"janus_info{SEL}", "{{version}} {{server_name}}"),
        (f"lifecycleevh_build_info{SEL}", "lifecycleevh {{version}}"),
    ], 16, kind="table",
        description="The Janus version and server name from its started event, and the handler's version."),
)
row("lifecycleevh health")
add(
    panel("Channel to the worker", [
        (f"lifecycleevh_channel_depth{SEL}", "waiting ({{instance}})"),
        (f"lifecycleevh_channel_capacity{SEL}", "capacity ({{instance}})"),
    ], 0, description="Events between Janus's events thread and the worker. A full channel drops events."),
    panel("Events lost", [
        (f"sum by (where) (rate(lifecycleevh_events_dropped_total{SEL}[{RATE}]))", "dropped at the {{where}}"),
        (f"sum by (sink, cause) (rate(lifecycleevh_sink_events_dropped_total{SEL}[{RATE}]))", "{{sink}}: {{cause}}"),
        (f"sum by (sink) (rate(lifecycleevh_sink_lifecycle_events_dropped_total{SEL}[{RATE}]))", "{{sink}}: lifecycle events"),
    ], 8, unit="ops", description="Should stay at 0."),
    panel("Events by type", [
        (f"sum by (type) (rate(lifecycleevh_events_processed_total{SEL}[{RATE}]))", "{{type}}"),
    ], 16, unit="ops", stack=True),
)
add(
    panel("Sink queues", [
        (f"lifecycleevh_sink_queue_depth{SEL}", "{{sink}}"),
    ], 0),
    panel("Sink deliveries and retries", [
        (f"sum by (sink) (rate(lifecycleevh_sink_events_delivered_total{SEL}[{RATE}]))", "{{sink}} delivered"),
        (f"sum by (sink) (rate(lifecycleevh_sink_events_retried_total{SEL}[{RATE}]))", "{{sink}} retried"),
        (f"lifecycleevh_sink_retrying{SEL}", "{{sink}} failed attempts in a row"),
    ], 8, unit="ops"),
    panel("Spools", [
        (f"lifecycleevh_sink_spool_events{SEL}", "{{sink}} events"),
        (f"lifecycleevh_sink_spool_oldest_age_seconds{SEL}", "{{sink}} oldest (s)"),
    ], 16, description="Events a backend has not acknowledged yet, and how old the oldest is."),
)
add(
    panel("Endings put on Janus's event bus", [
        (f"sum by (reason) (rate(lifecycleevh_bus_injected_total{SEL}[{RATE}]))", "{{reason}}"),
        (f"rate(lifecycleevh_bus_skipped_total{SEL}[{RATE}])", "skipped (bus missing)"),
    ], 0, unit="ops"),
    panel("Crash-recovery state", [
        (f"lifecycleevh_crash_state_checkpoint_age_seconds{SEL}", "checkpoint age ({{instance}})"),
        (f"lifecycleevh_crash_state_unacknowledged_endings{SEL}", "endings awaiting the sinks"),
        (f"increase(lifecycleevh_crash_state_errors_total{SEL}[{RATE}])", "write errors"),
    ], 8, description="With general.state_dir: how fresh the state on disk is."),
    panel("Handler errors", [
        (f"rate(lifecycleevh_internal_errors_total{SEL}[{RATE}])", "internal errors"),
        (f"rate(lifecycleevh_decode_errors_total{SEL}[{RATE}])", "decode errors"),
        (f"rate(lifecycleevh_tracker_evicted_total{SEL}[{RATE}])", "sessions evicted (max_sessions)"),
    ], 16, unit="ops"),
)

row("Call quality (each ended session's quality record)")
add(
    panel("Packet loss, 95th percentile of sessions", [
        (f"histogram_quantile(0.95, sum by (le, media, direction) (rate(janus_session_loss_ratio_bucket{SEL}[{RATE}])))",
         "{{media}} {{direction}}"),
    ], 0, unit="percentunit",
        description="Of the sessions that ended, 95 % lost at most this much: in is what Janus received from the clients, out what the clients reported losing of what Janus sent."),
    panel("Sessions that lost more than 5 %", [
        (f"1 - sum by (media, direction) (rate(janus_session_loss_ratio_bucket{{instance=~\"$instance\",le=\"0.05\"}}[{RATE}])) / sum by (media, direction) (rate(janus_session_loss_ratio_count{SEL}[{RATE}]))",
         "{{media}} {{direction}}"),
    ], 8, unit="percentunit", description="The share of ended sessions whose loss ratio was above 0.05."),
    panel("WebRTC setup time", [
        (f"histogram_quantile(0.5, sum by (le) (rate(janus_webrtc_setup_seconds_bucket{SEL}[{RATE}])))", "median"),
        (f"histogram_quantile(0.95, sum by (le) (rate(janus_webrtc_setup_seconds_bucket{SEL}[{RATE}])))", "95th percentile"),
    ], 16, unit="s",
        description="From the first negotiation step to the first PeerConnection up, per ended session that came up."),
)
add(
    panel("Jitter (each session's 95th percentile), median of sessions", [
        (f"histogram_quantile(0.5, sum by (le, media, direction) (rate(janus_session_jitter_seconds_bucket{SEL}[{RATE}])))",
         "{{media}} {{direction}}"),
    ], 0, unit="s"),
    panel("Round-trip time (each session's 95th percentile), median of sessions", [
        (f"histogram_quantile(0.5, sum by (le, media) (rate(janus_session_rtt_seconds_bucket{SEL}[{RATE}])))", "{{media}}"),
    ], 8, unit="s"),
    panel("ICE and DTLS failures, relayed sessions", [
        (f"sum(rate(janus_webrtc_ice_failures_total{SEL}[{RATE}]))", "ICE failed (PeerConnections)"),
        (f"sum(rate(janus_webrtc_dtls_failures_total{SEL}[{RATE}]))", "DTLS failed"),
        (f"sum(rate(janus_sessions_relayed_total{SEL}[{RATE}]))", "sessions relayed (TURN)"),
    ], 16, unit="ops"),
)

row("Broker sinks")
add(
    panel("Broker connections", [
        (f"lifecycleevh_sink_connected{SEL}", "{{sink}} connected ({{instance}})"),
        (f"increase(lifecycleevh_sink_connections_total{SEL}[{RATE}])", "{{sink}} connections opened"),
    ], 0, description="1 while a broker sink (rabbitmq, mqtt, nats) is connected; connections opened: the first, then each reconnection."),
    panel("Confirmed by the brokers", [
        (f"sum by (sink) (rate(lifecycleevh_sink_events_delivered_total{{instance=~\"$instance\",sink=~\"rabbitmq.*|mqtt.*|nats.*\"}}[{RATE}]))", "{{sink}} confirmed"),
        (f"lifecycleevh_sink_retrying{{instance=~\"$instance\",sink=~\"rabbitmq.*|mqtt.*|nats.*\"}}", "{{sink}} failed attempts in a row"),
    ], 8, unit="ops", description="Events the broker confirmed (RabbitMQ publisher confirms, MQTT PUBACK, JetStream acks). Spooled events wait for this; none confirmed while events are spooled is the alert 'broker sink not confirming'."),
    panel("Waiting for a broker", [
        (f"lifecycleevh_sink_spool_events{{instance=~\"$instance\",sink=~\"rabbitmq.*|mqtt.*|nats.*\"}}", "{{sink}} spooled"),
        (f"lifecycleevh_sink_spool_oldest_age_seconds{{instance=~\"$instance\",sink=~\"rabbitmq.*|mqtt.*|nats.*\"}}", "{{sink}} oldest (s)"),
    ], 16, description="Events spooled for a broker that has not confirmed them yet, and how old the oldest is: they leave the spool only once confirmed."),
)

dashboard = {
    "title": "Janus sessions (lifecycleevh)",
    "uid": "lifecycleevh",
    "description": "Janus sessions and their endings, exact, from lifecycleevh's Prometheus endpoint.",
    "tags": ["janus", "webrtc", "lifecycleevh"],
    "timezone": "",
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
        {"name": "instance", "label": "Janus", "type": "query",
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(janus_sessions_open, instance)", "refId": "instances"},
         "definition": "label_values(janus_sessions_open, instance)",
         "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"},
         "refresh": 2},
    ]},
    "panels": panels,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lifecycleevh-dashboard.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
print(out)
