/*
 * cmd_delete.c - `salvoctl delete [--queue Q] [--campaign C] [--sender S]
 * [--recipient R] [--older-than DURATION] [--dsn]`: remove queued
 * recipients matching every given option (POST /api/v1/delete) and print
 * how many were removed ("deleted N", plus "(M in flight: cancelled unless
 * delivered)" when some were in a transaction). --sender '<>' is the null
 * sender. At least one filter option is required, each at most once and
 * in UTF-8 (else a usage error, exit 2); salvod checks the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/salvoctl/ctl.h"

static int usage(void)
{
	fprintf(stderr, "usage: salvoctl delete [--queue Q] [--campaign C] [--sender S] [--recipient R]\n"
			"                       [--older-than DURATION] [--dsn]   (at least one filter)\n");
	return 2;
}

int cmd_delete(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *opt, *key;
	} opts[] = {
		{"--queue", "queue"},         {"--campaign", "campaign"},     {"--sender", "sender"},
		{"--recipient", "recipient"}, {"--older-than", "older_than"},
	};
	json_t *body = json_object(), *ans;
	struct ctl_resp r;
	size_t n = 0;
	char *text;
	int rc;

	if (!body)
		return 2;
	for (int i = 1; i < argc; i++) {
		bool known = false;

		if (!strcmp(argv[i], "--dsn")) {
			json_object_set_new(body, "dsn", json_true());
			continue;
		}
		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]) && !known; k++) {
			size_t ol = strlen(opts[k].opt);
			const char *v = NULL;

			if (!strcmp(argv[i], opts[k].opt) && i + 1 < argc)
				v = argv[++i];
			else if (!strncmp(argv[i], opts[k].opt, ol) && argv[i][ol] == '=')
				v = argv[i] + ol + 1;
			if (!v)
				continue;
			known = true;
			n++;
			/* a filter that cannot be sent (not UTF-8) or is given twice is
			 * an error: dropping one would widen the delete */
			if (json_object_get(body, opts[k].key) ||
			    json_object_set_new(body, opts[k].key, json_string(v)) < 0) {
				fprintf(stderr, "salvoctl: %s %s\n", opts[k].opt,
					json_object_get(body, opts[k].key) ? "given twice" : "is not UTF-8");
				json_decref(body);
				return 2;
			}
		}
		if (!known) {
			json_decref(body);
			return usage();
		}
	}
	if (!n) {
		json_decref(body);
		return usage();
	}
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		return 2;
	rc = ctl_request(c, "POST", "/api/v1/delete", text, "application/json", &r);
	free(text);
	if (rc < 0)
		return 2;
	if (r.status != 200) {
		rc = ctl_http_error(&r);
		ctl_resp_free(&r);
		return rc;
	}
	if (c->json) {
		printf("%s\n", r.body);
		ctl_resp_free(&r);
		return 0;
	}
	ans = json_loads(r.body, 0, NULL);
	ctl_resp_free(&r);
	if (!ans) {
		fprintf(stderr, "salvoctl: salvod's answer is not JSON\n");
		return 1;
	}
	printf("deleted %lld", (long long)json_integer_value(json_object_get(ans, "deleted")));
	if (json_integer_value(json_object_get(ans, "in_flight")))
		printf(" (%lld in flight: cancelled unless delivered)",
		       (long long)json_integer_value(json_object_get(ans, "in_flight")));
	printf("\n");
	json_decref(ans);
	return 0;
}
