/* See shim.h. Compiled by build.rs with the cc crate. */
#define _GNU_SOURCE
#include "shim.h"

#include <dlfcn.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef void (*lcevh_vprintf_fn)(const char *format, ...);
typedef void (*lcevh_notify_fn)(int type, int subtype, uint64_t session_id, ...);

static lcevh_vprintf_fn janus_printf_ptr;
static lcevh_notify_fn janus_notify_ptr;
static int *janus_log_level_ptr;
static int *janus_log_timestamps_ptr; /* gboolean */
static int *janus_log_colors_ptr;     /* gboolean */
static char **janus_log_global_prefix_ptr;
static int setup_done;

/* Level used when running outside Janus (stderr): INFO. */
#define LCEVH_FALLBACK_LEVEL 4

int lcevh_setup(void) {
	if(!__atomic_load_n(&setup_done, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&janus_log_level_ptr, (int *)dlsym(RTLD_DEFAULT, "janus_log_level"), __ATOMIC_RELAXED);
		__atomic_store_n(&janus_log_timestamps_ptr, (int *)dlsym(RTLD_DEFAULT, "janus_log_timestamps"), __ATOMIC_RELAXED);
		__atomic_store_n(&janus_log_colors_ptr, (int *)dlsym(RTLD_DEFAULT, "janus_log_colors"), __ATOMIC_RELAXED);
		__atomic_store_n(&janus_log_global_prefix_ptr, (char **)dlsym(RTLD_DEFAULT, "janus_log_global_prefix"), __ATOMIC_RELAXED);
		__atomic_store_n(&janus_notify_ptr, (lcevh_notify_fn)dlsym(RTLD_DEFAULT, "janus_events_notify_handlers"), __ATOMIC_RELAXED);
		__atomic_store_n(&janus_printf_ptr, (lcevh_vprintf_fn)dlsym(RTLD_DEFAULT, "janus_vprintf"), __ATOMIC_RELAXED);
		__atomic_store_n(&setup_done, 1, __ATOMIC_RELEASE);
	}
	return __atomic_load_n(&janus_printf_ptr, __ATOMIC_RELAXED) != NULL;
}

_Static_assert(offsetof(json_t, refcount) == LCEVH_JSON_REFCOUNT_OFFSET,
	"jansson's json_t.refcount moved: update LCEVH_JSON_REFCOUNT_OFFSET");
_Static_assert(sizeof(((json_t *)0)->refcount) == sizeof(size_t),
	"jansson's json_t.refcount is not a size_t");
#if !JSON_HAVE_ATOMIC_BUILTINS
#error "this jansson counts references without atomic builtins; JsonRef::retain assumes them"
#endif

void lcevh_json_decref(json_t *json) {
	json_decref(json);
}

static int64_t lcevh_integer_or_none(const json_t *value) {
	return json_is_integer(value) ? (int64_t)json_integer_value(value) : INT64_MIN;
}

int64_t lcevh_json_event_type(const json_t *json) {
	if(!json_is_object(json))
		return INT64_MIN;
	/* Janus builds every event with "type" first, or second after "emitter"
	 * (janus_events_notify_handlers), and jansson iterates an object in
	 * insertion order: two string compares usually beat hashing the key. */
	void *it = json_object_iter((json_t *)json);
	for(int i = 0; i < 2 && it != NULL; i++) {
		const char *k = json_object_iter_key(it);
		/* strcmp(k, "type") == 0, without the call. */
		if(k[0] == 't' && k[1] == 'y' && k[2] == 'p' && k[3] == 'e' && k[4] == '\0')
			return lcevh_integer_or_none(json_object_iter_value(it));
		it = json_object_iter_next((json_t *)json, it);
	}
	return lcevh_integer_or_none(json_object_get(json, "type"));
}

size_t lcevh_json_dumpb(const json_t *json, char *buf, size_t size) {
	return json_dumpb(json, buf, size, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

json_t *lcevh_json_loadb(const char *buf, size_t len) {
	json_error_t error;
	return json_loadb(buf, len, JSON_DECODE_ANY, &error);
}

int lcevh_log_enabled(int level) {
	lcevh_setup();
	int *lvl = __atomic_load_n(&janus_log_level_ptr, __ATOMIC_RELAXED);
	int threshold = lvl ? __atomic_load_n(lvl, __ATOMIC_RELAXED) : LCEVH_FALLBACK_LEVEL;
	return level > 0 && level <= 7 && level <= threshold;
}

/* The prefixes JANUS_LOG puts before a message (debug.h), without and with colours. */
static const char *lcevh_level_prefix[] = {
	"", "[FATAL] ", "[ERR] ", "[WARN] ", "", "", "", "",
	"", "\x1b[35m[FATAL]\x1b[0m ", "\x1b[31m[ERR]\x1b[0m ", "\x1b[33m[WARN]\x1b[0m ", "", "", "", ""
};

void lcevh_log(int level, const char *message) {
	if(message == NULL || !lcevh_log_enabled(level))
		return;
	char ts[64] = "";
	int *timestamps = __atomic_load_n(&janus_log_timestamps_ptr, __ATOMIC_RELAXED);
	if(timestamps && *timestamps) {
		struct tm tmresult;
		time_t now = time(NULL);
		localtime_r(&now, &tmresult);
		strftime(ts, sizeof(ts), "[%a %b %e %T %Y] ", &tmresult);
	}
	int *colors = __atomic_load_n(&janus_log_colors_ptr, __ATOMIC_RELAXED);
	int index = level | ((colors && *colors) ? 8 : 0);
	char **global = __atomic_load_n(&janus_log_global_prefix_ptr, __ATOMIC_RELAXED);
	const char *gp = (global && *global) ? *global : "";
	lcevh_vprintf_fn print = __atomic_load_n(&janus_printf_ptr, __ATOMIC_RELAXED);
	if(print) {
		print("%s%s%s%s\n", gp, ts, lcevh_level_prefix[index], message);
	} else {
		fprintf(stderr, "%s%s%s\n", ts, lcevh_level_prefix[index & 7], message);
	}
}

int lcevh_bus_available(void) {
	lcevh_setup();
	return __atomic_load_n(&janus_notify_ptr, __ATOMIC_RELAXED) != NULL;
}

int lcevh_bus_notify_session(uint64_t session_id, const char *name) {
	lcevh_notify_fn notify = __atomic_load_n(&janus_notify_ptr, __ATOMIC_RELAXED);
	if(notify == NULL || name == NULL)
		return -1;
	/* JANUS_EVENT_TYPE_SESSION, JANUS_EVENT_SUBTYPE_NONE, then the session
	 * arguments: the event name and the (absent) transport object. */
	notify(1, 0, session_id, name, (json_t *)NULL);
	return 0;
}
