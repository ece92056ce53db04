/*
 * What Janus's own sampleevh does on Janus's events thread, as the baseline
 * for lifecycleevh's incoming_event: take a reference, push the event onto a
 * mutex-protected GLib async queue. A consumer thread pops and releases.
 * Compiled by benches/hot_path.rs at run time (cc, pkg-config glib-2.0 jansson).
 */
#include <glib.h>
#include <jansson.h>

static GAsyncQueue *queue;
static GThread *consumer;
static json_t stop_marker;

static gpointer consume(gpointer data) {
	(void)data;
	for(;;) {
		json_t *e = g_async_queue_pop(queue);
		if(e == &stop_marker)
			break;
		json_decref(e);
	}
	return NULL;
}

void baseline_start(void) {
	queue = g_async_queue_new();
	consumer = g_thread_new("baseline consumer", consume, NULL);
}

/* sampleevh's incoming_event, minus its initialized/stopping checks. */
void baseline_incoming_event(json_t *event) {
	json_incref(event);
	g_async_queue_push(queue, event);
}

void baseline_stop(void) {
	g_async_queue_push(queue, &stop_marker);
	g_thread_join(consumer);
	g_async_queue_unref(queue);
}
