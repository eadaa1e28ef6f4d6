/*
 * delete_filter.c - parse and match an operator's delete filter (see
 * delete_filter.h).
 */
#include "engine/delete_filter.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"

static const char *const filter_keys[] = {"queue", "campaign", "sender", "recipient", "older_than"};
#define N_KEYS (sizeof(filter_keys) / sizeof(filter_keys[0]))

void delete_filter_free(struct delete_filter *f)
{
	free(f->queue);
	free(f->campaign);
	free(f->sender);
	free(f->recipient);
	free(f->text);
	memset(f, 0, sizeof(*f));
}

static int fail(struct delete_filter *f, char *err, size_t cap, char *field, size_t field_cap, const char *name,
		const char *msg)
{
	delete_filter_free(f);
	snprintf(err, cap, "%s%s%s", name ? name : "", name ? " " : "", msg);
	snprintf(field, field_cap, "%s", name ? name : "");
	return -1;
}

/* A filter string: non-empty (but the null sender), short, no control bytes. */
static const char *check_string(json_t *v, bool empty_ok)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return "must be a string";
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 && !empty_ok)
		return "must not be empty";
	if (n > DELETE_FIELD_MAX)
		return "is too long";
	if (strlen(s) != n)
		return "must not contain NUL";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return "must not contain control characters";
	return NULL;
}

int delete_filter_parse(const char *body, size_t len, struct delete_filter *f, char *err, size_t cap,
			char *field, size_t field_cap)
{
	json_error_t je;
	json_t *root, *text;
	const char *key, *why;
	json_t *v;
	size_t n = 0;

	memset(f, 0, sizeof(*f));
	field[0] = '\0';
	/* NUL is allowed by the parser so that check_string can name the field */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!root) {
		snprintf(err, cap, "body is not valid JSON: %s", je.text);
		snprintf(field, field_cap, "body");
		return -1;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return fail(f, err, cap, field, field_cap, "body", "must be a JSON object");
	}
	json_object_foreach(root, key, v) {
		bool known = !strcmp(key, "dsn");

		for (size_t i = 0; i < N_KEYS && !known; i++)
			known = !strcmp(key, filter_keys[i]);
		if (!known) {
			snprintf(err, cap, "unknown field \"%.200s\" (known: queue, campaign, sender, recipient, "
				 "older_than, dsn)", key);
			snprintf(field, field_cap, "%s", key);
			json_decref(root);
			return -1;
		}
	}
	if ((v = json_object_get(root, "dsn")) && !json_is_boolean(v)) {
		json_decref(root);
		return fail(f, err, cap, field, field_cap, "dsn", "must be true or false");
	}
	f->dsn = v && json_is_true(v);
	for (size_t i = 0; i < N_KEYS; i++) {
		char **dst = NULL;

		if (!(v = json_object_get(root, filter_keys[i])))
			continue;
		n++;
		/* older_than may also be a whole number of seconds */
		if (i == 4 && json_is_integer(v)) {
			json_int_t secs = json_integer_value(v);

			if (secs <= 0 || (uint64_t)secs > DELETE_AGE_MAX_MS / 1000) {
				json_decref(root);
				return fail(f, err, cap, field, field_cap, "older_than",
					    secs > 0 ? "must be at most 3650d" : "must be more than 0 (leave it out for any age)");
			}
			f->older_than_ms = (uint64_t)secs * 1000;
			f->has_older_than = true;
			continue;
		}
		if ((why = check_string(v, i == 2))) {
			json_decref(root);
			return fail(f, err, cap, field, field_cap, filter_keys[i], why);
		}
		switch (i) {
		case 0: dst = &f->queue; break;
		case 1: dst = &f->campaign; break;
		case 2: dst = &f->sender; break;
		case 3: dst = &f->recipient; break;
		default:
			if (config_parse_duration(json_string_value(v), &f->older_than_ms) < 0) {
				json_decref(root);
				return fail(f, err, cap, field, field_cap, "older_than",
					    "must be a duration such as 30s, 15m, 2h or 4d12h, or a number of seconds");
			}
			/* 0 would filter nothing: a typo away from "delete everything" */
			if (f->older_than_ms == 0 || f->older_than_ms > DELETE_AGE_MAX_MS) {
				json_decref(root);
				return fail(f, err, cap, field, field_cap, "older_than",
					    f->older_than_ms ? "must be at most 3650d"
							     : "must be more than 0 (leave it out for any age)");
			}
			f->has_older_than = true;
			continue;
		}
		if (!(*dst = strdup(json_string_value(v)))) {
			json_decref(root);
			return fail(f, err, cap, field, field_cap, NULL, "out of memory");
		}
	}
	if (n == 0) {
		json_decref(root);
		return fail(f, err, cap, field, field_cap, "filter",
			    "at least one of queue, campaign, sender, recipient, older_than is required");
	}
	if (f->queue)
		for (char *c = f->queue; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
	if (f->sender && !strcmp(f->sender, "<>"))
		f->sender[0] = '\0';
	/* the record's form: the filter fields only, in a fixed order */
	text = json_object();
	for (size_t i = 0; text && i < N_KEYS; i++)
		if ((v = json_object_get(root, filter_keys[i])) && json_object_set(text, filter_keys[i], v) < 0) {
			json_decref(text);
			text = NULL;
		}
	if (text)
		f->text = json_dumps(text, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(text);
	json_decref(root);
	if (!f->text)
		return fail(f, err, cap, field, field_cap, NULL, "out of memory");
	return 0;
}

bool delete_filter_match(const struct delete_filter *f, const char *queue, const char *domain, const char *sender,
			 const char *campaign, const char *recipient, int64_t queued_ms, int64_t now_ms)
{
	if (f->queue && strcmp(f->queue, queue) != 0 && strcmp(f->queue, domain) != 0)
		return false;
	if (f->campaign && strcmp(f->campaign, campaign ? campaign : "") != 0)
		return false;
	if (f->sender && strcasecmp(f->sender, sender ? sender : "") != 0)
		return false;
	if (f->recipient && strcasecmp(f->recipient, recipient ? recipient : "") != 0)
		return false;
	if (f->has_older_than) {
		int64_t age = now_ms - queued_ms;

		if (age < 0 || (uint64_t)age < f->older_than_ms)
			return false;
	}
	return true;
}
