/*
 * inject_render.c - one recipient's message for HTTP injection (see
 * inject_render.h): `{{ }}` placeholders filled from the recipient's
 * substitutions, its `email` and `name`, then the global ones; raw content
 * copied run by run with CRLF line ends, or the content object built into
 * MIME; a Received trace header first.
 */
#include "engine/inject_render.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/mime_build.h"

static json_t *lookup(const struct inject_content *x, const struct inject_rcpt *r, const char *name, json_t **tmp)
{
	json_t *v;

	if (r->subs && (v = json_object_get(r->subs, name)))
		return v;
	if (!strcmp(name, "email"))
		return *tmp = json_string(r->email);
	if (!strcmp(name, "name") && r->name)
		return *tmp = json_string(r->name);
	return x->globals ? json_object_get(x->globals, name) : NULL;
}

enum fill_mode { FILL_RAW, FILL_HEADER, FILL_HTML };

static int put_value_mode(struct json_buf *b, json_t *v, enum fill_mode mode)
{
	char *text = NULL;
	const char *s;
	int rc = 0;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v))
		s = json_string_value(v);
	else
		s = text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	for (; s && *s && !rc; s++) {
		if (mode == FILL_HEADER && (*s == '\r' || *s == '\n'))
			continue;
		if (mode == FILL_HTML && strchr("&<>\"'", *s))
			rc = json_buf_puts(b, *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" :
					      *s == '"' ? "&quot;" : "&#39;");
		else
			rc = json_buf_putc(b, *s);
	}
	free(text);
	return rc;
}

static int put_value(struct json_buf *b, json_t *v, bool in_header)
{
	return put_value_mode(b, v, in_header ? FILL_HEADER : FILL_RAW);
}

void inject_placeholder_name(const char *open, const char *close, char *name, size_t cap)
{
	const char *a = open + 2, *z = close;

	while (a < z && *a == ' ')
		a++;
	while (z > a && z[-1] == ' ')
		z--;
	if ((size_t)(z - a) >= cap)
		z = a + cap - 1;
	memcpy(name, a, (size_t)(z - a));
	name[z - a] = '\0';
}

/* s with its {{ var }} placeholders filled for r, appended to b and
 * NUL-terminated (b->len excludes the NUL). */
static int fill(const struct inject_content *x, const struct inject_rcpt *r, const char *s, enum fill_mode mode,
		struct json_buf *b)
{
	int rc = 0;

	while (s && *s && !rc) {
		const char *open = strstr(s, "{{"), *close = open ? strstr(open + 2, "}}") : NULL;

		if (!open || !close || close - open > 130) {
			rc = json_buf_puts(b, s);
			break;
		}
		rc = json_buf_put(b, s, (size_t)(open - s));
		char name[132];
		json_t *tmp = NULL;

		inject_placeholder_name(open, close, name, sizeof(name));
		rc |= put_value_mode(b, lookup(x, r, name, &tmp), mode);
		json_decref(tmp);
		s = close + 2;
	}
	if (!rc)
		rc = json_buf_putc(b, '\0');
	if (!rc)
		b->len--;
	return rc;
}

