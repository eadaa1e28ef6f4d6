/*
 * json_str.h - a growable byte buffer and a JSON string escaper.
 *
 * struct json_buf is a plain growable byte buffer (used by the accounting
 * log, the DSN builder and anything else that builds text). A zeroed
 * struct is an empty buffer; json_buf_free() releases its memory and leaves
 * it empty again, reusable. data is NOT NUL-terminated unless the caller
 * appends a NUL; len counts the bytes in use.
 *
 * json_buf_str() appends one JSON string literal, quotes included:
 *   - `"` and `\` become `\"` and `\\`;
 *   - control characters U+0000..U+001F and U+007F become `\u00XX`
 *     (lower-case hex), so a record stays on one line whatever it quotes;
 *   - valid UTF-8 is copied as is; every ill-formed sequence (stray
 *     continuation byte, overlong form, surrogate, code point above
 *     U+10FFFF, truncated sequence, bytes F5..FF) becomes U+FFFD, one per
 *     maximal ill-formed subpart (Unicode 15, section 3.9 "U+FFFD
 *     Substitution of Maximal Subparts"), so the output is always valid
 *     UTF-8 and therefore valid JSON.
 *
 * Errors: every appending function returns 0 or -ENOMEM (json_buf_printf
 * also -EINVAL should vsnprintf fail). On error the
 * buffer keeps its previous valid content (len may include part of what
 * was being appended: callers that need all-or-nothing save len first and
 * restore it, as acct_log does).
 *
 * Threads: none of this is shared; one buffer belongs to one thread.
 */
#ifndef SALVO_JSON_STR_H
#define SALVO_JSON_STR_H

#include <stddef.h>
#include <stdint.h>

struct json_buf {
	char *data;
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
};

/* Make room for `extra` more bytes (data + len .. data + len + extra). */
int json_buf_reserve(struct json_buf *b, size_t extra);
int json_buf_put(struct json_buf *b, const void *p, size_t n);
int json_buf_puts(struct json_buf *b, const char *s);
int json_buf_putc(struct json_buf *b, char c);
/* printf-style append; the format must be a literal (checked by -Wformat). */
int json_buf_printf(struct json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Release the memory; the buffer is empty and reusable afterwards. */
void json_buf_free(struct json_buf *b);

/* Append s[0..n) as a quoted, escaped JSON string (see above). */
int json_buf_str(struct json_buf *b, const char *s, size_t n);
/* Same for a NUL-terminated string. */
int json_buf_strz(struct json_buf *b, const char *s);

/* Length of the well-formed UTF-8 sequence at s[0..n) (1..4), or 0 when it
 * is ill-formed; then *skip is the length of its maximal ill-formed subpart
 * (1..3), the bytes one U+FFFD replaces. n must be > 0. */
size_t json_utf8_seq(const unsigned char *s, size_t n, size_t *skip);

#endif
