/*
 * ctl_http.c - salvoctl's HTTP client for salvod's API, on libcurl: one
 * handle per request (salvoctl makes few), the token as a Bearer header,
 * short timeouts so an operator is never left waiting on a dead daemon.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct sink {
	char *p;
	size_t len, cap;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;

	if (s->len + add + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *grown;

		while (cap < s->len + add + 1)
			cap *= 2;
		if (!(grown = realloc(s->p, cap)))
			return 0;
		s->p = grown;
		s->cap = cap;
	}
	memcpy(s->p + s->len, ptr, add);
	s->len += add;
	s->p[s->len] = '\0';
	return add;
}

int ctl_request(const struct ctl *c, const char *method, const char *path, const char *body,
		const char *content_type, struct ctl_resp *out)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct sink s = {0};
	char url[2048], auth[512], ctype[128], err[CURL_ERROR_SIZE] = "";
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	if (!h) {
		snprintf(out->error, sizeof(out->error), "cannot start libcurl");
		return -1;
	}
	snprintf(url, sizeof(url), "%s%s", c->api, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (c->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (body) {
		snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type ? content_type : "application/json");
		hdrs = curl_slist_append(hdrs, ctype);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
		out->body = s.p ? s.p : strdup("");
		out->len = s.len;
	} else {
		free(s.p);
		snprintf(out->error, sizeof(out->error), "%s", err[0] ? err : curl_easy_strerror(rc));
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		if (!c->quiet_errors)
			fprintf(stderr, "salvoctl: cannot reach salvod at %s: %s\n", c->api, out->error);
		return -1;
	}
	return 0;
}

void ctl_resp_free(struct ctl_resp *r)
{
	free(r->body);
	r->body = NULL;
}

int ctl_http_error(const struct ctl_resp *r)
{
	json_t *j = json_loads(r->body ? r->body : "", 0, NULL);
	const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
	const char *field = j ? json_string_value(json_object_get(j, "field")) : NULL;

	fprintf(stderr, "salvoctl: salvod answered %ld: %s%s%s%s\n", r->status, msg ? msg : (r->body ? r->body : ""),
		field ? " (field " : "", field ? field : "", field ? ")" : "");
	json_decref(j);
	return 1;
}

json_t *ctl_get_json(const struct ctl *c, const char *path, int *status)
{
	struct ctl_resp r;
	json_error_t jerr;
	json_t *j;

	if (ctl_request(c, "GET", path, NULL, NULL, &r) < 0) {
		*status = 2;
		return NULL;
	}
	if (r.status != 200) {
		if (!c->quiet_errors)
			ctl_http_error(&r);
		ctl_resp_free(&r);
		*status = 1;
		return NULL;
	}
	j = json_loads(r.body, 0, &jerr);
	if (!j && !c->quiet_errors)
		fprintf(stderr, "salvoctl: salvod's answer is not JSON: %s\n", jerr.text);
	ctl_resp_free(&r);
	*status = j ? 0 : 1;
	return j;
}

void ctl_urlencode(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s && n + 4 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("-._~@+", ch)) {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

const char *ctl_num(double v, char *buf, size_t cap)
{
	if (v >= 10e6)
		snprintf(buf, cap, "%.0fM", v / 1e6);
	else if (v >= 100e3)
		snprintf(buf, cap, "%.0fk", v / 1e3);
	else if (v >= 10 || v == 0)
		snprintf(buf, cap, "%.0f", v);
	else
		snprintf(buf, cap, "%.1f", v);
	return buf;
}
