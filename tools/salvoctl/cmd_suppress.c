/*
 * cmd_suppress.c - `salvoctl suppress add|del|check|list|import|export`
 * over the suppression endpoints.
 *
 *   add ADDR [REASON]        list [--limit N] [--after ADDR] [--all]
 *   del ADDR                 import FILE.csv   (address,reason[,source] per line)
 *   check ADDR               export            (CSV on stdout)
 * `check` exits 0 when the address is suppressed, 1 when it is not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int usage(void)
{
	fprintf(stderr, "usage: salvoctl suppress add ADDR [REASON] | del ADDR | check ADDR |\n"
			"       list [--limit N] [--after ADDR] [--all] | import FILE.csv | export\n");
	return 2;
}

static int request(struct ctl *c, const char *method, const char *path, const char *body, const char *ctype,
		   struct ctl_resp *r)
{
	return ctl_request(c, method, path, body, ctype, r) < 0 ? 2 : 0;
}

static char *read_file(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			char *g = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!g) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = g;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (buf)
		buf[len] = '\0';
	if (f != stdin)
		fclose(f);
	return buf;
}

static void print_entry(json_t *e)
{
	printf("%-40s %-13s %5lld  %s  %s\n", json_string_value(json_object_get(e, "address")),
	       json_string_value(json_object_get(e, "source")), (long long)json_integer_value(json_object_get(e, "count")),
	       json_string_value(json_object_get(e, "last")), json_string_value(json_object_get(e, "reason")));
}

int cmd_suppress(struct ctl *c, int argc, char **argv)
{
	struct ctl_resp r;
	char path[1024], enc[700];
	int rc;

	if (argc < 2)
		return usage();
	const char *sub = argv[1];
	if (!strcmp(sub, "add") && (argc == 3 || argc == 4)) {
		json_t *b = json_pack("{s:s, s:s}", "address", argv[2], "reason", argc == 4 ? argv[3] : "added with salvoctl");
		char *body = json_dumps(b, JSON_COMPACT);

		json_decref(b);
		rc = request(c, "POST", "/api/v1/suppressions", body, NULL, &r);
		free(body);
	} else if ((!strcmp(sub, "del") || !strcmp(sub, "check")) && argc == 3) {
		ctl_urlencode(argv[2], enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/suppressions/%s", enc);
		rc = request(c, !strcmp(sub, "del") ? "DELETE" : "GET", path, NULL, NULL, &r);
		if (!rc && !strcmp(sub, "check") && r.status == 404) {
			if (c->json)
				printf("{\"address\":\"%s\",\"suppressed\":false}\n", argv[2]);
			else
				printf("%s: not suppressed\n", argv[2]);
			ctl_resp_free(&r);
			return 1;
		}
	} else if (!strcmp(sub, "list")) {
		const char *after = "", *limit = "100";
		bool all = false;

		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--limit") && i + 1 < argc)
				limit = argv[++i];
			else if (!strcmp(argv[i], "--after") && i + 1 < argc)
				after = argv[++i];
			else if (!strcmp(argv[i], "--all"))
				all = true;
			else
				return usage();
		}
		ctl_urlencode(after, enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/suppressions?limit=%s&after=%s%s", limit, enc, all ? "&all=1" : "");
		rc = request(c, "GET", path, NULL, NULL, &r);
	} else if (!strcmp(sub, "import") && argc == 3) {
		char *csv = read_file(argv[2]);

		if (!csv) {
			fprintf(stderr, "salvoctl: cannot read %s\n", argv[2]);
			return 2;
		}
		rc = request(c, "POST", "/api/v1/suppressions/import", csv, "text/csv", &r);
		free(csv);
	} else if (!strcmp(sub, "export") && argc == 2) {
		rc = request(c, "GET", "/api/v1/suppressions/export", NULL, NULL, &r);
		if (!rc && r.status == 200) {
			fwrite(r.body, 1, r.len, stdout);
			ctl_resp_free(&r);
			return 0;
		}
	} else {
		return usage();
	}
	if (rc)
		return rc;
	if (r.status != 200) {
		rc = ctl_http_error(&r);
		ctl_resp_free(&r);
		return rc;
	}
	if (c->json) {
		fputs(r.body, stdout);
		if (r.len && r.body[r.len - 1] != '\n')
			putchar('\n');
	} else {
		json_t *j = json_loads(r.body, 0, NULL);

		if (!strcmp(sub, "list")) {
			json_t *arr = json_object_get(j, "suppressions");

			printf("%-40s %-13s %5s  %-24s  %s\n", "ADDRESS", "SOURCE", "COUNT", "LAST", "REASON");
			for (size_t i = 0; i < json_array_size(arr); i++)
				print_entry(json_array_get(arr, i));
			if (json_is_string(json_object_get(j, "next")))
				printf("(more: --after %s)\n", json_string_value(json_object_get(j, "next")));
		} else if (!strcmp(sub, "check")) {
			print_entry(j);
		} else if (!strcmp(sub, "import")) {
			json_t *f = json_object_get(j, "failed");

			printf("imported %lld, failed %zu\n", (long long)json_integer_value(json_object_get(j, "imported")),
			       json_array_size(f));
			for (size_t i = 0; i < json_array_size(f); i++)
				printf("  line %lld: %s\n", (long long)json_integer_value(json_object_get(json_array_get(f, i), "line")),
				       json_string_value(json_object_get(json_array_get(f, i), "error")));
		} else {
			printf("%s: %s\n", json_string_value(json_object_get(j, "address")),
			       json_is_true(json_object_get(j, "suppressed")) ? "suppressed" : "removed");
		}
		json_decref(j);
	}
	ctl_resp_free(&r);
	return 0;
}
