/*
 * cmd_reload.c - `salvoctl reload`: POST /api/v1/reload. Prints the new
 * generation and any warning ("X changes on restart only"), or every
 * FILE:LINE: error of a refused configuration (exit status 1).
 * --json: the API's answer as it came.
 */
#include <stdio.h>

#include "ctl.h"

static void print_lines(FILE *f, json_t *arr, const char *prefix)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		fprintf(f, "%s%s\n", prefix, json_string_value(json_array_get(arr, i)));
}

int cmd_reload(struct ctl *c, int argc, char **argv)
{
	struct ctl_resp r;
	json_t *j;
	int rc = 0;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: salvoctl reload\n");
		return 2;
	}
	if (ctl_request(c, "POST", "/api/v1/reload", "", NULL, &r) < 0)
		return 2;
	j = (r.status == 200 || r.status == 400) ? json_loads(r.body, 0, NULL) : NULL;
	if (!j) {
		rc = ctl_http_error(&r);
	} else if (c->json) {
		puts(r.body);
		rc = r.status == 200 ? 0 : 1;
	} else if (r.status == 200) {
		printf("reloaded: configuration generation %lld\n",
		       (long long)json_integer_value(json_object_get(j, "config_generation")));
		print_lines(stdout, json_object_get(j, "warnings"), "warning: ");
	} else {
		fprintf(stderr, "salvoctl: reload refused, configuration generation %lld stays in force:\n",
			(long long)json_integer_value(json_object_get(j, "config_generation")));
		print_lines(stderr, json_object_get(j, "errors"), "");
		print_lines(stderr, json_object_get(j, "warnings"), "");
		rc = 1;
	}
	json_decref(j);
	ctl_resp_free(&r);
	return rc;
}
