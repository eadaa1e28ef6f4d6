/*
 * cmd_trace.c - `salvoctl trace DOMAIN | --source CIDR [--seconds N]
 * [--data]`: live SMTP transcripts from GET /api/v1/trace, printed line by
 * line as they arrive (the stream's keep-alive empty lines are not), until
 * salvod ends the stream after N seconds.
 */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct trace_out {
	CURL *h;
	bool ok;                   /* status 200: print; else keep the error body */
	bool checked;
	char *err;
	size_t err_len;
	char partial[8192];        /* a line not yet complete */
	size_t plen;
};

static void put_line(const char *p, size_t n)
{
	if (n == 0)
		return; /* keep-alive */
	fwrite(p, 1, n, stdout);
	fputc('\n', stdout);
}

static size_t on_chunk(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct trace_out *o = arg;
	size_t n = size * nmemb;

	if (!o->checked) {
		long status = 0;

		curl_easy_getinfo(o->h, CURLINFO_RESPONSE_CODE, &status);
		o->ok = status == 200;
		o->checked = true;
	}
	if (!o->ok) {
		char *grown = realloc(o->err, o->err_len + n + 1);

		if (!grown)
			return 0;
		o->err = grown;
		memcpy(o->err + o->err_len, ptr, n);
		o->err_len += n;
		o->err[o->err_len] = '\0';
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		if (ptr[i] == '\n') {
			put_line(o->partial, o->plen);
			o->plen = 0;
		} else if (o->plen < sizeof(o->partial)) {
			o->partial[o->plen++] = ptr[i];
		}
	}
	fflush(stdout);
	return n;
}

static int usage(void)
{
	fprintf(stderr, "usage: salvoctl trace DOMAIN | --source CIDR [--seconds N] [--data]\n");
	return 2;
}

int cmd_trace(struct ctl *c, int argc, char **argv)
{
	const char *domain = NULL, *source = NULL, *seconds = "60";
	struct trace_out o = {0};
	struct curl_slist *hdrs = NULL;
	char url[2048], enc[600], auth[512], cerr[CURL_ERROR_SIZE] = "";
	bool data = false;
	long secs;
	CURLcode rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--source") && i + 1 < argc)
			source = argv[++i];
		else if (!strncmp(argv[i], "--source=", 9))
			source = argv[i] + 9;
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = argv[++i];
		else if (!strncmp(argv[i], "--seconds=", 10))
			seconds = argv[i] + 10;
		else if (!strcmp(argv[i], "--data"))
			data = true;
		else if (argv[i][0] != '-' && !domain)
			domain = argv[i];
		else
			return usage();
	}
	if ((!domain && !source) || strlen(seconds) > 8)
		return usage();
	secs = strtol(seconds, NULL, 10);
	snprintf(url, sizeof(url), "%s/api/v1/trace?", c->api);
	if (domain) {
		ctl_urlencode(domain, enc, sizeof(enc));
		snprintf(url + strlen(url), sizeof(url) - strlen(url), "domain=%s&", enc);
	}
	if (source) {
		ctl_urlencode(source, enc, sizeof(enc));
		snprintf(url + strlen(url), sizeof(url) - strlen(url), "source=%s&", enc);
	}
	ctl_urlencode(seconds, enc, sizeof(enc));
	snprintf(url + strlen(url), sizeof(url) - strlen(url), "seconds=%s%s", enc, data ? "&data=yes" : "");

	if (!(o.h = curl_easy_init())) {
		fprintf(stderr, "salvoctl: cannot start libcurl\n");
		return 2;
	}
	curl_easy_setopt(o.h, CURLOPT_URL, url);
	curl_easy_setopt(o.h, CURLOPT_WRITEFUNCTION, on_chunk);
	curl_easy_setopt(o.h, CURLOPT_WRITEDATA, &o);
	curl_easy_setopt(o.h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(o.h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	/* the stream ends itself after N seconds; this only bounds a daemon
	 * that stopped answering */
	curl_easy_setopt(o.h, CURLOPT_TIMEOUT_MS, (secs > 0 && secs <= 3600 ? secs : 3600) * 1000L + 30000L);
	curl_easy_setopt(o.h, CURLOPT_NOSIGNAL, 1L);
	if (c->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(o.h, CURLOPT_HTTPHEADER, hdrs);
	}
	rc = curl_easy_perform(o.h);
	if (o.ok && o.plen)
		put_line(o.partial, o.plen);
	fflush(stdout);
	if (rc == CURLE_OK && !o.checked) {
		long status = 0;

		curl_easy_getinfo(o.h, CURLINFO_RESPONSE_CODE, &status);
		o.ok = status == 200;
	}
	int ret = 0;

	if (rc != CURLE_OK) {
		fprintf(stderr, "salvoctl: trace from %s: %s\n", c->api, cerr[0] ? cerr : curl_easy_strerror(rc));
		ret = 2;
	} else if (!o.ok) {
		struct ctl_resp r = {.body = o.err ? o.err : (char *)"", .len = o.err_len};

		curl_easy_getinfo(o.h, CURLINFO_RESPONSE_CODE, &r.status);
		ret = ctl_http_error(&r);
	}
	free(o.err);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(o.h);
	return ret;
}
