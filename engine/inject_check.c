/*
 * inject_check.c - whole-request validation of an HTTP injection (see
 * inject_check.h).
 *
 * Header injection: every request field that becomes (part of) a header
 * line - the subject, names, addresses, extra headers, an attachment's
 * content_type, file_name and content_id, and every substitution value
 * that a placeholder in a header position would insert - is refused whole
 * when it holds a CR or LF, naming the field (hdr_field, check_header_subs).
 * The builders also drop or encode such bytes (mime_build.c,
 * inject_render.c): this check is what makes the client hear about it.
 */
#include "engine/inject_check.h"
#include "engine/inject_render.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/mime_build.h"
#include "net/smtp_cmd.h"

bool inject_valid_address(const char *s)
{
	return s && smtp_mailbox_check(s, strlen(s), true) == 0;
}

#define WHY_CRLF "a field that becomes a header line must not contain CR or LF"

/* The JSON path of the culprit, in a per-thread buffer. */
__attribute__((format(printf, 1, 2)))
static const char *pathf(const char *fmt, ...)
{
	static __thread char path[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return path;
}

/* A string value holding a CR or LF (anywhere in its length). */
static bool has_crlf(json_t *v)
{
	const char *p = json_string_value(v);
	size_t n = json_string_length(v);

	return p && (memchr(p, '\r', n) || memchr(p, '\n', n));
}

static bool opt_string(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return !v || json_is_string(v) || json_is_null(v);
}

static bool mailbox_ok(json_t *m, bool required)
{
	json_t *e = json_object_get(m, "email");

	if (!m || json_is_null(m))
		return !required;
	return json_is_object(m) && json_is_string(e) && inject_valid_address(json_string_value(e)) && opt_string(m, "name");
}

/* The header-bound string fields of the content object: CR/LF refused. */
static int check_object_headers(json_t *o, const char **why, const char **field)
{
	static const char *const own[][2] = {
		{"subject", "content.subject"},
		{"from", "content.from"},
		{"reply_to", "content.reply_to"},
	};
	json_t *h = json_object_get(o, "headers"), *atts = json_object_get(o, "attachments"), *v;
	const char *k;

	*why = WHY_CRLF;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		v = json_object_get(o, own[i][0]);
		if (has_crlf(v)) {
			*field = own[i][1];
			return -1;
		}
		if (json_is_object(v) && has_crlf(json_object_get(v, "name"))) {
			*field = pathf("%s.name", own[i][1]);
			return -1;
		}
		if (json_is_object(v) && has_crlf(json_object_get(v, "email"))) {
			*field = pathf("%s.email", own[i][1]);
			return -1;
		}
	}
	json_object_foreach(h, k, v) {
		if (has_crlf(v)) {
			*field = pathf("content.headers.%.60s", k);
			return -1;
		}
	}
	for (size_t i = 0; i < json_array_size(atts); i++) {
		static const char *const keys[] = {"content_type", "file_name", "content_id"};
		json_t *a = json_array_get(atts, i);

		for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
			if (has_crlf(json_object_get(a, keys[j]))) {
				*field = pathf("content.attachments[%zu].%s", i, keys[j]);
				return -1;
			}
		}
	}
	*why = NULL;
	return 0;
}

/* An attachment's content_type is written as is: "type/subtype" and
 * optional parameters, printable ASCII. */
