/*
 * mime_build.h - a complete RFC 5322 / MIME message from parts: the
 * content-object form of HTTP injection.
 *
 * Structure: text only -> text/plain; text and HTML -> multipart/alternative;
 * inline parts (those with a content_id) -> multipart/related around the
 * HTML; other attachments -> multipart/mixed around all that. Text is 7bit
 * when it is ASCII with short lines, else quoted-printable (UTF-8);
 * attachments are base64 in 76-column lines. Header values that are not
 * ASCII become RFC 2047 encoded words; CR and LF never reach a header.
 * A Date and a Message-ID are added; boundaries cannot occur in the parts.
 */
#ifndef SALVO_MIME_BUILD_H
#define SALVO_MIME_BUILD_H

#include <stdbool.h>
#include <stddef.h>

struct json_buf;

struct mime_attachment {
	const char *data;          /* raw bytes, or base64 text when is_base64 */
	size_t len;
	bool is_base64;
	const char *content_type;  /* default application/octet-stream */
	const char *file_name;     /* may be NULL */
	const char *content_id;    /* inline (multipart/related) when set */
};

struct mime_header {
	const char *name, *value;
};

struct mime_message {
	const char *from_email, *from_name;
	const char *reply_to_email, *reply_to_name;
	const char *to_email, *to_name;
	const char *subject;
	const struct mime_header *headers;  /* extra headers, in order */
	size_t n_headers;
	const char *text, *html;            /* either may be NULL, not both */
	size_t text_len, html_len;
	const struct mime_attachment *att;
	size_t n_att;
	const char *host_name;              /* for the Message-ID */
};

/* Append the message to out. 0, -1 (out of memory), or -2 when an
 * attachment's base64 does not decode (the caller names the field). */
int mime_build(const struct mime_message *m, struct json_buf *out);

/* Is name a valid header field name (printable ASCII, no colon or space)? */
bool mime_header_name_ok(const char *name);

#endif
