/*
 * An event handler that subscribes to every event and does nothing with it:
 * the benchmark's measure of what Janus itself spends on delivering events
 * to handlers (building each event, its events thread), so that each real
 * handler's own cost can be told apart. Built by benches/janus_e2e.rs against
 * this project's ABI header.
 */
#include "janus_eventhandler.h"

static int null_init(const char *config_path) { (void)config_path; return 0; }
static void null_destroy(void) {}
static int null_api(void) { return JANUS_EVENTHANDLER_API_VERSION; }
static int null_version(void) { return 1; }
static const char *null_version_string(void) { return "1"; }
static const char *null_description(void) { return "Does nothing with every event."; }
static const char *null_name(void) { return "Null event handler"; }
static const char *null_author(void) { return "lifecycleevh benchmarks"; }
static const char *null_package(void) { return "janus.eventhandler.nullevh"; }
static void null_incoming_event(json_t *event) { (void)event; }
static json_t *null_handle_request(json_t *request) { (void)request; return NULL; }

static janus_eventhandler null_handler = {
	.init = null_init,
	.destroy = null_destroy,
	.get_api_compatibility = null_api,
	.get_version = null_version,
	.get_version_string = null_version_string,
	.get_description = null_description,
	.get_name = null_name,
	.get_author = null_author,
	.get_package = null_package,
	.incoming_event = null_incoming_event,
	.handle_request = null_handle_request,
	.events_mask = JANUS_EVENT_TYPE_ALL,
};

janus_eventhandler *create(void) {
	return &null_handler;
}
