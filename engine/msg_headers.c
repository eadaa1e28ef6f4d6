/*
 * msg_headers.c - take a header field out of a message (see msg_headers.h).
 */
#include "engine/msg_headers.h"

#include <string.h>
#include <strings.h>

/* End of the line starting at p (after its LF), or end. */
static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl ? nl + 1 : end;
}

/* Append the field's value (after the colon) unfolded into out. */
static void copy_value(const char *v, const char *end, char *out, size_t cap)
{
	size_t n = 0;
	int space = 0;

	for (; v < end; v++) {
		char c = *v;

		if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
			space = n > 0;
			continue;
		}
		if (space && n + 1 < cap)
			out[n++] = ' ';
		space = 0;
		if (n + 1 < cap)
			out[n++] = c;
	}
	out[n] = '\0';
}

size_t msg_headers_take(char *msg, size_t *len, struct msg_header_want *w, size_t n)
{
	char *rd = msg, *wr = msg, *end = msg + *len;
	size_t removed = 0;

	for (size_t i = 0; i < n; i++) {
		if (w[i].cap)
			w[i].out[0] = '\0';
		w[i].found = 0;
	}
	/* Kept fields are copied down over the removed ones as we go (wr <= rd,
	 * so nothing unread is overwritten); the body moves once at the end. */
	while (rd < end && *rd != '\r' && *rd != '\n') {
		char *field_end = (char *)line_end(rd, end);
		struct msg_header_want *hit = NULL;

		/* continuation lines belong to this field */
		while (field_end < end && (*field_end == ' ' || *field_end == '\t'))
			field_end = (char *)line_end(field_end, end);
		for (size_t i = 0; i < n && !hit; i++) {
			size_t nlen = strlen(w[i].name);

			if ((size_t)(field_end - rd) > nlen && strncasecmp(rd, w[i].name, nlen) == 0 && rd[nlen] == ':')
				hit = &w[i];
		}
		if (hit) {
			if (!hit->found && hit->cap)
				copy_value(rd + strlen(hit->name) + 1, field_end, hit->out, hit->cap);
			hit->found++;
			removed++;
		} else {
			if (wr != rd)
				memmove(wr, rd, (size_t)(field_end - rd));
			wr += field_end - rd;
		}
		rd = field_end;
	}
	if (wr != rd)
		memmove(wr, rd, (size_t)(end - rd));
	*len = (size_t)(wr - msg) + (size_t)(end - rd);
	return removed;
}

size_t msg_header_take(char *msg, size_t *len, const char *name, char *out, size_t cap)
{
	struct msg_header_want w = {.name = name, .out = out, .cap = cap};

	return msg_headers_take(msg, len, &w, 1);
}