static bool content_type_ok(const char *s)
{
	size_t type = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-");

	if (!type || s[type] != '/')
		return false;
	s += type + 1;
	if (!strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-"))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* The content object's shape; why and the JSON path of the culprit. */
static int check_object(json_t *o, const char **why, const char **field)
{
	json_t *h = json_object_get(o, "headers"), *atts = json_object_get(o, "attachments"), *v;
	const char *k;

	*why = NULL;
	if (check_object_headers(o, why, field) < 0)
		return -1;
	if (!mailbox_ok(json_object_get(o, "from"), true))
		*why = "content.from must be {\"email\": a valid address, \"name\": optional}", *field = "content.from";
	else if (!mailbox_ok(json_object_get(o, "reply_to"), false))
		*why = "content.reply_to must be {\"email\": a valid address, \"name\": optional}", *field = "content.reply_to";
	else if (!opt_string(o, "subject"))
		*why = "content.subject must be a string", *field = "content.subject";
	else if (!opt_string(o, "text_body"))
		*why = "content.text_body must be a string", *field = "content.text_body";
	else if (!opt_string(o, "html_body"))
		*why = "content.html_body must be a string", *field = "content.html_body";
	else if (!json_is_string(json_object_get(o, "text_body")) && !json_is_string(json_object_get(o, "html_body")))
		*why = "content needs a text_body or an html_body", *field = "content.text_body";
	else if (h && !json_is_object(h))
		*why = "content.headers must be an object of strings", *field = "content.headers";
	else if (atts && !json_is_array(atts))
		*why = "content.attachments must be an array", *field = "content.attachments";
	if (*why)
		return -1;
	json_object_foreach(h, k, v) {
		if (!mime_header_name_ok(k) || !json_is_string(v)) {
			*why = "a header needs a valid name and a string value";
			*field = pathf("content.headers.%.60s", k);
			return -1;
		}
	}
	for (size_t i = 0; i < json_array_size(atts); i++) {
		json_t *a = json_array_get(atts, i), *b64 = json_object_get(a, "base64");
		const char *ct = json_string_value(json_object_get(a, "content_type"));

		if (!json_is_object(a) || !json_is_string(json_object_get(a, "data")) || (b64 && !json_is_boolean(b64)) ||
		    !opt_string(a, "content_type") || !opt_string(a, "file_name") || !opt_string(a, "content_id")) {
			*why = "an attachment is {data: string, base64: bool, content_type, file_name, content_id: strings}";
			*field = pathf("content.attachments[%zu]", i);
			return -1;
		}
		if (ct && *ct && !content_type_ok(ct)) {
			*why = "content_type must be a MIME type (type/subtype, optional parameters, printable ASCII)";
			*field = pathf("content.attachments[%zu].content_type", i);
			return -1;
		}
		if (json_is_true(b64)) {
			const char *d = json_string_value(json_object_get(a, "data"));
			size_t m = 0;
			bool ok = true;

			for (; *d && ok; d++) {
				if (*d == '\r' || *d == '\n' || *d == ' ')
					continue;
				ok = (*d >= 'A' && *d <= 'Z') || (*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') ||
				     *d == '+' || *d == '/' || *d == '=';
				m++;
			}
			if (!ok || m % 4) {
				*why = "data is not valid base64";
				*field = pathf("content.attachments[%zu].data", i);
				return -1;
			}
		}
	}
	return 0;
}

/* The names of the `{{ name }}` placeholders in s[0..n) added to the set
 * names (a JSON object used as a set). Deliberately generous (any "{{" up
 * to the next "}}" within 130 bytes, like inject_render.c's fill): a name
 * too many only means a value is checked that would not have been used. */
static int add_placeholders(json_t *names, const char *s, size_t n)
{
	const char *end = s + n;

	for (const char *open = s; (open = memmem(open, (size_t)(end - open), "{{", 2)); open += 2) {
		const char *z = memmem(open + 2, (size_t)(end - open - 2), "}}", 2);
		char name[132];

		if (!z || z - open > 130)
			continue;
		inject_placeholder_name(open, z, name, sizeof(name));
		if (json_object_set_new_nocheck(names, name, json_true()) < 0)
			return -1;
	}
	return 0;
}

/* The placeholders that fill header lines: in the object form the subject,
 * the From name and the extra headers' values (what inject_render.c fills
 * in header mode); in raw content, everything before the first empty line. */
static int header_placeholders(json_t *root, json_t *names)
{
	json_t *c = json_object_get(root, "content"), *v;
	const char *k, *s;
	size_t n;
	int rc = 0;

	if (json_is_object(c)) {
		json_t *from = json_object_get(c, "from");

		if ((v = json_object_get(c, "subject")) && json_is_string(v))
			rc |= add_placeholders(names, json_string_value(v), json_string_length(v));
		if (json_is_object(from) && json_is_string(v = json_object_get(from, "name")))
			rc |= add_placeholders(names, json_string_value(v), json_string_length(v));
		json_object_foreach(json_object_get(c, "headers"), k, v)
			if (json_is_string(v))
				rc |= add_placeholders(names, json_string_value(v), json_string_length(v));
		return rc;
	}
	s = json_string_value(c);
	n = json_string_length(c);
	for (size_t i = 0; s && i < n;) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (s + i)) : n - i;

		if (len == 0 || (len == 1 && s[i] == '\r'))
			return add_placeholders(names, s, i); /* the empty line ends the header */
		i += len + 1;
	}
	return s ? add_placeholders(names, s, n) : 0;
}

/* No substitution value that a header placeholder would insert holds a CR
 * or LF: the global ones, then each recipient's. Linear in the request
 * (each substitution is looked up in the set of header names once). */
static int check_header_subs(json_t *root, const char **why, const char **field)
{
	json_t *names = json_object(), *rc = json_object_get(root, "recipients"), *v;
	const char *k;
	int ret = 0;

	if (!names || header_placeholders(root, names) < 0) {
		json_decref(names);
		*why = "out of memory";
		*field = NULL;
		return -1;
	}
	*why = WHY_CRLF;
	json_object_foreach(json_object_get(root, "substitutions"), k, v) {
		if (has_crlf(v) && json_object_get(names, k)) {
			*field = pathf("substitutions.%.60s", k);
			ret = -1;
			goto out;
		}
	}
	for (size_t i = 0; i < json_array_size(rc); i++) {
		json_object_foreach(json_object_get(json_array_get(rc, i), "substitutions"), k, v) {
			if (has_crlf(v) && json_object_get(names, k)) {
				*field = pathf("recipients[%zu].substitutions.%.60s", i, k);
				ret = -1;
				goto out;
			}
		}
	}
out:
	json_decref(names);
	if (!ret)
		*why = NULL;
	return ret;
}

/* KumoMTA's template_dialect: Salvo fills `{{ name }}` placeholders, which
 * is Jinja's syntax for a variable (KumoMTA's default); anything else would
 * be rendered wrongly, so it is refused rather than ignored. */
static int check_dialect(json_t *root, const char **why, const char **field)
{
	json_t *v = json_object_get(root, "template_dialect");
	const char *d = json_string_value(v);

	*field = "template_dialect";
	if (!v || json_is_null(v) || (d && !strcmp(d, "Jinja")))
		return 0;
	if (d && (!strcmp(d, "Static") || !strcmp(d, "Handlebars")))
		*why = "template_dialect is not supported here: Salvo fills {{ name }} placeholders as \"Jinja\" "
		       "(the default)";
	else
		*why = "unknown template_dialect (KumoMTA's are \"Jinja\", \"Static\" and \"Handlebars\"; Salvo "
		       "supports \"Jinja\")";
	return -1;
}

int inject_check(json_t *root, size_t max_message_size, const char **why, const char **field)
{
	json_t *v, *rc;

	*field = NULL;
	if (!json_is_object(root)) {
		*why = "the request must be a JSON object";
		return -1;
	}
	v = json_object_get(root, "envelope_sender");
	*field = "envelope_sender";
	if (!json_is_string(v)) {
		*why = "envelope_sender is required (a string)";
		return -1;
	}
	if (has_crlf(v)) {
		*why = "envelope_sender must not contain CR or LF";
		return -1;
	}
	if (json_string_length(v) && !inject_valid_address(json_string_value(v))) {
		*why = "envelope_sender is not a valid address";
		return -1;
	}
	if (check_dialect(root, why, field) < 0)
		return -1;
	v = json_object_get(root, "content");
	*field = "content";
	if (!v) {
		*why = "content is required";
		return -1;
	}
	if (json_is_object(v)) {
		if (check_object(v, why, field) < 0)
			return -1;
	} else if (!json_is_string(v) || !json_string_length(v)) {
		*why = "content must be a non-empty string (an RFC 5322 message) or an object";
		return -1;
	} else if ((size_t)json_string_length(v) > max_message_size) {
		*why = "content is larger than max-message-size";
		return -1;
	}
	rc = json_object_get(root, "recipients");
	*field = "recipients";
	if (!json_is_array(rc) || !json_array_size(rc)) {
		*why = "recipients is required (a non-empty array)";
		return -1;
	}
	if (json_array_size(rc) > INJECT_MAX_RCPTS) {
		*why = "more than 100000 recipients in one request";
		return -1;
	}
	for (size_t i = 0; i < json_array_size(rc); i++) {
		json_t *e = json_array_get(rc, i), *em = json_object_get(e, "email"), *nm = json_object_get(e, "name"),
		       *sb = json_object_get(e, "substitutions");

		if (json_is_object(e) && json_is_string(em) && (!nm || json_is_string(nm) || json_is_null(nm)) &&
		    (!sb || json_is_object(sb) || json_is_null(sb))) {
			/* an invalid address is that recipient's failure; one
			 * that carries a line break is an injection attempt */
			if (has_crlf(em) || has_crlf(nm)) {
				*why = WHY_CRLF;
				*field = pathf(has_crlf(em) ? "recipients[%zu].email" : "recipients[%zu].name", i);
				return -1;
			}
			continue;
		}
		*field = pathf(!json_is_object(e) ? "recipients[%zu]" : !json_is_string(em) ?
			       "recipients[%zu].email" : nm && !json_is_string(nm) && !json_is_null(nm) ?
			       "recipients[%zu].name" : "recipients[%zu].substitutions", i);
		*why = "each recipient is an object with email (a string), optional name (a string) and "
		       "substitutions (an object)";
		return -1;
	}
	v = json_object_get(root, "substitutions");
	if (v && !json_is_object(v)) {
		*why = "substitutions must be an object";
		*field = "substitutions";
		return -1;
	}
	if (check_header_subs(root, why, field) < 0)
		return -1;
	*field = NULL;
	return 0;
}
