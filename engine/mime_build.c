/*
 * mime_build.c - MIME messages from parts (see mime_build.h).
 */
#include "engine/mime_build.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json_str.h"

static bool ascii_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80 || ((unsigned char)s[i] < 0x20 && s[i] != '\t'))
			return false;
	return true;
}

bool mime_header_name_ok(const char *n)
{
	if (!n || !*n || strlen(n) > 76)
		return false;
	for (; *n; n++)
		if (*n <= 32 || *n >= 127 || *n == ':')
			return false;
	return true;
}

/* A header value: CR/LF become spaces; non-ASCII text becomes RFC 2047
 * B-encoded words of at most 45 bytes each (not splitting a UTF-8
 * sequence), folded onto continuation lines. */
static int put_hvalue(struct json_buf *b, const char *v)
{
	size_t n = strlen(v);
	int rc = 0;

	if (ascii_printable(v, n)) {
		for (size_t i = 0; i < n && !rc; i++)
			rc = json_buf_putc(b, v[i] == '\r' || v[i] == '\n' ? ' ' : v[i]);
		return rc;
	}
	for (size_t i = 0; i < n && !rc;) {
		size_t k = n - i < 45 ? n - i : 45;
		unsigned char enc[64];

		while (k > 1 && i + k < n && ((unsigned char)v[i + k] & 0xc0) == 0x80)
			k--; /* do not cut a UTF-8 sequence */
		EVP_EncodeBlock(enc, (const unsigned char *)v + i, (int)k);
		rc = json_buf_printf(b, "%s=?utf-8?B?%s?=", i ? "\r\n " : "", (const char *)enc);
		i += k;
	}
	return rc;
}

/* "Name <addr>" with the name quoted or encoded as needed. */
static int put_mailbox(struct json_buf *b, const char *email, const char *name)
{
	int rc = 0;

	if (name && *name) {
		if (ascii_printable(name, strlen(name))) {
			rc = json_buf_putc(b, '"');
			for (const char *p = name; *p && !rc; p++)
				rc = (*p == '"' || *p == '\\' ? json_buf_putc(b, '\\') : 0) |
				     json_buf_putc(b, *p == '\r' || *p == '\n' ? ' ' : *p);
			rc |= json_buf_putc(b, '"');
		} else {
			rc = put_hvalue(b, name);
		}
		rc |= json_buf_putc(b, ' ');
	}
	rc |= json_buf_putc(b, '<');
	for (const char *p = email; *p && !rc; p++)
		if (*p != '\r' && *p != '\n' && *p != '<' && *p != '>')
			rc = json_buf_putc(b, *p);
	return rc | json_buf_putc(b, '>');
}

/* Text as 7bit when plain ASCII with lines <= 998, else quoted-printable. */
static bool needs_qp(const char *s, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || (c < 0x20 && c != '\t' && c != '\r' && c != '\n'))
			return true;
		if (c == '\n') {
			line = 0;
		} else if (++line > 998) {
			return true;
		}
		if (c == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return true;
	}
	return false;
}

/* Lines normalised to CRLF. */
static int put_7bit(struct json_buf *b, const char *s, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		if (s[i] == '\r')
			continue;
		rc = s[i] == '\n' ? json_buf_puts(b, "\r\n") : json_buf_putc(b, s[i]);
	}
	if (!rc && (!n || s[n - 1] != '\n'))
		rc = json_buf_puts(b, "\r\n");
	return rc;
}

/* RFC 2045 6.7: 76-column lines with soft breaks, = and non-ASCII as =XX,
 * blanks before a line end encoded, CRLF kept as hard breaks. */
static int put_qp(struct json_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		char tok[4];
		size_t tl;

		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (c == '\n') {
			rc = json_buf_puts(b, "\r\n");
			col = 0;
			continue;
		}
		bool at_eol = i + 1 >= n || s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n');
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol)) {
			tok[0] = (char)c;
			tl = 1;
		} else {
			tok[0] = '=';
			tok[1] = hex[c >> 4];
			tok[2] = hex[c & 15];
			tl = 3;
		}
		if (col + tl > 75) {
			rc = json_buf_puts(b, "=\r\n");
			col = 0;
		}
		rc |= json_buf_put(b, tok, tl);
		col += tl;
	}
	if (!rc && col)
		rc = json_buf_puts(b, "\r\n");
	return rc;
}

