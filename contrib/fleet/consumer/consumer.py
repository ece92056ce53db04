"""Prints each session's ending, from every Janus of the fleet.

Reads the durable queue the Janus servers' lifecycleevh publishes to (its
rabbitmq sink; rabbitmqevh's format: a JSON array of events per message, or
one event). A session is known by (emitter, session_id): `emitter` is the
Janus's server_name, unique per Janus in a fleet, and session ids are only
unique within one Janus. Delivery is at least once, so a repeated event is
recognised by (emitter, session_id, event name) and printed once. A message
is acknowledged once handled: one the consumer dies with comes again.
"""
import json
import os
import sys
import time

import pika

HOST = os.environ.get("RABBITMQ_HOST", "rabbitmq")
QUEUE = os.environ.get("QUEUE", "janus-events")
seen = set()


def handle(event):
    if event.get("type") != 1:
        return
    name = event.get("event", {}).get("name")
    key = (event.get("emitter"), event.get("session_id"), name)
    if name not in ("created", "destroyed") or key in seen:
        return
    seen.add(key)
    janus, session = key[0], key[1]
    if name == "created":
        print(f"{janus}: session {session} created", flush=True)
        return
    e = event["event"]
    how = e.get("reason", "?")
    if e.get("synthetic"):
        how += ", told by lifecycleevh"
    lived = e.get("duration_us")
    lived = f" after {lived / 1e6:.1f} s" if isinstance(lived, int) else ""
    print(f"{janus}: session {session} ended ({how}){lived}", flush=True)


def on_message(channel, method, _properties, body):
    try:
        events = json.loads(body)
    except ValueError:
        print(f"not JSON: {body[:200]!r}", file=sys.stderr, flush=True)
        events = []
    for event in events if isinstance(events, list) else [events]:
        handle(event)
    channel.basic_ack(method.delivery_tag)


def main():
    credentials = pika.PlainCredentials(
        os.environ.get("RABBITMQ_USER", "janus"), os.environ.get("RABBITMQ_PASSWORD", "janus"))
    while True:
        try:
            params = pika.ConnectionParameters(HOST, credentials=credentials, heartbeat=30)
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            # Declared as the sinks declare it: durable.
            channel.queue_declare(QUEUE, durable=True)
            channel.basic_consume(QUEUE, on_message)
            print(f"consuming {QUEUE} on {HOST}", flush=True)
            channel.start_consuming()
        except pika.exceptions.AMQPError as e:
            print(f"waiting for RabbitMQ ({e.__class__.__name__})", flush=True)
            time.sleep(2)


if __name__ == "__main__":
    main()
