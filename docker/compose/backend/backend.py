"""An example backend for lifecycleevh's HTTP sinks (and Janus's sampleevh).

Takes the POSTs (one event, or an array of events; gzip or deflate bodies),
appends every event to $EVENTS_FILE (default /data/events.jsonl) as one JSON
line, and prints one line per session lifecycle event:

    session 4242424242: created
    session 4242424242: destroyed (transport_gone, synthetic)

A real backend would deduplicate on (session_id, event.name): spooled
events are delivered at least once.
"""

import gzip
import json
import os
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer

EVENTS_FILE = os.environ.get("EVENTS_FILE", "/data/events.jsonl")
PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            data = json.loads(body)
        except (OSError, ValueError, zlib.error) as e:
            self.send_error(400, f"not a JSON body: {e}")
            return
        events = data if isinstance(data, list) else [data]
        with open(EVENTS_FILE, "a", encoding="utf-8") as out:
            for event in events:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
        for event in events:
            if isinstance(event, dict) and event.get("type") == 1:
                body = event.get("event", {})
                extra = [body[k] for k in ("reason",) if k in body]
                if body.get("synthetic"):
                    extra.append("synthetic")
                note = f" ({', '.join(extra)})" if extra else ""
                print(f"session {event.get('session_id')}: {body.get('name')}{note}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass  # one line per lifecycle event is enough


print(f"example backend: listening on port {PORT}, writing {EVENTS_FILE}")
HTTPServer(("", PORT), Handler).serve_forever()
