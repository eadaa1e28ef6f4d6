/*
 * dot_stuff.h - SMTP DATA transparency (RFC 5321 4.5.2), both directions.
 *
 * Outbound: dot_stuff() turns a stored message into wire form: a '.' is
 * doubled at the start of every line, a missing final CRLF is added, and the
 * ".\r\n" terminator appended. Bare LF and bare CR are normalised to CRLF.
 * chunk_form() is the BDAT wire form: the same line endings, nothing else.
 *
 * Inbound: struct dot_unstuff is a streaming decoder fed with whatever recv()
 * returned; it strips the extra dots, finds "\r\n.\r\n" across any split,
 * and reports how much input it consumed (bytes after the terminator belong
 * to the next pipelined command).
 *
 * Pure; no allocation; any thread.
 */
#ifndef SALVO_DOT_STUFF_H
#define SALVO_DOT_STUFF_H

#include <stdbool.h>
#include <stddef.h>

/* Upper bound of dot_stuff()'s output for len input bytes. */
size_t dot_stuff_bound(size_t len);
/* Write the wire form of in[0..len) to out (at least dot_stuff_bound(len)
 * bytes). Returns the bytes written, terminator included. */
size_t dot_stuff(const char *in, size_t len, char *out);
/* The form BDAT sends (RFC 3030): line endings as dot_stuff() writes them,
 * no stuffing, no terminator. out holds at least dot_stuff_bound(len) bytes;
 * returns the bytes written. */
size_t chunk_form(const char *in, size_t len, char *out);

struct dot_unstuff {
	int state;                 /* private; zero-initialise before the first feed */
};

/* Feed in[0..len); writes the unstuffed bytes to out (capacity >= len) and
 * sets *out_len. Returns the bytes of input consumed; *done becomes true when
 * the terminating line "." was seen (the terminator is not written to out;
 * the CRLF before it is, as the message's last line ending). Lines end in
 * CRLF in the output even when the input used a bare LF; a bare CR is data.
 * A line "." ending in a bare LF terminates too. A leading dot is removed
 * from every other line that has one ("..x" -> ".x", ".x" -> "x").
 *
 * Because a bare LF grows into CRLF, the output can need more room than
 * len: then fewer than len bytes are consumed (possibly 0, with *out_len >
 * 0), and the caller feeds the rest again. Each call with len > 0 makes
 * progress (consumes or writes); two calls in a row never both consume
 * nothing. Once done, further calls consume nothing. The state is 0 at the
 * start of DATA: "beginning of a line", so ".\r\n" at once is an empty body. */
size_t dot_unstuff_feed(struct dot_unstuff *st, const char *in, size_t len,
			char *out, size_t *out_len, bool *done);

#endif
