/*
 * The C shim: what Rust cannot reach directly.
 *
 * - jansson's json_decref is an inline function in jansson.h (json_incref
 *   too, but Rust does that one itself: see LCEVH_JSON_REFCOUNT_OFFSET);
 * - Janus's logger (janus_vprintf, janus_log_level, ...) and its event bus
 *   (janus_events_notify_handlers) are symbols of the janus binary, looked up
 *   at run time so that the same .so also runs in a test harness, where the
 *   logger falls back to stderr and the bus is reported missing.
 */
#ifndef LIFECYCLEEVH_SHIM_H
#define LIFECYCLEEVH_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct json_t json_t;

/* Looks the Janus symbols up; idempotent. Returns 1 when janus_vprintf was found. */
int lcevh_setup(void);

/* Where jansson keeps a value's reference count (json_t's public
 * `refcount`, a size_t), so that Rust can do what jansson's inline
 * json_incref does without a call on Janus's events thread. shim.c fails to
 * compile if jansson.h says otherwise, or counts without atomic builtins. */
#define LCEVH_JSON_REFCOUNT_OFFSET 8

void lcevh_json_decref(json_t *json);
/* The integer "type" of an event object, or INT64_MIN when there is none. */
int64_t lcevh_json_event_type(const json_t *json);
/* Compact serialisation into buf; returns the size needed (0 on error). */
size_t lcevh_json_dumpb(const json_t *json, char *buf, size_t size);
/* Parses len bytes into a new reference, or NULL. */
json_t *lcevh_json_loadb(const char *buf, size_t len);

/* 1 when a message at this level would be printed (Janus's debug_level). */
int lcevh_log_enabled(int level);
/* Prints one line through Janus's logger (or stderr), JANUS_LOG style. */
void lcevh_log(int level, const char *message);

/* 1 when janus_events_notify_handlers was found in the process. */
int lcevh_bus_available(void);
/* Queues a session event (type 1) named `name` for session_id on Janus's own
 * event bus, with no transport object. Returns 0, or -1 when unavailable. */
int lcevh_bus_notify_session(uint64_t session_id, const char *name);

#endif
