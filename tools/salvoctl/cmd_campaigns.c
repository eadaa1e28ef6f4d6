/*
 * cmd_campaigns.c - campaigns in salvoctl:
 *
 *   salvoctl campaigns [--paused] [ID]   GET /api/v1/campaigns[/{id}]: one line each
 *                                         (every page, following `next`)
 *   salvoctl pause --campaign ID          POST /api/v1/campaigns/{id}/pause
 *   salvoctl resume --campaign ID         POST /api/v1/campaigns/{id}/resume
 *
 * `pause` and `resume` without --campaign act on a queue (cmd_api.c), as
 * before: a campaign is only ever named with --campaign, so a campaign id
 * is never taken for a queue name (nor the other way round).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *str(json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : dflt;
}

static long long num(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* "2026-12-07T03:41:07.123Z" as "12-07 03:41:07" (the table's width). */
static const char *short_time(json_t *o, const char *k, char *buf, size_t cap)
{
	const char *s = str(o, k, NULL);

	if (!s || strlen(s) < 19)
		return "-";
	snprintf(buf, cap, "%.5s %.8s", s + 5, s + 11);
	return buf;
}

void ctl_campaign_row(json_t *cp, char *out, size_t cap, int name_width)
{
	char first[32], last[32];

	snprintf(out, cap, "%-*.*s %9lld %9lld %9lld %9lld  %-14s %-14s %s", name_width, name_width,
		 str(cp, "campaign", "?"), num(cp, "queued"), num(cp, "deferred"), num(cp, "delivered"),
		 num(cp, "bounced"), short_time(cp, "first_received", first, sizeof(first)),
		 short_time(cp, "last_received", last, sizeof(last)),
		 json_is_true(json_object_get(cp, "paused")) ? "paused" : "active");
}

void ctl_campaign_header(char *out, size_t cap, int name_width)
{
	snprintf(out, cap, "%-*s %9s %9s %9s %9s  %-14s %-14s %s", name_width, "CAMPAIGN", "QUEUED", "DEFERRED",
		 "DELIVERED", "BOUNCED", "FIRST", "LAST", "STATE");
}

/* Every page of GET /api/v1/campaigns (following `next`): a table printed
 * page by page, or with --json one {"campaigns": [...]} of them all. */
static int list_all(struct ctl *c, bool paused)
{
	char path[200], after[32] = "", line[400];
	json_t *all = c->json ? json_array() : NULL;
	size_t shown = 0;
	int st;

	if (!c->json) {
		ctl_campaign_header(line, sizeof(line), 24);
		puts(line);
	}
	for (unsigned page = 0; page < 100000; page++) {
		json_t *j, *arr, *next;

		snprintf(path, sizeof(path), "/api/v1/campaigns?limit=10000%s%s%s", paused ? "&paused=true" : "",
			 after[0] ? "&after=" : "", after);
		if (!(j = ctl_get_json(c, path, &st))) {
			json_decref(all);
			return st;
		}
		arr = json_object_get(j, "campaigns");
		for (size_t i = 0; i < json_array_size(arr); i++, shown++) {
			if (all) {
				json_array_append(all, json_array_get(arr, i));
			} else {
				ctl_campaign_row(json_array_get(arr, i), line, sizeof(line), 24);
				puts(line);
			}
		}
		next = json_object_get(j, "next");
		if (!json_is_string(next) || strlen(json_string_value(next)) >= sizeof(after)) {
			json_decref(j);
			break;
		}
		snprintf(after, sizeof(after), "%s", json_string_value(next));
		json_decref(j);
	}
	if (all) {
		json_t *out = json_pack("{s:o}", "campaigns", all);
		char *s = out ? json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

		puts(s ? s : "null");
		free(s);
		json_decref(out);
	} else if (!shown) {
		printf("(no campaigns%s)\n", paused ? " paused" : "");
	}
	return 0;
}

int cmd_campaigns(struct ctl *c, int argc, char **argv)
{
	const char *id = NULL;
	bool paused = false;
	char path[600], enc[400], line[400];
	json_t *j, *arr;
	int st;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--paused"))
			paused = true;
		else if (argv[i][0] != '-' && !id)
			id = argv[i];
		else {
			fprintf(stderr, "usage: salvoctl campaigns [--paused] [ID]\n");
			return 2;
		}
	}
	if (!id)
		return list_all(c, paused);
	if (strlen(id) > 127) {
		fprintf(stderr, "salvoctl: a campaign id is at most 127 bytes\n");
		return 2;
	}
	ctl_urlencode(id, enc, sizeof(enc));
	snprintf(path, sizeof(path), "/api/v1/campaigns/%s", enc);
	if (!(j = ctl_get_json(c, path, &st)))
		return st;
	arr = json_array();
	json_array_append_new(arr, j);
	j = json_pack("{s:o}", "campaigns", arr);
	if (c->json) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(s ? s : "null");
		free(s);
		json_decref(j);
		return 0;
	}
	arr = json_object_get(j, "campaigns");
	ctl_campaign_header(line, sizeof(line), 24);
	puts(line);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		ctl_campaign_row(json_array_get(arr, i), line, sizeof(line), 24);
		puts(line);
	}
	if (!json_array_size(arr))
		printf("(no campaigns%s)\n", paused ? " paused" : "");
	json_decref(j);
	return 0;
}

static int campaign_action(struct ctl *c, const char *id, const char *verb)
{
	char path[600], enc[400];
	struct ctl_resp r;
	int rc = 0;

	ctl_urlencode(id, enc, sizeof(enc));
	snprintf(path, sizeof(path), "/api/v1/campaigns/%s/%s", enc, verb);
	if (ctl_request(c, "POST", path, "", NULL, &r) < 0)
		return 2;
	if (r.status != 200)
		rc = ctl_http_error(&r);
	else if (c->json)
		puts(r.body);
	else
		printf("campaign %s: %s\n", id, strcmp(verb, "pause") ? "resumed" : "paused");
	ctl_resp_free(&r);
	return rc;
}

int cmd_pause_resume(struct ctl *c, int argc, char **argv)
{
	if (argc >= 2 && !strncmp(argv[1], "--campaign", 10)) {
		const char *id = NULL;

		if (argv[1][10] == '=' && argc == 2)
			id = argv[1] + 11;
		else if (argv[1][10] == '\0' && argc == 3)
			id = argv[2];
		if (!id || !*id) {
			fprintf(stderr, "usage: salvoctl %s --campaign ID\n", argv[0]);
			return 2;
		}
		/* an id is at most 127 bytes; a longer one must not reach salvod cut
		 * short by the encoding buffer (it could name another campaign) */
		if (strlen(id) > 127) {
			fprintf(stderr, "salvoctl: a campaign id is at most 127 bytes\n");
			return 2;
		}
		return campaign_action(c, id, argv[0]);
	}
	if (argc == 2 && argv[1][0] == '-') {
		fprintf(stderr, "usage: salvoctl %s DOMAIN | --campaign ID\n", argv[0]);
		return 2;
	}
	return cmd_queue_action(c, argc, argv);
}
