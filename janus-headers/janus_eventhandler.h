/*
 * lifecycleevh's own description of the Janus event-handler ABI.
 *
 * This is the contract between the Janus core (1.x, event-handler API
 * version 3) and an event handler plugin, written down field by field so
 * that lifecycleevh builds without Janus's development headers (which pull
 * in glib and jansson). bindgen turns it into Rust in build.rs.
 *
 * tests/abi_layout.rs compiles a probe against this header and against the
 * installed janus-dev header (<janus/events/eventhandler.h>) and fails if any
 * size, offset or constant differs.
 */
#ifndef LIFECYCLEEVH_JANUS_EVENTHANDLER_H
#define LIFECYCLEEVH_JANUS_EVENTHANDLER_H

#include <stddef.h>
#include <stdint.h>

/* jansson's JSON value: only ever handled through a pointer here. */
typedef struct json_t json_t;

/* Janus's janus_flags is glib's gsize: an unsigned long on Linux. The core
 * reads and writes it with g_atomic_pointer_* operations. */
typedef unsigned long janus_flags;

/* Version of the API this handler implements (Janus 1.x). */
#define JANUS_EVENTHANDLER_API_VERSION 3

/* Event types (the "type" of each event, and bits of events_mask). */
#define JANUS_EVENT_TYPE_NONE (0)
#define JANUS_EVENT_TYPE_SESSION (1 << 0)
#define JANUS_EVENT_TYPE_HANDLE (1 << 1)
#define JANUS_EVENT_TYPE_EXTERNAL (1 << 2)
#define JANUS_EVENT_TYPE_JSEP (1 << 3)
#define JANUS_EVENT_TYPE_WEBRTC (1 << 4)
#define JANUS_EVENT_TYPE_MEDIA (1 << 5)
#define JANUS_EVENT_TYPE_PLUGIN (1 << 6)
#define JANUS_EVENT_TYPE_TRANSPORT (1 << 7)
#define JANUS_EVENT_TYPE_CORE (1 << 8)
#define JANUS_EVENT_TYPE_ALL (0xffffffff)

/* Event subtypes. */
#define JANUS_EVENT_SUBTYPE_NONE 0
#define JANUS_EVENT_SUBTYPE_CORE_STARTUP 1
#define JANUS_EVENT_SUBTYPE_CORE_SHUTDOWN 2
#define JANUS_EVENT_SUBTYPE_WEBRTC_ICE 1
#define JANUS_EVENT_SUBTYPE_WEBRTC_LCAND 2
#define JANUS_EVENT_SUBTYPE_WEBRTC_RCAND 3
#define JANUS_EVENT_SUBTYPE_WEBRTC_PAIR 4
#define JANUS_EVENT_SUBTYPE_WEBRTC_DTLS 5
#define JANUS_EVENT_SUBTYPE_WEBRTC_STATE 6
#define JANUS_EVENT_SUBTYPE_MEDIA_STATE 1
#define JANUS_EVENT_SUBTYPE_MEDIA_SLOWLINK 2
#define JANUS_EVENT_SUBTYPE_MEDIA_STATS 3

/* The table of entry points the core reads from the pointer create() returns.
 * Order and types must match the core exactly. */
typedef struct janus_eventhandler janus_eventhandler;
struct janus_eventhandler {
	int (*const init)(const char *config_path);
	void (*const destroy)(void);
	int (*const get_api_compatibility)(void);
	int (*const get_version)(void);
	const char *(*const get_version_string)(void);
	const char *(*const get_description)(void);
	const char *(*const get_name)(void);
	const char *(*const get_author)(void);
	const char *(*const get_package)(void);
	/* The event is borrowed for the duration of the call: a handler that keeps
	 * it takes a reference (json_incref) and drops it later (json_decref). */
	void (*const incoming_event)(json_t *event);
	/* Admin API query_eventhandler: the returned object is owned by the core. */
	json_t *(*const handle_request)(json_t *request);
	/* Which event types the core delivers to incoming_event. */
	janus_flags events_mask;
};

/* The symbol the core looks up with dlsym() after dlopen(). */
typedef janus_eventhandler *create_e(void);

#endif