static int put_b64(struct json_buf *b, const unsigned char *p, size_t n)
{
	unsigned char line[80];
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i += 57) {
		int k = EVP_EncodeBlock(line, p + i, (int)(n - i < 57 ? n - i : 57));

		rc = json_buf_put(b, line, (size_t)k) | json_buf_puts(b, "\r\n");
	}
	return rc;
}

static int put_text_part(struct json_buf *b, const char *type, const char *s, size_t n)
{
	bool qp = needs_qp(s, n);
	int rc = json_buf_printf(b, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n", type,
				 qp ? "quoted-printable" : "7bit");

	return rc | (qp ? put_qp(b, s, n) : put_7bit(b, s, n));
}

/* A parameter value, quoted, with control bytes and quotes dropped (RFC 2231 is not needed
 * for ASCII names; others keep their bytes inside the quotes, as mail
 * clients accept). */
static int put_param(struct json_buf *b, const char *name, const char *v)
{
	int rc = json_buf_printf(b, "; %s=\"", name);

	for (; *v && !rc; v++)
		if (*v != '"' && (unsigned char)*v >= 0x20 && *v != 0x7f && *v != '\\')
			rc = json_buf_putc(b, *v);
	return rc | json_buf_putc(b, '"');
}

static int put_attachment(struct json_buf *b, const struct mime_attachment *a)
{
	unsigned char *raw = NULL;
	size_t n = a->len;
	int rc;

	if (a->is_base64) {
		/* decode (ignoring line breaks) to check and re-wrap it */
		char *clean = malloc(a->len + 4);
		size_t m = 0;

		if (!clean)
			return -1;
		for (size_t i = 0; i < a->len; i++)
			if (a->data[i] != '\r' && a->data[i] != '\n' && a->data[i] != ' ')
				clean[m++] = a->data[i];
		if (m % 4) {
			free(clean);
			return -2;
		}
		raw = malloc(m / 4 * 3 + 1);
		int k = raw ? EVP_DecodeBlock(raw, (unsigned char *)clean, (int)m) : -1;

		if (k < 0) {
			free(clean);
			free(raw);
			return raw ? -2 : -1;
		}
		n = (size_t)k - (m && clean[m - 1] == '=') - (m > 1 && clean[m - 2] == '=');
		free(clean);
	}
	/* the caller checks content_type (inject_check.c); control bytes are
	 * dropped here all the same, so no field can start a header line */
	rc = json_buf_puts(b, "Content-Type: ");
	if (a->content_type && *a->content_type) {
		for (const char *p = a->content_type; *p && !rc; p++)
			if ((unsigned char)*p >= 0x20 && *p != 0x7f)
				rc = json_buf_putc(b, *p);
	} else {
		rc = json_buf_puts(b, "application/octet-stream");
	}
	if (a->file_name && *a->file_name)
		rc |= put_param(b, "name", a->file_name);
	rc |= json_buf_puts(b, "\r\nContent-Transfer-Encoding: base64\r\n");
	if (a->content_id && *a->content_id) {
		rc |= json_buf_puts(b, "Content-ID: <");
		for (const char *p = a->content_id; *p && !rc; p++)
			if (*p != '<' && *p != '>' && *p != '\r' && *p != '\n')
				rc = json_buf_putc(b, *p);
		rc |= json_buf_puts(b, ">\r\nContent-Disposition: inline");
	} else {
		rc |= json_buf_puts(b, "Content-Disposition: attachment");
	}
	if (a->file_name && *a->file_name)
		rc |= put_param(b, "filename", a->file_name);
	rc |= json_buf_puts(b, "\r\n\r\n");
	rc |= put_b64(b, raw ? raw : (const unsigned char *)a->data, n);
	free(raw);
	return rc;
}

static void boundary(char out[48], unsigned n)
{
	unsigned char r[8];

	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, (int)n, sizeof(r));
	snprintf(out, 48, "=_salvo_%02x%02x%02x%02x%02x%02x%02x%02x_%u", r[0], r[1], r[2], r[3], r[4], r[5], r[6],
		 r[7], n);
}

