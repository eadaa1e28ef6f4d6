/*
 * salvod.c - the daemon: configuration, spool and log, the writer thread,
 * recovery of the queue, the workers (recover, then listen), and orderly
 * shutdown on SIGTERM/SIGINT.
 *
 *   salvod [-c FILE]                 run (built-in defaults without -c)
 *   salvod --check-config [-c FILE]  validate: exit 0, or 2 with FILE:LINE: message
 *
 * Exit status: 0 after a clean shutdown, 1 when it cannot start (the reason
 * on stderr: io_uring unavailable, spool unusable, address in use...), 2 for
 * a bad command line or configuration, 75 (EX_TEMPFAIL) when the spool met
 * an unrecoverable write error (MDB_PANIC, EIO): salvod then refuses mail,
 * starts no delivery, says why and exits so that a supervisor restarts it
 * on what the disk holds.
 *
 * The main thread waits for signals and, once a second, starts pruning
 * the "sent" index (bounce-verp-retention) when something is due.
 */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/acct_log.h"
#include "core/acct_csv.h"
#include "core/config.h"
#include "engine/accept_store.h"
#include "engine/api.h"
#include "engine/delete.h"
#include "engine/dkim.h"
#include "engine/campaign.h"
#include "engine/engine.h"
#include "engine/auth.h"
#include "net/conn_limit.h"
#include "net/tls.h"
#include "net/http_server.h"
#include "engine/trace.h"
#include "engine/privdrop.h"
#include "engine/webhook.h"
#include "queue/outbox.h"
#include "queue/sent_prune.h"

#define EXIT_SPOOL_FAILED 75 /* EX_TEMPFAIL: restart me */

static void usage(FILE *f)
{
	fprintf(f, "usage: salvod [-c FILE] [--check-config [--show QUEUE[/VMTA]]] [--version]\n"
		   "  -c, --config FILE   configuration file (PowerMTA-style directives)\n"
		   "      --check-config  validate the configuration and exit (0 valid, 2 invalid;\n"
		   "                      every error is printed as FILE:LINE: message)\n"
		   "      --show Q[/V]    with --check-config: the settings queue Q gets (through\n"
		   "                      virtual MTA or pool V), one `directive value` per line\n"
		   "  -V, --version       print the version and exit\n");
}

/* Fail early and clearly when the kernel will not give us a ring. */
static int probe_io_uring(void)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(4, &ring, 0);

	if (ret == 0) {
		io_uring_queue_exit(&ring);
		return 0;
	}
	if (ret == -ENOSYS)
		fprintf(stderr, "salvod: io_uring is not available: this kernel does not support it (needs Linux 6.0 or newer)\n");
	else if (ret == -EPERM || ret == -EACCES)
		fprintf(stderr, "salvod: io_uring is not available: disabled by the kernel.io_uring_disabled sysctl or a seccomp policy (%s)\n",
			strerror(-ret));
	else
		fprintf(stderr, "salvod: io_uring is not available: %s\n", strerror(-ret));
	return ret;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Test-only fault hook: SALVO_ACCT_EXIT_AFTER_BATCHES=N makes the process
 * _exit(137) after the Nth spool batch, right after its commit and before
 * its accounting records reach the log: a kill -9 at the worst moment. */
static unsigned long exit_after_batches;

static void fault_exit_before_flush(void)
{
	if (exit_after_batches && --exit_after_batches == 0) {
		fprintf(stderr, "salvod: SALVO_ACCT_EXIT_AFTER_BATCHES: exiting between a commit and the log flush\n");
		_exit(137);
	}
}

static void flush_log(void *ctx)
{
	struct engine *eng = ctx;
	int ret;

	fault_exit_before_flush();
	ret = outbox_flush(eng->spool, eng->acct, NULL);

	if (ret < 0)
		fprintf(stderr, "salvod: accounting log write failed: %s\n", strerror(-ret));
}

