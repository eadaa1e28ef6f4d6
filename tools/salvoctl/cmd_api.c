/*
 * cmd_api.c - salvoctl's read and act commands over the management API:
 * status, queues, vmtas, pause/resume/retry, set-mode. Tables for people,
 * the API's own JSON with --json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"

static int print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

	puts(s ? s : "null");
	free(s);
	json_decref(j);
	return 0;
}

static json_int_t geti(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static double getf(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static const char *gets_(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

int cmd_status(struct ctl *c, int argc, char **argv)
{
	int st;
	json_t *j;
	char a[32], b[32];

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: salvoctl status\n");
		return 2;
	}
	if (!(j = ctl_get_json(c, "/api/v1/status", &st)))
		return st;
	if (c->json)
		return print_json(j);
	json_t *t = json_object_get(j, "totals"), *r = json_object_get(j, "rates_per_min"),
	       *q = json_object_get(j, "queued"), *sp = json_object_get(j, "spool");
	printf("salvod %s on %s, up %llds, %lld workers\n", gets_(j, "version"), gets_(j, "host_name"),
	       (long long)geti(j, "uptime_s"), (long long)geti(j, "workers"));
	printf("%-12s %12s %12s\n", "", "total", "per minute");
	printf("%-12s %12lld %12s\n", "received", (long long)geti(t, "received"), "-");
	printf("%-12s %12lld %12s\n", "delivered", (long long)geti(t, "delivered"), ctl_num(getf(r, "delivered"), a, sizeof(a)));
	printf("%-12s %12lld %12s\n", "deferred", (long long)geti(t, "deferred"), ctl_num(getf(r, "deferred"), b, sizeof(b)));
	printf("%-12s %12lld %12s\n", "bounced", (long long)geti(t, "bounced"), ctl_num(getf(r, "bounced"), a, sizeof(a)));
	printf("%-12s %12lld\n", "expired", (long long)geti(t, "expired"));
	printf("queued: %lld recipients in %lld messages; %lld connections; %lld queues (%lld in backoff, %lld paused)\n",
	       (long long)geti(q, "recipients"), (long long)geti(q, "messages"), (long long)geti(j, "connections"),
	       (long long)geti(j, "queues"), (long long)geti(j, "queues_in_backoff"), (long long)geti(j, "queues_paused"));
	printf("spool: %.1f MiB used\n", (double)geti(sp, "used_bytes") / 1048576.0);
	json_decref(j);
	return 0;
}

static const char *sort_key;

static int queue_cmp(const void *x, const void *y)
{
	json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	double va, vb;

	if (!strcmp(sort_key, "rate")) {
		va = getf(a, "delivered_per_min");
		vb = getf(b, "delivered_per_min");
	} else if (!strcmp(sort_key, "errors")) {
		va = getf(a, "deferred_per_min") + getf(a, "bounced_per_min") + (double)geti(a, "deferred") * 1e-9;
		vb = getf(b, "deferred_per_min") + getf(b, "bounced_per_min") + (double)geti(b, "deferred") * 1e-9;
	} else {
		va = (double)geti(a, "size");
		vb = (double)geti(b, "size");
	}
	if (va != vb)
		return va < vb ? 1 : -1;
	return strcmp(gets_(a, "domain"), gets_(b, "domain"));
}

int cmd_queues(struct ctl *c, int argc, char **argv)
{
	const char *mode = NULL, *domain = NULL;
	json_t *j, *arr, **v;
	size_t n = 0;
	int st;

	sort_key = "size";
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--sort=", 7) && (!strcmp(argv[i] + 7, "size") || !strcmp(argv[i] + 7, "rate") ||
						       !strcmp(argv[i] + 7, "errors")))
			sort_key = argv[i] + 7;
		else if (!strncmp(argv[i], "--mode=", 7) && (!strcmp(argv[i] + 7, "backoff") ||
							    !strcmp(argv[i] + 7, "paused") || !strcmp(argv[i] + 7, "normal")))
			mode = argv[i] + 7;
		else if (argv[i][0] != '-' && !domain)
			domain = argv[i];
		else {
			fprintf(stderr, "usage: salvoctl queues [--sort=size|rate|errors] [--mode=backoff|paused|normal] [DOMAIN]\n");
			return 2;
		}
	}
	if (domain) {
		char path[600], enc[520];

		ctl_urlencode(domain, enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/queues/%s", enc);
		if (!(j = ctl_get_json(c, path, &st)))
			return st;
		arr = json_array();
		json_array_append_new(arr, j);
		j = json_pack("{s:o}", "queues", arr);
	} else if (!(j = ctl_get_json(c, "/api/v1/queues", &st))) {
		return st;
	}
	arr = json_object_get(j, "queues");
	v = calloc(json_array_size(arr) + 1, sizeof(*v));
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *q = json_array_get(arr, i);

		if (mode && strcmp(gets_(q, "mode"), mode))
			continue;
		v[n++] = q;
	}
	qsort(v, n, sizeof(*v), queue_cmp);
	if (c->json) {
		json_t *out = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append(out, v[i]);
		free(v);
		json_decref(j);
		return print_json(json_pack("{s:o}", "queues", out));
	}
	printf("%-28s %9s %6s %8s %8s %8s %8s %-8s %s\n", "QUEUE", "QUEUED", "INFLT", "CONN/LIM", "DLV/MIN", "DEF/MIN",
	       "BNC/MIN", "MODE", "LAST ERROR");
	for (size_t i = 0; i < n; i++) {
		json_t *q = v[i];
		char conn[32], a[16], b[16], d[16];

		snprintf(conn, sizeof(conn), "%lld/%lld", (long long)geti(q, "connections"),
			 (long long)geti(q, "connection_limit"));
		printf("%-28.28s %9lld %6lld %8s %8s %8s %8s %-8s %.60s\n", gets_(q, "domain"), (long long)geti(q, "size"),
		       (long long)geti(q, "in_flight"), conn, ctl_num(getf(q, "delivered_per_min"), a, sizeof(a)),
		       ctl_num(getf(q, "deferred_per_min"), b, sizeof(b)), ctl_num(getf(q, "bounced_per_min"), d, sizeof(d)),
		       gets_(q, "mode"), json_is_string(json_object_get(q, "last_error")) ? gets_(q, "last_error") : "");
	}
	if (!n)
		printf("(no queues%s%s)\n", mode ? " in mode " : "", mode ? mode : "");
	free(v);
	json_decref(j);
	return 0;
}

int cmd_vmtas(struct ctl *c, int argc, char **argv)
{
	json_t *j, *arr;
	int st;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: salvoctl vmtas\n");
		return 2;
	}
	if (!(j = ctl_get_json(c, "/api/v1/vmtas", &st)))
		return st;
	if (c->json)
		return print_json(j);
	arr = json_object_get(j, "vmtas");
	printf("%-16s %-40s %-28s %6s %10s %s\n", "VMTA", "SOURCE IP", "HELO", "CONNS", "DELIVERED", "DISABLED");
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *m = json_array_get(arr, i), *dis = json_object_get(m, "disabled");
		char dl[256] = "";

		for (size_t k = 0; k < json_array_size(dis) && strlen(dl) < 200; k++) {
			json_t *x = json_array_get(dis, k);

			snprintf(dl + strlen(dl), sizeof(dl) - strlen(dl), "%s%s until %s", k ? ", " : "", gets_(x, "queue"),
				 gets_(x, "until"));
		}
		printf("%-16s %-40s %-28s %6lld %10lld %s\n", gets_(m, "name"),
		       json_is_string(json_object_get(m, "source_ip")) ? gets_(m, "source_ip") : "(any)", gets_(m, "helo"),
		       (long long)geti(m, "connections"), (long long)geti(m, "delivered"), dl[0] ? dl : "-");
	}
	json_decref(j);
	return 0;
}

static int post_action(struct ctl *c, const char *domain, const char *verb, const char *body, const char *label)
{
	char path[700], enc[520];
	struct ctl_resp r;
	int rc = 0;

	ctl_urlencode(domain, enc, sizeof(enc));
	snprintf(path, sizeof(path), "/api/v1/queues/%s/%s", enc, verb);
	if (ctl_request(c, "POST", path, body ? body : "", NULL, &r) < 0)
		return 2;
	if (r.status != 200)
		rc = ctl_http_error(&r);
	else if (c->json)
		puts(r.body);
	else
		printf("%s: %s\n", domain, label);
	ctl_resp_free(&r);
	return rc;
}

int cmd_queue_action(struct ctl *c, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: salvoctl %s DOMAIN\n", argv[0]);
		return 2;
	}
	return post_action(c, argv[1], argv[0], NULL,
			   !strcmp(argv[0], "pause") ? "paused" : !strcmp(argv[0], "resume") ? "resumed" : "retrying now");
}

int cmd_set_mode(struct ctl *c, int argc, char **argv)
{
	char body[64];

	if (argc != 3 || (strcmp(argv[2], "normal") && strcmp(argv[2], "backoff"))) {
		fprintf(stderr, "usage: salvoctl set-mode DOMAIN normal|backoff\n");
		return 2;
	}
	snprintf(body, sizeof(body), "{\"mode\":\"%s\"}", argv[2]);
	return post_action(c, argv[1], "mode", body, strcmp(argv[2], "normal") ? "mode backoff" : "mode normal");
}
