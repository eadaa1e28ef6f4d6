/*
 * webhook.c - the accounting webhooks' sender thread (contract in
 * webhook.h): tails the accounting log per webhook, batches, signs, POSTs
 * with libcurl multi, keeps each webhook's acknowledged position on disk.
 *
 * Owns: struct webhooks (the thread, the curl multi handle) and per
 * webhook its log reader (webhook_log.h), its batch buffer, its curl easy
 * handle and header lists, its position file fd.
 *
 * Invariants, per webhook:
 *   - the reader is just after the last line taken; the batch holds the
 *     chosen records among the lines between `acked` and there, so
 *     acknowledging the batch moves `acked` to the reader's position;
 *   - the reader does not move while a batch is in flight or waiting for
 *     its retry, so the batch's bytes (and signature) never change;
 *   - stats are written under wh->lock by the thread only.
 */
#include "engine/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/acct_log.h"
#include "core/config_webhook.h"
#include "core/json_str.h"
#include "engine/webhook_backlog.h"
#include "engine/webhook_log.h"
#include "engine/webhook_seen.h"

#define IDLE_POLL_MS 50            /* re-read a caught-up log this often */
#define BACKOFF_MIN_MS 250
#define LOG_EVERY_MS 30000
#define BACKLOG_EVERY_MS 1000
#define BACKLOG_READ_BUDGET (32u << 20) /* log bytes read per backlog count */
#define BODY_MAX (64u << 10)       /* a response body is read this far, then dropped */
#define BODY_WAIT_MS 1000          /* after a 2xx's headers, its body gets this long */
#define RETRY_AFTER_MAX_MS 3600000 /* a receiver's Retry-After is honoured up to 1 h */
#define STOP_GRACE_MS 1000         /* stopping, POSTs in flight get this long */
#define SEEN_PRIME_BYTES (256u << 10) /* log before the position whose ids count as sent */

/* A record of the batch: body[end] follows it (',' or ']'); pos is the
 * log position after it (acknowledged when a POST ending with it is). */
struct rec_mark {
	size_t end;
	struct wh_pos pos;
	uint64_t wanted;   /* the reader's wanted_read just after it */
};

struct hook {
	const struct config_webhook *cfg;
	struct webhooks *wh;
	struct wh_reader rd;
	struct wh_seen *seen;          /* ids taken lately: a record logged twice goes once */
	uint64_t dups;                 /* records skipped for that */
	int pos_fd;
	struct wh_pos acked;           /* acknowledged position */
	bool pos_dirty;                /* acked moved past skipped lines only */
	int64_t pos_saved_ms;
	/* the batch */
	struct json_buf body;          /* "[rec,rec,...", "]" added when sent */
	size_t n;                      /* records in it */
	struct rec_mark *marks;        /* per record: where it ends in body and in the log */
	size_t limit;                  /* records per POST: max-batch, less after a 413 */
	size_t sending;                /* records in the POST in flight (the first ones) */
	int64_t first_read_ms;         /* monotonic, when its first record was taken */
	int64_t oldest_time_ms;        /* wall "time" of its first record */
	bool closed;                   /* "]" added: the batch is being sent */
	bool in_flight;
	int64_t retry_at;              /* monotonic; 0 = not waiting */
	CURL *easy;
	struct curl_slist *headers;    /* the block's, plus ours */
	struct curl_slist *req_headers; /* headers plus this batch's signature */
	char errbuf[CURL_ERROR_SIZE];
	/* this POST's answer, as it comes (reset by hook_send) */
	long status;                   /* of the last status line seen */
	bool got_2xx;                  /* a 2xx's headers are complete: acknowledged */
	int64_t got_2xx_ms;            /* monotonic, when they were */
	size_t body_bytes;             /* of the response body read */
	int64_t last_log_ms;
	int64_t backlog_at_ms;
	struct wh_backlog backlog;     /* its count in records */
	uint64_t wanted_read;          /* records of its types the reader took (sent or not) */
	uint64_t acked_wanted;         /* wanted_read at the acknowledged position */
	struct webhook_stat st;        /* under wh->lock */
};

