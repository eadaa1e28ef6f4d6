/*
 * bench.h - salvo-bench, the end-to-end load harness: shared types.
 *
 * Data flow of one run: campaign.c makes the messages -> env.c starts
 * dnsmasq, the sinks and the MTA under test -> inject_smtp.c / inject_http.c
 * push the campaign in and stamp each recipient's acceptance time ->
 * measure.c waits for the sinks, reads their event logs (delivery times),
 * the MTA's CPU and memory, and turns it all into one result -> main.c
 * prints JSON and a one-line summary per run and the medians.
 */
#ifndef SALVO_BENCH_H
#define SALVO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_SINKS 8

enum bench_target { TARGET_SALVOD, TARGET_LOOPBACK, TARGET_POSTFIX, TARGET_EXTERNAL };

struct bench_opts {
	unsigned n;              /* recipients (= messages: one recipient each) */
	unsigned domains;        /* d0.test .. d<D-1>.test */
	unsigned size;           /* message size in bytes, headers included */
	bool subst;              /* per-recipient {{ }} substitutions (HTTP) */
	bool http;               /* inject over HTTP instead of SMTP */
	unsigned sessions;       /* parallel SMTP sessions / HTTP clients */
	unsigned per_conn;       /* messages per SMTP connection */
	unsigned batch;          /* recipients per HTTP request */
	double rate;             /* SMTP injection paced to this many msg/s; 0 = flat out */
	const char *profile;     /* sink profile: "plain" or "realistic" */
	const char *dkim;        /* NULL, "rsa" or "ed25519" */
	unsigned nsinks;
	unsigned dns_port;
	unsigned timeout_s;      /* give up waiting for delivery after this */
	const char *external;    /* HOST:PORT of a running MTA (TARGET_EXTERNAL) */
	const char *build_dir;   /* where salvod and salvo-sink are */
	const char *src_dir;     /* the source tree (bench/peer_postfix.sh) */
	const char *workdir;     /* this run's scratch directory */
	bool keep;               /* keep the scratch directory */
	const char *salvod_extra; /* a file appended to salvod's config (--salvod-extra) */
};

/* The campaign: recipient i is r<i>@d<i % domains>.test. */
struct campaign {
	unsigned n, domains, size;
	int64_t *accepted_ns;    /* CLOCK_REALTIME of the acceptance, 0 = not accepted */
	int64_t *delivered_ns;   /* first "msg" event at a sink, 0 = never */
};

int campaign_init(struct campaign *c, const struct bench_opts *o);
void campaign_free(struct campaign *c);
/* The whole message for recipient i (RFC 5322, CRLF, no dot-stuffing needed:
 * no line starts with '.'); returns its length, the caller frees *out. */
size_t campaign_message(const struct campaign *c, unsigned i, bool templated, char **out);
void campaign_rcpt(unsigned i, unsigned domains, char *buf, size_t len);

/* The processes a run started; env_stop() ends them by PID. */
struct bench_env {
	pid_t dns, mta, sinks[BENCH_MAX_SINKS];
	unsigned nsinks;
	char sink_addr[BENCH_MAX_SINKS][32];
	char events[BENCH_MAX_SINKS][256];
	char stats[BENCH_MAX_SINKS][256];
	char inject_addr[64];    /* where the injector connects (SMTP) */
	char http_url[96];       /* salvod's HTTP API */
	char acct_log[256];
	bool postfix;
};

int env_start(struct bench_env *e, const struct bench_opts *o, enum bench_target t);
void env_stop(struct bench_env *e, const struct bench_opts *o);
void env_stop_sinks(struct bench_env *e);

struct inject_result {
	unsigned accepted, refused, errors;
	int64_t start_ns, end_ns;
};

/* SMTP: sessions over inject_addr, or per-sink routes for the loopback target. */
int inject_smtp(struct campaign *c, const struct bench_opts *o, const struct bench_env *e,
		enum bench_target t, struct inject_result *r);
int inject_http(struct campaign *c, const struct bench_opts *o, const struct bench_env *e,
		struct inject_result *r);

struct bench_result {
	const char *target;
	unsigned n, accepted, delivered, duplicates, bounced, deferrals;
	unsigned sink_4xx, sink_5xx;
	double inject_s, e2e_s, inject_rate, e2e_rate;
	double lat_p50_ms, lat_p99_ms, lat_max_ms;
	double mta_cpu_s, mta_cpu_ms_per_1000, machine_cpu_ms_per_1000;
	long mta_peak_rss_kib;   /* VmHWM: counts the spool's mapped file pages too */
	long mta_peak_anon_kib;  /* RssAnon, sampled every 50 ms while waiting */
	bool complete;
};

/* Wait for delivery, then fill r; 0 when every accepted recipient arrived or was bounced. */
int measure_run(struct campaign *c, const struct bench_opts *o, struct bench_env *e,
		const struct inject_result *in, int64_t cpu_ticks0, int64_t machine_busy0,
		struct bench_result *r);
int64_t proc_cpu_ticks(pid_t pid);
int64_t machine_busy_ticks(void);
int64_t now_ns(void);

#endif
