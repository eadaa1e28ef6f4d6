/*
 * cmd_webhooks.c - `salvoctl webhooks`: the accounting webhooks from
 * GET /api/v1/webhooks, one line each (--json: the API's answer), and the
 * one-line stall warning `salvoctl top` shows.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *str(json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : dflt;
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

int ctl_webhook_stall_line(json_t *webhooks, char *out, size_t cap)
{
	json_t *arr = json_object_get(webhooks, "webhooks");
	size_t n = 0;

	out[0] = 0;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *w = json_array_get(arr, i);

		if (!json_is_true(json_object_get(w, "stalled")))
			continue;
		if (n++ == 0) {
			bool err = json_is_string(json_object_get(w, "last_error"));

			snprintf(out, cap, "webhook %s STALLED: %.0f failures in a row, oldest unsent %.0f s, backlog %.1f MiB%s%s%s",
				 str(w, "name", "?"), num(w, "failures_in_row"), num(w, "oldest_unsent_seconds"),
				 num(w, "backlog_bytes") / 1048576.0, err ? " (" : "", err ? str(w, "last_error", "") : "",
				 err ? ")" : "");
		}
	}
	if (n > 1 && strlen(out) + 24 < cap)
		snprintf(out + strlen(out), cap - strlen(out), " and %zu more", n - 1);
	return (int)n;
}

int cmd_webhooks(struct ctl *c, int argc, char **argv)
{
	json_t *j, *arr;
	int st;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: salvoctl webhooks\n");
		return 2;
	}
	if (!(j = ctl_get_json(c, "/api/v1/webhooks", &st)))
		return st;
	if (c->json) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(s ? s : "null");
		free(s);
		json_decref(j);
		return 0;
	}
	arr = json_object_get(j, "webhooks");
	printf("%-16s %12s %9s %12s %12s %10s %-8s %s\n", "WEBHOOK", "SENT", "FAILURES", "BACKLOG", "BACKLOG_RECS",
	       "OLDEST", "STATE", "URL / LAST ERROR");
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *w = json_array_get(arr, i);
		bool stalled = json_is_true(json_object_get(w, "stalled"));
		char backlog[32], recs[32], oldest[32];

		snprintf(backlog, sizeof(backlog), "%.0f B", num(w, "backlog_bytes"));
		if (json_is_integer(json_object_get(w, "backlog_records")))
			snprintf(recs, sizeof(recs), "%.0f", num(w, "backlog_records"));
		else
			snprintf(recs, sizeof(recs), "counting");
		snprintf(oldest, sizeof(oldest), "%.1f s", num(w, "oldest_unsent_seconds"));
		printf("%-16s %12.0f %9.0f %12s %12s %10s %-8s %s%s%s\n", str(w, "name", "?"), num(w, "records_sent"),
		       num(w, "failures"), backlog, recs, oldest,
		       stalled ? "STALLED" : num(w, "failures_in_row") > 0 ? "retrying" : "ok", str(w, "url", ""),
		       json_is_string(json_object_get(w, "last_error")) ? "  " : "", str(w, "last_error", ""));
	}
	json_decref(j);
	return 0;
}