/* The content object rendered for r and built into a MIME message. */
static int render_object(const struct inject_content *x, const struct inject_rcpt *r, struct json_buf *out)
{
	json_t *o = x->object, *from = json_object_get(o, "from"), *rt = json_object_get(o, "reply_to"),
	       *hdrs = json_object_get(o, "headers"), *atts = json_object_get(o, "attachments");
	size_t nh = json_object_size(hdrs), na = json_array_size(atts), k = 0;
	struct json_buf subj = {0}, text = {0}, html = {0}, fname = {0};
	struct json_buf *hv = calloc(nh + 1, sizeof(*hv));
	struct mime_header *h = calloc(nh + 1, sizeof(*h));
	struct mime_attachment *a = calloc(na + 1, sizeof(*a));
	const char *key;
	json_t *val;
	int rc = !hv || !h || !a ? -1 : 0;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	if (!rc && json_is_string(json_object_get(o, "subject")))
		rc = fill(x, r, json_string_value(json_object_get(o, "subject")), FILL_HEADER, &subj);
	if (!rc && json_is_string(json_object_get(o, "text_body")))
		rc = fill(x, r, json_string_value(json_object_get(o, "text_body")), FILL_RAW, &text);
	if (!rc && json_is_string(json_object_get(o, "html_body")))
		rc = fill(x, r, json_string_value(json_object_get(o, "html_body")), FILL_HTML, &html);
	if (!rc && json_is_string(json_object_get(from, "name")))
		rc = fill(x, r, json_string_value(json_object_get(from, "name")), FILL_HEADER, &fname);
	json_object_foreach(hdrs, key, val) {
		if (rc)
			break;
		rc = fill(x, r, json_string_value(val), FILL_HEADER, &hv[k]);
		h[k].name = key;
		h[k].value = hv[k].data ? hv[k].data : "";
		k++;
	}
	for (size_t i = 0; i < na && !rc; i++) {
		json_t *e = json_array_get(atts, i);

		a[i].data = json_string_value(json_object_get(e, "data"));
		a[i].len = json_string_length(json_object_get(e, "data"));
		a[i].is_base64 = json_is_true(json_object_get(e, "base64"));
		a[i].content_type = json_string_value(json_object_get(e, "content_type"));
		a[i].file_name = json_string_value(json_object_get(e, "file_name"));
		a[i].content_id = json_string_value(json_object_get(e, "content_id"));
	}
	if (!rc) {
		struct mime_message m = {
			.from_email = json_string_value(json_object_get(from, "email")),
			.from_name = fname.data,
			.reply_to_email = json_string_value(json_object_get(rt, "email")),
			.reply_to_name = json_string_value(json_object_get(rt, "name")),
			.to_email = json_object_get(hdrs, "To") || json_object_get(hdrs, "to") ? NULL : r->email,
			.to_name = r->name,
			.subject = subj.data ? subj.data : (json_object_get(o, "subject") ? "" : NULL),
			.headers = h,
			.n_headers = k,
			.text = json_object_get(o, "text_body") ? (text.data ? text.data : "") : NULL,
			.text_len = text.len,
			.html = json_object_get(o, "html_body") ? (html.data ? html.data : "") : NULL,
			.html_len = html.len,
			.att = a,
			.n_att = na,
			.host_name = x->host_name,
		};
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		rc = json_buf_printf(out, "Received: from [%s]\r\n\tby %s (Salvo) with HTTP;\r\n\t%s\r\n",
				     x->client_ip, x->host_name, date);
		rc = rc ? -1 : mime_build(&m, out);
	}
	for (size_t i = 0; hv && i < nh; i++)
		json_buf_free(&hv[i]);
	free(hv);
	free(h);
	free(a);
	json_buf_free(&subj);
	json_buf_free(&text);
	json_buf_free(&html);
	json_buf_free(&fname);
	return rc;
}

/* The content for recipient r: placeholders filled, line ends CRLF, a trace
 * header first, a final CRLF. */
static int render(const struct inject_content *x, const struct inject_rcpt *r, struct json_buf *b)
{
	const char *s = x->content, *end = s + x->content_len;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	bool header = true, bol = true;
	int rc;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if ((rc = json_buf_reserve(b, x->content_len + x->content_len / 16 + 256)) < 0)
		return rc;
	rc = json_buf_printf(b, "Received: from [%s]\r\n\tby %s (Salvo) with HTTP;\r\n\t%s\r\n", x->client_ip,
			     x->host_name, date);
	while (s < end && !rc) {
		if (s[0] == '{' && s + 1 < end && s[1] == '{' && r) {
			const char *close = strstr(s + 2, "}}");
			char name[128];
			size_t n;
			const char *a, *z;

			if (close && close < end && (size_t)(close - s) < sizeof(name)) {
				for (a = s + 2; a < close && *a == ' '; a++)
					;
				for (z = close; z > a && z[-1] == ' '; z--)
					;
				n = (size_t)(z - a);
				memcpy(name, a, n);
				name[n] = '\0';
				json_t *tmp = NULL, *v = lookup(x, r, name, &tmp);

				rc = put_value(b, v, header);
				json_decref(tmp);
				s = close + 2;
				bol = false;
				continue;
			}
		}
		if (*s == '\n' || (*s == '\r' && s + 1 < end && s[1] == '\n')) {
			if (bol)
				header = false; /* the empty line ends the header section */
			rc = json_buf_puts(b, "\r\n");
			s += *s == '\r' ? 2 : 1;
			bol = true;
			continue;
		}
		/* copy the run up to the next line end or placeholder in one go
		 * (the content is NUL-terminated; an embedded NUL stops strcspn
		 * and is copied as one byte, like a lone '{' or '\r') */
		size_t k = strcspn(s, r ? "\r\n{" : "\r\n");

		if (k > (size_t)(end - s))
			k = (size_t)(end - s);
		if (k == 0)
			k = 1;
		rc = json_buf_put(b, s, k);
		s += k;
		bol = false;
	}
	if (!rc && !bol)
		rc = json_buf_puts(b, "\r\n");
	return rc;
}

int inject_render(const struct inject_content *c, const struct inject_rcpt *r, struct json_buf *out)
{
	return c->object ? render_object(c, r, out) : render(c, r, out);
}
