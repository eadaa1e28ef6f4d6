/*
 * inject_check.c - whole-request validation of an HTTP injection (see
 * inject_check.h).
 */
#include "engine/inject_check.h"

#include <stdio.h>
#include <string.h>

#include "engine/mime_build.h"
#include "net/smtp_cmd.h"

bool inject_valid_address(const char *s)
{
	return s && smtp_mailbox_check(s, strlen(s), true) == 0;
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

/* The content object's shape; why and the JSON path of the culprit. */
static int check_object(json_t *o, const char **why, const char **field)
{
	static __thread char path[64];
	json_t *h = json_object_get(o, "headers"), *atts = json_object_get(o, "attachments"), *v;
	const char *k;

	*why = NULL;
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
			snprintf(path, sizeof(path), "content.headers.%.40s", k);
			*why = "a header needs a valid name and a string value";
			*field = path;
			return -1;
		}
	}
	for (size_t i = 0; i < json_array_size(atts); i++) {
		json_t *a = json_array_get(atts, i), *b64 = json_object_get(a, "base64");

		if (!json_is_object(a) || !json_is_string(json_object_get(a, "data")) || (b64 && !json_is_boolean(b64)) ||
		    !opt_string(a, "content_type") || !opt_string(a, "file_name") || !opt_string(a, "content_id")) {
			snprintf(path, sizeof(path), "content.attachments[%zu]", i);
			*why = "an attachment is {data: string, base64: bool, content_type, file_name, content_id: strings}";
			*field = path;
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
				snprintf(path, sizeof(path), "content.attachments[%zu].data", i);
				*why = "data is not valid base64";
				*field = path;
				return -1;
			}
		}
	}
	return 0;
}

int inject_check(json_t *root, size_t max_message_size, const char **why, const char **field)
{
	static __thread char path[64];
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
	if (json_string_length(v) && !inject_valid_address(json_string_value(v))) {
		*why = "envelope_sender is not a valid address";
		return -1;
	}
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
		    (!sb || json_is_object(sb) || json_is_null(sb)))
			continue;
		snprintf(path, sizeof(path), !json_is_object(e) ? "recipients[%zu]" : !json_is_string(em) ?
			 "recipients[%zu].email" : nm && !json_is_string(nm) && !json_is_null(nm) ?
			 "recipients[%zu].name" : "recipients[%zu].substitutions", i);
		*why = "each recipient is an object with email (a string), optional name (a string) and "
		       "substitutions (an object)";
		*field = path;
		return -1;
	}
	v = json_object_get(root, "substitutions");
	if (v && !json_is_object(v)) {
		*why = "substitutions must be an object";
		*field = "substitutions";
		return -1;
	}
	*field = NULL;
	return 0;
}
