/*
 * classify.c - `salvoctl classify [FILE|-]`: what a bounce or complaint
 * says, offline (no daemon): one JSON line per recipient found,
 *   {"recipient":…,"status":"5.1.1","category":"bad-mailbox","hard":true,"kind":"dsn"}
 * and for ARF reports "kind":"arf", "category":"complaint" and the
 * feedback type. An auto-reply prints one line with "kind":"autoreply" and
 * hard false (it is not a bounce); a message that says nothing prints
 * nothing. Exit 0, or 2 when the file cannot be read.
 * `--without TAGS` switches off the phrase families justified only by
 * those sources (leave-one-family-out scoring, tests/corpus/score.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "engine/bounce_report.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t cap = 0, n;

	*len = 0;
	if (!f)
		return NULL;
	do {
		if (*len + 65536 > cap) {
			char *g = realloc(buf, cap = cap ? cap * 2 : 131072);
			if (!g) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = g;
		}
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
	} while (n > 0);
	if (f != stdin)
		fclose(f);
	return buf;
}

static void line(const char *rcpt, const char *status, const char *category, bool hard, const char *kind,
		 const char *feedback_type)
{
	json_t *j = json_pack("{s:s?, s:s?, s:s?, s:b, s:s}", "recipient", rcpt && *rcpt ? rcpt : NULL, "status",
			      status && *status ? status : NULL, "category", category, "hard", hard, "kind", kind);
	char *s;

	if (feedback_type && *feedback_type)
		json_object_set_new(j, "feedback_type", json_string(feedback_type));
	s = json_dumps(j, JSON_COMPACT);
	puts(s ? s : "{}");
	free(s);
	json_decref(j);
}

int cmd_classify_main(struct ctl *c, int argc, char **argv)
{
	struct bounce_report r;
	size_t len;
	char *msg;

	(void)c;
	if (argc > 2 && !strcmp(argv[1], "--without")) {
		bounce_rules_without(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc > 2) {
		fprintf(stderr, "usage: salvoctl classify [--without TAGS] [FILE]   (stdin when no FILE or -)\n");
		return 2;
	}
	if (!(msg = slurp(argc == 2 ? argv[1] : "-", &len))) {
		fprintf(stderr, "salvoctl: cannot read %s\n", argc == 2 ? argv[1] : "stdin");
		return 2;
	}
	switch (bounce_report_parse(msg, len, &r)) {
	case BOUNCE_KIND_ARF:
		line(r.orig_rcpt, NULL, "complaint", true, "arf", r.feedback_type);
		break;
	case BOUNCE_KIND_DSN:
		for (size_t i = 0; i < r.n_rcpts; i++) {
			const struct bounce_rcpt *x = &r.rcpts[i];
			const char *cat = bounce_rcpt_category(x);

			line(x->addr, x->status, cat, bounce_rcpt_failed(x) && bounce_category_hard(cat), "dsn", NULL);
		}
		break;
	case BOUNCE_KIND_AUTOREPLY:
		line(NULL, NULL, NULL, false, "autoreply", NULL);
		break;
	default:
		break;
	}
	free(msg);
	return 0;
}
