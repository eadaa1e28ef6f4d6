/*
 * dot_stuff.c - SMTP DATA transparency (RFC 5321 4.5.2), both directions.
 *
 * Owns: the wire form of a message body (outbound) and the streaming decoder
 * that turns DATA input back into a body and finds its end (inbound).
 *
 * Outbound, dot_stuff(): a line ends at CRLF, at a bare LF or at a bare CR;
 * each is written as CRLF. A line starting with '.' gets a second '.'. A last
 * line without a terminator gets CRLF, then ".\r\n" follows. Each input byte
 * becomes at most two output bytes, hence dot_stuff_bound(). chunk_form() is
 * the same without the dots and the terminator: BDAT (RFC 3030) carries the
 * message as it is, so only line endings change. Lines are found
 * with memchr (the next CR and the next LF are cached and only searched again
 * once passed), so the cost is one memcpy per line.
 *
 * Inbound, dot_unstuff_feed(): a state machine over the bytes that survives
 * any split of the input. Its states:
 *
 *   BOL     at the start of a line: after CRLF (also the start of DATA, state 0)
 *   DOT     start of line, '.' seen and not written
 *   DOTCR   start of line, ".\r" seen and not written
 *   TEXT    inside a line, last byte written not CR
 *   CR      inside a line, a CR written whose LF has not been seen yet
 *   DONE    the terminating "." line has been consumed
 *
 * Rules: only CRLF ends a line, so only CRLF "." CRLF ends the data; a line
 * starting ".." loses its first dot; a line starting '.' followed by
 * anything but CR or LF also loses the dot (RFC 5321 4.5.2: "the first
 * character is deleted"). A bare LF (in TEXT or after a dot) and a bare CR (a
 * CR followed by anything but LF) set the sticky flags; with normalize each
 * is written as CRLF, else unchanged; neither leads to BOL. What the 2023
 * smuggling papers relied on ("\n.\n", "\r\n.\n", "\r.\r\n", ...)
 * is therefore content, flagged.
 *
 * Why the bound is 2 * len + 2: a CR is written when it is read (its LF
 * decides later whether a normalising '\n' follows), so each input byte
 * writes at most two; the held "." or ".\r" of a line start (up to two bytes
 * from an earlier call) are written when the next byte shows they are data.
 * Steps that "reprocess" a byte change state without consuming it; every
 * such chain ends in a step that consumes, so each call consumes all its
 * input up to the terminator.
 */
#include "net/dot_stuff.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	ST_BOL = 0,
	ST_DOT,
	ST_DOTCR,
	ST_TEXT,
	ST_CR,
	ST_DONE,
};

size_t dot_stuff_bound(size_t len)
{
	/* 2 bytes per input byte, a final CRLF and ".\r\n". */
	if (len > (SIZE_MAX - 5) / 2)
		return SIZE_MAX;
	return 2 * len + 5;
}

/* The lines of in[0..len) with CRLF endings (a missing final one added);
 * with stuff, a line starting with '.' gets a second one. */
static size_t wire_lines(const char *in, size_t len, char *out, bool stuff)
{
	const char *p = in, *end = in + len;
	const char *cr = memchr(in, '\r', len), *lf = memchr(in, '\n', len);
	char *o = out;
	bool bol = true;

	while (p < end) {
		const char *eol = end;
		size_t n;

		/* p is at the start of a line. */
		if (stuff && *p == '.')
			*o++ = '.';
		if (cr && cr < eol)
			eol = cr;
		if (lf && lf < eol)
			eol = lf;
		n = (size_t)(eol - p);
		memcpy(o, p, n);
		o += n;
		p = eol;
		if (p == end) {
			bol = false;
			break;
		}
		*o++ = '\r';
		*o++ = '\n';
		p += *p == '\r' && p + 1 < end && p[1] == '\n' ? 2 : 1;
		if (cr && cr < p)
			cr = memchr(p, '\r', (size_t)(end - p));
		if (lf && lf < p)
			lf = memchr(p, '\n', (size_t)(end - p));
	}
	if (!bol) {
		*o++ = '\r';
		*o++ = '\n';
	}
	return (size_t)(o - out);
}

size_t dot_stuff(const char *in, size_t len, char *out)
{
	size_t n = wire_lines(in, len, out, true);

	memcpy(out + n, ".\r\n", 3);
	return n + 3;
}

size_t chunk_form(const char *in, size_t len, char *out)
{
	return wire_lines(in, len, out, false);
}

void dot_unstuff_start_midline(struct dot_unstuff *u)
{
	u->state = ST_TEXT;
}

size_t dot_unstuff_bound(size_t len)
{
	if (len > (SIZE_MAX - 2) / 2)
		return SIZE_MAX;
	return 2 * len + 2;
}

/* A bare CR (its CR already written) or a bare LF (not written yet). */
static size_t bare_newline(struct dot_unstuff *st, char c, char *out)
{
	if (c == '\r') {
		st->bare_cr = true;
		if (!st->normalize)
			return 0;
		out[0] = '\n';
		return 1;
	}
	st->bare_lf = true;
	if (!st->normalize) {
		out[0] = '\n';
		return 1;
	}
	out[0] = '\r';
	out[1] = '\n';
	return 2;
}

size_t dot_unstuff_feed(struct dot_unstuff *st, const char *in, size_t len,
			char *out, size_t *out_len, bool *done)
{
	size_t i = 0, o = 0;
	int s = st->state;

	while (i < len && s != ST_DONE) {
		unsigned char c = (unsigned char)in[i];

		switch (s) {
		case ST_TEXT: {
			/* Fast path: copy up to the next CR or LF in one go. */
			const char *p = in + i;
			const char *lf = memchr(p, '\n', len - i);
			size_t span = lf ? (size_t)(lf - p) : len - i;
			const char *cr = memchr(p, '\r', span);
			size_t n = cr ? (size_t)(cr - p) : span;

			memcpy(out + o, p, n);
			o += n;
			i += n;
			if (i == len)
				break;
			if (in[i] == '\r') {
				out[o++] = '\r';
				s = ST_CR;
			} else {
				o += bare_newline(st, '\n', out + o);
			}
			i++;
			break;
		}
		case ST_CR:
			if (c == '\n') {
				out[o++] = '\n';
				i++;
				s = ST_BOL;
				break;
			}
			o += bare_newline(st, '\r', out + o);
			s = ST_TEXT;               /* same byte, TEXT rules */
			break;
		case ST_BOL:
			if (c == '.') {
				i++;
				s = ST_DOT;
				break;
			}
			s = ST_TEXT;               /* same byte, TEXT rules */
			break;
		case ST_DOT:
			if (c == '\r') {
				i++;
				s = ST_DOTCR;
				break;
			}
			if (c == '\n')
				out[o++] = '.';    /* "." then a bare LF: content, kept */
			/* else "..x" or ".x": the dot goes, the byte stays */
			s = ST_TEXT;
			break;
		case ST_DOTCR:
			if (c == '\n') {
				i++;
				s = ST_DONE;
				break;
			}
			/* ".\r" then more: the CR is bare; the line "." is kept */
			out[o++] = '.';
			out[o++] = '\r';
			s = ST_CR;
			break;
		default:
			/* A caller bug: the struct was not zeroed, or was overwritten. */
			fprintf(stderr, "dot_unstuff_feed: corrupt state %d\n", s);
			abort();
		}
	}
	st->state = s;
	*out_len = o;
	*done = s == ST_DONE;
	return i;
}