struct webhooks {
	pthread_t thread;
	bool started;
	bool stop;          /* under lock */
	pthread_mutex_t lock;
	CURLM *multi;
	struct hook *hooks;
	size_t n;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the position file --------------------------------------------------- */

static void pos_save(struct hook *h)
{
	char line[WH_POS_LEN];

	if (h->pos_fd < 0)
		return;
	wh_pos_format(&h->acked, line);
	/* One write(2) of WH_POS_LEN bytes at 0: a kill -9 leaves the old or
	 * the new position, never half of each. Not fsync'ed, like the log
	 * itself: a kill -9 keeps the page cache. */
	if (pwrite(h->pos_fd, line, sizeof(line), 0) != (ssize_t)sizeof(line))
		fprintf(stderr, "salvod: webhook %s: cannot save its position: %s\n", h->cfg->name, strerror(errno));
	h->pos_dirty = false;
	h->pos_saved_ms = mono_ms();
}

static void set_acked(struct hook *h)
{
	wh_reader_where(&h->rd, &h->acked);
}

/* Where to start: the saved position; a new webhook at the end of the log
 * now; after an unreadable position file, the whole log (at least once:
 * duplicates rather than a loss). */
static int hook_resume(struct hook *h, const char *state_dir)
{
	char path[4096], text[WH_POS_LEN];
	struct wh_pos pos;
	ssize_t got;

	snprintf(path, sizeof(path), "%s/%s.pos", state_dir, h->cfg->name);
	h->pos_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (h->pos_fd < 0)
		return -errno;
	got = pread(h->pos_fd, text, sizeof(text), 0);
	if (got > 0 && wh_pos_parse(text, (size_t)got, &pos) == 0) {
		wh_reader_resume(&h->rd, &pos);
		set_acked(h);
		return 0;
	}
	if (got > 0) {
		fprintf(stderr, "salvod: webhook %s: unreadable %s; sending the whole accounting log again\n",
			h->cfg->name, path);
		memset(&pos, 0, sizeof(pos));
		wh_reader_resume(&h->rd, &pos);
	} else {
		wh_reader_resume(&h->rd, NULL);
	}
	set_acked(h);
	pos_save(h);
	return 0;
}

/* The records just before the resumed position were sent: their ids count
 * as seen, so the outbox writing them again after a crash sends none
 * twice (those lines come within one flush of the log's end). */
static void hook_prime(struct hook *h)
{
	struct wh_reader *r = &h->rd;
	uint64_t at = r->off + r->pos, from;
	ssize_t got;
	char *buf;

	if (r->fd < 0 || at == 0)
		return;
	from = at > SEEN_PRIME_BYTES ? at - SEEN_PRIME_BYTES : 0;
	if (!(buf = malloc(at - from)))
		return;
	got = pread(r->fd, buf, at - from, (off_t)from);
	if (got > 0)
		wh_seen_add_lines(h->seen, buf, (size_t)got, from == 0);
	free(buf);
}

/* Take lines into the batch until it is full or the log is read. */
static void hook_read(struct hook *h)
{
	struct wh_reader *r = &h->rd;
	struct wh_pos at;

	while (h->n < h->limit) {
		const char *line, *type, *eid;
		size_t n, tlen;

		if (wh_reader_line(r, &line, &n) <= 0)
			break;
		if (!wh_record_type(line, n, &type, &tlen)) {
			r->skipped++;
			continue;
		}
		if (!config_webhook_wants(h->cfg, type, tlen))
			continue;
		h->wanted_read++;
		eid = line + n - 2 - ACCT_EVENT_ID_LEN;
		if (wh_seen_has(h->seen, eid)) {
			h->dups++; /* written again by the outbox after a crash */
			continue;
		}
		if (json_buf_reserve(&h->body, n + 2) < 0) {
			r->pos -= n + 1; /* the line is still in the buffer: again later */
			h->wanted_read--;
			break;
		}
		if (h->n == 0) {
			h->first_read_ms = mono_ms();
			h->oldest_time_ms = n > 9 && !memcmp(line, "{\"time\":\"", 9) ? wh_parse_time(line + 9, n - 9) : 0;
			json_buf_putc(&h->body, '[');
		} else {
			json_buf_putc(&h->body, ',');
		}
		json_buf_put(&h->body, line, n);
		wh_seen_add(h->seen, eid);
		h->marks[h->n].end = h->body.len;
		h->marks[h->n].wanted = h->wanted_read;
		wh_reader_where(r, &h->marks[h->n].pos);
		h->n++;
	}
	wh_reader_where(r, &at);
	if (h->n == 0 && (at.ino != h->acked.ino || at.off != h->acked.off)) {
		h->acked = at; /* only skipped lines since: nothing to send */
		h->acked_wanted = h->wanted_read;
		h->pos_dirty = true;
	}
}

/* ---- HTTP ---------------------------------------------------------------- */

/* The answer's headers: a 2xx status line's headers complete (the blank
 * line after them) is the acknowledgment; what comes after cannot undo it.
 * An interim 1xx answer's blank line is not. */
static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
	struct hook *h = ctx;
	size_t len = size * n;

