/*
 * main.c - salvo-bench's command line: runs each target (salvod, the
 * loopback limit, Postfix, or a running MTA) R times on the same campaign,
 * prints a one-line summary per run, the medians with their spread and the
 * ratios between targets, and writes everything as JSON with --json FILE.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#ifndef SALVO_BUILD_DIR
#define SALVO_BUILD_DIR "build"
#endif
#ifndef SALVO_SRC_DIR
#define SALVO_SRC_DIR "."
#endif

#define MAX_TARGETS 4
#define MAX_RUNS 15

static struct bench_env *live_env;
static const struct bench_opts *live_opts;

static void on_signal(int sig)
{
	if (live_env)
		env_stop(live_env, live_opts);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void usage(FILE *out)
{
	fputs("usage: salvo-bench [options]   (root: the sinks listen on 127.0.0.2..:25)\n"
	      "  -n, --messages N       recipients, one per message (default 10000)\n"
	      "  --domains D            spread over d0.test..d<D-1>.test via MX lookups (default 100)\n"
	      "  --size BYTES           message size (default 4096)\n"
	      "  --sessions P           parallel SMTP sessions or HTTP clients (default 20)\n"
	      "  --per-conn M           messages per SMTP connection (default 100)\n"
	      "  --rate R               pace SMTP injection to R msg/s (latency at a given load)\n"
	      "  --http                 inject over HTTP /api/inject/v1 (salvod only)\n"
	      "  --batch B              recipients per HTTP request (default 100)\n"
	      "  --subst                per-recipient {{ }} substitutions (HTTP)\n"
	      "  --profile plain|realistic   the sinks' behaviour (default plain)\n"
	      "  --dkim rsa|ed25519     salvod signs every message (rsa = 2048 bits)\n"
	      "  --target LIST          comma list of salvod, loopback, postfix, external (default salvod)\n"
	      "  --external HOST:PORT   the running MTA for the external target\n"
	      "  --runs R               runs per target, interleaved (default 1)\n"
	      "  --sinks K              salvo-sinks on 127.0.0.2..(default 4)\n"
	      "  --dns-port PORT        dnsmasq's port (default 20053; postfix needs 53)\n"
	      "  --timeout SECONDS      give up waiting for delivery (default 900)\n"
	      "  --json FILE            write every run and the medians as JSON\n"
	      "  --build DIR, --src DIR where salvod/salvo-sink and bench/ are\n"
	      "  --workdir DIR, --keep  scratch directory (default a new /tmp/salvo-bench.*)\n"
	      "  --salvod-extra FILE    append FILE to salvod's generated config (e.g. an <acct-webhook>)\n",
	      out);
}

static const char *target_name(enum bench_target t)
{
	static const char *names[] = { "salvod", "loopback", "postfix", "external" };
	return names[t];
}

static int parse_targets(const char *list, enum bench_target *ts, unsigned *n)
{
	char *copy = strdup(list), *save = NULL;
	*n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int k = -1;
		for (int i = 0; i < MAX_TARGETS; i++)
			if (strcmp(t, target_name((enum bench_target)i)) == 0)
				k = i;
		if (k < 0 || *n == MAX_TARGETS) {
			fprintf(stderr, "salvo-bench: unknown target '%s'\n", t);
			free(copy);
			return -1;
		}
		ts[(*n)++] = (enum bench_target)k;
	}
	free(copy);
	return *n ? 0 : -1;
}

static json_t *result_json(const struct bench_result *r)
{
	return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:b}",
			 "target", r->target, "messages", r->n, "accepted", r->accepted, "delivered", r->delivered,
			 "duplicates", r->duplicates, "bounced", r->bounced, "deferrals", r->deferrals,
			 "inject_seconds", r->inject_s, "inject_rate", r->inject_rate, "e2e_seconds", r->e2e_s,
			 "e2e_rate", r->e2e_rate, "latency_p50_ms", r->lat_p50_ms, "latency_p99_ms", r->lat_p99_ms,
			 "latency_max_ms", r->lat_max_ms, "mta_cpu_seconds", r->mta_cpu_s,
			 "mta_cpu_ms_per_1000", r->mta_cpu_ms_per_1000, "machine_cpu_ms_per_1000",
			 r->machine_cpu_ms_per_1000, "mta_peak_rss_kib", (json_int_t)r->mta_peak_rss_kib, "mta_peak_anon_kib",
			 (json_int_t)r->mta_peak_anon_kib, "complete",
			 r->complete);
}

static void summary(const struct bench_result *r, int run)
{
	printf("%-8s run %d: %u/%u delivered (%u dup, %u bounced, %u deferrals); inject %.0f msg/s; "
	       "end to end %.0f msg/s in %.2f s; latency p50 %.1f p99 %.1f max %.1f ms; "
	       "MTA CPU %.0f ms/1000 msgs, machine %.0f ms/1000; peak RSS %ld KiB (anon %ld)%s\n",
	       r->target, run, r->delivered, r->n, r->duplicates, r->bounced, r->deferrals, r->inject_rate,
	       r->e2e_rate, r->e2e_s, r->lat_p50_ms, r->lat_p99_ms, r->lat_max_ms, r->mta_cpu_ms_per_1000,
	       r->machine_cpu_ms_per_1000, r->mta_peak_rss_kib, r->mta_peak_anon_kib, r->complete ? "" : "  INCOMPLETE");
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run of one target; 0 and r filled, or -1. */
static int run_once(const struct bench_opts *base, enum bench_target t, int run, struct bench_result *r)
{
	struct bench_opts o = *base;
	char wd[512];
	snprintf(wd, sizeof wd, "%s/%s-%d", base->workdir, target_name(t), run);
	o.workdir = wd;
	struct campaign c;
	struct bench_env e;
	struct inject_result in = { 0 };
	memset(r, 0, sizeof *r);
	r->target = target_name(t);
	if (campaign_init(&c, &o) < 0)
		return -1;
	live_opts = &o;
	live_env = &e;
	int rc = env_start(&e, &o, t);
	if (rc == 0) {
		int64_t cpu0 = proc_cpu_ticks(e.mta), busy0 = machine_busy_ticks();
		rc = o.http ? inject_http(&c, &o, &e, &in) : inject_smtp(&c, &o, &e, t, &in);
		if (rc == 0) {
			if (in.errors)
				fprintf(stderr, "salvo-bench: %u injection errors, %u refused\n", in.errors, in.refused);
			measure_run(&c, &o, &e, &in, cpu0, busy0, r);
		}
	}
	env_stop(&e, &o);
	live_env = NULL;
	campaign_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 10000, .domains = 100, .size = 4096, .sessions = 20, .per_conn = 100,
				.batch = 100, .profile = "plain", .nsinks = 4, .dns_port = 20053, .timeout_s = 900,
				.build_dir = SALVO_BUILD_DIR, .src_dir = SALVO_SRC_DIR };
	const char *targets = "salvod", *json_path = NULL;
	unsigned runs = 1;
	bool dns_port_set = false;
	static const struct option opts[] = {
		{ "messages", required_argument, NULL, 'n' }, { "domains", required_argument, NULL, 'D' },
		{ "size", required_argument, NULL, 's' }, { "sessions", required_argument, NULL, 'P' },
		{ "per-conn", required_argument, NULL, 'M' }, { "http", no_argument, NULL, 'H' },
		{ "batch", required_argument, NULL, 'B' }, { "subst", no_argument, NULL, 'S' },
		{ "profile", required_argument, NULL, 'p' }, { "dkim", required_argument, NULL, 'k' },
		{ "target", required_argument, NULL, 't' }, { "external", required_argument, NULL, 'x' },
		{ "runs", required_argument, NULL, 'r' }, { "sinks", required_argument, NULL, 'K' },
		{ "dns-port", required_argument, NULL, 'd' }, { "timeout", required_argument, NULL, 'T' },
		{ "json", required_argument, NULL, 'j' }, { "build", required_argument, NULL, 'b' },
		{ "src", required_argument, NULL, 'c' }, { "workdir", required_argument, NULL, 'w' },
		{ "keep", no_argument, NULL, 'e' }, { "salvod-extra", required_argument, NULL, 'E' }, { "rate", required_argument, NULL, 'R' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': o.n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'D': o.domains = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o.size = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'P': o.sessions = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'M': o.per_conn = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'H': o.http = true; break;
		case 'B': o.batch = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': o.subst = true; break;
		case 'p': o.profile = optarg; break;
		case 'k': o.dkim = optarg; break;
		case 'E': o.salvod_extra = optarg; break;
		case 't': targets = optarg; break;
		case 'x': o.external = optarg; break;
		case 'r': runs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'K': o.nsinks = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': o.dns_port = (unsigned)strtoul(optarg, NULL, 10); dns_port_set = true; break;
		case 'T': o.timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'j': json_path = optarg; break;
		case 'b': o.build_dir = optarg; break;
		case 'c': o.src_dir = optarg; break;
		case 'w': o.workdir = optarg; break;
		case 'e': o.keep = true; break;
		case 'R': o.rate = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	enum bench_target ts[MAX_TARGETS];
	unsigned nt;
	if (optind != argc || parse_targets(targets, ts, &nt) < 0 || !o.n || !o.domains || !o.sessions ||
	    !o.per_conn || !o.batch || o.rate < 0 || (o.rate > 0 && o.http) || !o.nsinks || o.nsinks > BENCH_MAX_SINKS || !runs || runs > MAX_RUNS ||
	    (strcmp(o.profile, "plain") && strcmp(o.profile, "realistic"))) {
		usage(stderr);
		return 2;
	}
	for (unsigned k = 0; k < nt; k++) {
		if (ts[k] == TARGET_EXTERNAL && !o.external) {
			fputs("salvo-bench: the external target needs --external HOST:PORT\n", stderr);
			return 2;
		}
		if (ts[k] == TARGET_POSTFIX && !dns_port_set)
			o.dns_port = 53;    /* Postfix's resolver has no port setting */
		if (o.http && ts[k] != TARGET_SALVOD) {
			fputs("salvo-bench: --http injects into salvod only\n", stderr);
			return 2;
		}
	}
	if (geteuid() != 0)
		fputs("salvo-bench: warning: not root; the sinks cannot listen on port 25\n", stderr);
	char tmpl[] = "/tmp/salvo-bench.XXXXXX";
	if (!o.workdir && !(o.workdir = mkdtemp(tmpl))) {
		perror("salvo-bench: mkdtemp");
		return 1;
	}
	/* Postfix's unprivileged processes must reach their queue inside it. */
	if ((mkdir(o.workdir, 0755) < 0 && errno != EEXIST) || chmod(o.workdir, 0755) < 0) {
		fprintf(stderr, "salvo-bench: cannot make %s: %s\n", o.workdir, strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	printf("salvo-bench: %u messages of %u bytes to %u domains, %s injection (%u %s), %s sinks%s%s\n", o.n,
	       o.size, o.domains, o.http ? "HTTP" : "SMTP", o.sessions, o.http ? "clients" : "sessions", o.profile,
	       o.dkim ? ", DKIM " : "", o.dkim ? o.dkim : "");
	struct bench_result res[MAX_TARGETS][MAX_RUNS];
	json_t *all = json_array();
	int failed = 0;
	for (unsigned run = 0; run < runs; run++)
		for (unsigned k = 0; k < nt; k++) {
			if (run_once(&o, ts[k], (int)run + 1, &res[k][run]) < 0) {
				fprintf(stderr, "salvo-bench: %s run %u could not run\n", target_name(ts[k]), run + 1);
				failed = 1;
			}
			summary(&res[k][run], (int)run + 1);
			failed |= !res[k][run].complete;
			json_array_append_new(all, result_json(&res[k][run]));
		}
	json_t *medians = json_object();
	double med_rate[MAX_TARGETS];
	for (unsigned k = 0; k < nt; k++) {
		double rate[MAX_RUNS], inj[MAX_RUNS], p99[MAX_RUNS], cpu[MAX_RUNS];
		for (unsigned run = 0; run < runs; run++) {
			rate[run] = res[k][run].e2e_rate;
			inj[run] = res[k][run].inject_rate;
			p99[run] = res[k][run].lat_p99_ms;
			cpu[run] = res[k][run].mta_cpu_ms_per_1000;
		}
		double lo = rate[0], hi = rate[0];
		for (unsigned run = 1; run < runs; run++) {
			lo = rate[run] < lo ? rate[run] : lo;
			hi = rate[run] > hi ? rate[run] : hi;
		}
		med_rate[k] = median(rate, runs);
		double mi = median(inj, runs), mp = median(p99, runs), mc = median(cpu, runs);
		printf("%-8s median of %u: end to end %.0f msg/s (%.0f-%.0f), inject %.0f msg/s, p99 %.1f ms, "
		       "MTA CPU %.0f ms/1000\n", target_name(ts[k]), runs, med_rate[k], lo, hi, mi, mp, mc);
		json_object_set_new(medians, target_name(ts[k]),
				    json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "e2e_rate", med_rate[k], "e2e_rate_min", lo,
					      "e2e_rate_max", hi, "inject_rate", mi, "latency_p99_ms", mp,
					      "mta_cpu_ms_per_1000", mc));
	}
	json_t *ratios = json_object();
	for (unsigned a = 0; a < nt; a++)
		for (unsigned b = 0; b < nt; b++)
			if (a != b && ts[a] == TARGET_SALVOD && med_rate[b] > 0) {
				char key[64];
				snprintf(key, sizeof key, "salvod/%s", target_name(ts[b]));
				printf("ratio %s: %.2f\n", key, med_rate[a] / med_rate[b]);
				json_object_set_new(ratios, key, json_real(med_rate[a] / med_rate[b]));
			}
	if (json_path) {
		json_t *doc = json_pack("{s:{s:i, s:i, s:i, s:s, s:i, s:f, s:s, s:s?, s:b}, s:o, s:o, s:o}", "workload",
					"messages", o.n, "size", o.size, "domains", o.domains, "injection",
					o.http ? "http" : "smtp", "sessions", o.sessions, "rate", o.rate, "profile", o.profile, "dkim",
					o.dkim, "subst", o.subst, "runs", all, "medians", medians, "ratios", ratios);
		if (!doc || json_dump_file(doc, json_path, JSON_INDENT(1)) < 0) {
			fprintf(stderr, "salvo-bench: cannot write %s\n", json_path);
			failed = 1;
		}
		json_decref(doc);
	} else {
		json_decref(all);
		json_decref(medians);
		json_decref(ratios);
	}
	if (!o.keep && o.workdir == tmpl) {
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "salvo-bench: could not remove %s\n", tmpl);
	}
	return failed;
}
