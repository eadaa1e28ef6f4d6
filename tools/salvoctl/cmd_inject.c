/*
 * cmd_inject.c - `salvoctl inject --from ADDR --to ADDR [--to ADDR...]
 * FILE.eml`: a quick test send through POST /api/inject/v1 with the file
 * as raw RFC 5322 content. Prints the response's counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int cmd_inject(struct ctl *c, int argc, char **argv)
{
	const char *from = NULL, *file = NULL;
	json_t *rcpts = json_array(), *req;
	struct ctl_resp r;
	char *content = NULL, *body;
	size_t len = 0, cap = 0, n;
	FILE *f;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc)
			from = argv[++i];
		else if (!strcmp(argv[i], "--to") && i + 1 < argc)
			json_array_append_new(rcpts, json_pack("{s:s}", "email", argv[++i]));
		else if (argv[i][0] != '-' || !strcmp(argv[i], "-"))
			file = argv[i];
		else
			file = NULL, i = argc;
	}
	if (!from || !file || !json_array_size(rcpts)) {
		json_decref(rcpts);
		fprintf(stderr, "usage: salvoctl inject --from ADDR --to ADDR [--to ADDR...] FILE.eml\n");
		return 2;
	}
	if (!(f = strcmp(file, "-") ? fopen(file, "rb") : stdin)) {
		json_decref(rcpts);
		fprintf(stderr, "salvoctl: cannot read %s\n", file);
		return 2;
	}
	do {
		if (len + 65536 > cap)
			content = realloc(content, cap = cap ? cap * 2 : 131072);
		n = content ? fread(content + len, 1, cap - len - 1, f) : 0;
		len += n;
	} while (n > 0 && content);
	if (f != stdin)
		fclose(f);
	if (!content) {
		json_decref(rcpts);
		fprintf(stderr, "salvoctl: out of memory\n");
		return 2;
	}
	req = json_pack("{s:s, s:s%, s:o}", "envelope_sender", from, "content", content, len, "recipients", rcpts);
	free(content);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body) {
		fprintf(stderr, "salvoctl: %s is not valid UTF-8 (send 8-bit mail over SMTP)\n", file);
		return 2;
	}
	if (ctl_request(c, "POST", "/api/inject/v1", body, NULL, &r) < 0) {
		free(body);
		return 2;
	}
	free(body);
	if (r.status != 200) {
		rc = ctl_http_error(&r);
	} else if (c->json) {
		puts(r.body);
	} else {
		json_t *j = json_loads(r.body, 0, NULL);

		printf("accepted %lld, failed %lld\n", (long long)json_integer_value(json_object_get(j, "success_count")),
		       (long long)json_integer_value(json_object_get(j, "fail_count")));
		rc = json_integer_value(json_object_get(j, "fail_count")) ? 1 : 0;
		json_decref(j);
	}
	ctl_resp_free(&r);
	return rc;
}