	if (len > 9 && !memcmp(p, "HTTP/", 5)) {
		const char *sp = memchr(p, ' ', len);

		h->status = sp && (size_t)(sp - p) + 4 <= len ? strtol(sp + 1, NULL, 10) : 0;
	} else if ((len == 2 && !memcmp(p, "\r\n", 2)) || (len == 1 && *p == '\n')) {
		if (h->status >= 200 && h->status < 300 && !h->got_2xx) {
			h->got_2xx = true;
			h->got_2xx_ms = mono_ms();
		}
	}
	return len;
}

/* The body is not used: read up to BODY_MAX of it (so a small one keeps
 * the connection for the next POST), then stop (an endless body). */
static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct hook *h = ctx;

	(void)p;
	h->body_bytes += size * n;
	return h->body_bytes > BODY_MAX ? 0 : size * n;
}

/* A 2xx's body that trickles: give up on it after BODY_WAIT_MS (the POST
 * is acknowledged already; the connection is dropped). */
static int on_progress(void *ctx, curl_off_t dlt, curl_off_t dl, curl_off_t ult, curl_off_t ul)
{
	struct hook *h = ctx;

	(void)dlt;
	(void)dl;
	(void)ult;
	(void)ul;
	return h->got_2xx && mono_ms() - h->got_2xx_ms > BODY_WAIT_MS;
}

