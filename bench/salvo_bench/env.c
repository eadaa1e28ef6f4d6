/*
 * env.c - the processes of one benchmark run: dnsmasq serving MX records for
 * d0.test.., salvo-sinks on 127.0.0.2.. port 25, and the MTA under test
 * (salvod with a generated config, or Postfix through bench/peer_postfix.sh).
 * Everything is started here and stopped here, by PID.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static pid_t spawn(char *const argv[], const char *errlog)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		if (fd >= 0)
			dup2(fd, 2);
		setpgid(0, 0);
		execvp(argv[0], argv);
		fprintf(stderr, "salvo-bench: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static void stop_pid(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		usleep(50000);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

/* Wait until something accepts TCP connections at ip:port (or the process died). */
static int wait_listening(const char *ip, unsigned port, pid_t pid, double seconds)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, ip, &sa.sin_addr);
	for (int i = 0; i < (int)(seconds * 20); i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(fd);
		if (ok)
			return 0;
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int start_dns(struct bench_env *e, const struct bench_opts *o)
{
	char path[512], err[512], conf_arg[600];
	snprintf(path, sizeof path, "%s/dnsmasq.conf", o->workdir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "port=%u\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nlocal=/test/\n"
		   "", o->dns_port);
	for (unsigned j = 0; j < o->nsinks; j++)
		fprintf(f, "host-record=mx%u.sink.test,127.0.0.%u\n", j, 2 + j);
	for (unsigned i = 0; i < o->domains; i++)
		fprintf(f, "mx-host=d%u.test,mx%u.sink.test,10\n", i, i % o->nsinks);
	if (fclose(f))
		return -1;
	snprintf(err, sizeof err, "%s/dnsmasq.err", o->workdir);
	snprintf(conf_arg, sizeof conf_arg, "--conf-file=%s", path);
	char *argv[] = { "dnsmasq", "--keep-in-foreground", conf_arg, NULL };
	e->dns = spawn(argv, err);
	if (e->dns < 0)
		return -1;
	usleep(200000);
	if (waitpid(e->dns, NULL, WNOHANG) == e->dns) {
		e->dns = 0;
		fprintf(stderr, "salvo-bench: dnsmasq did not start (port %u in use?); see %s\n", o->dns_port, err);
		return -1;
	}
	return 0;
}

static int start_sinks(struct bench_env *e, const struct bench_opts *o)
{
	char bin[512];
	snprintf(bin, sizeof bin, "%s/tools/salvo-sink/salvo-sink", o->build_dir);
	e->nsinks = o->nsinks;
	for (unsigned j = 0; j < o->nsinks; j++) {
		char listen[64], err[512];
		snprintf(e->sink_addr[j], sizeof e->sink_addr[j], "127.0.0.%u", 2 + j);
		snprintf(listen, sizeof listen, "%s:25", e->sink_addr[j]);
		snprintf(e->events[j], sizeof e->events[j], "%s/sink%u.events", o->workdir, j);
		snprintf(e->stats[j], sizeof e->stats[j], "%s/sink%u.stats", o->workdir, j);
		snprintf(err, sizeof err, "%s/sink%u.err", o->workdir, j);
		char *argv[16];
		int a = 0;
		argv[a++] = bin;
		argv[a++] = "-l";
		argv[a++] = listen;
		argv[a++] = "--events";
		argv[a++] = e->events[j];
		argv[a++] = "--stats";
		argv[a++] = e->stats[j];
		if (o->profile && strcmp(o->profile, "realistic") == 0) {
			argv[a++] = "--profile";
			argv[a++] = "realistic";
		}
		argv[a] = NULL;
		e->sinks[j] = spawn(argv, err);
		if (e->sinks[j] < 0 || wait_listening(e->sink_addr[j], 25, e->sinks[j], 5) < 0) {
			fprintf(stderr, "salvo-bench: salvo-sink on %s did not start; see %s\n", listen, err);
			return -1;
		}
	}
	return 0;
}

static int dkim_key(const struct bench_opts *o, char *path, size_t len)
{
	char cmd[1024];
	snprintf(path, len, "%s/dkim-%s.pem", o->workdir, o->dkim);
	if (strcmp(o->dkim, "rsa") == 0)
		snprintf(cmd, sizeof cmd, "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>/dev/null", path);
	else if (strcmp(o->dkim, "ed25519") == 0)
		snprintf(cmd, sizeof cmd, "openssl genpkey -algorithm ED25519 -out %s 2>/dev/null", path);
	else
		return -1;
	return system(cmd) == 0 ? 0 : -1;
}

static int start_salvod(struct bench_env *e, const struct bench_opts *o)
{
	char conf[512], text[8192], err[512], bin[512], key[512] = "", rollups[2048];
	size_t rl = (size_t)snprintf(rollups, sizeof rollups, "<mx-rollup-list>\n");
	bool realistic = o->profile && strcmp(o->profile, "realistic") == 0;
	if (o->dkim && dkim_key(o, key, sizeof key) < 0) {
		fprintf(stderr, "salvo-bench: cannot make a %s DKIM key with openssl\n", o->dkim);
		return -1;
	}
	/* As an operator would for a known MX farm: the domains behind one MX
	 * host share one queue, so its connection limit is per receiving host. */
	for (unsigned j = 0; j < o->nsinks && rl < sizeof rollups; j++)
		rl += (size_t)snprintf(rollups + rl, sizeof rollups - rl, "  mx mx%u.sink.test sink%u.rollup\n", j, j);
	if (rl < sizeof rollups)
		snprintf(rollups + rl, sizeof rollups - rl, "</mx-rollup-list>\n");
	snprintf(conf, sizeof conf, "%s/salvod.conf", o->workdir);
	/* retry-after 1s keeps a realistic profile's deferrals inside the run. */
	snprintf(text, sizeof text,
		 "# generated by salvo-bench\n"
		 "host-name        bench.salvo.test\n"
		 "spool-dir        %s/spool\n"
		 "smtp-listener    127.0.0.1:22525\n"
		 "http-listener    127.0.0.1:28025\n"
		 "dns-server       127.0.0.1:%u\n"
		 "%s%s%s"
		 "%s"
		 "<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n"
		 "<domain *>\n    retry-after %s\n    bounce-after 1h\n%s</domain>\n",
		 o->workdir, o->dns_port, key[0] ? "domain-key b1,src.bench.test," : "", key, key[0] ? "\n" : "", rollups,
		 realistic ? "1s" : "15m", key[0] ? "    dkim-sign yes\n" : "");
	if (o->salvod_extra) {
		size_t used = strlen(text);
		FILE *x = fopen(o->salvod_extra, "r");
		size_t got = x ? fread(text + used, 1, sizeof text - used - 1, x) : 0;

		if (!x || ferror(x) || !feof(x)) {
			fprintf(stderr, "salvo-bench: cannot read %s (or it is over %zu bytes)\n", o->salvod_extra,
				sizeof text - used - 1);
			if (x)
				fclose(x);
			return -1;
		}
		fclose(x);
		text[used + got] = 0;
	}
	if (write_file(conf, text) < 0)
		return -1;
	snprintf(bin, sizeof bin, "%s/engine/salvod", o->build_dir);
	snprintf(err, sizeof err, "%s/salvod.err", o->workdir);
	snprintf(e->acct_log, sizeof e->acct_log, "%s/spool/log/acct.jsonl", o->workdir);
	char *argv[] = { bin, "-c", conf, NULL };
	e->mta = spawn(argv, err);
	if (e->mta < 0 || wait_listening("127.0.0.1", 22525, e->mta, 10) < 0) {
		fprintf(stderr, "salvo-bench: salvod did not start; see %s\n", err);
		return -1;
	}
	snprintf(e->inject_addr, sizeof e->inject_addr, "127.0.0.1:22525");
	snprintf(e->http_url, sizeof e->http_url, "http://127.0.0.1:28025");
	return wait_listening("127.0.0.1", 28025, e->mta, 5);
}

/* bench/peer_postfix.sh start prints the master's PID on stdout. */
static int start_postfix(struct bench_env *e, const struct bench_opts *o)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/bench/peer_postfix.sh start %s/postfix 2>>%s/postfix.err", o->src_dir,
		 o->workdir, o->workdir);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	long pid = 0;
	if (fscanf(p, "%ld", &pid) != 1)
		pid = 0;
	if (pclose(p) != 0 || pid <= 0) {
		fprintf(stderr, "salvo-bench: bench/peer_postfix.sh start failed; see %s/postfix.err\n", o->workdir);
		return -1;
	}
	e->postfix = true;
	e->mta = (pid_t)pid;
	snprintf(e->inject_addr, sizeof e->inject_addr, "127.0.0.1:2526");
	return wait_listening("127.0.0.1", 2526, 0, 10);
}

