/*
 * acct_headers.c - the message headers an accounting record carries: the
 * `header_NAME` fields of the <acct-file>s' record-fields, read from the
 * message where the record is made (reception, delivery attempt) into the
 * event's "Name: value\n" lines (struct acct_event.headers).
 *
 * Only the first field of each name counts; folded lines are unfolded,
 * control characters become spaces, a value is cut to ACCT_HEADER_MAX - 1
 * bytes (never inside a UTF-8 sequence). Nothing is read when no file asks
 * for a header, so the common config pays one walk of a short list.
 */
#include "engine/acct_headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/acct_log.h"
#include "core/config.h"
#include "core/json_str.h"

#define MAX_NAMES 16

/* The distinct header names the files ask for (pointers into cfg). */
static size_t wanted(const struct config *cfg, const char *name[MAX_NAMES], size_t len[MAX_NAMES])
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_acct_files; i++)
		for (int t = 0; t < CONFIG_ACCT_N_TYPES; t++)
			for (const char *s = cfg->acct_files[i].record_fields[t]; s && *s;) {
				size_t k = strcspn(s, ","), j;

				if (k > 7 && !strncasecmp(s, "header_", 7)) {
					for (j = 0; j < n && !(len[j] == k - 7 && !strncasecmp(name[j], s + 7, k - 7)); j++)
						;
					if (j == n && n < MAX_NAMES) {
						name[n] = s + 7;
						len[n++] = k - 7;
					}
				}
				s += k + (s[k] == ',');
			}
	return n;
}

static void put(struct json_buf *b, const void *p, size_t n, int *err)
{
	if (json_buf_put(b, p, n) < 0)
		*err = -1;
}

/* Cut v[0..*n) to at most cap bytes without splitting a UTF-8 sequence. */
static void cut_utf8(const char *v, size_t *n, size_t cap)
{
	size_t k;

	if (*n <= cap)
		return;
	k = cap;
	while (k > 0 && ((unsigned char)v[k] & 0xc0) == 0x80)
		k--;
	*n = k;
}

/* Append the unfolded value that starts at p (after the colon) up to the
 * end of its field; returns where the next field starts. */
static const char *take_value(struct json_buf *b, const char *p, const char *end, int *err)
{
	char v[ACCT_HEADER_MAX * 2];
	size_t n = 0;
	bool space = false;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (; p < end; p++) {
		if (*p == '\r' || *p == '\n') {
			const char *q = p + (*p == '\r' && p + 1 < end && p[1] == '\n') + 1;

			if (q < end && (*q == ' ' || *q == '\t')) {
				while (q + 1 < end && (q[1] == ' ' || q[1] == '\t'))
					q++;
				p = q; /* a continuation line: one space for the fold */
				space = true;
				continue;
			}
			p = q;
			break;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			space = true;
		else {
			if (space && n && n < sizeof(v))
				v[n++] = ' ';
			space = false;
			if (n < sizeof(v))
				v[n++] = *p;
		}
	}
	cut_utf8(v, &n, ACCT_HEADER_MAX - 1);
	put(b, v, n, err);
	return p;
}

char *acct_headers_take(const struct config *cfg, const char *msg, size_t len)
{
	const char *name[MAX_NAMES];
	size_t nlen[MAX_NAMES], n;
	bool got[MAX_NAMES] = {0};
	struct json_buf b = {0};
	const char *p = msg, *end = msg + len;
	int err = 0;

	if (!cfg || !cfg->n_acct_files || !(n = wanted(cfg, name, nlen)))
		return NULL;
	while (p < end && *p != '\r' && *p != '\n') {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		bool hit = false;

		if (!colon || (eol && eol < colon)) {
			p = eol ? eol + 1 : end; /* not a field: skip the line */
			continue;
		}
		for (size_t i = 0; i < n && !hit; i++)
			if (!got[i] && (size_t)(colon - p) == nlen[i] && !strncasecmp(p, name[i], nlen[i])) {
				got[i] = hit = true;
				put(&b, name[i], nlen[i], &err);
				put(&b, ": ", 2, &err);
				p = take_value(&b, colon + 1, end, &err);
				put(&b, "\n", 1, &err);
			}
		if (!hit) /* the field and its continuation lines */
			do {
				eol = memchr(p, '\n', (size_t)(end - p));
				p = eol ? eol + 1 : end;
			} while (p < end && (*p == ' ' || *p == '\t'));
	}
	put(&b, "", 1, &err);
	if (err || b.len <= 1) {
		free(b.data);
		return NULL;
	}
	return b.data;
}
