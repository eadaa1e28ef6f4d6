/*
 * cmd_inspect.c - `salvoctl show QUEUE` (every queued recipient of a queue,
 * fetched page by page from GET /api/v1/queues/{q}/recipients) and
 * `salvoctl message ID` (GET /api/v1/messages/{id}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/salvoctl/ctl.h"

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

int cmd_show(struct ctl *c, int argc, char **argv)
{
	const char *queue = NULL;
	long limit = 0, shown = 0;
	char enc[520], path[900], after[64] = "";
	json_t *all = c->json ? json_array() : NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--limit") && i + 1 < argc && atol(argv[i + 1]) > 0)
			limit = atol(argv[++i]);
		else if (argv[i][0] != '-' && !queue)
			queue = argv[i];
		else {
			fprintf(stderr, "usage: salvoctl show QUEUE [--limit N]\n");
			json_decref(all);
			return 2;
		}
	}
	if (!queue) {
		fprintf(stderr, "usage: salvoctl show QUEUE [--limit N]\n");
		json_decref(all);
		return 2;
	}
	ctl_urlencode(queue, enc, sizeof(enc));
	if (!c->json)
		printf("%-16s %-5s %-32s %-24s %4s %-24s %s\n", "MESSAGE", "IDX", "RECIPIENT", "SENDER", "ATT",
		       "NEXT ATTEMPT", "LAST RESPONSE");
	for (;;) {
		json_t *j, *arr, *next;
		int st;

		snprintf(path, sizeof(path), "/api/v1/queues/%s/recipients?limit=1000%s%s", enc, after[0] ? "&after=" : "",
			 after);
		if (!(j = ctl_get_json(c, path, &st))) {
			json_decref(all);
			return st;
		}
		arr = json_object_get(j, "recipients");
		for (size_t i = 0; i < json_array_size(arr) && (!limit || shown < limit); i++, shown++) {
			json_t *r = json_array_get(arr, i);

			if (all)
				json_array_append(all, r);
			else
				printf("%-16s %-5lld %-32s %-24s %4lld %-24s %.60s\n", str(r, "id"),
				       (long long)json_integer_value(json_object_get(r, "index")), str(r, "recipient"),
				       str(r, "sender"), (long long)json_integer_value(json_object_get(r, "attempts")),
				       str(r, "next_attempt"), str(r, "last_response"));
		}
		next = json_object_get(j, "next");
		if (!json_is_string(next) || (limit && shown >= limit)) {
			json_decref(j);
			break;
		}
		snprintf(after, sizeof(after), "%s", json_string_value(next));
		json_decref(j);
	}
	if (all) {
		char *s = json_dumps(all, JSON_COMPACT);

		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(all);
	} else {
		printf("%ld recipient(s) queued for %s\n", shown, queue);
	}
	return 0;
}

int cmd_message(struct ctl *c, int argc, char **argv)
{
	char path[160], enc[100];
	json_t *j, *rs;
	int st;

	if (argc != 2 || strlen(argv[1]) > 32) {
		fprintf(stderr, "usage: salvoctl message ID\n");
		return 2;
	}
	/* encoded: a space or '?' in a mistyped id must reach salvod as such
	 * (and be refused naming the id), not break the request */
	ctl_urlencode(argv[1], enc, sizeof(enc));
	snprintf(path, sizeof(path), "/api/v1/messages/%s", enc);
	if (!(j = ctl_get_json(c, path, &st)))
		return st;
	if (c->json) {
		char *s = json_dumps(j, JSON_COMPACT);

		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
		return 0;
	}
	printf("message   %s\nsender    %s\ncampaign  %s\nsource    %s\nreceived  %s\nsize      %lld\n\n%s\n",
	       str(j, "id"), str(j, "sender"), str(j, "campaign"), str(j, "source_ip"), str(j, "received"),
	       (long long)json_integer_value(json_object_get(j, "size")), str(j, "headers"));
	rs = json_object_get(j, "recipients");
	for (size_t i = 0; i < json_array_size(rs); i++) {
		json_t *r = json_array_get(rs, i);

		printf("  %-4lld %-8s %-32s attempts %lld next %s %.60s\n",
		       (long long)json_integer_value(json_object_get(r, "index")), str(r, "state"), str(r, "recipient"),
		       (long long)json_integer_value(json_object_get(r, "attempts")), str(r, "next_attempt"),
		       str(r, "last_response"));
	}
	json_decref(j);
	return 0;
}
