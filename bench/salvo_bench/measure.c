/*
 * measure.c - turns a run into numbers: waits until the sinks have every
 * accepted recipient (or the sinks refused it with a 5xx), reads the sinks'
 * event logs for each recipient's delivery time, and the MTA's CPU ticks
 * (its process tree: Postfix's master reaps its workers) and peak RSS.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* utime+stime (+ reaped children's) of pid and of its live children. */
int64_t proc_cpu_ticks(pid_t root)
{
	if (root <= 0)
		return 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[300], buf[1024];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');   /* the command name may hold spaces */
		long pid = atol(buf), ppid;
		long long ut, st, cut, cst;
		if (!p || sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld", &ppid, &ut,
				 &st, &cut, &cst) != 5)
			continue;
		if (pid == root)
			total += ut + st + cut + cst;
		else if (ppid == root)
			total += ut + st;
	}
	closedir(d);
	return total;
}

int64_t machine_busy_ticks(void)
{
	FILE *f = fopen("/proc/stat", "r");
	long long u, ni, sy, id, io, irq, sirq, steal;
	int ok = f && fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &u, &ni, &sy, &id, &io, &irq, &sirq,
			     &steal) == 8;
	if (f)
		fclose(f);
	return ok ? u + ni + sy + irq + sirq + steal : 0;
}

/* One "Name: N kB" line of /proc/PID/status (VmHWM, RssAnon), or -1. */
static long status_kib(pid_t pid, const char *name)
{
	char path[64], line[256];
	size_t nl = strlen(name);
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			kib = strtol(line + nl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

struct sink_counts { unsigned messages, deferred, rejected; };

static void sink_counts(const struct bench_env *e, struct sink_counts *sc)
{
	memset(sc, 0, sizeof *sc);
	for (unsigned j = 0; j < e->nsinks; j++) {
		json_t *s = json_load_file(e->stats[j], 0, NULL);
		if (!s)
			continue;
		sc->messages += (unsigned)json_integer_value(json_object_get(s, "messages"));
		sc->deferred += (unsigned)(json_integer_value(json_object_get(s, "rcpt_deferred")) +
					   json_integer_value(json_object_get(s, "data_deferred")));
		sc->rejected += (unsigned)(json_integer_value(json_object_get(s, "rcpt_rejected")) +
					   json_integer_value(json_object_get(s, "data_rejected")));
		json_decref(s);
	}
}

/* Every "msg" event: the first arrival of each campaign recipient, the duplicates. */
static void read_events(struct campaign *c, const struct bench_env *e, unsigned *dups, int64_t *last_ns)
{
	char *line = NULL;
	size_t cap = 0;
	for (unsigned j = 0; j < e->nsinks; j++) {
		FILE *f = fopen(e->events[j], "r");
		if (!f)
			continue;
		while (getline(&line, &cap, f) > 0) {
			if (!strstr(line, "\"ev\":\"msg\""))
				continue;
			json_t *ev = json_loads(line, 0, NULL);
			double t = json_real_value(json_object_get(ev, "time"));
			size_t k;
			json_t *r;
			json_array_foreach(json_object_get(ev, "rcpt_to"), k, r) {
				unsigned i;
				const char *a = json_string_value(r);
				if (!a || sscanf(a, "r%u@", &i) != 1 || i >= c->n)
					continue;
				int64_t ns = (int64_t)(t * 1e9);
				if (c->delivered_ns[i]) {
					(*dups)++;
					continue;
				}
				c->delivered_ns[i] = ns;
				if (ns > *last_ns)
					*last_ns = ns;
			}
			json_decref(ev);
		}
		fclose(f);
	}
	free(line);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void latencies(const struct campaign *c, struct bench_result *r)
{
	double *v = malloc(sizeof *v * (c->n ? c->n : 1));
	size_t n = 0;
	if (!v)
		return;
	for (unsigned i = 0; i < c->n; i++)
		if (c->accepted_ns[i] && c->delivered_ns[i]) {
			double ms = (double)(c->delivered_ns[i] - c->accepted_ns[i]) / 1e6;
			v[n++] = ms < 0 ? 0 : ms;
		}
	if (n) {
		qsort(v, n, sizeof *v, cmp_double);
		r->lat_p50_ms = v[(size_t)floor(0.50 * (double)(n - 1))];
		r->lat_p99_ms = v[(size_t)floor(0.99 * (double)(n - 1))];
		r->lat_max_ms = v[n - 1];
	}
	free(v);
}

int measure_run(struct campaign *c, const struct bench_opts *o, struct bench_env *e,
		const struct inject_result *in, int64_t cpu0, int64_t busy0, struct bench_result *r)
{
	struct sink_counts sc;
	unsigned last = 0;
	int64_t last_progress = now_ns(), deadline = in->start_ns + (int64_t)o->timeout_s * 1000000000;
	bool own = e->mta && !e->postfix;
	r->mta_peak_anon_kib = own ? status_kib(e->mta, "RssAnon") : -1;
	for (;;) {
		/* The kernel keeps no peak of anonymous memory: sample it. */
		long anon = own ? status_kib(e->mta, "RssAnon") : -1;
		if (anon > r->mta_peak_anon_kib)
			r->mta_peak_anon_kib = anon;
		sink_counts(e, &sc);
		/* A 5xx at the sink is a bounce for the MTA; none for the loopback injector. */
		if (sc.messages + sc.rejected >= in->accepted)
			break;
		if (sc.messages != last) {
			last = sc.messages;
			last_progress = now_ns();
		}
		if (now_ns() > deadline || now_ns() - last_progress > 60 * (int64_t)1000000000) {
			fprintf(stderr, "salvo-bench: gave up waiting: %u of %u accepted recipients at the sinks\n",
				sc.messages, in->accepted);
			break;
		}
		usleep(50000);
	}
	long hz = sysconf(_SC_CLK_TCK);
	int64_t cpu = proc_cpu_ticks(e->mta) - cpu0, busy = machine_busy_ticks() - busy0;
	r->mta_peak_rss_kib = own ? status_kib(e->mta, "VmHWM") : -1;
	env_stop_sinks(e);          /* flushes their event logs */
	sink_counts(e, &sc);
	int64_t last_ns = 0;
	read_events(c, e, &r->duplicates, &last_ns);
	r->n = c->n;
	r->accepted = in->accepted;
	for (unsigned i = 0; i < c->n; i++)
		r->delivered += c->delivered_ns[i] != 0;
	r->bounced = sc.rejected;
	r->deferrals = sc.deferred;
	r->sink_4xx = sc.deferred;
	r->sink_5xx = sc.rejected;
	r->inject_s = (double)(in->end_ns - in->start_ns) / 1e9;
	r->inject_rate = r->inject_s > 0 ? in->accepted / r->inject_s : 0;
	r->e2e_s = last_ns > in->start_ns ? (double)(last_ns - in->start_ns) / 1e9 : 0;
	r->e2e_rate = r->e2e_s > 0 ? r->delivered / r->e2e_s : 0;
	r->mta_cpu_s = e->mta ? (double)cpu / (double)hz : 0;
	r->mta_cpu_ms_per_1000 = e->mta && r->delivered ? r->mta_cpu_s * 1e6 / r->delivered : 0;
	r->machine_cpu_ms_per_1000 = r->delivered ? (double)busy / (double)hz * 1e6 / r->delivered : 0;
	latencies(c, r);
	r->complete = r->delivered + r->bounced >= in->accepted && in->accepted == c->n;
	return r->complete ? 0 : -1;
}