int env_start(struct bench_env *e, const struct bench_opts *o, enum bench_target t)
{
	memset(e, 0, sizeof *e);
	if (mkdir(o->workdir, 0755) < 0 && errno != EEXIST)
		return -1;
	if (start_sinks(e, o) < 0)
		return -1;
	if (t == TARGET_LOOPBACK)
		return 0;
	if (t == TARGET_EXTERNAL) {
		snprintf(e->inject_addr, sizeof e->inject_addr, "%s", o->external);
		return start_dns(e, o);
	}
	if (start_dns(e, o) < 0)
		return -1;
	return t == TARGET_POSTFIX ? start_postfix(e, o) : start_salvod(e, o);
}

void env_stop_sinks(struct bench_env *e)
{
	for (unsigned j = 0; j < e->nsinks; j++)
		stop_pid(&e->sinks[j]);
}

void env_stop(struct bench_env *e, const struct bench_opts *o)
{
	if (e->postfix) {
		char cmd[1024];
		snprintf(cmd, sizeof cmd, "%s/bench/peer_postfix.sh stop %s/postfix 2>>%s/postfix.err", o->src_dir,
			 o->workdir, o->workdir);
		if (system(cmd) != 0)
			fprintf(stderr, "salvo-bench: bench/peer_postfix.sh stop failed\n");
		e->postfix = false;
		e->mta = 0;
	}
	stop_pid(&e->mta);
	env_stop_sinks(e);
	stop_pid(&e->dns);
}
