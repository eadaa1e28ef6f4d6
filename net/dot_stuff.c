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
 *   BOL     at the start of a line (also the start of DATA, state 0)
 *   DOT     start of line, '.' seen and not written
 *   DOTCR   start of line, ".\r" seen and not written
 *   TEXT    inside a line, last byte written not CR
 *   CR      inside a line, last byte written a CR
 *   DONE    the terminating "." line has been consumed
 *
 * Rules: a line "." ending in CRLF or bare LF ends the data; a line starting
 * ".." loses its first dot; a line starting '.' followed by anything else
 * also loses the dot (RFC 5321 4.5.2: "the first character is deleted"). A
 * bare LF is written as CRLF. A bare CR is data, written unchanged (it does
 * not start a line, so "\r.\r\n" is no terminator).
 *
 * Why a step may write without consuming: a bare LF needs two output bytes
 * ("\r\n") and ".\r" followed by a non-LF needs the held "\r" written before
 * that byte. Such steps write the CR, move to CR and leave the input byte to
 * the next step. Every step writes at most one byte, so the output never
 * exceeds the capacity the header promises (len), and each call with len > 0
 * either consumes input or writes output; a call that consumed nothing has
 * left the state in CR, where the next byte is always consumed, so a caller
 * looping "feed the rest" cannot spin.
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

size_t dot_unstuff_feed(struct dot_unstuff *st, const char *in, size_t len,
			char *out, size_t *out_len, bool *done)
{
	size_t i = 0, o = 0;
	const size_t cap = len;            /* the header's promise: out holds len bytes */
	int s = st->state;

	while (i < len && s != ST_DONE) {
		unsigned char c = (unsigned char)in[i];

		switch (s) {
		case ST_TEXT:
		case ST_CR: {
			/* Fast path: copy up to the next LF in one go. Bytes
			 * before it cannot change the line structure; only
			 * whether the last one is CR matters for the LF. */
			size_t run = len - i < cap - o ? len - i : cap - o;
			const char *lf = memchr(in + i, '\n', run);
			size_t n = lf ? (size_t)(lf - (in + i)) : run;

			if (n) {
				memcpy(out + o, in + i, n);
				o += n;
				i += n;
				s = in[i - 1] == '\r' ? ST_CR : ST_TEXT;
			}
			if (!lf)
				goto out_full;     /* input or output exhausted */
			/* The LF was found within run <= cap - o, so a byte
			 * of room is left for the step below. */
			if (s == ST_CR) {
				out[o++] = '\n';
				i++;
				s = ST_BOL;
			} else {
				out[o++] = '\r';   /* bare LF: CR first, LF next step */
				s = ST_CR;
			}
			break;
		}
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
			} else if (c == '\n') {
				i++;
				s = ST_DONE;       /* ".\n": bare-LF terminator */
			} else {
				/* "..x" or ".x": the dot goes, the byte stays */
				if (o == cap)
					goto out_full;
				out[o++] = (char)c;
				i++;
				s = ST_TEXT;
			}
			break;
		case ST_DOTCR:
			if (c == '\n') {
				i++;
				s = ST_DONE;
				break;
			}
			/* ".\r" then more: the line was ".\r..." minus its dot. */
			if (o == cap)
				goto out_full;
			out[o++] = '\r';
			s = ST_CR;
			break;
		default:
			/* A caller bug: the struct was not zeroed, or was overwritten. */
			fprintf(stderr, "dot_unstuff_feed: corrupt state %d\n", s);
			abort();
		}
	}
out_full:
	st->state = s;
	*out_len = o;
	*done = s == ST_DONE;
	return i;
}