static int hook_curl_init(struct hook *h, char *err, size_t errlen)
{
	const struct config_webhook *c = h->cfg;
	char line[128];

	if (!(h->easy = curl_easy_init()))
		goto oom;
	snprintf(line, sizeof(line), "X-Salvo-Webhook: %s", c->name);
	struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");

	l = l ? curl_slist_append(l, "Expect:") : NULL;
	l = l ? curl_slist_append(l, line) : NULL;
	for (size_t i = 0; l && i < c->n_headers; i++)
		l = curl_slist_append(l, c->headers[i]);
	if (!l)
		goto oom;
	h->headers = l;
	curl_easy_setopt(h->easy, CURLOPT_URL, c->url);
	curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h);
	curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(h->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h->easy, CURLOPT_XFERINFODATA, h);
	curl_easy_setopt(h->easy, CURLOPT_NOPROGRESS, 0L);
	/* a proxy's "200 Connection established" (https_proxy) is no answer */
	curl_easy_setopt(h->easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	/* a redirect is no acknowledgment: never followed, retried (webhook.h) */
	curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075700
	/* stopping (SIGTERM, a reload) does not wait for a name lookup that
	 * hangs on a dead DNS server */
	curl_easy_setopt(h->easy, CURLOPT_QUICK_EXIT, 1L);
#endif
	curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(h->easy, CURLOPT_USERAGENT, "salvod-webhook");
	/* the block's ca-file; else the environment's SSL_CERT_FILE (OpenSSL's,
	 * which libcurl does not read itself), CURL_CA_BUNDLE (curl(1)'s),
	 * SSL_CERT_DIR; else the system store */
	if (c->ca_file)
		curl_easy_setopt(h->easy, CURLOPT_CAINFO, c->ca_file);
	else if (getenv("SSL_CERT_FILE") && *getenv("SSL_CERT_FILE"))
		curl_easy_setopt(h->easy, CURLOPT_CAINFO, getenv("SSL_CERT_FILE"));
	else if (getenv("CURL_CA_BUNDLE") && *getenv("CURL_CA_BUNDLE"))
		curl_easy_setopt(h->easy, CURLOPT_CAINFO, getenv("CURL_CA_BUNDLE"));
	if (!c->ca_file && getenv("SSL_CERT_DIR") && *getenv("SSL_CERT_DIR"))
		curl_easy_setopt(h->easy, CURLOPT_CAPATH, getenv("SSL_CERT_DIR"));
	if (!c->tls_verify) {
		curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return 0;
oom:
	snprintf(err, errlen, "webhook %s: out of memory", c->name);
	return -1;
}

/* HMAC-SHA256 of the bytes sent as "X-Salvo-Signature: sha256=<hex>". */
static int sign(const struct hook *h, size_t len_sent, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int k;

	if (!HMAC(EVP_sha256(), h->cfg->secret, (int)strlen(h->cfg->secret), (const unsigned char *)h->body.data,
		  len_sent, mac, &len))
		return -1;
	k = snprintf(out, cap, "X-Salvo-Signature: sha256=");
	for (unsigned i = 0; i < len && (size_t)k + 2 < cap; i++) {
		out[k++] = hex[mac[i] >> 4];
		out[k++] = hex[mac[i] & 15];
	}
	out[k] = 0;
	return 0;
}

/* POST the batch's first records (all of them, or as many as a 413 left
 * room for): the array is closed by a ']' after the last one sent, over
 * the ',' that follows it when others stay (put back by hook_done). */
static void hook_send(struct hook *h)
{
	char sig[128];
	size_t k = h->n < h->limit ? h->n : h->limit, len;

	if (!h->closed) {
		/* a first try: close the array (a retry sends the same bytes) */
		if (json_buf_putc(&h->body, ']') < 0)
			return;
		h->closed = true;
	}
	len = h->marks[k - 1].end + 1;
	h->body.data[len - 1] = ']';
	h->sending = k;
	curl_slist_free_all(h->req_headers);
	h->req_headers = NULL;
	if (h->cfg->secret) {
		struct curl_slist *l = NULL;

		if (sign(h, len, sig, sizeof(sig)) < 0)
			goto not_sent;
		for (struct curl_slist *s = h->headers; s; s = s->next)
			if (!(l = curl_slist_append(l, s->data)))
				break;
		if (l && !(l = curl_slist_append(l, sig)))
			curl_slist_free_all(l);
		if (!l)
			goto not_sent;
		h->req_headers = l;
	}
	curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->req_headers ? h->req_headers : h->headers);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body.data);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	h->errbuf[0] = 0;
	h->status = 0;
	h->got_2xx = false;
	h->body_bytes = 0;
	if (curl_multi_add_handle(h->wh->multi, h->easy) != CURLM_OK)
		goto not_sent;
	h->in_flight = true;
	h->retry_at = 0;
	return;
not_sent: /* tried again on the next step */
	if (k < h->n)
		h->body.data[len - 1] = ',';
}

/* Backoff after the k-th failure in a row: min(retry-max, 250ms * 2^(k-1)),
 * its second half random. */
static int64_t backoff_ms(const struct hook *h, uint64_t k)
{
	uint64_t d = BACKOFF_MIN_MS;

	for (uint64_t i = 1; i < k && d < h->cfg->retry_max_ms; i++)
		d *= 2;
	if (d > h->cfg->retry_max_ms)
		d = h->cfg->retry_max_ms;
	return (int64_t)(d / 2 + (uint64_t)random() % (d / 2 + 1));
}

/* The first k records of the batch are acknowledged: the rest (if any)
 * becomes the batch, "[" and what followed the k-th record's ','. */
static void batch_drop_first(struct hook *h, size_t k)
{
	size_t cut = h->marks[k - 1].end + 1; /* past the ',' (or the ']') */

	if (k == h->n) {
		h->body.len = 0;
		h->n = 0;
		h->closed = false;
		return;
	}
	memmove(h->body.data + 1, h->body.data + cut, h->body.len - cut);
	h->body.len -= cut - 1;
	for (size_t i = k; i < h->n; i++) {
		h->marks[i - k] = h->marks[i];
		h->marks[i - k].end -= cut - 1;
	}
	h->n -= k;
	h->oldest_time_ms = 0; /* not known for the rest: the age shows 0 until the next batch */
}

