/*
 * msg_headers.h - small edits to an RFC 5322 header block in place: take
 * (find and remove) headers such as X-Virtual-MTA or X-Job that only the
 * MTA may see. One pass over the header block and one move of the body,
 * however many fields go: linear in the message's size.
 */
#ifndef SALVO_MSG_HEADERS_H
#define SALVO_MSG_HEADERS_H

#include <stddef.h>

/* One header field name to take, and where its value goes. */
struct msg_header_want {
	const char *name;          /* without the colon; matched case-insensitively */
	char *out;                 /* the first one's value, unfolded and trimmed, */
	size_t cap;                /* cut to cap - 1 bytes; "" when absent */
	size_t found;              /* out: how many such fields were removed */
};

/* Remove every field named in w[0..n) (with its folded continuation lines)
 * from the header block of msg[0..*len) and shrink *len. Only the header
 * block is touched: it ends at the first empty line (CRLF or LF line ends).
 * Returns how many fields were removed in all. */
size_t msg_headers_take(char *msg, size_t *len, struct msg_header_want *w, size_t n);

/* msg_headers_take() for one name. */
size_t msg_header_take(char *msg, size_t *len, const char *name, char *out, size_t cap);

#endif
