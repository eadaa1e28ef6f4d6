/*
 * msg_headers.h - small edits to an RFC 5322 header block in place: take
 * (find and remove) headers such as X-Virtual-MTA or X-Job that only the
 * MTA may see. One pass over the header block and one move of the body,
 * however many fields go: linear in the message's size.
 */
#ifndef SALVO_MSG_HEADERS_H
#define SALVO_MSG_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* One header field name to take, and where its value goes. */
struct msg_header_want {
	const char *name;          /* without the colon; matched case-insensitively */
	char *out;                 /* the first one's value, unfolded and trimmed, */
	size_t cap;                /* cut to cap - 1 bytes; "" when absent */
	size_t found;              /* out: how many such fields were found */
	bool keep;                 /* found, but left in the message (retain-x-job) */
};

/* Remove every field named in w[0..n) (with its folded continuation lines)
 * from the header block of msg[0..*len) and shrink *len. Only the header
 * block is touched: it ends at the first empty line (CRLF or LF line ends).
 * Returns how many fields were removed in all (`keep` ones are not). */
size_t msg_headers_take(char *msg, size_t *len, struct msg_header_want *w, size_t n);

/* msg_headers_take() for one name. */
size_t msg_header_take(char *msg, size_t *len, const char *name, char *out, size_t cap);

/* A <source>'s header edits at intake (PowerMTA's add-received-header,
 * hide-message-source, remove-received-headers, remove-header, add-message-id-header). */
struct msg_header_edit {
	bool own_received;         /* the first field is salvod's own Received: line */
	bool drop_own_received;    /* add-received-header no: it goes */
	bool hide_source;          /* hide-message-source: it keeps only "by HOST ...; DATE" */
	bool drop_received;        /* remove-received-headers: every other Received: goes */
	const char *const *remove; /* remove-header: fields with these names go */
	size_t n_remove;
	const char *message_id;    /* "<id@host>": added (after salvod's Received:) when the
				    * message has no Message-ID; NULL: never */
};

/* Apply e to the malloc'd message *msg[0..*len): one pass over the header
 * block, fields removed or shortened in place; adding a Message-ID may
 * realloc *msg. A message with no empty line is all header block. Returns
 * 0, or -1 when out of memory (then *msg is unchanged apart from what was
 * removed, and still valid). */
int msg_headers_edit(char **msg, size_t *len, const struct msg_header_edit *e);

#endif