static void hook_done(struct hook *h, CURLcode rc)
{
	long status = 0;
	curl_off_t retry_after = 0;
	int64_t now = mono_ms();
	char why[128];

	curl_multi_remove_handle(h->wh->multi, h->easy);
	h->in_flight = false;
	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
	if (h->sending < h->n)
		h->body.data[h->marks[h->sending - 1].end] = ','; /* hook_send's ']' */
	if (h->got_2xx || (rc == CURLE_OK && status >= 200 && status < 300)) {
		bool was_failing = h->st.failures_in_row > 0;
		size_t k = h->sending;

		if (k == h->n) {
			set_acked(h);
			h->acked_wanted = h->wanted_read;
		} else {
			h->acked = h->marks[k - 1].pos;
			h->acked_wanted = h->marks[k - 1].wanted;
		}
		pos_save(h);
		pthread_mutex_lock(&h->wh->lock);
		h->st.records_sent += k;
		h->st.batches_sent++;
		h->st.failures_in_row = 0;
		h->st.last_success_ms = wall_ms();
		h->st.last_error[0] = 0;
		h->st.retry_at_ms = 0;
		h->st.oldest_unsent_at_ms = 0; /* until the next figures */
		pthread_mutex_unlock(&h->wh->lock);
		if (was_failing)
			fprintf(stderr, "salvod: webhook %s: delivering again\n", h->cfg->name);
		batch_drop_first(h, k);
		return;
	}
	if (!status)
		status = h->status;
	if (status == 413 && h->sending > 1) {
		/* Payload Too Large: the same records in smaller POSTs, at once
		 * (a receiver's body limit is not an outage); the smaller size
		 * stays for this webhook until salvod restarts */
		h->limit = h->sending / 2;
		fprintf(stderr, "salvod: webhook %s: the receiver refused %zu records as too large (HTTP 413); "
				"at most %zu per POST from now on\n", h->cfg->name, h->sending, h->limit);
		pthread_mutex_lock(&h->wh->lock);
		h->st.failures++;
		snprintf(h->st.last_error, sizeof(h->st.last_error), "HTTP status 413 for %zu records", h->sending);
		pthread_mutex_unlock(&h->wh->lock);
		return; /* retry_at is 0 since hook_send: the next step sends */
	}
	if (rc != CURLE_OK && (status < 300 || status > 599)) /* no answer, or a 2xx cut before its headers ended */
		snprintf(why, sizeof(why), "%.120s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
	else
		snprintf(why, sizeof(why), "HTTP status %ld%s", status,
			 status / 100 == 3 ? " (a redirect: not followed)" : "");
	curl_easy_getinfo(h->easy, CURLINFO_RETRY_AFTER, &retry_after);
	pthread_mutex_lock(&h->wh->lock);
	h->st.failures++;
	h->st.failures_in_row++;
	int64_t wait = backoff_ms(h, h->st.failures_in_row);
	if (retry_after > 0) {
		/* the receiver's Retry-After (seconds or a date), when longer */
		int64_t ra = retry_after > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (int64_t)retry_after * 1000;

		if (ra > wait)
			wait = ra;
	}
	h->retry_at = now + wait;
	h->st.retry_at_ms = wall_ms() + wait;
	snprintf(h->st.last_error, sizeof(h->st.last_error), "%s", why);
	pthread_mutex_unlock(&h->wh->lock);
	if (h->st.failures_in_row == 1 || now - h->last_log_ms >= LOG_EVERY_MS) {
		fprintf(stderr, "salvod: webhook %s: POST of %zu records failed (%s; %llu in a row); retrying in %lld ms\n",
			h->cfg->name, h->n, why, (unsigned long long)h->st.failures_in_row, (long long)wait);
		h->last_log_ms = now;
	}
}

/* ---- backlog figures ------------------------------------------------------ */

static bool wants_type(const void *ctx, const char *type, size_t len)
{
	return config_webhook_wants(ctx, type, len);
}

static void hook_backlog(struct hook *h, int64_t now)
{
	uint64_t bytes;
	int64_t age;

	if (now - h->backlog_at_ms < BACKLOG_EVERY_MS)
		return;
	h->backlog_at_ms = now;
	wh_backlog_update(&h->backlog, h->rd.dir_fd, &h->acked, wants_type, h->cfg, BACKLOG_READ_BUDGET,
			  h->acked_wanted);
	bytes = h->backlog.bytes;
	age = h->n && h->oldest_time_ms ? wall_ms() - h->oldest_time_ms : 0;
	pthread_mutex_lock(&h->wh->lock);
	h->st.backlog_bytes = bytes;
	h->st.backlog_records = h->backlog.exact ? (int64_t)h->backlog.records : -1;
	h->st.skipped_lines = h->rd.skipped;
	h->st.duplicates_skipped = h->dups;
	h->st.oldest_unsent_at_ms = age > 0 ? h->oldest_time_ms : 0;
	h->st.stalled = h->st.failures_in_row >= WEBHOOK_STALL_FAILURES || age >= WEBHOOK_STALL_AGE_MS;
	pthread_mutex_unlock(&h->wh->lock);
	if (h->st.stalled && now - h->last_log_ms >= LOG_EVERY_MS) {
		fprintf(stderr, "salvod: webhook %s: stalled: backlog %llu bytes, oldest unsent record %lld s old%s%s\n",
			h->cfg->name, (unsigned long long)bytes, (long long)(age / 1000),
			h->st.last_error[0] ? "; last error: " : "", h->st.last_error);
		h->last_log_ms = now;
	}
}

/* ---- the thread ------------------------------------------------------------ */

/* Advance one webhook; returns how long it may sleep (ms). */
static int64_t hook_step(struct hook *h, int64_t now)
{
	int64_t wait = IDLE_POLL_MS;

	hook_backlog(h, now);
	if (h->in_flight)
		return 1000;
	if (h->retry_at && now < h->retry_at)
		return h->retry_at - now;
	if (h->closed) {
		hook_send(h); /* a retry, or a first try that could not start */
		return h->in_flight ? 1000 : IDLE_POLL_MS;
	}
	hook_read(h);
	if (h->pos_dirty && now - h->pos_saved_ms >= 1000)
		pos_save(h);
	if (h->n == 0)
		return wait;
	if (h->n >= h->limit || now - h->first_read_ms >= (int64_t)h->cfg->max_delay_ms) {
		hook_send(h);
		return h->in_flight ? 1000 : wait;
	}
	wait = h->first_read_ms + (int64_t)h->cfg->max_delay_ms - now;
	return wait < IDLE_POLL_MS ? wait : IDLE_POLL_MS;
}

static bool stopping(struct webhooks *wh)
{
	bool s;

	pthread_mutex_lock(&wh->lock);
	s = wh->stop;
	pthread_mutex_unlock(&wh->lock);
	return s;
}

/* Take the answers that came (hook_done for each); true when one did. */
static bool take_answers(struct webhooks *wh)
{
	struct CURLMsg *m;
	bool any = false;
	int left;

	while ((m = curl_multi_info_read(wh->multi, &left))) {
		struct hook *h = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
		if (h) {
			hook_done(h, m->data.result);
			any = true;
		}
	}
	return any;
}

/* Stopping: the POSTs in flight get STOP_GRACE_MS to be answered (so a
 * reload or SIGTERM does not make them duplicates); no new one starts. */
static void drain(struct webhooks *wh)
{
	int64_t end = mono_ms() + STOP_GRACE_MS;

	for (;;) {
		bool busy = false;
		int running = 0;
		int64_t left = end - mono_ms();

		for (size_t i = 0; i < wh->n; i++)
			busy |= wh->hooks[i].in_flight;
		if (!busy || left <= 0)
			return;
		curl_multi_perform(wh->multi, &running);
		if (!take_answers(wh))
			curl_multi_poll(wh->multi, NULL, 0, (int)(left < 50 ? left : 50), NULL);
	}
}

static void *run(void *arg)
{
	struct webhooks *wh = arg;

	while (!stopping(wh)) {
		int64_t now = mono_ms(), wait = 1000;
		int running = 0;

		for (size_t i = 0; i < wh->n; i++) {
			int64_t w = hook_step(&wh->hooks[i], now);

			if (w < wait)
				wait = w;
		}
		curl_multi_perform(wh->multi, &running);
		if (take_answers(wh))
			wait = 0; /* the next batch may be ready */
		if (wait > 0)
			curl_multi_poll(wh->multi, NULL, 0, (int)wait, NULL);
	}
	drain(wh);
	return NULL;
}

static void hook_free(struct hook *h)
{
	if (h->easy) {
		if (h->in_flight)
			curl_multi_remove_handle(h->wh->multi, h->easy);
		curl_easy_cleanup(h->easy);
	}
	curl_slist_free_all(h->headers);
	curl_slist_free_all(h->req_headers);
	json_buf_free(&h->body);
	free(h->marks);
	wh_backlog_free(&h->backlog);
	free(h->seen);
	wh_reader_fini(&h->rd);
	if (h->pos_fd >= 0)
		close(h->pos_fd);
}

void webhooks_stop(struct webhooks *wh)
{
	if (!wh)
		return;
	if (wh->started) {
		pthread_mutex_lock(&wh->lock);
		wh->stop = true;
		pthread_mutex_unlock(&wh->lock);
		curl_multi_wakeup(wh->multi);
		pthread_join(wh->thread, NULL);
	}
	for (size_t i = 0; i < wh->n; i++)
		hook_free(&wh->hooks[i]);
	free(wh->hooks);
	if (wh->multi)
		curl_multi_cleanup(wh->multi);
	pthread_mutex_destroy(&wh->lock);
	free(wh);
}

int webhooks_start(struct webhooks **out, const struct config *cfg, const char *log_dir, const char *state_dir,
		   char *err, size_t errlen)
{
	struct webhooks *wh;
	int ret;

	*out = NULL;
	if (cfg->n_webhooks == 0)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "webhooks: libcurl failed to initialise");
		return -1;
	}
	if (mkdir(state_dir, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "webhooks: cannot create %s: %s", state_dir, strerror(errno));
		return -1;
	}
	if (!(wh = calloc(1, sizeof(*wh))) || !(wh->hooks = calloc(cfg->n_webhooks, sizeof(*wh->hooks)))) {
		free(wh);
		snprintf(err, errlen, "webhooks: out of memory");
		return -1;
	}
	pthread_mutex_init(&wh->lock, NULL);
	srandom((unsigned)(wall_ms() ^ getpid()));
	if (!(wh->multi = curl_multi_init())) {
		snprintf(err, errlen, "webhooks: out of memory");
		goto fail;
	}
	for (; wh->n < cfg->n_webhooks; wh->n++) {
		struct hook *h = &wh->hooks[wh->n];

		h->cfg = &cfg->webhooks[wh->n];
		h->wh = wh;
		h->pos_fd = -1;
		h->st.name = h->cfg->name;
		h->st.backlog_records = -1;
		h->st.url = h->cfg->url;
		if ((ret = wh_reader_init(&h->rd, log_dir, h->cfg->name)) < 0) {
			snprintf(err, errlen, "webhook %s: cannot open %s: %s", h->cfg->name, log_dir, strerror(-ret));
			wh->n++;
			goto fail;
		}
		h->limit = h->cfg->max_batch;
		if (!(h->seen = calloc(1, sizeof(*h->seen))) || !(h->marks = calloc(h->limit, sizeof(*h->marks)))) {
			snprintf(err, errlen, "webhooks: out of memory");
			wh->n++;
			goto fail;
		}
		if ((ret = hook_resume(h, state_dir)) < 0) {
			snprintf(err, errlen, "webhook %s: cannot keep its position in %s: %s", h->cfg->name, state_dir,
				 strerror(-ret));
			wh->n++;
			goto fail;
		}
		hook_prime(h);
		if (hook_curl_init(h, err, errlen) < 0) {
			wh->n++;
			goto fail;
		}
	}
	if ((ret = pthread_create(&wh->thread, NULL, run, wh)) != 0) {
		snprintf(err, errlen, "webhooks: cannot start the thread: %s", strerror(ret));
		goto fail;
	}
	wh->started = true;
	*out = wh;
	return 0;
fail:
	webhooks_stop(wh);
	return -1;
}

size_t webhooks_stats(struct webhooks *wh, struct webhook_stat *out, size_t cap)
{
	if (!wh)
		return 0;
	pthread_mutex_lock(&wh->lock);
	for (size_t i = 0; i < wh->n && i < cap; i++)
		out[i] = wh->hooks[i].st;
	pthread_mutex_unlock(&wh->lock);
	/* the age as of now (the figures are refreshed about once a second) */
	int64_t now = wall_ms();

	for (size_t i = 0; i < wh->n && i < cap; i++) {
		int64_t at = out[i].oldest_unsent_at_ms;

		out[i].oldest_unsent_ms = at && now > at ? now - at : 0;
	}
	return wh->n;
}
