/*
 * inject_render.h - rendering one recipient's message for HTTP injection:
 * the request's content (raw RFC 5322 text, or KumoMTA's content object for
 * the MIME builder) with its `{{ var }}` placeholders filled for that
 * recipient. Pure: no I/O; the caller owns every input and the output.
 */
#ifndef SALVO_INJECT_RENDER_H
#define SALVO_INJECT_RENDER_H

#include <jansson.h>
#include <stddef.h>

#include "core/json_str.h"

struct inject_rcpt {
	const char *email;
	const char *name;          /* or NULL */
	json_t *subs;              /* its substitutions object, or NULL */
};

struct inject_content {
	const char *content;       /* raw content (NUL-terminated), when object is NULL */
	size_t content_len;
	json_t *object;            /* the content object, or NULL */
	json_t *globals;           /* the request's substitutions, or NULL */
	const char *client_ip;     /* for the Received header */
	const char *host_name;
};

/* c rendered for r, appended to out: a Received header, then the content
 * with placeholders filled and CRLF line ends. r NULL (raw content only)
 * copies the content without substituting. 0, or -1 when out of memory. */
int inject_render(const struct inject_content *c, const struct inject_rcpt *r, struct json_buf *out);

/* The name inside a placeholder whose braces open at `open` ("{{") and close
 * at `close` ("}}"), spaces trimmed, into name (cap > close - open).
 * Shared with inject_check.c, so both read a placeholder the same way. */
void inject_placeholder_name(const char *open, const char *close, char *name, size_t cap);

#endif