/* Descriptors: the soft RLIMIT_NOFILE goes up to the hard limit, and a
 * warning says when the configuration's connection caps cannot fit under
 * it. What it could need is an estimate (the queues are as many as the
 * destinations, so their sum has no bound):
 *   64 for the process (spool, log, lock, stdio, HTTP's own) and 16 per
 *   worker (ring, listeners, DNS, wake-ups),
 *   + smtp-max-connections inbound + 1000 HTTP connections per listener
 *     (libmicrohttpd's cap, net/http_server.c),
 *   + max-smtp-out x virtual MTAs for every <domain> block other than `*`,
 *   + max-smtp-out of `*` x virtual MTAs x worker-threads: one queue per
 *     worker at its cap at once (more, and sockets run short: new sessions
 *     then wait and retry, counted in salvo_connect_resource_errors_total).
 * Returns the limit in force. */
static rlim_t nofile_raise(const struct config *cfg)
{
	struct rlimit rl;
	uint64_t vm = cfg->n_vmtas ? cfg->n_vmtas : 1, workers = cfg->worker_threads ? cfg->worker_threads : 1;
	uint64_t need = 64 + 16 * workers + cfg->smtp_max_connections + 1000 * cfg->n_http_listeners;

	for (size_t i = 1; i < cfg->n_domains; i++)
		need += (uint64_t)cfg->domains[i].max_smtp_out * vm;
	if (cfg->n_domains)
		need += (uint64_t)cfg->domains[0].max_smtp_out * vm * workers;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr, "salvod: cannot raise the open-file limit from %llu to %llu: %s\n",
				(unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
			rl.rlim_cur = was;
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		fprintf(stderr,
			"salvod: warning: open-file limit %llu is below the %llu the connection caps may need "
			"(smtp-max-connections %u, HTTP, max-smtp-out x %llu virtual MTAs per <domain> and per "
			"worker); sessions that find no descriptor wait and retry\n",
			(unsigned long long)rl.rlim_cur, (unsigned long long)need, cfg->smtp_max_connections,
			(unsigned long long)vm);
	return rl.rlim_cur;
}

/* Workers listen with SO_REUSEPORT, which would let this salvod silently
 * share a port with another process: probe each SMTP listener without it
 * first. A predecessor just killed with -9 holds its listeners a little
 * longer than its life (the kernel tears its io_uring rings down
 * asynchronously), so a taken port is retried for up to two seconds.
 * -1 (reported) when one stays taken. */
static int listeners_taken(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_smtp_listeners; i++) {
		const struct config_addr *a = &cfg->smtp_listeners[i];
		int err = 0;

		for (int tries = 0; tries < 40; tries++) {
			int one = 1, fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

			if (fd < 0)
				break;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			err = bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0 ? errno : 0;
			close(fd);
			if (err != EADDRINUSE)
				break;
			usleep(50000);
		}
		if (err) {
			fprintf(stderr, "salvod: cannot listen on %s: %s%s\n", a->text, strerror(err),
				err == EADDRINUSE ? " (another salvod or MTA?)" : "");
			return -1;
		}
	}
	return 0;
}

/* jemalloc (when linked): a background thread returns freed memory to the
 * system within seconds, so a burst (a 50 MB message, a thousand idle
 * sessions) does not stay resident in an idle daemon. Unused otherwise. */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0";

/* One salvod per spool: two would deliver the same queue twice. The lock
 * goes with the process (kill -9 included). */
static int lock_spool(const char *dir, int *fd_out)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/salvod.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "salvod: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "salvod: the spool %s is in use by another salvod\n", dir);
		close(fd);
		return -1;
	}
	*fd_out = fd;
	return 0;
}

/* Writer thread: the spool takes no more writes. The main thread shuts
 * down (workers and the API stop; every request still queued fails with
 * SPOOL_STOPPED) and exits with EXIT_SPOOL_FAILED. */
