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

size_t msg_header_take(char *msg, size_t *len, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name), removed = 0;
	char *p = msg, *end = msg + *len;

	if (cap)
		out[0] = '\0';
	while (p < end && *p != '\r' && *p != '\n') {
		char *field_end = (char *)line_end(p, end);

		/* continuation lines belong to this field */
		while (field_end < end && (*field_end == ' ' || *field_end == '\t'))
			field_end = (char *)line_end(field_end, end);
		if ((size_t)(field_end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			if (!removed && cap)
				copy_value(p + nlen + 1, field_end, out, cap);
			memmove(p, field_end, (size_t)(end - field_end));
			end -= field_end - p;
			removed++;
			continue;
		}
		p = field_end;
	}
	*len = (size_t)(end - msg);
	return removed;
}
