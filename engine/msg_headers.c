/*
 * msg_headers.c - take header fields out of a message, and a source's
 * header edits at intake (see msg_headers.h).
 */
#include "engine/msg_headers.h"

#include <stdlib.h>
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
		}
		if (hit && !hit->keep) {
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

static bool is_field(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':';
}

/* Is the field [p, end) one that remove-header names? */
static bool named(const char *p, const char *end, const struct msg_header_edit *e)
{
	for (size_t i = 0; i < e->n_remove; i++)
		if (is_field(p, end, e->remove[i]))
			return true;
	return false;
}

/* Where "by HOST ..." starts in salvod's own Received field [p, end), or NULL. */
static const char *own_by(const char *p, const char *end)
{
	for (const char *q = p; q + 4 < end; q++)
		if (q[0] == '\n' && q[1] == '\t' && q[2] == 'b' && q[3] == 'y' && q[4] == ' ')
			return q + 2;
	return NULL;
}

int msg_headers_edit(char **msg, size_t *len, const struct msg_header_edit *e)
{
	char *m = *msg, *rd = m, *wr = m, *end = m + *len;
	size_t own_end = 0;          /* where the Message-ID goes: after salvod's Received */
	bool has_id = false;
	bool first = true;

	while (rd < end && *rd != '\r' && *rd != '\n') {
		char *field_end = (char *)line_end(rd, end);
		bool drop = false, own;

		while (field_end < end && (*field_end == ' ' || *field_end == '\t'))
			field_end = (char *)line_end(field_end, end);
		own = first && e->own_received && is_field(rd, field_end, "Received");
		if (own) {
			const char *by = e->hide_source ? own_by(rd, field_end) : NULL;

			drop = e->drop_own_received;
			if (!drop && by) {
				/* "Received: " then "by HOST (Salvo) with P;\r\n\tDATE\r\n" */
				memmove(wr, "Received: ", 10);
				memmove(wr + 10, by, (size_t)(field_end - by));
				wr += 10 + (field_end - by);
				rd = field_end;
				own_end = (size_t)(wr - m);
				first = false;
				continue;
			}
		} else if ((e->drop_received && is_field(rd, field_end, "Received")) || named(rd, field_end, e)) {
			drop = true;
		} else if (!has_id && is_field(rd, field_end, "Message-ID")) {
			has_id = true;
		}
		if (!drop) {
			if (wr != rd)
				memmove(wr, rd, (size_t)(field_end - rd));
			wr += field_end - rd;
			if (own)
				own_end = (size_t)(wr - m);
		}
		first = false;
		rd = field_end;
	}
	if (wr != rd)
		memmove(wr, rd, (size_t)(end - rd));
	*len = (size_t)(wr - m) + (size_t)(end - rd);
	if (e->message_id && !has_id) {
		size_t idl = strlen(e->message_id), add = 12 + idl + 2;
		char *n = realloc(m, *len + add + 1);

		if (!n)
			return -1;
		memmove(n + own_end + add, n + own_end, *len - own_end);
		memcpy(n + own_end, "Message-ID: ", 12);
		memcpy(n + own_end + 12, e->message_id, idl);
		memcpy(n + own_end + 12 + idl, "\r\n", 2);
		*len += add;
		*msg = n;
	}
	return 0;
}
