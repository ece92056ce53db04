#!/bin/sh
# Makes contrib/screenshot/prometheus-graph.png, the picture in docs/metrics.md of the
# metrics: a real Janus with lifecycleevh, a real Prometheus scraping it for
# four minutes of sessions ending by request, timeout and dropped WebSockets,
# then Prometheus's graph page captured by headless Chromium
# (examples/metrics_screenshot.rs). Needs Debian's prometheus and chromium
# (apt-get install prometheus chromium); not part of CI.
set -eu
cd "$(dirname "$0")/../.."
cargo build --locked --quiet
cargo run --locked --quiet --example metrics_screenshot -- contrib/screenshot/prometheus-graph.png
# Smaller, same pixels, when optipng is there.
if command -v optipng >/dev/null 2>&1; then optipng -quiet -o5 contrib/screenshot/prometheus-graph.png; fi
ls -l contrib/screenshot/prometheus-graph.png