static void spool_failed(void *ctx, int err)
{
	(void)ctx;
	fprintf(stderr, "salvod: stopping: the spool cannot be written (%s); mail is refused and no delivery "
		"starts until a restart\n", spool_strerror(err));
	kill(getpid(), SIGTERM);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'k'},
		{"show", required_argument, NULL, 'S'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *show = NULL;
	bool check_only = false;
	struct config cfg;
	struct config_gen *boot = NULL;
	struct engine eng;
	struct acct_csv *acct_csv = NULL;
	struct conn_limit smtp_conns = {0};
	struct auth_service auth = {0};
	struct addr_window bounce_reports = {0};
	struct accept_store store = {0};
	struct accept_recovered recovered = {0};
	struct sent_pruner *pruner = NULL;
	int lock_fd = -1;
	char err[CONFIG_ERR_MAX];
	char path[4096];
	sigset_t sigs;
	unsigned started = 0, running = 0;
	uint64_t n_msgs = 0, n_rcpts = 0;
	int opt, ret, status = 1, sig;

	/* A SIGHUP before the main loop (during a long recovery) must not kill
	 * salvod (its default action): it waits there, and reloads then. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'k': check_only = true; break;
		case 'S': show = optarg; break;
		case 'V': printf("salvod %s\n", SALVO_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (show && !check_only) {
		fprintf(stderr, "salvod: --show goes with --check-config\n");
		return 2;
	}
	if (config_path) {
		struct config_report rep;
		int rc = config_load_report(&cfg, config_path, &rep);

		if (rep.warnings)
			fputs(rep.warnings, stderr);
		if (rc < 0) {
			if (rep.errors)
				fputs(rep.errors, stderr);
			if (rep.n_errors > 1)
				fprintf(stderr, "%s: %u errors\n", config_path, rep.n_errors);
			config_report_free(&rep);
			return 2;
		}
		config_report_free(&rep);
	} else if (config_defaults(&cfg) < 0) {
		fprintf(stderr, "salvod: out of memory\n");
		return 1;
	}
	if (check_only) {
		if (show) {
			ret = config_show(stdout, &cfg, show, err, sizeof(err));
			if (ret < 0)
				fprintf(stderr, "salvod: %s\n", err);
			config_free(&cfg);
			return ret < 0 ? 2 : 0;
		}
		printf("%s: configuration is valid\n", config_path ? config_path : "built-in defaults");
		config_free(&cfg);
		return 0;
	}
	/* `log-file PATH`: diagnostics go there from now on */
	if (cfg.log_file) {
		int fd = open(cfg.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
			fprintf(stderr, "salvod: log-file %s: %s\n", cfg.log_file, strerror(errno));
			config_free(&cfg);
			return 1;
		}
		close(fd);
	}
	if (probe_io_uring() < 0) {
		config_free(&cfg);
		return 1;
	}
	nofile_raise(&cfg);

	/* Threads inherit this mask; the main thread takes the signals with sigwait. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&eng, 0, sizeof(eng));
	/* Generation 1 borrows cfg, which stays salvod's (and in force for what
	 * is built once from it: listeners' limits, HTTP, TLS, accounting files);
	 * reloads (engine/reload.c) publish later generations. */
	config_current_init(&eng.conf);
	pthread_mutex_init(&eng.reload_mu, NULL);
	pthread_mutex_init(&eng.webhooks_mu, NULL);
	if (!(boot = config_gen_borrow(&cfg, 1, wall_now_ms()))) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_cfg;
	}
	config_gen_ref(boot);
	config_current_publish(&eng.conf, boot);
	eng.boot = boot;
	eng.config_path = config_path;
	eng.started_ms = wall_now_ms();
	if (campaigns_new(&eng.campaigns) < 0) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_cfg;
	}
	if ((ret = mkdir_p(cfg.spool_dir)) < 0) {
		fprintf(stderr, "salvod: cannot create spool-dir %s: %s\n", cfg.spool_dir, strerror(-ret));
		goto out_cfg;
	}
	if (listeners_taken(&cfg) < 0 || lock_spool(cfg.spool_dir, &lock_fd) < 0)
		goto out_cfg;
	if ((ret = spool_open(&eng.spool, cfg.spool_dir, 0)) != 0) {
		fprintf(stderr, "salvod: cannot open the spool in %s: %s\n", cfg.spool_dir, spool_strerror(ret));
		goto out_cfg;
	}
	snprintf(path, sizeof(path), "%s/log", cfg.spool_dir);
	if ((ret = acct_log_open(&eng.acct, path, 0, 0)) < 0) {
		fprintf(stderr, "salvod: cannot open the accounting log in %s: %s\n", path, strerror(-ret));
		goto out_spool;
	}
	if ((ret = trace_start(&eng.trace, path)) < 0) { /* smtp-trace.log beside it */
		fprintf(stderr, "salvod: cannot start SMTP tracing: %s\n", strerror(-ret));
		goto out_log;
	}
	/* <acct-file>: PowerMTA's CSV files, fed from the same events */
	if (cfg.n_acct_files) {
		if (acct_csv_open(&acct_csv, cfg.acct_files, cfg.n_acct_files, err, sizeof(err)) < 0) {
			fprintf(stderr, "salvod: %s\n", err);
			goto out_log;
		}
		acct_log_set_tap(eng.acct, &(struct acct_tap){acct_csv_write, acct_csv_flush, acct_csv});
	}
	/* Records committed but not known written when the last run ended
	 * (a crash between a commit and the flush): into the log first. */
	{
		uint64_t n = 0;

		if ((ret = outbox_flush(eng.spool, eng.acct, &n)) < 0)
			fprintf(stderr, "salvod: accounting log write failed: %s (retried after each commit)\n",
				strerror(-ret));
		else if ((ret = outbox_trim_now(eng.spool)) != 0)
			fprintf(stderr, "salvod: cannot trim the accounting outbox: %s\n", spool_strerror(ret));
		if (n)
			fprintf(stderr, "salvod: %llu accounting records from the outbox written to the log again "
				"(the last run stopped before they were known written)\n", (unsigned long long)n);
	}
	{
		char state[4096];

		snprintf(state, sizeof(state), "%s/webhooks", cfg.spool_dir);
		if (webhooks_start(&eng.webhooks, &cfg, path, state, err, sizeof(err)) < 0) {
			fprintf(stderr, "salvod: %s\n", err);
			goto out_log;
		}
	}
	if (getenv("SALVO_ACCT_EXIT_AFTER_BATCHES"))
		exit_after_batches = strtoul(getenv("SALVO_ACCT_EXIT_AFTER_BATCHES"), NULL, 10);
	if ((ret = spool_writer_start(&eng.writer, eng.spool, &eng, flush_log,
					    (unsigned)cfg.spool_commit_delay_ms * 1000)) < 0) {
		fprintf(stderr, "salvod: cannot start the spool writer: %s\n", strerror(-ret));
		goto out_log;
	}
	eng.writer.on_fatal = spool_failed; /* before anything is submitted */
	if (delete_state_new(&eng.deletes) < 0) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_writer;
	}
	if (!(pruner = calloc(1, sizeof(*pruner)))) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_writer;
	}
	sent_pruner_init(pruner, &eng.writer, (int64_t)cfg.bounce_verp_retention_ms);
	eng.sent_pruner = pruner;
	if (conn_limit_init(&smtp_conns, cfg.smtp_max_connections, cfg.smtp_max_connections_per_ip) < 0) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_writer;
	}
	eng.smtp_conns = &smtp_conns;
	if (auth_service_start(&auth, &cfg, intake_auth_done) < 0 ||
	    addr_window_init(&bounce_reports, (unsigned)(cfg.bounce_max_reports_per_ip.count > UINT32_MAX
							    ? UINT32_MAX : cfg.bounce_max_reports_per_ip.count),
			     cfg.bounce_max_reports_per_ip.per_ms) < 0) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_writer;
	}
	auth.live = &eng.conf; /* users as reloaded */
	eng.auth = &auth;
	eng.bounce_reports = &bounce_reports;
	if (cfg.tls_certificate && cfg.tls_private_key &&
	    (tls_server_ctx(cfg.tls_certificate, cfg.tls_private_key, &eng.tls_server, err, sizeof(err)) < 0 ||
	     ((cfg.tls_ciphers || cfg.tls_ciphersuites) &&
	      tls_server_ciphers(eng.tls_server, cfg.tls_ciphers, cfg.tls_ciphersuites, err, sizeof(err)) < 0))) {
		fprintf(stderr, "salvod: TLS: %s\n", err);
		goto out_writer;
	}
	if (tls_client_ctx(&eng.tls_client, err, sizeof(err)) < 0) {
		fprintf(stderr, "salvod: TLS: %s\n", err);
		goto out_writer;
	}
	if (cfg.n_smtps_listeners && !eng.tls_server) {
		fprintf(stderr, "salvod: smtps-listener needs tls-certificate and tls-private-key\n");
		goto out_writer;
	}
	/* before the store thread, which signs, starts */
	if (dkim_keys_load(&cfg, &boot->dkim, err, sizeof(err)) < 0) {
		fprintf(stderr, "salvod: DKIM: %s\n", err);
		goto out_writer;
	}
	if ((ret = accept_store_start(&store)) < 0) {
		fprintf(stderr, "salvod: cannot start the store thread: %s\n", strerror(-ret));
		goto out_writer;
	}
	eng.store = &store;
	/* Recover, then listen: the queue is read in one snapshot before any
	 * listener opens, so a message committed once they are open is queued
	 * by its own commit only, never a second time by recovery. */
	{
		size_t n = 0;

		/* deletes a stop interrupted: their in-flight recipients are
		 * cancelled before recovery would queue them again */
		if ((ret = delete_recover(&eng, &n)) != 0) {
			fprintf(stderr, "salvod: cannot finish the interrupted deletes: %s\n", spool_strerror(ret));
			goto out_writer;
		}
		if (n)
			fprintf(stderr, "salvod: %zu recipients cancelled by deletes made before the restart\n", n);
	}
	if ((ret = accept_store_recover(&eng, &recovered)) != 0) {
		fprintf(stderr, "salvod: spool recovery failed: %s\n", spool_strerror(ret));
		goto out_writer;
	}
	eng.n_workers = cfg.worker_threads ? cfg.worker_threads : 1;
	eng.workers = calloc(eng.n_workers, sizeof(*eng.workers));
	if (!eng.workers) {
		fprintf(stderr, "salvod: out of memory\n");
		goto out_writer;
	}
	for (; started < eng.n_workers; started++) {
		if (worker_init(&eng.workers[started], &eng, started, boot) < 0) {
			fprintf(stderr, "salvod: worker %u: %s\n", started, eng.workers[started].start_err);
			worker_free(&eng.workers[started]);
			goto out_workers;
		}
	}
	/* Pauses first: the shards take their mail in post order. */
	if ((ret = engine_restore_pauses(&eng)) != 0) {
		fprintf(stderr, "salvod: cannot read the paused queues: %s\n", spool_strerror(ret));
		goto out_workers;
	}
	if ((ret = engine_restore_campaigns(&eng)) != 0) {
		fprintf(stderr, "salvod: cannot read the campaigns: %s\n", spool_strerror(ret));
		goto out_workers;
	}
	/* Only now may mail come in: a message accepted by the first worker is
	 * routed to any shard, so every shard must exist first. */
	for (; running < eng.n_workers; running++) {
		if (worker_run(&eng.workers[running]) < 0) {
			fprintf(stderr, "salvod: worker %u: %s\n", running, eng.workers[running].start_err);
			goto out_workers;
		}
	}
	accept_store_route_recovered(&eng, &recovered);
	if (cfg.n_http_listeners) {
		struct http_server_opts ho = {
			.cfg = &cfg,
			.threads = 2,
			.policy = api_access,
		};

		if (http_server_start(&eng.http, &ho, api_handle, &eng, err, sizeof(err)) < 0) {
			fprintf(stderr, "salvod: %s\n", err);
			goto out_workers;
		}
	}
	if (privdrop_apply(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "salvod: %s\n", err);
		goto out_workers;
	}
	spool_count(eng.spool, &n_msgs, &n_rcpts);
	fprintf(stderr, "salvod %s: ready: %u workers, SMTP on %s, HTTP on %s, spool %s (%llu messages, %llu recipients queued)\n",
		SALVO_VERSION, eng.n_workers, cfg.smtp_listeners[0].text,
		cfg.n_http_listeners ? cfg.http_listeners[0].text : "(none)", cfg.spool_dir,
		(unsigned long long)n_msgs, (unsigned long long)n_rcpts);

	for (;;) {
		struct timespec tick = {1, 0};

		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig < 0 && errno != EAGAIN && errno != EINTR)
			sig = SIGTERM;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP) {
			struct reload_result r;

			engine_reload(&eng, &r); /* logs what it did */
			reload_result_free(&r);
		}
		sent_pruner_tick(pruner, wall_now_ms());
		http_server_reap(eng.http); /* HTTP listeners a reload removed, once idle */
	}
	status = spool_writer_failed(&eng.writer) ? EXIT_SPOOL_FAILED : 0;
	fprintf(stderr, "salvod: %s: shutting down%s\n", strsignal(sig),
		status ? " after a spool failure (exit status 75: restart)" : "");

