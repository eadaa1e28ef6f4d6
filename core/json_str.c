/*
 * json_str.c - growable byte buffer and JSON string escaping (see
 * json_str.h for the contract).
 *
 * Growth doubles the capacity (at least 256 bytes) so appending n bytes one
 * record at a time costs O(n) overall. Sizes are checked for overflow
 * before they reach realloc.
 */
#include "core/json_str.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_BUF_MIN 256

int json_buf_reserve(struct json_buf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	want = b->len + extra;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : JSON_BUF_MIN;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int json_buf_put(struct json_buf *b, const void *p, size_t n)
{
	int ret;

	if (n == 0)
		return 0;
	if ((ret = json_buf_reserve(b, n)) < 0)
		return ret;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int json_buf_puts(struct json_buf *b, const char *s)
{
	return json_buf_put(b, s, strlen(s));
}

int json_buf_putc(struct json_buf *b, char c)
{
	return json_buf_put(b, &c, 1);
}

int json_buf_printf(struct json_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, ret;

	/* First try in the spare room; grow and redo only when it did not fit. */
	if ((ret = json_buf_reserve(b, 64)) < 0)
		return ret;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= b->cap - b->len) {
		if ((ret = json_buf_reserve(b, (size_t)n + 1)) < 0)
			return ret;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

void json_buf_free(struct json_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

size_t json_utf8_seq(const unsigned char *s, size_t n, size_t *skip)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	*skip = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90; /* no overlong forms */
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		return 0; /* continuation byte, C0, C1, F5..FF */
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*skip = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

static int put_escape(struct json_buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

	if (c == '"' || c == '\\') {
		e[1] = (char)c;
		return json_buf_put(b, e, 2);
	}
	return json_buf_put(b, e, sizeof(e));
}

static int needs_escape(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '"' || c == '\\';
}

int json_buf_str(struct json_buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0; /* s[run..i) is plain text not yet copied */
	int ret;

	/* Worst case is 6 output bytes per input byte; reserving the common
	 * case (n + 2) up front avoids most reallocations. */
	if ((ret = json_buf_reserve(b, n + 2)) < 0 || (ret = json_buf_putc(b, '"')) < 0)
		return ret;
	while (i < n) {
		size_t len, skip;

		if (s[i] < 0x80 && !needs_escape(s[i])) {
			i++;
			continue;
		}
		len = s[i] < 0x80 ? 1 : json_utf8_seq(s + i, n - i, &skip);
		if (len > 1) {
			i += len;
			continue;
		}
		if ((ret = json_buf_put(b, s + run, i - run)) < 0)
			return ret;
		if (len == 1) {
			ret = put_escape(b, s[i]);
			i++;
		} else {
			ret = json_buf_put(b, "\xef\xbf\xbd", 3);
			i += skip;
		}
		if (ret < 0)
			return ret;
		run = i;
	}
	if ((ret = json_buf_put(b, s + run, i - run)) < 0)
		return ret;
	return json_buf_putc(b, '"');
}

int json_buf_strz(struct json_buf *b, const char *s)
{
	return json_buf_str(b, s, strlen(s));
}
