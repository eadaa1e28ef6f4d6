/*
 * inject_http.c - the HTTP injector: P client threads POST /api/inject/v1
 * with batches of B recipients (KumoMTA's schema). One message body per
 * batch, raw RFC 5322 content; with --subst it carries {{ name }}
 * placeholders and every recipient its own substitution. The batch's
 * recipients are stamped accepted when the 200 arrives.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct http_inj {
	struct campaign *c;
	const struct bench_opts *o;
	char url[128];
	unsigned next;                      /* atomic: next batch's first recipient */
	unsigned accepted, refused, errors; /* atomic */
};

struct reply { char *p; size_t len; };

static size_t on_body(char *data, size_t sz, size_t nm, void *arg)
{
	struct reply *r = arg;
	size_t n = sz * nm;
	char *p = realloc(r->p, r->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + r->len, data, n);
	r->len += n;
	p[r->len] = '\0';
	r->p = p;
	return n;
}

/* The request for recipients [first, first+count): NULL when out of memory. */
static char *batch_json(const struct http_inj *h, unsigned first, unsigned count)
{
	char *content;
	size_t clen = campaign_message(h->c, first, h->o->subst, &content);
	if (!content)
		return NULL;
	json_t *rcpts = json_array();
	for (unsigned i = first; i < first + count; i++) {
		char addr[64], name[32];
		campaign_rcpt(i, h->c->domains, addr, sizeof addr);
		json_t *r = json_pack("{s:s}", "email", addr);
		if (h->o->subst) {
			snprintf(name, sizeof name, "Reader %u", i);
			json_object_set_new(r, "name", json_string(name));
		}
		json_array_append_new(rcpts, r);
	}
	json_t *req = json_pack("{s:s, s:s%, s:o, s:s}", "envelope_sender", "bench@src.bench.test", "content",
				content, clen, "recipients", rcpts, "campaign", "salvo-bench");
	free(content);
	if (!req)
		return NULL;
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return text;
}

/* Recipients the server listed as failed, or -1 when the answer is not the API's. */
static int failed_count(const struct reply *r)
{
	json_t *j = r->p ? json_loads(r->p, 0, NULL) : NULL;
	json_t *f = j ? json_object_get(j, "failed_recipients") : NULL;
	int n = json_is_array(f) ? (int)json_array_size(f) : -1;
	json_decref(j);
	return n;
}

static void *client(void *arg)
{
	struct http_inj *h = arg;
	CURL *cu = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (!cu || !hdr) {
		curl_easy_cleanup(cu);
		curl_slist_free_all(hdr);
		return NULL;
	}
	curl_easy_setopt(cu, CURLOPT_URL, h->url);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 120L);
	for (;;) {
		unsigned first = __atomic_fetch_add(&h->next, h->o->batch, __ATOMIC_RELAXED);
		if (first >= h->c->n)
			break;
		unsigned count = h->c->n - first < h->o->batch ? h->c->n - first : h->o->batch;
		char *body = batch_json(h, first, count);
		struct reply rep = { 0 };
		long status = 0;
		CURLcode cc = CURLE_OUT_OF_MEMORY;
		if (body) {
			curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(cu, CURLOPT_WRITEDATA, &rep);
			cc = curl_easy_perform(cu);
			curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
		}
		int64_t t = now_ns();
		int failed = failed_count(&rep);
		if (cc != CURLE_OK || status != 200 || failed < 0) {
			__atomic_fetch_add(&h->errors, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&h->refused, count, __ATOMIC_RELAXED);
		} else {
			/* Which ones failed is in the answer; a benchmark campaign has none,
			 * so all are stamped and the failures only counted. */
			for (unsigned i = first; i < first + count; i++)
				h->c->accepted_ns[i] = t;
			__atomic_fetch_add(&h->accepted, count - (unsigned)failed, __ATOMIC_RELAXED);
			__atomic_fetch_add(&h->refused, (unsigned)failed, __ATOMIC_RELAXED);
		}
		free(rep.p);
		free(body);
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(cu);
	return NULL;
}

int inject_http(struct campaign *c, const struct bench_opts *o, const struct bench_env *e,
		struct inject_result *res)
{
	struct http_inj h = { .c = c, .o = o };
	snprintf(h.url, sizeof h.url, "%s/api/inject/v1", e->http_url);
	pthread_t *th = calloc(o->sessions, sizeof *th);
	if (!th)
		return -1;
	res->start_ns = now_ns();
	unsigned started = 0;
	for (unsigned k = 0; k < o->sessions; k++) {
		if (pthread_create(&th[k], NULL, client, &h) != 0)
			break;
		started++;
	}
	for (unsigned k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	res->end_ns = now_ns();
	res->accepted = h.accepted;
	res->refused = h.refused;
	res->errors = h.errors;
	free(th);
	return started ? 0 : -1;
}
