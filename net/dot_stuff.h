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
 * to the next pipelined command). Only CRLF "." CRLF ends the data: a bare
 * CR or bare LF is never a line end for the terminator (SMTP smuggling), and
 * the decoder records that it saw one so the caller can refuse the message
 * (RFC 5321 2.3.8) or, with `normalize`, store it as CRLF.
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
	bool normalize;            /* set before the first feed: bare CR/LF -> CRLF */
	bool bare_cr, bare_lf;     /* out: a bare CR / bare LF was seen (sticky) */
};

/* Start in the middle of a line instead: for a DATA command line that
 * ended in a bare LF, so that only a real <CR><LF>.<CR><LF> on the wire
 * ends the data (the LF did not bring the first CRLF of it). */
void dot_unstuff_start_midline(struct dot_unstuff *u);

/* The output room dot_unstuff_feed() needs for len input bytes. */
size_t dot_unstuff_bound(size_t len);

/* Feed in[0..len); writes the unstuffed bytes to out (capacity at least
 * dot_unstuff_bound(len)) and sets *out_len. Returns the bytes of input
 * consumed: all of them, or, once the terminator is seen, up to and
 * including it (*done becomes true; the terminator is not written to out,
 * the CRLF before it is, as the message's last line ending). Further calls
 * consume nothing. The state is 0 at the start of DATA: "beginning of a
 * line", so ".\r\n" at once is an empty body.
 *
 * Lines are CRLF-terminated only. A leading dot is removed from every line
 * that has one ("..x" -> ".x", ".x" -> "x"), except that a dot followed by
 * a bare CR or LF is kept (the client meant the line "."; it is content and
 * goes out stuffed again). A bare CR or LF sets bare_cr / bare_lf; it is
 * written unchanged, or as CRLF when normalize is set. Neither starts a line:
 * "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n" and "\r\n.\r" end nothing. */
size_t dot_unstuff_feed(struct dot_unstuff *st, const char *in, size_t len,
			char *out, size_t *out_len, bool *done);

#endif