out_workers:
	/* The API goes first: its handlers read the workers' snapshots. Its
	 * requests waiting on the writer are answered before it stops: the
	 * store thread stops first, so an injection stores no further batch and
	 * answers after the one being committed. */
	accept_store_stop(&store);
	for (int i = 0; i < 500 && __atomic_load_n(&eng.http_inflight, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	trace_end_streams(eng.trace); /* live traces end: no connection stays suspended */
	http_server_stop(eng.http);
	eng.http = NULL;
	for (unsigned i = 0; i < running; i++)
		worker_stop(&eng.workers[i]);
out_writer:
	/* After the workers: a check finishing now posts to a stopped
	 * worker's mailbox, which worker_free() empties. */
	auth_service_stop(&auth);
	/* Workers are gone; the writer drains what they handed it. */
	accept_store_stop(&store);
	spool_writer_stop(&eng.writer);
	/* its last batch's records are in the log: leave the outbox empty */
	if (!spool_writer_failed(&eng.writer) && (ret = outbox_trim_now(eng.spool)) != 0)
		fprintf(stderr, "salvod: cannot trim the accounting outbox: %s\n", spool_strerror(ret));
	accept_store_free_recovered(&recovered);
	free(pruner);
	eng.sent_pruner = NULL;
	for (unsigned i = 0; i < started; i++)
		worker_free(&eng.workers[i]);
	free(eng.workers);
	delete_state_free(eng.deletes); /* after the writer and the workers: nothing uses it */
	eng.deletes = NULL;
	conn_limit_fini(&smtp_conns);
	tls_ctx_free(eng.tls_server);
	tls_ctx_free(eng.tls_client);
	addr_window_fini(&bounce_reports);
out_log:
	trace_stop(eng.trace); /* every session is gone */
	webhooks_stop(eng.webhooks); /* after the writer: it may still be logging */
	config_gen_put(eng.webhooks_gen);
	acct_log_close(eng.acct);
	acct_csv_close(acct_csv);
out_spool:
	spool_close(eng.spool);
out_cfg:
	if (lock_fd >= 0)
		close(lock_fd);
	config_current_fini(&eng.conf);
	pthread_mutex_destroy(&eng.reload_mu);
	pthread_mutex_destroy(&eng.webhooks_mu);
	config_gen_put(boot); /* borrowed: cfg is freed below */
	config_free(&cfg);
	campaigns_free(eng.campaigns);
	return status;
}