/* The body parts inside `mixed` (or the top when there are no plain attachments). */
static int put_alternative(struct json_buf *b, const struct mime_message *m)
{
	char bd[48];
	int rc;

	if (!m->text || !m->html)
		return m->text ? put_text_part(b, "text/plain", m->text, m->text_len)
			       : put_text_part(b, "text/html", m->html, m->html_len);
	boundary(bd, 1);
	rc = json_buf_printf(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n--%s\r\n", bd, bd);
	rc |= put_text_part(b, "text/plain", m->text, m->text_len);
	rc |= json_buf_printf(b, "\r\n--%s\r\n", bd);
	rc |= put_text_part(b, "text/html", m->html, m->html_len);
	return rc | json_buf_printf(b, "\r\n--%s--\r\n", bd);
}

static int put_related(struct json_buf *b, const struct mime_message *m, size_t n_inline)
{
	char bd[48];
	int rc, e;

	if (!n_inline)
		return put_alternative(b, m);
	boundary(bd, 2);
	rc = json_buf_printf(b, "Content-Type: multipart/related; boundary=\"%s\"\r\n\r\n--%s\r\n", bd, bd);
	rc |= put_alternative(b, m);
	for (size_t i = 0; i < m->n_att && !rc; i++) {
		if (!m->att[i].content_id || !*m->att[i].content_id)
			continue;
		rc = json_buf_printf(b, "\r\n--%s\r\n", bd);
		if ((e = put_attachment(b, &m->att[i])))
			return e;
	}
	return rc | json_buf_printf(b, "\r\n--%s--\r\n", bd);
}

int mime_build(const struct mime_message *m, struct json_buf *b)
{
	static unsigned long long seq;
	size_t n_inline = 0, n_mixed = 0;
	char date[64], bd[48];
	unsigned char r[6];
	time_t now = time(NULL);
	struct tm tm;
	int rc = 0, e;

	for (size_t i = 0; i < m->n_att; i++)
		*(m->att[i].content_id && *m->att[i].content_id ? &n_inline : &n_mixed) += 1;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	RAND_bytes(r, sizeof(r));
	rc |= json_buf_printf(b, "Date: %s\r\nMessage-ID: <%lld.%llu.%02x%02x%02x%02x%02x%02x@%s>\r\n", date,
			      (long long)now, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED), r[0], r[1], r[2], r[3], r[4],
			      r[5], m->host_name ? m->host_name : "localhost");
	rc |= json_buf_puts(b, "From: ") | put_mailbox(b, m->from_email, m->from_name) | json_buf_puts(b, "\r\n");
	if (m->reply_to_email)
		rc |= json_buf_puts(b, "Reply-To: ") | put_mailbox(b, m->reply_to_email, m->reply_to_name) |
		      json_buf_puts(b, "\r\n");
	if (m->to_email)
		rc |= json_buf_puts(b, "To: ") | put_mailbox(b, m->to_email, m->to_name) | json_buf_puts(b, "\r\n");
	if (m->subject)
		rc |= json_buf_puts(b, "Subject: ") | put_hvalue(b, m->subject) | json_buf_puts(b, "\r\n");
	for (size_t i = 0; i < m->n_headers; i++)
		rc |= json_buf_printf(b, "%s: ", m->headers[i].name) | put_hvalue(b, m->headers[i].value) |
		      json_buf_puts(b, "\r\n");
	rc |= json_buf_puts(b, "MIME-Version: 1.0\r\n");
	if (rc)
		return -1;
	if (!n_mixed)
		return put_related(b, m, n_inline) ? -1 : 0;
	boundary(bd, 3);
	rc = json_buf_printf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n--%s\r\n", bd, bd);
	if ((e = put_related(b, m, n_inline)))
		return e;
	for (size_t i = 0; i < m->n_att && !rc; i++) {
		if (m->att[i].content_id && *m->att[i].content_id)
			continue;
		rc = json_buf_printf(b, "\r\n--%s\r\n", bd);
		if ((e = put_attachment(b, &m->att[i])))
			return e;
	}
	rc |= json_buf_printf(b, "\r\n--%s--\r\n", bd);
	return rc ? -1 : 0;
}
