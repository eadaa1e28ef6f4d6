/*
 * smtp_reply.h - parsing server replies for the delivery client (RFC 5321
 * 4.2, RFC 2034 enhanced status codes, RFC 1869 EHLO keywords).
 *
 * Pure functions over (buf, len); results point into the caller's buffer.
 * A reply may be multi-line ("250-..." lines then "250 ..."); it is complete
 * only when its last line has arrived, so replies split across reads simply
 * return "need more" until then.
 */
#ifndef SALVO_SMTP_REPLY_H
#define SALVO_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SMTP_MAX_REPLY_LINE 2048   /* octets with its CRLF; a longer line is malformed */
#define SMTP_MAX_REPLY_LINES 256   /* more lines in one reply: malformed */

struct smtp_reply {
	int code;                  /* 200..599 */
	char enhanced[16];         /* "5.1.1" from the first line, else from the last, else "" */
	const char *text;          /* first line's text after the code, separator and enhanced code */
	size_t text_len;
	const char *raw;           /* the whole reply, all lines with their CRLFs */
	size_t raw_len;
	unsigned n_lines;
};

/* Returns bytes consumed (> 0) for one complete reply, 0 when more input is
 * needed, -1 when malformed (no 3-digit code, mixed codes across lines, bad
 * separator, line or line count over the limits). Bare LF ends lines too.
 * The code's first digit is 2..5; "250" alone is a complete line. 8-bit text
 * is accepted as is. enhanced is set only when the class (2, 4 or 5) equals
 * the code's first digit and the code is followed by a space or the line's
 * end. Garbage is refused as soon as the first bytes of a line show it; a
 * prefix of a valid reply always gives 0. out is written only on success.
 * Linear in len; calling again as the buffer grows is fine. */
ssize_t smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out);

enum smtp_ext {
	SMTP_EXT_PIPELINING = 1u << 0,
	SMTP_EXT_SIZE = 1u << 1,
	SMTP_EXT_8BITMIME = 1u << 2,
	SMTP_EXT_STARTTLS = 1u << 3,
	SMTP_EXT_SMTPUTF8 = 1u << 4,
	SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 5,
	SMTP_EXT_CHUNKING = 1u << 6,
	SMTP_EXT_AUTH = 1u << 7,
	SMTP_EXT_DSN = 1u << 8,
};

/* Extensions advertised in a parsed EHLO reply (lines after the first);
 * *size_limit gets SIZE's argument (0 = none given or not a number;
 * saturates at UINT64_MAX). size_limit may be NULL. Keywords match whole and
 * case-insensitively; "AUTH=PLAIN" (pre-RFC 4954 form) counts as AUTH. A
 * reply whose code is not 2xx advertises nothing. */
unsigned smtp_reply_ehlo_exts(const struct smtp_reply *r, uint64_t *size_limit);

/* Reply text flattened for logs: every line's text joined by a space, valid
 * UTF-8 kept whole (never cut inside a character), control characters and
 * bytes that are not valid UTF-8 replaced by '?' (one per byte), at most
 * cap-1 bytes, NUL-terminated.
 * Returns the length written. A line's text is what follows its code,
 * separator and enhanced code (each line of a multi-line reply repeats it);
 * lines without text are skipped. cap 0 writes nothing. */
size_t smtp_reply_flatten(const struct smtp_reply *r, char *out, size_t cap);

#endif
