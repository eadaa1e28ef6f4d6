/*
 * msg_headers.h - small edits to an RFC 5322 header block in place: take
 * (find and remove) a header such as X-Virtual-MTA or X-Job that only the
 * MTA may see.
 */
#ifndef SALVO_MSG_HEADERS_H
#define SALVO_MSG_HEADERS_H

#include <stddef.h>

/* Remove every `name:` header field (case-insensitive, with its folded
 * continuation lines) from the header block of msg[0..*len) and shrink
 * *len. The first one's value, unfolded and trimmed, goes to out (cut to
 * cap - 1 bytes; "" when absent). Only the header block is touched: it ends
 * at the first empty line (CRLF or LF line ends). Returns how many fields
 * were removed. */
size_t msg_header_take(char *msg, size_t *len, const char *name, char *out, size_t cap);

#endif
