/*
 * test_config.c - the configuration parser (config_parse.c): built-in
 * defaults, a full valid file with every directive (comments, blank lines,
 * indentation, CRLF, case), inheritance from <domain *>, source and domain
 * lookups (longest prefix, IPv4-mapped IPv6, thousands of domains), and
 * every kind of error with its exact "FILE:LINE: message" text. Error
 * cases also check that a failed load leaves nothing behind (run under
 * valgrind to prove it frees what it built).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_addr.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/pcre_re.h"

#define SEC 1000ULL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* ---- helpers ------------------------------------------------------------ */

static void load_ok(struct config *cfg, const char *text)
{
	char err[CONFIG_ERR_MAX];

	if (config_load_string(cfg, "test.conf", text, err) != 0)
		fail_msg("unexpected error: %s", err);
	assert_string_equal(err, "");
}

static void assert_zeroed(const struct config *cfg)
{
	static const struct config zero;

	assert_memory_equal(cfg, &zero, sizeof(zero));
}

/* text fails with exactly want, and leaves cfg empty. */
static void expect_err(const char *text, const char *want)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	memset(&cfg, 0xa5, sizeof(cfg));
	if (config_load_string(&cfg, "test.conf", text, err) != -1)
		fail_msg("accepted: %s", text);
	if (strcmp(err, want) != 0)
		fail_msg("for input:\n%s\n got: %s\nwant: %s", text, err, want);
	assert_null(strchr(err, '\n'));
	assert_zeroed(&cfg);
	config_free(&cfg); /* harmless on a failed load */
}

/* "<domain x.example>\n" LINE "\n</domain>\n": errors are on line 2. */
static void expect_domain_err(const char *line, const char *want)
{
	char text[512];

	snprintf(text, sizeof(text), "<domain x.example>\n%s\n</domain>\n", line);
	expect_err(text, want);
}

static void expect_source_err(const char *line, const char *want)
{
	char text[512];

	snprintf(text, sizeof(text), "<source 10/8>\n%s\n</source>\n", line);
	expect_err(text, want);
}


/* Loads text; its warnings must hold each of want[] (NULL-ended). */
static void load_warns(struct config *cfg, const char *text, const char *const *want)
{
	struct config_report rep;

	if (config_load_string_report(cfg, "test.conf", text, &rep) != 0)
		fail_msg("unexpected errors:\n%s", rep.errors);
	for (; *want; want++)
		if (!rep.warnings || !strstr(rep.warnings, *want))
			fail_msg("no warning \"%s\" in:\n%s", *want, rep.warnings ? rep.warnings : "");
	config_report_free(&rep);
}

static const struct config_source *source_for(const struct config *cfg, const char *ip)
{
	struct sockaddr_storage ss = sa_of(ip);

	return config_source_for(cfg, (const struct sockaddr *)&ss);
}

static char *cidr_text(const struct config_source *s, char buf[64])
{
	assert_non_null(s);
	assert_int_equal(config_cidr_format(&s->net, buf, 64), 0);
	return buf;
}

static void assert_retry(const struct config_domain *d, size_t n, const uint64_t *want)
{
	assert_int_equal(d->n_retry_after, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(d->retry_after_ms[i], want[i]);
}

static char *tmp_file(const char *content, size_t len)
{
	char *path = strdup("/tmp/test_config.XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

/* ---- defaults ----------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct config cfg;
	char host[256] = "", buf[64];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(config_defaults(&cfg), 0);
	assert_null(cfg.path);
	if (gethostname(host, sizeof(host)) == 0 && host[0])
		assert_string_equal(cfg.host_name, host);
	assert_string_equal(cfg.spool_dir, "./salvo-spool");
	assert_int_equal(cfg.n_smtp_listeners, 1);
	assert_string_equal(cfg.smtp_listeners[0].text, "127.0.0.1:2525");
	assert_int_equal(cfg.n_http_listeners, 1);
	assert_string_equal(cfg.http_listeners[0].text, "127.0.0.1:8025");
	assert_false(cfg.has_dns_server);
	assert_int_equal(cfg.worker_threads, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
	assert_int_equal(cfg.max_message_size, 50 << 20);
	assert_int_equal(cfg.max_rcpt_per_session_message, 1000);
	assert_int_equal(cfg.smtp_command_timeout_ms, 5 * MIN);
	assert_int_equal(cfg.smtp_data_timeout_ms, 10 * MIN);
	assert_int_equal(cfg.spool_commit_delay_ms, 1);
	assert_int_equal(cfg.smtp_port, 25);
	assert_null(cfg.postmaster);
	assert_null(cfg.bounce_domain);
	assert_null(cfg.tls_certificate);
	assert_null(cfg.tls_private_key);

	/* loopback relays by default */
	assert_int_equal(cfg.n_sources, 2);
	assert_string_equal(cidr_text(source_for(&cfg, "127.0.0.1"), buf), "127.0.0.1/32");
	assert_true(source_for(&cfg, "127.0.0.1")->always_allow_relaying);
	assert_string_equal(cidr_text(source_for(&cfg, "::1"), buf), "::1/128");
	assert_true(source_for(&cfg, "::1")->always_allow_relaying);
	assert_non_null(source_for(&cfg, "::ffff:127.0.0.1"));
	assert_null(source_for(&cfg, "127.0.0.2"));
	assert_null(source_for(&cfg, "10.0.0.1"));
	assert_null(config_source_for(&cfg, NULL));

	/* the "*" domain */
	assert_int_equal(cfg.n_domains, 1);
	const struct config_domain *d = config_domain_for(&cfg, "example.com");
	assert_ptr_equal(d, &cfg.domains[0]);
	assert_ptr_equal(config_domain_for(&cfg, NULL), d);
	assert_string_equal(d->name, "*");
	assert_retry(d, 1, (uint64_t[]){15 * MIN});
	assert_int_equal(d->bounce_after_ms, 4 * HOUR);
	assert_int_equal(d->max_smtp_out, 20);
	assert_int_equal(d->max_msg_per_connection, 100);
	assert_int_equal(d->max_rcpt_per_message, 100);
	assert_false(d->has_route);
	assert_null(d->route_host);
	assert_int_equal(d->set_mask, 0);
	config_free(&cfg);
	assert_zeroed(&cfg);
	config_free(&cfg); /* twice is harmless */
}

/* An empty file (or only comments) is the defaults, with path set. */
static void test_empty_file(void **state)
{
	struct config cfg;

	load_ok(&cfg, "");
	assert_string_equal(cfg.path, "test.conf");
	assert_int_equal(cfg.n_sources, 2);
	assert_int_equal(cfg.n_domains, 1);
	assert_string_equal(cfg.smtp_listeners[0].text, "127.0.0.1:2525");
	config_free(&cfg);

	load_ok(&cfg, "# nothing\n\n   \t\n  # indented comment\n");
	assert_int_equal(cfg.n_sources, 2);
	config_free(&cfg);
}

/* ---- a full valid file -------------------------------------------------- */

static const char full_conf[] =
	"# Salvo test configuration\n"
	"\n"
	"host-name        mta.example.com\n"
	"spool-dir        /var/spool/salvo   # a trailing comment\n"
	"  smtp-listener  127.0.0.1:2525\n"
	"\tsmtp-listener  [::1]:2526\n"
	"http-listener    *:8080\n"
	"dns-server       127.0.0.1:5353\n"
	"worker-threads   4\n"
	"max-message-size 10M\n"
	"postmaster       postmaster@example.com\n"
	"bounce-domain    Bounces.Example.COM\n"
	"tls-certificate  /etc/salvo/cert.pem\n"
	"tls-private-key  /etc/salvo/key#1.pem\n"          /* '#' inside a word is not a comment */
	"\n"
	"<source 127.0.0.1>\n"
	"    always-allow-relaying yes\n"
	"</source>\n"
	"<source 10/8>   # comment after a tag\n"
	"    always-allow-relaying no\n"
	"</source>\n"
	"<source 10.1.0.0/16>\n"
	"    always-allow-relaying on\n"
	"</source>\n"
	"<source 0/0>\n"
	"    always-allow-relaying false\n"
	"</source>\n"
	"<source 2001:db8::/32>\n"
	"    always-allow-relaying yes\n"
	"</source>\n"
	"\n"
	"<DOMAIN Example.ORG>\n"                            /* before <domain *>: still inherits */
	"    Max-SMTP-Out  5\n"
	"    bounce-after  2d12h\n"
	"    route         [127.0.0.1]:2600\n"
	"</Domain>\n"
	"<domain *>\n"
	"    max-smtp-out  30\n"
	"    retry-after   10m,20m , 1h\n"
	"</domain>\n"
	"<domain slow.example>\n"
	"    retry-after   1m\n"
	"    retry-after   5m                # the later one wins\n"
	"    max-msg-per-connection 10\n"
	"    max-rcpt-per-message   50\n"
	"    route         Relay.Example:2525\n"
	"</domain>\n"
	"<domain v6.example>\n"
	"    route [::1]\n"
	"</domain>\n"
	"<domain lit.example>\n"
	"    route 192.0.2.1:26\n"
	"</domain>\n"
	"<domain bracket.example>\n"
	"    route [1.2.3.4]\n"
	"</domain>\n"
	"<domain host.example>\n"
	"    route smarthost.example\n"
	"</domain>\n";

static void test_full_top_level(void **state)
{
	struct config cfg;

	load_ok(&cfg, full_conf);
	assert_string_equal(cfg.path, "test.conf");
	assert_string_equal(cfg.host_name, "mta.example.com");
	assert_string_equal(cfg.spool_dir, "/var/spool/salvo");
	assert_int_equal(cfg.n_smtp_listeners, 2); /* replaced the default */
	assert_string_equal(cfg.smtp_listeners[0].text, "127.0.0.1:2525");
	assert_string_equal(cfg.smtp_listeners[1].text, "[::1]:2526");
	assert_int_equal(cfg.smtp_listeners[1].sa.ss_family, AF_INET6);
	assert_int_equal(cfg.n_http_listeners, 1);
	assert_string_equal(cfg.http_listeners[0].text, "0.0.0.0:8080");
	assert_true(cfg.has_dns_server);
	assert_string_equal(cfg.dns_server.text, "127.0.0.1:5353");
	assert_int_equal(cfg.worker_threads, 4);
	assert_int_equal(cfg.max_message_size, 10 << 20);
	assert_string_equal(cfg.postmaster, "postmaster@example.com");
	assert_string_equal(cfg.bounce_domain, "bounces.example.com");
	assert_string_equal(cfg.tls_certificate, "/etc/salvo/cert.pem");
	assert_string_equal(cfg.tls_private_key, "/etc/salvo/key#1.pem");
	/* not settable yet: still the defaults */
	assert_int_equal(cfg.max_rcpt_per_session_message, 1000);
	assert_int_equal(cfg.smtp_port, 25);
	config_free(&cfg);
}

static void test_full_sources(void **state)
{
	struct config cfg;
	char buf[64];

	load_ok(&cfg, full_conf);
	/* the file has <source> blocks: the built-in loopback ones are gone */
	assert_int_equal(cfg.n_sources, 5);
	assert_int_equal(cfg.sources[0].line, 16);
	assert_string_equal(cidr_text(&cfg.sources[1], buf), "10.0.0.0/8");
	assert_int_equal(cfg.sources[1].line, 19);

	/* longest prefix wins, whatever the order in the file */
	assert_string_equal(cidr_text(source_for(&cfg, "10.1.2.3"), buf), "10.1.0.0/16");
	assert_true(source_for(&cfg, "10.1.2.3")->always_allow_relaying);
	assert_string_equal(cidr_text(source_for(&cfg, "10.2.0.1"), buf), "10.0.0.0/8");
	assert_false(source_for(&cfg, "10.2.0.1")->always_allow_relaying);
	assert_string_equal(cidr_text(source_for(&cfg, "127.0.0.1"), buf), "127.0.0.1/32");
	assert_true(source_for(&cfg, "127.0.0.1")->always_allow_relaying);
	assert_string_equal(cidr_text(source_for(&cfg, "192.0.2.9"), buf), "0.0.0.0/0");
	assert_false(source_for(&cfg, "192.0.2.9")->always_allow_relaying);
	assert_string_equal(cidr_text(source_for(&cfg, "127.0.0.2"), buf), "0.0.0.0/0");
	/* IPv4-mapped IPv6 clients match the IPv4 rules */
	assert_string_equal(cidr_text(source_for(&cfg, "::ffff:127.0.0.1"), buf), "127.0.0.1/32");
	assert_string_equal(cidr_text(source_for(&cfg, "::ffff:10.1.9.9"), buf), "10.1.0.0/16");
	assert_string_equal(cidr_text(source_for(&cfg, "::ffff:8.8.8.8"), buf), "0.0.0.0/0");
	/* IPv6 */
	assert_string_equal(cidr_text(source_for(&cfg, "2001:db8::5"), buf), "2001:db8::/32");
	assert_true(source_for(&cfg, "2001:db8::5")->always_allow_relaying);
	assert_null(source_for(&cfg, "::1")); /* the built-in ::1 was discarded */
	assert_null(source_for(&cfg, "2001:db9::1"));
	config_free(&cfg);
}

/* bare-newline reject|normalize in <source>; reject when unset. */
static void test_source_bare_newline(void **state)
{
	struct config cfg;

	load_ok(&cfg, "<source 10/8>\n    bare-newline normalize\n</source>\n"
		      "<source 10.1/16>\n    bare-newline reject\n</source>\n"
		      "<source 10.2/16>\n    always-allow-relaying yes\n</source>\n");
	assert_true(source_for(&cfg, "10.9.0.1")->bare_newline_normalize);
	assert_false(source_for(&cfg, "10.1.0.1")->bare_newline_normalize);
	assert_false(source_for(&cfg, "10.2.0.1")->bare_newline_normalize);
	config_free(&cfg);
	expect_source_err("bare-newline strip",
			  "test.conf:2: invalid value \"strip\" for bare-newline (expected reject or normalize)");
	expect_source_err("bare-newline", "test.conf:2: missing value for bare-newline");
	expect_err("bare-newline normalize\n", "test.conf:1: \"bare-newline\" is only valid inside <source>");
}

/* PowerMTA's per-source SMTP intake limits (net/smtp_server.c applies them
 * through the peer policy): parsed, no "not applied" warning, bad values are
 * errors at their line. */
static void test_source_intake_limits(void **state)
{
	struct config cfg;
	struct config_report rep;
	const char *text = "<source 10/8>\n    max-rcpt-per-message 2\n    smtp-command-timeout 30s\n"
			   "    smtp-data-timeout 2m\n    remove-header X-Mailer, X-Originating-IP\n"
			   "    remove-header List-Unsubscribe\n</source>\n"
			   "<source 10.1/16>\n    always-allow-relaying yes\n</source>\n";
	(void)state;

	if (config_load_string_report(&cfg, "t.conf", text, &rep) != 0)
		fail_msg("%s", rep.errors);
	assert_null(strstr(rep.warnings ? rep.warnings : "", "max-rcpt-per-message"));
	assert_null(strstr(rep.warnings ? rep.warnings : "", "timeout"));
	assert_null(strstr(rep.warnings ? rep.warnings : "", "remove-header"));
	config_report_free(&rep);
	assert_int_equal(source_for(&cfg, "10.9.0.1")->max_rcpt_per_message, 2);
	assert_int_equal(source_for(&cfg, "10.1.0.1")->max_rcpt_per_message, 0);
	assert_int_equal(source_for(&cfg, "10.9.0.1")->command_timeout_ms, 30000);
	assert_int_equal(source_for(&cfg, "10.9.0.1")->data_timeout_ms, 120000);
	assert_int_equal(source_for(&cfg, "10.1.0.1")->command_timeout_ms, 0);
	assert_int_equal(source_for(&cfg, "10.1.0.1")->data_timeout_ms, 0);
	assert_int_equal(source_for(&cfg, "10.9.0.1")->n_remove_headers, 3);
	assert_string_equal(source_for(&cfg, "10.9.0.1")->remove_headers[0], "X-Mailer");
	assert_string_equal(source_for(&cfg, "10.9.0.1")->remove_headers[1], "X-Originating-IP");
	assert_string_equal(source_for(&cfg, "10.9.0.1")->remove_headers[2], "List-Unsubscribe");
	assert_true(source_for(&cfg, "10.9.0.1")->header_edits);
	assert_int_equal(source_for(&cfg, "10.1.0.1")->n_remove_headers, 0);
	config_free(&cfg);
	expect_source_err("max-rcpt-per-message 0",
			  "test.conf:2: invalid count (1-1000000) \"0\" for max-rcpt-per-message");
	expect_source_err("max-rcpt-per-message many",
			  "test.conf:2: invalid count (1-1000000) \"many\" for max-rcpt-per-message");
	expect_source_err("max-rcpt-per-message", "test.conf:2: missing value for max-rcpt-per-message");
	expect_source_err("smtp-command-timeout soon",
			  "test.conf:2: invalid duration (at most 1d) \"soon\" for smtp-command-timeout");
	expect_source_err("smtp-command-timeout 0s",
			  "test.conf:2: invalid duration (at most 1d) \"0s\" for smtp-command-timeout");
	expect_source_err("smtp-data-timeout 2d",
			  "test.conf:2: invalid duration (at most 1d) \"2d\" for smtp-data-timeout");
	expect_source_err("smtp-data-timeout", "test.conf:2: missing value for smtp-data-timeout");
	expect_source_err("remove-header X-Mailer:",
			  "test.conf:2: invalid header name list (A,B) \"X-Mailer:\" for remove-header");
	expect_source_err("remove-header X-A, bad name",
			  "test.conf:2: invalid header name list (A,B) \"bad name\" for remove-header");
	expect_source_err("remove-header ,", "test.conf:2: invalid header name list (A,B) \",\" for remove-header");
	expect_source_err("remove-header", "test.conf:2: missing value for remove-header");
}

static void test_full_domains(void **state)
{
	struct config cfg;
	const struct config_domain *star, *d;

	load_ok(&cfg, full_conf);
	assert_int_equal(cfg.n_domains, 7);
	star = &cfg.domains[0];
	assert_string_equal(star->name, "*");
	assert_int_equal(star->line, 37);
	assert_int_equal(star->set_mask, CONFIG_DOM_MAX_SMTP_OUT | CONFIG_DOM_RETRY_AFTER);
	assert_retry(star, 3, (uint64_t[]){10 * MIN, 20 * MIN, HOUR});
	assert_int_equal(star->max_smtp_out, 30);
	assert_int_equal(star->bounce_after_ms, 4 * HOUR);      /* built-in */
	assert_int_equal(star->max_msg_per_connection, 100);    /* built-in */
	assert_int_equal(star->max_rcpt_per_message, 100);      /* built-in */
	assert_ptr_equal(config_domain_for(&cfg, "unknown.example"), star);
	assert_ptr_equal(config_domain_for(&cfg, "example.org.evil"), star);
	assert_ptr_equal(config_domain_for(&cfg, "org"), star);

	/* domains[1..] are sorted by name */
	for (size_t i = 2; i < cfg.n_domains; i++)
		assert_true(strcmp(cfg.domains[i - 1].name, cfg.domains[i].name) < 0);

	d = config_domain_for(&cfg, "example.org");
	assert_ptr_equal(config_domain_for(&cfg, "EXAMPLE.Org"), d); /* any case */
	assert_string_equal(d->name, "example.org");
	assert_int_equal(d->line, 32);
	assert_int_equal(d->set_mask, CONFIG_DOM_MAX_SMTP_OUT | CONFIG_DOM_BOUNCE_AFTER | CONFIG_DOM_ROUTE);
	assert_int_equal(d->max_smtp_out, 5);
	assert_int_equal(d->bounce_after_ms, 2 * DAY + 12 * HOUR);
	assert_retry(d, 3, (uint64_t[]){10 * MIN, 20 * MIN, HOUR}); /* from <domain *> */
	assert_true(d->retry_after_ms != star->retry_after_ms);     /* its own copy */
	assert_int_equal(d->max_msg_per_connection, 100);
	assert_int_equal(d->max_rcpt_per_message, 100);
	assert_true(d->has_route);
	assert_null(d->route_host);
	assert_string_equal(d->route.text, "127.0.0.1:2600");
	assert_int_equal(d->route_port, 2600);
	assert_int_equal(d->route.salen, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&d->route.sa)->sin_port), 2600);

	d = config_domain_for(&cfg, "slow.example");
	assert_string_equal(d->name, "slow.example");
	assert_retry(d, 1, (uint64_t[]){5 * MIN});
	assert_int_equal(d->max_smtp_out, 30);                  /* from <domain *> */
	assert_int_equal(d->bounce_after_ms, 4 * HOUR);         /* built-in, via "*" */
	assert_int_equal(d->max_msg_per_connection, 10);
	assert_int_equal(d->max_rcpt_per_message, 50);
	assert_true(d->has_route);
	assert_string_equal(d->route_host, "relay.example");
	assert_int_equal(d->route_port, 2525);
	assert_string_equal(d->route.text, "relay.example:2525");
	assert_int_equal(d->route.salen, 0);

	d = config_domain_for(&cfg, "v6.example");
	assert_true(d->has_route);
	assert_null(d->route_host);
	assert_string_equal(d->route.text, "[::1]:25");
	assert_int_equal(d->route_port, 25);
	assert_int_equal(d->route.sa.ss_family, AF_INET6);
	assert_int_equal(d->route.salen, sizeof(struct sockaddr_in6));

	d = config_domain_for(&cfg, "lit.example");
	assert_string_equal(d->route.text, "192.0.2.1:26");
	assert_int_equal(d->route_port, 26);
	assert_null(d->route_host);

	d = config_domain_for(&cfg, "bracket.example");
	assert_string_equal(d->route.text, "1.2.3.4:25");
	assert_int_equal(d->route_port, 25);

	d = config_domain_for(&cfg, "host.example");
	assert_string_equal(d->route_host, "smarthost.example");
	assert_int_equal(d->route_port, 25);
	assert_int_equal(d->max_smtp_out, 30);
	config_free(&cfg);
}

/* ---- smaller valid cases ------------------------------------------------ */

static void test_sources_kept_without_source_blocks(void **state)
{
	struct config cfg;

	/* no <source> in the file: the loopback defaults stay */
	load_ok(&cfg, "host-name a.example\n<domain *>\n max-smtp-out 3\n</domain>\n");
	assert_int_equal(cfg.n_sources, 2);
	assert_true(source_for(&cfg, "127.0.0.1")->always_allow_relaying);
	assert_true(source_for(&cfg, "::1")->always_allow_relaying);
	config_free(&cfg);

	/* one <source> discards both */
	load_ok(&cfg, "<source 192.0.2.0/24>\n</source>\n");
	assert_int_equal(cfg.n_sources, 1);
	assert_null(source_for(&cfg, "127.0.0.1"));
	assert_null(source_for(&cfg, "::1"));
	assert_false(source_for(&cfg, "192.0.2.1")->always_allow_relaying); /* default: no */
	config_free(&cfg);
}

static void test_listeners(void **state)
{
	struct config cfg;

	/* smtp-listener replaces only the SMTP default */
	load_ok(&cfg, "smtp-listener 0.0.0.0:25\n");
	assert_int_equal(cfg.n_smtp_listeners, 1);
	assert_string_equal(cfg.smtp_listeners[0].text, "0.0.0.0:25");
	assert_int_equal(cfg.n_http_listeners, 1);
	assert_string_equal(cfg.http_listeners[0].text, "127.0.0.1:8025");
	config_free(&cfg);

	load_ok(&cfg, "http-listener [::]:80\nhttp-listener 127.0.0.1:8025\nsmtp-listener *:2525\n");
	assert_int_equal(cfg.n_http_listeners, 2);
	assert_string_equal(cfg.http_listeners[0].text, "[::]:80");
	assert_string_equal(cfg.http_listeners[1].text, "127.0.0.1:8025");
	assert_string_equal(cfg.smtp_listeners[0].text, "0.0.0.0:2525");
	config_free(&cfg);

	/* dns-server's default port is 53 */
	load_ok(&cfg, "dns-server 10.0.0.53\n");
	assert_string_equal(cfg.dns_server.text, "10.0.0.53:53");
	config_free(&cfg);
	load_ok(&cfg, "dns-server ::1\n");
	assert_string_equal(cfg.dns_server.text, "[::1]:53");
	config_free(&cfg);
}

/* A repeated directive: the later one wins, for top level and blocks. */
static void test_later_wins(void **state)
{
	struct config cfg;
	const struct config_domain *d;

	load_ok(&cfg,
		"host-name one.example\nhost-name two.example\n"
		"spool-dir /a\nspool-dir /b\n"
		"postmaster a@x\npostmaster b@x\n"
		"bounce-domain b1.example\nbounce-domain b2.example\n"
		"tls-certificate /c1\ntls-certificate /c2\n"
		"tls-private-key /k1\ntls-private-key /k2\n"
		"dns-server 10.0.0.1\ndns-server 10.0.0.2:54\n"
		"worker-threads 2\nworker-threads 256\n"
		"max-message-size 1k\nmax-message-size 1\n"
		"<source 10/8>\n always-allow-relaying yes\n always-allow-relaying no\n</source>\n"
		"<domain r.example>\n"
		" route [::1]\n route r1.example:26\n route r2.example\n route 10.0.0.1\n"
		" bounce-after 1h\n bounce-after 30s\n"
		" max-smtp-out 1\n max-smtp-out 2\n"
		" retry-after 1m,2m\n retry-after 3m\n"
		"</domain>\n"
		"<domain h.example>\n route 10.0.0.1\n route h.example:2626\n</domain>\n");
	assert_string_equal(cfg.host_name, "two.example");
	assert_string_equal(cfg.spool_dir, "/b");
	assert_string_equal(cfg.postmaster, "b@x");
	assert_string_equal(cfg.bounce_domain, "b2.example");
	assert_string_equal(cfg.tls_certificate, "/c2");
	assert_string_equal(cfg.tls_private_key, "/k2");
	assert_string_equal(cfg.dns_server.text, "10.0.0.2:54");
	assert_int_equal(cfg.worker_threads, 256);
	assert_int_equal(cfg.max_message_size, 1);
	assert_false(cfg.sources[0].always_allow_relaying);
	d = config_domain_for(&cfg, "r.example");
	assert_null(d->route_host);
	assert_string_equal(d->route.text, "10.0.0.1:25");
	assert_int_equal(d->bounce_after_ms, 30 * SEC);
	assert_int_equal(d->max_smtp_out, 2);
	assert_retry(d, 1, (uint64_t[]){3 * MIN});
	d = config_domain_for(&cfg, "h.example");
	assert_string_equal(d->route_host, "h.example");
	assert_int_equal(d->route_port, 2626);
	assert_int_equal(d->route.salen, 0);
	config_free(&cfg);
}

/* <domain *> settings (route included) reach every block that does not
 * set them; each block owns its copies. */
static void test_star_route_inherited(void **state)
{
	struct config cfg;
	const struct config_domain *a, *b, *star;

	load_ok(&cfg,
		"<domain a.example>\n max-msg-per-connection 7\n</domain>\n"
		"<domain b.example>\n route [192.0.2.7]:2525\n</domain>\n"
		"<domain *>\n route SmartHost.example:587\n bounce-after 1d\n"
		" max-msg-per-connection 9\n max-rcpt-per-message 9\n</domain>\n");
	star = config_domain_for(&cfg, "z.example");
	assert_string_equal(star->route_host, "smarthost.example");
	a = config_domain_for(&cfg, "a.example");
	assert_string_equal(a->route_host, "smarthost.example");
	assert_true(a->route_host != star->route_host);
	assert_int_equal(a->route_port, 587);
	assert_true(a->has_route);
	assert_string_equal(a->route.text, "smarthost.example:587");
	assert_int_equal(a->bounce_after_ms, DAY);
	assert_int_equal(a->max_msg_per_connection, 7);
	assert_int_equal(a->max_rcpt_per_message, 9);
	assert_int_equal(a->set_mask, CONFIG_DOM_MAX_MSG_PER_CONN);
	b = config_domain_for(&cfg, "b.example");
	assert_null(b->route_host);
	assert_string_equal(b->route.text, "192.0.2.7:2525");
	assert_int_equal(b->max_msg_per_connection, 9);
	config_free(&cfg);
}

static void test_syntax_details(void **state)
{
	struct config cfg;

	/* CRLF line ends, tabs, case-insensitive names, no final newline */
	load_ok(&cfg, "Host-Name\tcrlf.example\r\n<Domain c.example >\r\n\tMAX-SMTP-OUT 3\r\n</DOMAIN >\r\n"
		      "spool-dir /x # y");
	assert_string_equal(cfg.host_name, "crlf.example");
	assert_string_equal(cfg.spool_dir, "/x");
	assert_int_equal(config_domain_for(&cfg, "c.example")->max_smtp_out, 3);
	config_free(&cfg);

	/* '#' starts a comment only at the start or after whitespace */
	load_ok(&cfg, "#host-name a.example\nspool-dir /a#b\t#c\n\t#x\n");
	assert_string_equal(cfg.spool_dir, "/a#b");
	config_free(&cfg);

	/* values keep inner spaces (paths) */
	load_ok(&cfg, "spool-dir   /var/spool/my salvo   \n");
	assert_string_equal(cfg.spool_dir, "/var/spool/my salvo");
	config_free(&cfg);

	/* durations and sizes in their forms */
	load_ok(&cfg, "max-message-size 512KB\n<domain d.example>\n bounce-after 90\n"
		      " retry-after 30s,1m30s,4d12h,500ms\n</domain>\n");
	assert_int_equal(cfg.max_message_size, 512 << 10);
	const struct config_domain *d = config_domain_for(&cfg, "d.example");
	assert_int_equal(d->bounce_after_ms, 90 * SEC);
	assert_retry(d, 4, (uint64_t[]){30 * SEC, 90 * SEC, 4 * DAY + 12 * HOUR, 500});
	config_free(&cfg);

	/* bounce-after 0 is allowed (bounce at the first deferral) */
	load_ok(&cfg, "<domain *>\n bounce-after 0s\n</domain>\n");
	assert_int_equal(cfg.domains[0].bounce_after_ms, 0);
	config_free(&cfg);
}

/* Limits for strangers (sessions that may not relay) and per-source caps. */
static void test_intake_limits(void **state)
{
	struct config cfg;
	const struct config_source *src;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	(void)state;
	load_ok(&cfg, "");
	assert_int_equal(cfg.bounce_max_message_size, 1 << 20);
	assert_int_equal(cfg.bounce_max_reports_per_ip.count, 1000);
	assert_int_equal(cfg.bounce_max_reports_per_ip.per_ms, HOUR);
	assert_int_equal(cfg.smtp_max_session_time_ms, 10 * MIN);
	config_free(&cfg);
	load_ok(&cfg, "max-message-size 20M\nbounce-max-message-size 64K\nbounce-max-reports-per-ip 10/m\n"
		      "smtp-max-session-time 90s\n"
		      "<source 10.0.0.0/8>\n always-allow-relaying yes\n smtp-max-connections-per-ip 300\n</source>\n"
		      "<source 192.0.2.0/24>\n max-message-size unlimited\n</source>\n"
		      "<source 0/0>\n</source>\n");
	assert_int_equal(cfg.bounce_max_message_size, 64 << 10);
	assert_int_equal(cfg.bounce_max_reports_per_ip.count, 10);
	assert_int_equal(cfg.smtp_max_session_time_ms, 90 * SEC);
	sa.sin_addr.s_addr = htonl(0x0a000001);
	src = config_source_for(&cfg, (struct sockaddr *)&sa);
	assert_true(config_source_trusted(src));
	assert_int_equal(src->max_connections_per_ip, 300);
	assert_int_equal(config_source_max_message_size(&cfg, src), 20 << 20);
	sa.sin_addr.s_addr = htonl(0xc0000201);
	src = config_source_for(&cfg, (struct sockaddr *)&sa);
	assert_false(config_source_trusted(src));
	assert_true(config_source_max_message_size(&cfg, src) == UINT64_MAX);
	sa.sin_addr.s_addr = htonl(0xcb007101);
	src = config_source_for(&cfg, (struct sockaddr *)&sa);
	assert_false(config_source_trusted(src));
	assert_int_equal(config_source_max_message_size(&cfg, src), 64 << 10);
	assert_int_equal(config_source_max_message_size(&cfg, NULL), 64 << 10);
	config_free(&cfg);
	expect_err("bounce-max-message-size 0\n", "test.conf:1: invalid size \"0\" for bounce-max-message-size");
	expect_err("bounce-max-reports-per-ip 10\n",
		   "test.conf:1: invalid rate (e.g. 1000/h) \"10\" for bounce-max-reports-per-ip");
	expect_err("smtp-max-session-time soon\n", "test.conf:1: invalid duration \"soon\" for smtp-max-session-time");
	expect_err("<source 0/0>\n max-message-size lots\n</source>\n",
		   "test.conf:2: invalid size, 0 or \"unlimited\" \"lots\" for max-message-size");
	expect_err("<source 0/0>\n smtp-max-connections-per-ip 0\n</source>\n",
		   "test.conf:2: invalid count (1-1000000) \"0\" for smtp-max-connections-per-ip");
}

/* Thousands of domain blocks: every one found, pointers stable. */
static void test_many_domains(void **state)
{
	enum { N = 5000 };
	struct config cfg;
	size_t cap = (size_t)N * 64 + 64, len = 0;
	char *text = malloc(cap), name[64];

	assert_non_null(text);
	/* in descending order, so the sort has work to do */
	for (int i = N - 1; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len, "<domain d%d.example>\n max-smtp-out %d\n</domain>\n",
					i, i + 1);
	load_ok(&cfg, text);
	free(text);
	assert_int_equal(cfg.n_domains, N + 1);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "D%d.Example", i);
		const struct config_domain *d = config_domain_for(&cfg, name);
		assert_int_equal(d->max_smtp_out, i + 1);
		assert_int_equal(d->line, (N - 1 - i) * 3 + 1);
		assert_ptr_equal(config_domain_for(&cfg, name), d);
	}
	assert_ptr_equal(config_domain_for(&cfg, "d5000.example"), &cfg.domains[0]);
	assert_ptr_equal(config_domain_for(&cfg, "d.example"), &cfg.domains[0]);
	assert_ptr_equal(config_domain_for(&cfg, ""), &cfg.domains[0]);
	config_free(&cfg);
}

/* ---- files -------------------------------------------------------------- */

static void test_load_file(void **state)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX], want[CONFIG_ERR_MAX];
	char *path = tmp_file(full_conf, sizeof(full_conf) - 1);

	assert_int_equal(config_load(&cfg, path, err), 0);
	assert_string_equal(cfg.path, path);
	assert_string_equal(cfg.host_name, "mta.example.com");
	assert_int_equal(config_domain_for(&cfg, "example.org")->max_smtp_out, 5);
	config_free(&cfg);
	unlink(path);
	free(path);

	/* errors name the file as given */
	path = tmp_file("\n\nworker-threads 0\n", strlen("\n\nworker-threads 0\n"));
	assert_int_equal(config_load(&cfg, path, err), -1);
	snprintf(want, sizeof(want), "%s:3: invalid value \"0\" for worker-threads (expected 1..256)", path);
	assert_string_equal(err, want);
	assert_zeroed(&cfg);
	unlink(path);
	free(path);

	/* a NUL byte is an error at its line */
	static const char with_nul[] = "host-name a.example\nspool-dir /a\0b\n";
	path = tmp_file(with_nul, sizeof(with_nul) - 1);
	assert_int_equal(config_load(&cfg, path, err), -1);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);

	/* a larger file than the first read buffer */
	size_t cap = 200000, len = 0;
	char *big = malloc(cap);
	assert_non_null(big);
	while (len < cap - 100)
		len += (size_t)snprintf(big + len, cap - len, "# padding padding padding padding\n");
	len += (size_t)snprintf(big + len, cap - len, "host-name big.example\n");
	path = tmp_file(big, len);
	free(big);
	assert_int_equal(config_load(&cfg, path, err), 0);
	assert_string_equal(cfg.host_name, "big.example");
	config_free(&cfg);
	unlink(path);
	free(path);
}

static void test_file_errors(void **state)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	/* no line number: there is no line */
	memset(&cfg, 0xa5, sizeof(cfg));
	assert_int_equal(config_load(&cfg, "/nonexistent/salvo.conf", err), -1);
	assert_string_equal(err, "/nonexistent/salvo.conf: cannot open: No such file or directory");
	assert_zeroed(&cfg);
	assert_int_equal(config_load(&cfg, "/tmp", err), -1);
	assert_string_equal(err, "/tmp: cannot read: Is a directory");
	assert_zeroed(&cfg);
}

/* ---- errors ------------------------------------------------------------- */

/* PCRE2: Perl's syntax means what it means (\d, \b, (?i)); pathological
 * patterns compile and a match that runs into the limits is no match. */
static void test_pcre(void **state)
{
	char why[160], big[PCRE_RE_MAX_LEN + 2];
	struct pcre_re *re;
	(void)state;

	assert_non_null(re = pcre_re_compile("\\d+\\.\\d+\\.\\d+\\.\\d+ blocked", why, sizeof(why)));
	assert_true(pcre_re_match(re, "554 192.0.2.1 blocked"));
	assert_false(pcre_re_match(re, "554 a.b.c.d blocked"));
	pcre_re_free(re);
	assert_non_null(re = pcre_re_compile("(?i)\\bU\\.?C\\.?E\\b", why, sizeof(why)));
	assert_true(pcre_re_match(re, "rejected as uce"));
	assert_false(pcre_re_match(re, "rejected as deuce"));
	pcre_re_free(re);
	/* the configuration's patterns are case-insensitive */
	assert_non_null(re = pcre_re_compile("try again later", why, sizeof(why)));
	assert_true(pcre_re_match(re, "421 TRY AGAIN LATER"));
	pcre_re_free(re);
	/* catastrophic backtracking stops at the match limit: no match, quickly */
	assert_non_null(re = pcre_re_compile("^(a+)+$", why, sizeof(why)));
	memset(big, 'a', 40);
	big[40] = '!';
	big[41] = '\0';
	assert_false(pcre_re_match(re, big));
	pcre_re_free(re);
	/* what glibc's regcomp() blew up on is refused by PCRE2's own bound */
	assert_null(pcre_re_compile("(((a{200}){200}){200})", why, sizeof(why)));
	assert_non_null(strstr(why, "too large"));
	assert_null(pcre_re_compile("4(21", why, sizeof(why)));
	assert_string_equal(why, "missing closing parenthesis at offset 4");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_null(pcre_re_compile(big, why, sizeof(why)));
	assert_string_equal(why, "longer than 1024 characters");
	assert_null(pcre_re_compile("a{2}{3}(", why, sizeof(why)));
}

/* The parser goes on after each error: all are reported, in line order; a
 * block whose opening tag is bad is skipped to its end (its lines give no
 * further errors); config_load() keeps the first message. */
/* <address-list NAME> and suppression-lists: entries, matching, every malformed line an error */
static void test_address_lists(void **state)
{
	static const char file_text[] = "# comment\nlisted@file.example\n\n/^rx\\d+@/\n";
	char *path = tmp_file(file_text, sizeof(file_text) - 1);
	char *bad = tmp_file("ok@x.example\nbad@@x\ntwo words\n/unclosed\n", 40);
	char text[1024], want[2048];
	struct config cfg;
	struct config_report rep;
	const struct config_source *src;
	(void)state;

	snprintf(text, sizeof(text),
		 "<address-list stop>\n address postmaster\n address Full@Example.COM\n"
		 " address /^news-\\d+@/\n domain blocked.example\n address-file %s\n</address-list>\n"
		 "<address-list two>\n address only2\n</address-list>\n"
		 "<source 10/8>\n always-allow-relaying yes\n suppression-lists stop, two\n</source>\n", path);
	if (config_load_string_report(&cfg, "t.conf", text, &rep) != 0)
		fail_msg("%s", rep.errors);
	assert_null(strstr(rep.warnings ? rep.warnings : "", "address"));
	assert_null(strstr(rep.warnings ? rep.warnings : "", "suppression-lists"));
	config_report_free(&rep);
	src = source_for(&cfg, "10.1.2.3");
	assert_non_null(src);
	{
		char *out = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&out, &len);

		char err[200];

		assert_int_equal(config_show(f, &cfg, "source:10.1.2.3", err, sizeof(err)), 0);
		fclose(f);
		assert_non_null(strstr(out, "\nsuppression-lists stop,two\n"));
		free(out);
	}
	assert_string_equal(config_source_suppressed(&cfg, src, "postmaster@any.example"), "stop");
	assert_string_equal(config_source_suppressed(&cfg, src, "full@example.com"), "stop");
	assert_string_equal(config_source_suppressed(&cfg, src, "news-42@x.example"), "stop");
	assert_string_equal(config_source_suppressed(&cfg, src, "a@BLOCKED.example"), "stop");
	assert_string_equal(config_source_suppressed(&cfg, src, "listed@file.example"), "stop");
	assert_string_equal(config_source_suppressed(&cfg, src, "rx7@y.example"), "stop");
	assert_string_equal(config_source_suppressed(&cfg, src, "only2@y.example"), "two");
	assert_null(config_source_suppressed(&cfg, src, "news-x@x.example"));
	assert_null(config_source_suppressed(&cfg, src, "a@sub.blocked.example"));
	assert_null(config_source_suppressed(&cfg, src, "postmaster2@any.example"));
	assert_null(config_source_suppressed(&cfg, src, "full@example.org"));
	/* a source without the directive suppresses nothing */
	assert_null(config_source_suppressed(&cfg, source_for(&cfg, "127.0.0.1"), "postmaster@a.example"));
	config_free(&cfg);

	/* every malformed line is an error, address-file lines with FILE:LINE */
	snprintf(text, sizeof(text),
		 "<address-list l>\n address a b\n address x@@y.example\n address /(/\n domain bad..name\n"
		 " address-file %s\n address-file /nonexistent/list\n address-file /dev/zero\n</address-list>\n"
		 "<source 10/8>\n suppression-lists l,nope\n</source>\n<address-list l>\n</address-list>\n", bad);
	assert_int_equal(config_load_string_report(&cfg, "t.conf", text, &rep), -1);
	snprintf(want, sizeof(want),
		 "t.conf:2: invalid address \"a b\": expected LOCALPART, USER@DOMAIN or /REGEX/\n"
		 "t.conf:3: invalid address \"x@@y.example\": expected USER@DOMAIN\n"
		 "t.conf:4: invalid address \"/(/\": missing closing parenthesis at offset 1\n"
		 "t.conf:5: invalid domain name \"bad..name\" for domain\n"
		 "t.conf:6: %s:2: invalid address \"bad@@x\": expected USER@DOMAIN\n"
		 "t.conf:6: %s:3: invalid address \"two words\": expected LOCALPART, USER@DOMAIN or /REGEX/\n"
		 "t.conf:6: %s:4: invalid address \"/unclosed\": a regular expression must be written /REGEX/\n"
		 "t.conf:7: cannot read address-file \"/nonexistent/list\": No such file or directory\n"
		 "t.conf:8: address-file \"/dev/zero\" is not a regular file of at most 64 MiB\n"
		 "t.conf:13: duplicate <address-list l> (first at line 1)\n", bad, bad, bad);
	assert_string_equal(rep.errors, want);
	assert_non_null(strstr(rep.warnings, "t.conf:11: warning: suppression-lists: no <address-list nope> in the "
				"configuration: that name suppresses nothing"));
	assert_zeroed(&cfg);
	config_report_free(&rep);
	/* the processors' unnamed lists: the bounce domain's path; what it does not do is warned */
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<feedback-loop-processor>\n deliver-matched-email yes\n <address-list>\n  address /^fbl@/\n"
		" </address-list>\n</feedback-loop-processor>\n<bounce-processor>\n deliver-unmatched-email no\n"
		" <address-list>\n  domain dsn.example\n </address-list>\n</bounce-processor>\n", &rep), 0);
	assert_true(config_processor_address(&cfg, "FBL@isp.example"));
	assert_true(config_processor_address(&cfg, "x@dsn.example"));
	assert_false(config_processor_address(&cfg, "x@sub.dsn.example"));
	assert_false(config_processor_address(&cfg, "abuse@isp.example"));
	assert_non_null(strstr(rep.warnings, "t.conf:3: warning: <feedback-loop-processor>: deliver-unmatched-email yes"));
	assert_non_null(strstr(rep.warnings, "t.conf:3: warning: <feedback-loop-processor>: deliver-matched-email yes"));
	assert_null(strstr(rep.warnings, "<bounce-processor>"));
	assert_null(strstr(rep.warnings, "not consulted"));
	config_report_free(&rep);
	config_free(&cfg);
	/* a relative address-file is taken from the configuration's directory, not the cwd */
	{
		char dir[] = "/tmp/test_config_al.XXXXXX", conf[64], list[64], err[CONFIG_ERR_MAX];
		FILE *f;

		assert_non_null(mkdtemp(dir));
		snprintf(conf, sizeof(conf), "%s/salvo.conf", dir);
		snprintf(list, sizeof(list), "%s/rel.txt", dir);
		assert_non_null(f = fopen(list, "w"));
		fputs("rel@list.example\n", f);
		fclose(f);
		assert_non_null(f = fopen(conf, "w"));
		fputs("<address-list r>\n address-file rel.txt\n</address-list>\n"
		      "<source 10/8>\n suppression-lists r\n</source>\n", f);
		fclose(f);
		if (config_load(&cfg, conf, err) != 0)
			fail_msg("%s", err);
		assert_string_equal(config_source_suppressed(&cfg, source_for(&cfg, "10.0.0.1"), "rel@list.example"), "r");
		config_free(&cfg);
		unlink(conf);
		unlink(list);
		rmdir(dir);
	}
	/* a name is required at top level */
	expect_err("<address-list>\n</address-list>\n",
		   "test.conf:1: missing argument for <address-list> (a name, outside the processors)");
	unlink(path);
	unlink(bad);
	free(path);
	free(bad);
}

/* relay-domain: exact, *.x (subdomains only), [*.]x (both); a lookalike never */
static void test_relay_domains(void **state)
{
	struct config cfg;
	(void)state;

	load_ok(&cfg, "relay-domain In.Example\nrelay-domain *.sub.example\nrelay-domain [*.]both.example\n");
	assert_true(config_relay_domain(&cfg, "in.example"));
	assert_true(config_relay_domain(&cfg, "IN.EXAMPLE"));
	assert_false(config_relay_domain(&cfg, "x.in.example"));
	assert_false(config_relay_domain(&cfg, "sub.example"));
	assert_true(config_relay_domain(&cfg, "a.sub.example"));
	assert_true(config_relay_domain(&cfg, "b.a.sub.example"));
	assert_true(config_relay_domain(&cfg, "both.example"));
	assert_true(config_relay_domain(&cfg, "x.both.example"));
	assert_false(config_relay_domain(&cfg, "evilboth.example"));
	assert_false(config_relay_domain(&cfg, ".both.example"));
	assert_false(config_relay_domain(&cfg, "both.example.evil"));
	assert_false(config_relay_domain(&cfg, "other.example"));
	config_free(&cfg);
	{
		struct config_report rep;

		/* applied: no "not applied" warning any more */
		assert_int_equal(config_load_string_report(&cfg, "t.conf", "relay-domain in.example\n", &rep), 0);
		assert_null(strstr(rep.warnings ? rep.warnings : "", "relay-domain"));
		config_report_free(&rep);
		config_free(&cfg);
	}
	load_ok(&cfg, "host-name a.example\n");
	assert_false(config_relay_domain(&cfg, "a.example"));
	config_free(&cfg);
	expect_err("relay-domain bad..name\n",
		   "test.conf:1: invalid domain name (or *.name, [*.]name) \"bad..name\" for relay-domain");
	expect_err("relay-domain *.\n",
		   "test.conf:1: invalid domain name (or *.name, [*.]name) \"*.\" for relay-domain");
}

static void test_every_error(void **state)
{
	static const char text[] =
		"host-name a.example\n"          /* 1 */
		"retry-after 10m\n"              /* 2: top level */
		"<domain bad..name>\n"           /* 3: bad name: block skipped */
		"    frobnicate yes\n"           /* 4: not reported (skipped) */
		"    <domain nested>\n"          /* 5: not reported */
		"    </domain>\n"                /* 6 */
		"</domain>\n"                    /* 7 */
		"<domain ok.example>\n"          /* 8 */
		"    max-smtp-out many\n"        /* 9 */
		"    max-smtp-out 5\n"           /* 10 */
		"</domain>\n"                    /* 11 */
		"<vault>\n"                      /* 12: refused, skipped */
		"    api-key x\n"                /* 13 */
		"</vault>\n"                     /* 14 */
		"worker-threads 0\n";            /* 15 */
	struct config cfg;
	struct config_report rep;
	char err[CONFIG_ERR_MAX];
	(void)state;

	assert_int_equal(config_load_string_report(&cfg, "t.conf", text, &rep), -1);
	assert_int_equal(rep.n_errors, 5);
	assert_string_equal(rep.errors,
		"t.conf:2: \"retry-after\" is only valid inside <domain>\n"
		"t.conf:3: invalid domain name \"bad..name\" for <domain> (expected a domain, *, *.example.com, "
		"[*.]example.com, [ip/mask] or {queue})\n"
		"t.conf:9: invalid value \"many\" for max-smtp-out (expected a positive integer or unlimited)\n"
		"t.conf:12: <vault> is not implemented: keys are read from files (domain-key SELECTOR,DOMAIN,FILE)\n"
		"t.conf:15: invalid value \"0\" for worker-threads (expected 1..256)\n");
	assert_zeroed(&cfg);
	config_report_free(&rep);
	assert_int_equal(config_load_string(&cfg, "t.conf", text, err), -1);
	assert_string_equal(err, "t.conf:2: \"retry-after\" is only valid inside <domain>");
	/* the finishing step's errors (names resolved after the last line) go in line order too */
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<virtual-mta-pool p>\nvirtual-mta nope\n</virtual-mta-pool>\n<smtp-user u>\n</smtp-user>\n"
		"<domain *>\nsmtp-pattern-list none\n</domain>\nbogus 1\n", &rep), -1);
	assert_string_equal(rep.errors,
		"t.conf:1: <virtual-mta-pool p>: no <virtual-mta nope>\n"
		"t.conf:4: <smtp-user u> has no password\n"
		"t.conf:6: smtp-pattern-list \"none\": no such <smtp-pattern-list>\n"
		"t.conf:9: unknown directive \"bogus\"\n");
	config_report_free(&rep);
	/* a flood is counted, not kept */
	{
		size_t n = 300 * 8 + 1;
		char *many = calloc(1, n);
		for (int i = 0; i < 300; i++)
			strcat(many, "bogus 1\n");
		assert_int_equal(config_load_string_report(&cfg, "t.conf", many, &rep), -1);
		assert_int_equal(rep.n_errors, 300);
		assert_non_null(strstr(rep.errors, "t.conf: ... and 100 more errors\n"));
		config_report_free(&rep);
		free(many);
	}
	/* warnings: parsed but not applied yet, once per directive */
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<domain a.example>\n use-dane yes\n</domain>\n<domain b.example>\n use-dane no\n</domain>\n",
		&rep), 0);
	assert_null(rep.errors);
	assert_int_equal(rep.n_warnings, 1);
	assert_non_null(strstr(rep.warnings, "t.conf:2: warning: use-dane is accepted but not applied yet"));
	config_report_free(&rep);
	config_free(&cfg);
	/* queue-priority and retry-recipients-after are applied: no warning, typed, inherited */
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<domain *>\n retry-recipients-after 2m\n</domain>\n"
		"<domain a.example>\n queue-priority 90\n</domain>\n<domain b.example>\n queue-priority 0\n"
		" retry-recipients-after 30s\n</domain>\n",
		&rep), 0);
	assert_int_equal(rep.n_warnings, 0);
	assert_int_equal(config_domain_for(&cfg, "a.example")->queue_priority, 90);
	assert_int_equal(config_domain_for(&cfg, "a.example")->retry_recipients_after_ms, 120000);
	assert_int_equal(config_domain_for(&cfg, "b.example")->queue_priority, 0);
	assert_int_equal(config_domain_for(&cfg, "b.example")->retry_recipients_after_ms, 30000);
	assert_int_equal(config_domain_for(&cfg, "c.example")->queue_priority, 50);
	config_report_free(&rep);
	config_free(&cfg);
	assert_int_equal(config_load_string_report(&cfg, "t.conf", "<domain a.example>\n queue-priority 101\n</domain>\n",
						   &rep), -1);
	assert_non_null(strstr(rep.errors, "t.conf:2: invalid priority (0-100) \"101\" for queue-priority"));
	config_report_free(&rep);
	/* applied now, so no warning: named sources (by user and listener), <domain> nested in a
	 * vmta, run-as-root no, the <domain> directives with their meaning in delivery */
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"smtp-listener 127.0.0.1:2526 source={bulk}\n"
		"run-as-root no\n"
		"<source {bulk}>\n always-allow-relaying yes\n</source>\n"
		"<smtp-user u>\n password p\n source {bulk}\n</smtp-user>\n"
		"<virtual-mta v1>\n <domain x.example>\n  max-smtp-out 1\n </domain>\n</virtual-mta>\n"
		"<domain y.example>\n bounce-upon-no-mx yes\n ignore-8bitmime yes\n max-errors-per-connection 3\n"
		" backoff-to-normal-after-delivery yes\n smtp-hosts [10.0.0.1]:2525, relay.example\n"
		" auth-username u\n auth-password p\n</domain>\n",
		&rep), 0);
	assert_null(rep.errors);
	assert_null(rep.warnings);
	config_report_free(&rep);
	config_free(&cfg);
}

static char *show(const struct config *cfg, const char *spec)
{
	char *buf = NULL, err[200];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (config_show(f, cfg, spec, err, sizeof(err)) < 0)
		fail_msg("--show %s: %s", spec, err);
	fclose(f);
	return buf;
}

static void expect_line(const struct config *cfg, const char *spec, const char *line, bool present)
{
	char *out = show(cfg, spec), want[200];

	snprintf(want, sizeof(want), "%s\n", line);
	if ((strstr(out, want) != NULL) != present)
		fail_msg("--show %s: \"%s\" %s in:\n%s", spec, line, present ? "missing" : "present", out);
	free(out);
}

/* PowerMTA's domain constructs and what they mean, through the lookups and --show. */
static void test_pmta_domains(void **state)
{
	struct config cfg;
	const struct config_domain *d;
	(void)state;

	load_ok(&cfg,
		"domain-macro tld com, de, co.uk\n"
		"<domain *>\n max-smtp-out 12\n</domain>\n"
		"<domain yahoo.$tld>\n max-smtp-out 7\n</domain>\n"
		"<domain *.port25.com>\n bounce-after 2h\n</domain>\n"
		"<domain [*.]example.org>\n bounce-after 3h\n</domain>\n"
		"<domain gmail.com>\n max-msg-rate 500/h\n</domain>\n"
		"<virtual-mta v1>\n smtp-source-host 192.0.2.1 v1.example\n"
		" <domain *>\n  max-smtp-out 4\n  max-msg-per-connection 0\n </domain>\n"
		" <domain gmail.com>\n  max-msg-rate 50/h\n </domain>\n"
		"</virtual-mta>\n"
		"<virtual-mta v2>\n smtp-source-host 192.0.2.2\n</virtual-mta>\n"
		"<virtual-mta-pool p>\n virtual-mta v2\n <domain *>\n  retry-after 1m\n </domain>\n</virtual-mta-pool>\n");
	/* the macro made three blocks */
	assert_int_equal(config_domain_for(&cfg, "yahoo.co.uk")->max_smtp_out, 7);
	assert_int_equal(config_domain_for(&cfg, "YAHOO.DE")->max_smtp_out, 7);
	assert_int_equal(config_domain_for(&cfg, "yahoo.fr")->max_smtp_out, 12);
	/* wildcards */
	assert_int_equal(config_domain_for(&cfg, "mx.port25.com")->bounce_after_ms, 2 * HOUR);
	assert_int_equal(config_domain_for(&cfg, "port25.com")->bounce_after_ms, 4 * HOUR);
	assert_int_equal(config_domain_for(&cfg, "xport25.com")->bounce_after_ms, 4 * HOUR);
	assert_int_equal(config_domain_for(&cfg, "example.org")->bounce_after_ms, 3 * HOUR);
	assert_int_equal(config_domain_for(&cfg, "a.b.example.org")->bounce_after_ms, 3 * HOUR);
	d = config_domain_for(&cfg, "mx.port25.com");
	assert_int_equal(d->max_smtp_out, 12); /* inherits from * */
	/* nested blocks stay out of the top-level lookups */
	assert_int_equal(config_domain_for(&cfg, "other.test")->max_smtp_out, 12);
	assert_int_equal(config_domain_for(&cfg, "gmail.com")->max_msg_rate.count, 500);
	/* which (queue, vmta) pairs have nested settings at all (egress resolves only those) */
	assert_true(config_domain_has_nested(&cfg, "gmail.com", "v1"));
	assert_true(config_domain_has_nested(&cfg, "other.test", "v1"));  /* v1's `*` */
	assert_true(config_domain_has_nested(&cfg, "other.test", "v2"));  /* pool p's `*` */
	assert_false(config_domain_has_nested(&cfg, "gmail.com", "default"));
	assert_false(config_domain_has_nested(&cfg, "gmail.com", NULL));
	/* and apply through the vmta: its own block, the top-level one, its `*`, the top `*` */
	{
		struct config_domain r;

		assert_int_equal(config_domain_resolve(&cfg, "gmail.com", "v1", &r), 0);
		assert_int_equal(r.max_msg_rate.count, 50);
		assert_int_equal(r.max_smtp_out, 4);
		assert_int_equal(r.max_msg_per_connection, UINT_MAX);
		config_domain_release(&r);
		assert_int_equal(config_domain_resolve(&cfg, "gmail.com", "v2", &r), 0);
		assert_int_equal(r.max_msg_rate.count, 500);
		assert_int_equal(r.max_smtp_out, 12);
		assert_int_equal(r.retry_after_ms[0], MIN);
		config_domain_release(&r);
	}
	expect_line(&cfg, "yahoo.de", "max-smtp-out 7", true);
	expect_line(&cfg, "mx.port25.com", "bounce-after 2h", true);
	expect_line(&cfg, "other.test", "max-smtp-out 12", true);
	expect_line(&cfg, "other.test", "retry-after 15m", true);
	expect_line(&cfg, "other.test", "queue-priority 50", true); /* the default */
	expect_line(&cfg, "gmail.com/v1", "max-msg-rate 50/h", true);
	expect_line(&cfg, "gmail.com/v1", "max-msg-per-connection 0", true);
	expect_line(&cfg, "other.test/v1", "max-smtp-out 4", true);
	expect_line(&cfg, "gmail.com/v2", "max-msg-rate 500/h", true);
	expect_line(&cfg, "gmail.com/v2", "retry-after 1m", true);
	expect_line(&cfg, "gmail.com", "retry-after 1m", false);
	config_free(&cfg);

	expect_err("<domain yahoo.$nope>\n</domain>\n",
		   "test.conf:1: no domain-macro for \"yahoo.$nope\" (define it with domain-macro NAME values)");
	/* a domain named again (by a macro, in a vmta) is more settings for it: see test_pmta_round2 */
	expect_err("<source 0/0>\n <domain *>\n </domain>\n</source>\n",
		   "test.conf:2: <domain> cannot be nested inside <source> (opened at line 1)");
}

/* The other PowerMTA constructs: listeners, named sources, acct-file, refusals. */
static void test_pmta_misc(void **state)
{
	struct config cfg;
	(void)state;

	load_ok(&cfg,
		"smtp-listener 0/0:2525\n"
		"smtp-listener 127.0.0.1:2526 source=mta1\n"
		"http-mgmt-port 8080\n"
		"name-server 192.0.2.53\n"
		"spool /var/spool/x\n"
		"<source mta1>\n default-virtual-mta default\n</source>\n"
		"<source {auth}>\n always-allow-relaying yes\n</source>\n"
		"<source 0/0>\n max-message-size unlimited\n smtp-service yes\n</source>\n"
		"<smtp-user u>\n password p\n source {auth}\n</smtp-user>\n"
		"<acct-file |/usr/bin/prog --flag x>\n records d,rb\n record-fields d rcpt,header_x-id\n</acct-file>\n"
		"<acct-file /tmp/a.csv>\n move-interval 5m\n max-size 50M\n delete-after never\n</acct-file>\n");
	assert_string_equal(cfg.smtp_listeners[0].text, "0.0.0.0:2525");
	assert_null(cfg.smtp_listener_source[0]);
	assert_string_equal(cfg.smtp_listener_source[1], "mta1");
	assert_string_equal(cfg.http_listeners[0].text, "0.0.0.0:8080");
	assert_true(cfg.has_dns_server);
	assert_string_equal(cfg.spool_dir, "/var/spool/x");
	assert_non_null(config_source_named(&cfg, "auth"));
	assert_non_null(config_source_named(&cfg, "MTA1"));
	assert_string_equal(cfg.smtp_users[0].source, "auth");
	/* named sources never match an address */
	{
		struct sockaddr_storage sa = sa_of("10.1.2.3");

		assert_int_equal(config_source_for(&cfg, (struct sockaddr *)&sa)->net.prefix, 0);
		assert_null(config_source_for(&cfg, (struct sockaddr *)&sa)->name);
	}
	/* the lookups intake is to use */
	{
		struct sockaddr_storage sa = sa_of("10.1.2.3");
		const struct config_source *by_addr = config_source_for(&cfg, (struct sockaddr *)&sa);

		assert_string_equal(config_source_after_auth(&cfg, "u", by_addr)->name, "auth");
		assert_string_equal(config_source_after_auth(&cfg, "someone", by_addr)->name, "auth"); /* {auth} */
		assert_ptr_equal(config_source_after_auth(&cfg, NULL, by_addr), by_addr);
		assert_string_equal(config_source_for_listener(&cfg, 1, (struct sockaddr *)&sa)->name, "mta1");
		assert_ptr_equal(config_source_for_listener(&cfg, 0, (struct sockaddr *)&sa), by_addr);
		assert_ptr_equal(config_source_for_listener(&cfg, 7, (struct sockaddr *)&sa), by_addr);
	}
	assert_int_equal(cfg.n_acct_files, 2);
	assert_true(cfg.acct_files[0].pipe);
	assert_string_equal(cfg.acct_files[0].path, "/usr/bin/prog --flag x");
	assert_int_equal(cfg.acct_files[0].records, CONFIG_ACCT_D | CONFIG_ACCT_RB);
	assert_string_equal(cfg.acct_files[0].record_fields[0], "rcpt,header_x-id");
	assert_int_equal(cfg.acct_files[1].records, CONFIG_ACCT_D | CONFIG_ACCT_B);
	assert_int_equal(cfg.acct_files[1].move_interval_ms, 5 * MIN);
	assert_int_equal(cfg.acct_files[1].max_size, 50ULL << 20);
	config_free(&cfg);

	expect_err("<smtp-user u>\n password p\n source {nope}\n</smtp-user>\n",
		   "test.conf:1: <smtp-user u>: source {nope}: no such <source {nope}>");
	/* smtp-hosts: each host a name, name:port, [IP] or [IP]:port */
	expect_err("<domain a.example>\n smtp-hosts [10.0.0.1\n</domain>\n",
		   "test.conf:2: invalid host \"[10.0.0.1\" for smtp-hosts (a name, name:port, [IP] or [IP]:port)");
	expect_err("<domain a.example>\n smtp-hosts h1.example, ; h2.example\n</domain>\n",
		   "test.conf:2: invalid host \"\" for smtp-hosts (a name, name:port, [IP] or [IP]:port)");
	expect_err("<domain a.example>\n smtp-hosts relay.example:99999\n</domain>\n",
		   "test.conf:2: invalid host \"relay.example:99999\" for smtp-hosts (a name, name:port, [IP] or [IP]:port)");
	expect_err("<domain a.example>\n source-ip-max-smtp-out 10.0.0.1\n</domain>\n",
		   "test.conf:2: source-ip-max-smtp-out wants a source address and a value, not \"10.0.0.1\"");
	expect_err("<domain a.example>\n source-ip-max-smtp-out nowhere 3\n</domain>\n",
		   "test.conf:2: source-ip-max-smtp-out wants a source address and a value, not \"nowhere\"");
	expect_err("<domain a.example>\n source-ip-max-msg-rate 10.0.0.1 fast\n</domain>\n",
		   "test.conf:2: invalid rate \"fast\" for source-ip-max-msg-rate");
	{
		struct config c3;
		struct sockaddr_in a1 = {.sin_family = AF_INET}, a2 = {.sin_family = AF_INET};
		const struct config_source_limit *l;
		char err3[CONFIG_ERR_MAX];

		assert_int_equal(config_load_string(&c3, "t.conf",
			"<domain *>\n source-ip-max-smtp-out 10.0.0.0/8 5\n</domain>\n"
			"<domain a.example>\n source-ip-max-smtp-out 10.0.0.1 2\n"
			" source-ip-max-msg-rate 10.0.0.1 60/m\n source-ip-max-smtp-out 10.0.0.1 3\n</domain>\n", err3), 0);
		inet_pton(AF_INET, "10.0.0.1", &a1.sin_addr);
		inet_pton(AF_INET, "10.9.9.9", &a2.sin_addr);
		l = config_domain_source_limit(config_domain_for(&c3, "a.example"), (struct sockaddr *)&a1);
		assert_non_null(l);
		assert_int_equal(l->max_smtp_out, 3); /* the later line for the same address wins */
		assert_true(l->has_rate);
		assert_int_equal(l->max_msg_rate.count, 60);
		/* the block's own entries replace `*`'s */
		assert_null(config_domain_source_limit(config_domain_for(&c3, "a.example"), (struct sockaddr *)&a2));
		l = config_domain_source_limit(config_domain_for(&c3, "b.example"), (struct sockaddr *)&a2);
		assert_non_null(l);
		assert_int_equal(l->max_smtp_out, 5);
		config_free(&c3);
	}
	expect_err("<domain a.example>\n max-errors-per-connection -1\n</domain>\n",
		   "test.conf:2: invalid number (or unlimited) \"-1\" for max-errors-per-connection");
	{
		struct config c2;
		const struct config_domain *dd;
		char err2[CONFIG_ERR_MAX];

		assert_int_equal(config_load_string(&c2, "t.conf",
			"<domain a.example>\n smtp-hosts h1.example, [10.0.0.1]:2525; lookup-mx:b.example\n"
			" auth-username u\n auth-password \"p w\"\n</domain>\n", err2), 0);
		dd = config_domain_for(&c2, "a.example");
		assert_int_equal(dd->n_smtp_hosts, 3);
		assert_string_equal(dd->smtp_hosts[0].host, "h1.example");
		assert_int_equal(dd->smtp_hosts[0].port, 25);
		assert_true(dd->smtp_hosts[1].is_ip);
		assert_int_equal(dd->smtp_hosts[1].port, 2525);
		assert_int_equal(dd->smtp_hosts[1].group, 0);
		assert_string_equal(dd->smtp_hosts[2].host, "b.example");
		assert_int_equal(dd->smtp_hosts[2].group, 1);
		assert_string_equal(dd->auth_password, "p w");
		config_free(&c2);
	}
	expect_err("<acct-file /a.csv>\n records d,x\n</acct-file>\n",
		   "test.conf:2: unknown record type \"x\" for records (expected d, b, t, tq, r, f, rb, rs or all)");
	/* records and record-fields: every malformed value refused with its line */
	expect_err("<acct-file /a.csv>\n records x,d,y\n</acct-file>\n",
		   "test.conf:2: unknown record types \"x\", \"y\" for records (expected d, b, t, tq, r, f, rb, rs or all)");
	expect_err("<acct-file /a.csv>\n records d,,b\n</acct-file>\n",
		   "test.conf:2: empty record type in the list for records (e.g. \"records d,b,t\")");
	expect_err("<acct-file /a.csv>\n records d,\n</acct-file>\n",
		   "test.conf:2: empty record type in the list for records (e.g. \"records d,b,t\")");
	expect_err("<acct-file /a.csv>\n\n record-fields d rcpt,nosuchfield\n</acct-file>\n",
		   "test.conf:3: unknown field \"nosuchfield\" for record-fields (e.g. timeLogged, rcpt, bounceCat, "
		   "header_NAME)");
	expect_err("<acct-file /a.csv>\n record-fields d !\n</acct-file>\n",
		   "test.conf:2: empty field in the list for record-fields (\"!\" and \",\" want a field name on their "
		   "right)");
	expect_err("<acct-file /a.csv>\n record-fields b rcpt,,orig\n</acct-file>\n",
		   "test.conf:2: empty field in the list for record-fields (\"!\" and \",\" want a field name on their "
		   "right)");
	expect_err("<acct-file /a.csv>\n record-fields d rcpt,\n</acct-file>\n",
		   "test.conf:2: empty field in the list for record-fields (\"!\" and \",\" want a field name on their "
		   "right)");
	expect_err("<acct-file /a.csv>\n record-fields zz rcpt\n</acct-file>\n",
		   "test.conf:2: unknown record type \"zz\" for record-fields (expected d, b, t, tq, r, f, rb, rs)");
	expect_err("<acct-file /a.csv>\n record-fields d\n</acct-file>\n",
		   "test.conf:2: record-fields wants a record type and fields: \"record-fields d *,!orcpt\", not \"d\"");
	expect_err("<acct-file /a.csv>\n record-fields d rcpt, or ig\n</acct-file>\n",
		   "test.conf:2: invalid field \"or ig\" for record-fields (fields are separated by commas)");
	expect_err("<acct-file /a.csv>\n record-fields d header_\n</acct-file>\n",
		   "test.conf:2: unknown field \"header_\" for record-fields (e.g. timeLogged, rcpt, bounceCat, "
		   "header_NAME)");
	{
		/* PowerMTA's own forms: "records d, b", the long type names,
		 * timeImprinted (not in the defaults), `!` after `*` */
		struct config c3;

		load_ok(&c3, "<acct-file /a.csv>\n records d, b,transient-queue\n"
			     " record-fields bounce jobId,dsnDiag,*,!timeImprinted,!dlvEsmtpAvailable,!rcpt\n"
			     " record-fields d timeLogged,timeQueued,timeImprinted,orig\n</acct-file>\n");
		assert_int_equal(c3.acct_files[0].records, CONFIG_ACCT_D | CONFIG_ACCT_B | CONFIG_ACCT_TQ);
		assert_string_equal(c3.acct_files[0].record_fields[0], "timeLogged,timeQueued,timeImprinted,orig");
		config_free(&c3);
	}
	expect_err("smtp-listener 0/0:25 tls=maybe\n",
		   "test.conf:1: unknown option \"tls=maybe\" for smtp-listener (expected source=NAME or tls=yes|no)");
	expect_err("<domain *>\n dk-sign maybe\n</domain>\n", "test.conf:2: invalid boolean \"maybe\" for dk-sign");
	/* smtp-service no: 554 at connect; allow-starttls no: no STARTTLS (engine/intake.c) */
	load_ok(&cfg, "<source 0/0>\n smtp-service no\n</source>\n<source 10.1.0.0/16>\n allow-starttls no\n"
		      "</source>\n<source 127.0.0.1>\n smtp-service yes\n</source>\n");
	assert_true(source_for(&cfg, "192.0.2.1")->no_smtp_service);
	assert_false(source_for(&cfg, "10.1.2.3")->no_smtp_service);
	assert_true(source_for(&cfg, "10.1.2.3")->no_starttls);
	assert_false(source_for(&cfg, "127.0.0.1")->no_smtp_service);
	assert_false(source_for(&cfg, "127.0.0.1")->no_starttls);
	config_free(&cfg);
	expect_err("<source 0/0>\n smtp-service maybe\n</source>\n", "test.conf:2: invalid boolean \"maybe\" for smtp-service");
	/* inert by design: loads, with the warning */
	load_warns(&cfg, "enable-signals true\n<signals>\n api-key x\n</signals>\nenable-signals no\n",
		   (const char *const[]){"test.conf:1: warning: enable-signals is accepted but has no effect: it is "
					 "SparkPost Signals, which Salvo does not have by design",
					 "test.conf:2: warning: <signals> is accepted but has no effect", NULL});
	config_free(&cfg);
	expect_err("<bounce-category-patterns>\n /a(b/ other\n</bounce-category-patterns>\n",
		   "test.conf:2: bounce-category-pattern: bad regex /a(b/: missing closing parenthesis at offset 3");
}

/* Perl syntax in the configuration's pattern blocks (it compiled under
 * POSIX and never matched a digit). */
static void test_pcre_config(void **state)
{
	struct config cfg;
	(void)state;

	load_ok(&cfg, "<smtp-pattern-list p>\n reply /^4\\d\\d .*\\bslow\\b/ mode=backoff\n"
		      " reply /(?i)RATE \\d+/ defer-queue\n</smtp-pattern-list>\n"
		      "<bounce-category-patterns>\n /(?i)user \\d{3} GONE/ inactive-mailbox\n // other\n"
		      "</bounce-category-patterns>\n");
	assert_true(pcre_re_match(cfg.pattern_lists[0].rules[0].re, "421 4.7.0 please slow down"));
	assert_false(pcre_re_match(cfg.pattern_lists[0].rules[0].re, "4x1 4.7.0 please slow down"));
	assert_false(pcre_re_match(cfg.pattern_lists[0].rules[0].re, "421 4.7.0 slowly"));
	assert_true(pcre_re_match(cfg.pattern_lists[0].rules[1].re, "451 rate 50 exceeded"));
	assert_int_equal(cfg.pattern_lists[0].rules[1].actions, CONFIG_PAT_DEFER_QUEUE);
	assert_string_equal(config_category_override(&cfg, "550 User 123 gone"), "inactive-mailbox");
	assert_string_equal(config_category_override(&cfg, "550 anything else"), "other"); /* `//` */
	config_free(&cfg);
}

static void test_err_unknown(void **state)
{
	expect_err("foo bar\n", "test.conf:1: unknown directive \"foo\"");
	expect_err("# c\n\nhost-name a.example\nfoo\n", "test.conf:4: unknown directive \"foo\"");
	expect_domain_err("  foo 1", "test.conf:2: unknown directive \"foo\"");
	expect_source_err("require-authentication yes", "test.conf:2: unknown directive \"require-authentication\"");
	expect_err("<virtual-mtas mta1>\n</virtual-mtas>\n",
		   "test.conf:1: unknown block directive <virtual-mtas>");
	expect_err("<domain a.example>\n</domain>\n</foo>\n", "test.conf:3: unknown block directive </foo>");
	expect_domain_err("<foo x>", "test.conf:2: unknown block directive <foo>");
	/* control characters and long names are shown safely, on one line */
	expect_err("fo\x01o 1\n", "test.conf:1: unknown directive \"fo?o\"");

	/* a name of 300 characters is cut to 72 and "..." */
	char text[400], want[200];
	memset(text, 'a', 300);
	memcpy(text + 300, " 1\n", 4);
	memcpy(want, "test.conf:1: unknown directive \"", 32);
	memset(want + 32, 'a', 72);
	memcpy(want + 104, "...\"", 5);
	expect_err(text, want);
}

static void test_err_blocks(void **state)
{
	/* not closed: reported at the last line, naming the opening line */
	expect_err("\n<source 10/8>\n always-allow-relaying yes\n\n",
		   "test.conf:4: <source> not closed (opened at line 2)");
	expect_err("<domain a.example>\n max-smtp-out 1",
		   "test.conf:2: <domain> not closed (opened at line 1)");
	expect_err("<domain a.example>\n</domain>\n<domain b.example>\n# end\n",
		   "test.conf:4: <domain> not closed (opened at line 3)");
	/* stray, mismatched, nested */
	expect_err("host-name a.example\n</domain>\n", "test.conf:2: </domain> without <domain>");
	expect_err("<source 10/8>\n</source>\n</source>\n", "test.conf:3: </source> without <source>");
	expect_err("<source 10/8>\n</domain>\n",
		   "test.conf:2: </domain> does not match <source> (opened at line 1)");
	expect_err("<domain a.example>\n\n</source>\n",
		   "test.conf:3: </source> does not match <domain> (opened at line 1)");
	expect_err("<domain a.example>\n<source 10/8>\n</source>\n</domain>\n",
		   "test.conf:2: <source> cannot be nested inside <domain> (opened at line 1)");
	expect_err("<domain a.example>\n<domain b.example>\n",
		   "test.conf:2: <domain> cannot be nested inside <domain> (opened at line 1)");
	/* arguments */
	expect_err("<domain>\n</domain>\n", "test.conf:1: missing argument for <domain>");
	expect_err("<source   >\n</source>\n", "test.conf:1: missing argument for <source>");
	expect_err("<domain a.example $nope>\n</domain>\n",
		   "test.conf:1: no domain-macro for \"$nope\" (define it with domain-macro NAME values)");
	expect_err("<source 10/8>\n</source 10/8>\n", "test.conf:2: </source> takes no argument");
	/* malformed tags */
	expect_err("<domain a.example\n", "test.conf:1: malformed block tag \"<domain a.example\"");
	expect_err("< domain a.example>\n", "test.conf:1: malformed block tag \"< domain a.example>\"");
	expect_err("<>\n", "test.conf:1: malformed block tag \"<>\"");
	expect_err("<\n", "test.conf:1: malformed block tag \"<\"");
	expect_err("</>\n", "test.conf:1: malformed block tag \"</>\"");
	expect_err("<source 10/8>\n</ source>\n", "test.conf:2: malformed block tag \"</ source>\"");
	expect_err("<domain a.example> junk\n", "test.conf:1: malformed block tag \"<domain a.example> junk\"");
	/* bad block arguments */
	expect_err("<source 10.0.0.0/33>\n</source>\n", "test.conf:1: invalid CIDR \"10.0.0.0/33\" for <source> (expected an address, a network such as "
		   "10.0.0.0/8 or 0/0, or a name {name})");
	expect_err("<source ::/129>\n</source>\n", "test.conf:1: invalid CIDR \"::/129\" for <source> (expected an address, a network such as "
		   "10.0.0.0/8 or 0/0, or a name {name})");
	expect_err("<source example.com>\n</source>\n", "test.conf:1: invalid CIDR \"example.com\" for <source> (expected an address, a network such as "
		   "10.0.0.0/8 or 0/0, or a name {name})");
	expect_err("<domain a..b>\n</domain>\n", "test.conf:1: invalid domain name \"a..b\" for <domain> (expected a domain, *, "
		   "*.example.com, [*.]example.com, [ip/mask] or {queue})");
	expect_err("<domain a.*.example.com>\n</domain>\n",
		   "test.conf:1: invalid domain name \"a.*.example.com\" for <domain> (expected a domain, *, "
		   "*.example.com, [*.]example.com, [ip/mask] or {queue})");
	expect_err("<domain 192.0.2.300>\n</domain>\n",
		   "test.conf:1: invalid domain name \"192.0.2.300\" for <domain> (expected a domain, *, "
		   "*.example.com, [*.]example.com, [ip/mask] or {queue})");
}

static void test_err_duplicates(void **state)
{
	/* (a <domain> named twice is merged, PowerMTA's way: test_pmta_round2) */
	expect_err("<source 10/8>\n</source>\n<source 10.9.9.9/8>\n</source>\n",
		   "test.conf:3: duplicate <source 10.0.0.0/8> (first at line 1)");
	expect_err("<source ::1>\n</source>\n<source ::1/128>\n</source>\n",
		   "test.conf:3: duplicate <source ::1/128> (first at line 1)");
	expect_err("smtp-listener 127.0.0.1:2525\nsmtp-listener 127.0.0.1:2525\n",
		   "test.conf:2: duplicate smtp-listener 127.0.0.1:2525");
	expect_err("http-listener *:80\nhttp-listener 0.0.0.0:80\n",
		   "test.conf:2: duplicate http-listener 0.0.0.0:80");
}

static void test_err_placement(void **state)
{
	struct config cfg;

	(void)state;
	expect_err("retry-after 15m\n", "test.conf:1: \"retry-after\" is only valid inside <domain>");
	expect_err("route [127.0.0.1]:25\n", "test.conf:1: \"route\" is only valid inside <domain>");
	/* at top level (the guide's global relaying directives) only no, which every source gets anyway */
	expect_err("always-allow-relaying yes\n",
		   "test.conf:1: always-allow-relaying yes is not supported: that would let every client relay (an open "
		   "relay); put always-allow-relaying yes in the <source> of the hosts that inject");
	load_ok(&cfg, "always-allow-relaying no\n");
	config_free(&cfg);
	expect_domain_err("always-allow-relaying yes",
			  "test.conf:2: \"always-allow-relaying\" is only valid inside <source>");
	expect_source_err("max-smtp-out 2", "test.conf:2: \"max-smtp-out\" is only valid inside <domain>");
	expect_domain_err("host-name a.example", "test.conf:2: \"host-name\" is only valid at top level");
	expect_source_err("smtp-listener 127.0.0.1:25",
			  "test.conf:2: \"smtp-listener\" is only valid at top level");
}

static void test_err_missing_value(void **state)
{
	expect_domain_err("retry-after", "test.conf:2: missing value for retry-after");
	expect_domain_err("  retry-after   # nothing", "test.conf:2: missing value for retry-after");
	expect_domain_err("route", "test.conf:2: missing value for route");
	expect_source_err("always-allow-relaying\t", "test.conf:2: missing value for always-allow-relaying");
	expect_err("host-name\n", "test.conf:1: missing value for host-name");
	expect_err("spool-dir\n", "test.conf:1: missing value for spool-dir");
	expect_err("smtp-listener\n", "test.conf:1: missing value for smtp-listener");
	expect_err("tls-certificate #\n", "test.conf:1: missing value for tls-certificate");
}

static void test_err_top_values(void **state)
{
	expect_err("host-name bad host!\n", "test.conf:1: invalid host name \"bad host!\" for host-name");
	expect_err("host-name a..example\n", "test.conf:1: invalid host name \"a..example\" for host-name");
	expect_err("smtp-listener 127.0.0.1\n", "test.conf:1: invalid address \"127.0.0.1\" for smtp-listener");
	expect_err("smtp-listener 127.0.0.1:65536\n",
		   "test.conf:1: invalid address \"127.0.0.1:65536\" for smtp-listener");
	expect_err("smtp-listener 127.0.0.1:0\n",
		   "test.conf:1: invalid address \"127.0.0.1:0\" for smtp-listener");
	expect_err("http-listener localhost:8025\n",
		   "test.conf:1: invalid address \"localhost:8025\" for http-listener");
	expect_err("dns-server *:53\n", "test.conf:1: invalid address \"*:53\" for dns-server");
	expect_err("dns-server ns1.example\n", "test.conf:1: invalid address \"ns1.example\" for dns-server");
	expect_err("worker-threads 0\n", "test.conf:1: invalid value \"0\" for worker-threads (expected 1..256)");
	expect_err("worker-threads 257\n", "test.conf:1: invalid value \"257\" for worker-threads (expected 1..256)");
	expect_err("worker-threads two\n", "test.conf:1: invalid value \"two\" for worker-threads (expected 1..256)");
	expect_err("worker-threads -1\n", "test.conf:1: invalid value \"-1\" for worker-threads (expected 1..256)");
	expect_err("max-message-size 10Q\n", "test.conf:1: invalid size \"10Q\" for max-message-size");
	expect_err("max-message-size 0\n", "test.conf:1: invalid size \"0\" for max-message-size");
	expect_err("max-message-size 99999999999999999999\n",
		   "test.conf:1: invalid size \"99999999999999999999\" for max-message-size");
	expect_err("postmaster post master@example.com\n",
		   "test.conf:1: invalid address \"post master@example.com\" for postmaster");
	expect_err("bounce-domain bounces..example\n",
		   "test.conf:1: invalid domain name \"bounces..example\" for bounce-domain");
	expect_err("worker-threads 1\x01\n", "test.conf:1: invalid value \"1?\" for worker-threads (expected 1..256)");
	expect_err("spool-commit-delay 101ms\n",
		   "test.conf:1: invalid value \"101ms\" for spool-commit-delay (expected 0 to 100ms)");
	expect_err("spool-commit-delay 1s\n", "test.conf:1: invalid value \"1s\" for spool-commit-delay (expected 0 to 100ms)");
	expect_err("spool-commit-delay soon\n", "test.conf:1: invalid duration \"soon\" for spool-commit-delay");
	expect_err("spool-commit-delay -1ms\n", "test.conf:1: invalid duration \"-1ms\" for spool-commit-delay");
}

/* spool-commit-delay: milliseconds, 0 turns gathering off. */
static void test_spool_commit_delay(void **state)
{
	struct config cfg;

	load_ok(&cfg, "spool-commit-delay 0\n");
	assert_int_equal(cfg.spool_commit_delay_ms, 0);
	config_free(&cfg);
	load_ok(&cfg, "spool-commit-delay 5ms\n");
	assert_int_equal(cfg.spool_commit_delay_ms, 5);
	config_free(&cfg);
	load_ok(&cfg, "spool-commit-delay 100ms\n");
	assert_int_equal(cfg.spool_commit_delay_ms, 100);
	config_free(&cfg);
}

/* PowerMTA's 0 for a cap or a rate: the queue holds its mail (in backoff
 * only, for the backoff- ones); a domain without it, and `*`, still send. */
/* PowerMTA's http-api-key: an admin token; short keys warned, not refused */
static void test_http_api_key(void **state)
{
	struct config cfg;

	(void)state;
	load_warns(&cfg, "http-api-key pmtakey1\n",
		   (const char *const[]){"test.conf:1: warning: http-api-key is shorter than 16 characters", NULL});
	assert_int_equal(cfg.n_http_tokens, 1);
	assert_string_equal(cfg.http_tokens[0].token, "pmtakey1");
	assert_int_equal(cfg.http_tokens[0].role, CONFIG_HTTP_ADMIN);
	config_free(&cfg);
	expect_err("http-api-key a b\n", "test.conf:1: invalid key (one word) \"a b\" for http-api-key");
	expect_err("http-api-token 0123456789abcdef0 monitor\nhttp-api-key 0123456789abcdef0\n",
		   "test.conf:2: the same key as http-api-token or http-api-key at line 1");
}

static void test_zero_limits_hold(void **state)
{
	struct config cfg;
	const struct config_domain *d, *star, *other;

	(void)state;
	load_ok(&cfg, "<domain *>\n max-smtp-out 0\n</domain>\n"
		      "<domain held.example>\n max-msg-rate 0/h\n max-connect-rate 0\n</domain>\n"
		      "<domain other.example>\n max-smtp-out 7\n backoff-max-smtp-out 0\n"
		      " backoff-max-msg-rate 0\n</domain>\n"
		      "<domain hour.example>\n max-msg-per-hour 0\n</domain>\n");
	star = config_domain_for(&cfg, "unknown.example");
	assert_int_equal(star->max_smtp_out, 0);
	assert_false(config_rate_none(&star->max_msg_rate));
	d = config_domain_for(&cfg, "held.example");
	assert_true(config_rate_none(&d->max_msg_rate));
	assert_true(config_rate_none(&d->max_connect_rate));
	assert_int_equal(d->max_smtp_out, 0); /* from `*` */
	other = config_domain_for(&cfg, "other.example");
	assert_int_equal(other->max_smtp_out, 7);
	assert_int_equal(other->backoff_max_smtp_out, CONFIG_SMTP_OUT_NONE);
	assert_true(config_rate_none(&other->backoff_max_msg_rate));
	assert_false(config_rate_none(&other->max_msg_rate));
	assert_true(config_rate_none(&config_domain_for(&cfg, "hour.example")->max_msg_rate));
	config_free(&cfg);
	/* unlimited is not 0 */
	load_ok(&cfg, "<domain x.example>\n max-msg-rate unlimited\n max-smtp-out unlimited\n</domain>\n");
	d = config_domain_for(&cfg, "x.example");
	assert_false(config_rate_none(&d->max_msg_rate));
	assert_int_equal(d->max_smtp_out, UINT_MAX);
	config_free(&cfg);
	expect_domain_err("max-msg-rate -0/h", "test.conf:2: invalid rate \"-0/h\" for max-msg-rate");
	expect_domain_err("max-smtp-out 00", "test.conf:2: invalid value \"00\" for max-smtp-out (expected a positive integer or unlimited)");
}

static void test_err_block_values(void **state)
{
	expect_source_err("always-allow-relaying maybe",
			  "test.conf:2: invalid boolean \"maybe\" for always-allow-relaying");
	expect_domain_err("retry-after 15x", "test.conf:2: invalid duration \"15x\" for retry-after");
	expect_domain_err("retry-after 15m,15x,1h", "test.conf:2: invalid duration \"15x\" for retry-after");
	expect_domain_err("retry-after 15m,,1h", "test.conf:2: empty element in retry-after list \"15m,,1h\"");
	expect_domain_err("retry-after 15m,", "test.conf:2: empty element in retry-after list \"15m,\"");
	expect_domain_err("retry-after ,15m", "test.conf:2: empty element in retry-after list \",15m\"");
	expect_domain_err("retry-after 15m, ,1h", "test.conf:2: empty element in retry-after list \"15m, ,1h\"");
	expect_domain_err("retry-after 0s", "test.conf:2: invalid duration \"0s\" for retry-after (must be more than 0)");
	expect_domain_err("retry-after 15m 1h", "test.conf:2: invalid duration \"15m 1h\" for retry-after");
	expect_domain_err("retry-after 99999999999999999999s",
			  "test.conf:2: invalid duration \"99999999999999999999s\" for retry-after");
	expect_domain_err("bounce-after 4x", "test.conf:2: invalid duration \"4x\" for bounce-after");
	expect_domain_err("bounce-after -4h", "test.conf:2: invalid duration \"-4h\" for bounce-after");
	expect_domain_err("  max-rcpt-per-message 0",
			  "test.conf:2: invalid value \"0\" for max-rcpt-per-message (expected a positive integer or unlimited)");
	expect_domain_err("max-smtp-out 4294967296",
			  "test.conf:2: invalid value \"4294967296\" for max-smtp-out (expected a positive integer or unlimited)");
	expect_domain_err("max-msg-per-connection -3",
			  "test.conf:2: invalid value \"-3\" for max-msg-per-connection (expected a positive integer or unlimited)");
	expect_domain_err("max-rcpt-per-message lots",
			  "test.conf:2: invalid value \"lots\" for max-rcpt-per-message (expected a positive integer or unlimited)");
	expect_domain_err("route [::1", "test.conf:2: invalid host or address \"[::1\" for route");
	expect_domain_err("route *:25", "test.conf:2: invalid host or address \"*:25\" for route");
	expect_domain_err("route [127.0.0.1]:0", "test.conf:2: invalid host or address \"[127.0.0.1]:0\" for route");
	expect_domain_err("route [127.0.0.1]:x", "test.conf:2: invalid host or address \"[127.0.0.1]:x\" for route");
	expect_domain_err("route mx.example:65536",
			  "test.conf:2: invalid host or address \"mx.example:65536\" for route");
	expect_domain_err("route mx..example", "test.conf:2: invalid host or address \"mx..example\" for route");
	expect_domain_err("route mx.example:", "test.conf:2: invalid host or address \"mx.example:\" for route");
	expect_domain_err("route [mx.example]x", "test.conf:2: invalid host or address \"[mx.example]x\" for route");
	expect_domain_err("route a b", "test.conf:2: invalid host or address \"a b\" for route");
	expect_domain_err("route [::1]:25#x", "test.conf:2: invalid host or address \"[::1]:25#x\" for route");
}

/* An error late in a file that has built a lot must free all of it. */
static void test_err_after_much(void **state)
{
	expect_err("host-name a.example\npostmaster p@a.example\nbounce-domain b.example\n"
		   "tls-certificate /c\ntls-private-key /k\nsmtp-listener *:25\nhttp-listener *:80\n"
		   "<source 10/8>\n</source>\n"
		   "<domain *>\n retry-after 1m,2m\n route star.example\n</domain>\n"
		   "<domain a.example>\n retry-after 1m\n route r.example\n</domain>\n"
		   "<domain b.example>\n</domain>\n"
		   "<domain c.example>\n</domain>\n"
		   "<source 10.1.2.3/8>\n</source>\n",
		   "test.conf:22: duplicate <source 10.0.0.0/8> (first at line 8)");
	expect_err("<domain a.example>\n retry-after 1m\n route r.example\n retry-after 1m,x\n</domain>\n",
		   "test.conf:4: invalid duration \"x\" for retry-after");
}

/* ---- PowerMTA syntax seen in real configs (issue 18, second round) ----- */


/* Round 3 of real configs (issue 18): several macros in one name, several
 * names in one <domain>, custom bounce categories, `records` lists, limits
 * Salvo does not apply (accepted with a warning), an empty wildcard include. */
static void test_pmta_round3(void **state)
{
	struct config cfg;
	struct config_domain r;
	struct config_report rep;
	char big[2048];
	size_t n;
	(void)state;

	/* $isp.$tld is every isp with every tld (User's Guide 3.3.1.43.1) */
	load_ok(&cfg, "domain-macro isp yahoo, ymail\ndomain-macro tld com, co.uk\n"
		      "<domain $isp.$tld>\n max-smtp-out 7\n</domain>\n<domain x.$isp>\n max-smtp-out 4\n</domain>\n");
	for (const char *const *d = (const char *const[]){"yahoo.com", "yahoo.co.uk", "ymail.com", "ymail.co.uk", NULL};
	     *d; d++) {
		assert_int_equal(config_domain_resolve(&cfg, *d, NULL, &r), 0);
		assert_int_equal(r.max_smtp_out, 7);
		config_domain_release(&r);
	}
	assert_int_equal(config_domain_resolve(&cfg, "x.ymail", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 4);
	config_domain_release(&r);
	assert_int_equal(config_domain_resolve(&cfg, "yahoo.de", NULL, &r), 0);
	assert_int_not_equal(r.max_smtp_out, 7);
	config_domain_release(&r);
	config_free(&cfg);
	/* a product too big to be meant */
	n = (size_t)snprintf(big, sizeof(big), "domain-macro a ");
	for (int i = 0; i < 101; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%sa%d", i ? "," : "", i);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "\ndomain-macro b ");
	for (int i = 0; i < 101; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%sb%d", i ? "," : "", i);
	snprintf(big + n, sizeof(big) - n, "\n<domain $a.$b>\n</domain>\n");
	expect_err(big, "test.conf:3: \"$a.$b\" names more than 10000 domains: split it into smaller domain-macros");
	expect_err("domain-macro a x.example, $a\n<domain $a>\n</domain>\n",
		   "test.conf:1: invalid value \"$a\" in domain-macro a");
	expect_err("domain-macro a x\n<domain $a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a.example>\n</domain>\n",
		   "test.conf:2: \"$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a.example\" names more than 16 macros");
	expect_err("domain-macro a x, y\n<domain $a.$nope>\n</domain>\n",
		   "test.conf:2: no domain-macro for \"$a.$nope\" (define it with domain-macro NAME values)");

	/* several names in one tag: each gets the block */
	load_ok(&cfg, "domain-macro tld de, fr\n<domain hotmail.com  live.com\tyahoo.$tld>\n max-smtp-out 3\n</domain>\n");
	for (const char *const *d = (const char *const[]){"hotmail.com", "live.com", "yahoo.de", "yahoo.fr", NULL};
	     *d; d++) {
		assert_int_equal(config_domain_resolve(&cfg, *d, NULL, &r), 0);
		assert_int_equal(r.max_smtp_out, 3);
		config_domain_release(&r);
	}
	config_free(&cfg);
	expect_err("<domain a.example b..example>\n</domain>\n",
		   "test.conf:1: invalid domain name \"b..example\" for <domain> (expected a domain, *, *.example.com, "
		   "[*.]example.com, [ip/mask] or {queue})");

	/* custom bounce categories are the bounce's label (User's Guide 10.8) */
	load_ok(&cfg, "<bounce-category-patterns>\n /RTR:BL/ AOL-poor-reputation\n /quota/ Quota-Issues\n"
		      "</bounce-category-patterns>\n");
	assert_int_equal(cfg.n_category_patterns, 2);
	assert_string_equal(cfg.category_patterns[0].category, "AOL-poor-reputation");
	assert_string_equal(cfg.category_patterns[1].category, "quota-issues"); /* a built-in one */
	assert_string_equal(config_category_override(&cfg, "550 5.7.1 RTR:BL blocked"), "AOL-poor-reputation");
	config_free(&cfg);

	/* records: the guide's commas (spaces after them too), spaces alone, all */
	load_ok(&cfg, "<acct-file /tmp/a.csv>\n records d, b,rb\n</acct-file>\n<acct-file /tmp/b.csv>\n records d t\n"
		      "</acct-file>\n<acct-file /tmp/c.csv>\n records all\n</acct-file>\n");
	assert_int_equal(cfg.acct_files[0].records, CONFIG_ACCT_D | CONFIG_ACCT_B | CONFIG_ACCT_RB);
	assert_int_equal(cfg.acct_files[1].records, CONFIG_ACCT_D | CONFIG_ACCT_T);
	assert_int_equal(cfg.acct_files[2].records, 0xffu);
	config_free(&cfg);
	expect_err("<acct-file /tmp/a.csv>\n records , ,\n</acct-file>\n",
		   "test.conf:2: empty record type in the list for records (e.g. \"records d,b,t\")");
	expect_err("<acct-file /tmp/a.csv>\n records d,alll\n</acct-file>\n",
		   "test.conf:2: unknown record type \"alll\" for records (expected d, b, t, tq, r, f, rb, rs or all)");

	/* record-fields: blanks after the commas; PowerMTA's fields Salvo has no value for are written as
	 * empty columns (the columns stay where PowerMTA has them), said once per file (older releases'
	 * timeImprinted, the 5.0 guide's totalSecondsQueued) */
	assert_int_equal(config_load_string_report(&cfg, "test.conf",
			 "<acct-file /tmp/a.csv>\n record-fields d timeLogged, timeImprinted,rcpt,!totalSecondsQueued\n"
			 " record-fields b *, timeImprinted,!orcpt\n</acct-file>\n", &rep), 0);
	assert_int_equal(rep.n_warnings, 1);
	assert_non_null(strstr(rep.warnings, "test.conf:2: warning: record-fields field timeImprinted in <acct-file> is "
					     "accepted but not applied"));
	assert_string_equal(cfg.acct_files[0].record_fields[0], "timeLogged,timeImprinted,rcpt,!totalSecondsQueued");
	assert_string_equal(cfg.acct_files[0].record_fields[1], "*,timeImprinted,!orcpt");
	config_report_free(&rep);
	config_free(&cfg);
	expect_err("<acct-file /tmp/a.csv>\n record-fields d rcpt orig\n</acct-file>\n",
		   "test.conf:2: invalid field \"rcpt orig\" for record-fields (fields are separated by commas)");
	expect_err("<acct-file /tmp/a.csv>\n record-fields d rcpt,timeImprinte\n</acct-file>\n",
		   "test.conf:2: unknown field \"timeImprinte\" for record-fields (e.g. timeLogged, rcpt, bounceCat, "
		   "header_NAME)");

	/* limits Salvo does not apply: accepted, one warning each; unlimited says nothing */
	assert_int_equal(config_load_string_report(&cfg, "test.conf",
			 "<domain *>\n max-smtp-out-per-source-ip 5\n max-data-volume-rate 10M/h\n"
			 " source-ip-max-connect-rate 192.0.2.1 10/m\n backoff-max-connect-rate unlimited\n</domain>\n"
			 "<domain a.example>\n max-smtp-out-per-source-ip 2\n</domain>\n", &rep), 0);
	assert_int_equal(rep.n_warnings, 3);
	assert_non_null(strstr(rep.warnings, "test.conf:2: warning: max-smtp-out-per-source-ip is accepted but not "
					     "applied: outbound delivery has no such limit"));
	assert_non_null(strstr(rep.warnings, "test.conf:4: warning: source-ip-max-connect-rate is accepted"));
	config_report_free(&rep);
	config_free(&cfg);
	expect_domain_err("max-smtp-out-per-source-ip lots",
			  "test.conf:2: invalid number, rate (e.g. 100/h) or unlimited \"lots\" for max-smtp-out-per-source-ip");
	expect_err("max-smtp-out-per-source-ip 5\n",
		   "test.conf:1: \"max-smtp-out-per-source-ip\" is only valid inside <domain>");

	/* pickup, directives of other PowerMTA releases: warned; discard: refused with the alternative */
	load_warns(&cfg, "pickup /var/spool/pmta/pickup /var/spool/pmta/badmail\n"
			 "<domain *>\n check-mfrom-outbound no\n add-gm-token no\n</domain>\n"
			 "<virtual-mta v>\n smtp-source-host 192.0.2.1 v.example\n auto-cold-virtual-mta 192.0.2.2 c.example\n"
			 "</virtual-mta>\n",
		   (const char *const[]){"test.conf:1: warning: pickup is accepted but not applied",
					 "test.conf:3: warning: check-mfrom-outbound is accepted but not applied",
					 "test.conf:4: warning: add-gm-token is accepted but not applied",
					 "test.conf:8: warning: auto-cold-virtual-mta in <virtual-mta> is accepted but not applied",
					 NULL});
	config_free(&cfg);
	/* a delivery type Salvo does not have: the queue's mail is held (never sent by SMTP,
	 * never dropped); `type smtp` in a more specific block sends again */
	load_warns(&cfg, "<domain *.example>\n type discard\n</domain>\n<domain y.example>\n type http-delivery\n"
			 " http-delivery-url http://h.example/x\n</domain>\n<domain ok.example>\n type smtp\n</domain>\n",
		   (const char *const[]){"test.conf:2: warning: type discard is not implemented: this queue's mail is held",
					 "test.conf:5: warning: type http-delivery is not implemented by design (Salvo "
					 "delivers by SMTP only): this queue's mail is held",
					 "test.conf:6: warning: http-delivery-url is accepted but has no effect", NULL});
	assert_true(config_domain_for(&cfg, "a.example")->held_by_type);
	assert_true(config_domain_for(&cfg, "y.example")->held_by_type);
	assert_false(config_domain_for(&cfg, "ok.example")->held_by_type);
	assert_false(config_domain_for(&cfg, "other.test")->held_by_type);
	config_free(&cfg);
	expect_domain_err("type", "test.conf:2: missing value for type");

	/* top-level smtp-source-host (User's Guide 3.3.1.16): every virtual MTA without its own, the
	 * default one too; a second line (PowerMTA's rotation) is said, the first is used */
	load_warns(&cfg, "smtp-source-host 192.0.2.7 out.example\nsmtp-source-host 192.0.2.8 out2.example\n"
			 "<virtual-mta a>\n smtp-source-host 2001:db8::9 a.example\n smtp-source-host 192.0.2.10\n"
			 "</virtual-mta>\n<virtual-mta b>\n host-name b.example\n</virtual-mta>\n<virtual-mta c>\n</virtual-mta>\n",
		   (const char *const[]){"test.conf:2: warning: a second smtp-source-host: Salvo sends from one address per "
					 "virtual MTA, the first (192.0.2.7) is used",
					 "test.conf:5: warning: a second smtp-source-host in <virtual-mta> a:", NULL});
	assert_string_equal(cfg.vmtas[0].name, "default");
	assert_true(cfg.vmtas[0].has_source);
	assert_string_equal(cfg.vmtas[0].source.text, "192.0.2.7");
	assert_string_equal(cfg.vmtas[0].helo, "out.example");
	for (size_t v = 1; v < cfg.n_vmtas; v++) {
		const struct config_vmta *m = &cfg.vmtas[v];

		assert_true(m->has_source);
		if (!strcmp(m->name, "a")) {
			assert_string_equal(m->source.text, "2001:db8::9");
			assert_string_equal(m->helo, "a.example");
		} else {
			assert_string_equal(m->source.text, "192.0.2.7");
			assert_string_equal(m->helo, strcmp(m->name, "b") ? "out.example" : "b.example");
		}
	}
	config_free(&cfg);
	expect_err("<virtual-mta v>\n smtp-source-host mail.example 192.0.2.1\n</virtual-mta>\n",
		   "test.conf:2: smtp-source-host mail.example 192.0.2.1: the address comes first (smtp-source-host IP "
		   "HOST-NAME)");
	expect_err("smtp-source-host 10/8 baz.example\n", "test.conf:1: smtp-source-host 10/8: a range of local addresses "
		   "is not supported: give one address per <virtual-mta> and list them in a <virtual-mta-pool>");
	expect_err("smtp-source-host 192.0.2.1 bad..helo\n",
		   "test.conf:1: invalid HELO name \"bad..helo\" for smtp-source-host");
	load_ok(&cfg, "smtp-source-host 192.0.2.1\n");
	assert_null(cfg.vmtas[0].helo); /* the host-name says HELO */
	config_free(&cfg);

	/* an address where a name goes: <domain IP> names user@IP; host-name IP greets with [IP] */
	load_warns(&cfg, "host-name 192.0.2.21\n<domain 203.0.113.9>\n max-smtp-out 2\n</domain>\n"
			 "<virtual-mta v>\n smtp-source-host 192.0.2.22 2001:db8::22\n</virtual-mta>\n"
			 "<virtual-mta w>\n host-name 192.0.2.23\n</virtual-mta>\n",
		   (const char *const[]){"test.conf:1: warning: host-name 192.0.2.21 is an address, not a host name: Salvo "
					 "greets with the address literal [192.0.2.21]",
					 "test.conf:6: warning: smtp-source-host 2001:db8::22 is an address, not a host name: "
					 "Salvo greets with the address literal [IPv6:2001:db8::22]", NULL});
	assert_string_equal(cfg.host_name, "[192.0.2.21]");
	assert_int_equal(config_domain_resolve(&cfg, "203.0.113.9", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 2);
	config_domain_release(&r);
	for (size_t v = 0; v < cfg.n_vmtas; v++)
		if (!strcmp(cfg.vmtas[v].name, "v"))
			assert_string_equal(cfg.vmtas[v].helo, "[IPv6:2001:db8::22]");
		else if (!strcmp(cfg.vmtas[v].name, "w"))
			assert_string_equal(cfg.vmtas[v].helo, "[192.0.2.23]");
	config_free(&cfg);
	expect_err("host-name 192.0.2.300\n", "test.conf:1: invalid host name \"192.0.2.300\" for host-name");

	/* domain-macro values on the lines below it (`domain-macro yahoo` then the list), or a list
	 * broken after a comma: read as one line, told by its first; later lines keep their numbers */
	load_ok(&cfg, "domain-macro orange\norange.fr,wanadoo.fr\n<domain $orange>\n max-smtp-out 3\n</domain>\n"
		      "domain-macro big a.example, b.example,   # more below\n  c.example,\nd.example\n"
		      "<domain $big>\n max-smtp-out 4\n</domain>\n");
	for (const char *const *d = (const char *const[]){"orange.fr", "wanadoo.fr", NULL}; *d; d++) {
		assert_int_equal(config_domain_resolve(&cfg, *d, NULL, &r), 0);
		assert_int_equal(r.max_smtp_out, 3);
		config_domain_release(&r);
	}
	for (const char *const *d = (const char *const[]){"a.example", "c.example", "d.example", NULL}; *d; d++) {
		assert_int_equal(config_domain_resolve(&cfg, *d, NULL, &r), 0);
		assert_int_equal(r.max_smtp_out, 4);
		config_domain_release(&r);
	}
	config_free(&cfg);
	/* never across a blank line, a directive or a complete list */
	expect_err("domain-macro m\n\nx.example,y.example\n",
		   "test.conf:1: domain-macro wants a name and values: \"domain-macro tld com, net\"");
	expect_err("domain-macro m a.example\nb.example\n", "test.conf:2: unknown directive \"b.example\"");
	expect_err("domain-macro m a.example,\nhost-name x.example\n<domain $m>\n</domain>\nbad\n",
		   "test.conf:1: invalid value \"\" in domain-macro m");

	/* allow-mailmerge yes (XMRG is never offered) and older releases' log-messages: warned */
	load_warns(&cfg, "<source 0/0>\n allow-mailmerge yes\n</source>\n<domain *>\n log-messages yes\n</domain>\n",
		   (const char *const[]){"test.conf:2: warning: allow-mailmerge is accepted but not applied: mail merge (XMRG) is "
					 "not implemented by design and never offered",
					 "test.conf:5: warning: log-messages is accepted but not applied", NULL});
	config_free(&cfg);
	expect_err("<source 0/0>\n allow-mailmerge sometimes\n</source>\n",
		   "test.conf:2: invalid boolean \"sometimes\" for allow-mailmerge");

	/* smtp-source-host A-B: the first address (said); IP/32: that address */
	load_warns(&cfg, "<virtual-mta v>\n smtp-source-host 192.0.2.1-192.0.2.4 v.example\n</virtual-mta>\n"
			 "<virtual-mta w>\n smtp-source-host 192.0.2.9/32 w.example\n</virtual-mta>\n",
		   (const char *const[]){"test.conf:2: warning: smtp-source-host 192.0.2.1-192.0.2.4: Salvo sends from one "
					 "address per virtual MTA, the first (192.0.2.1) is used", NULL});
	for (size_t v = 0; v < cfg.n_vmtas; v++)
		if (!strcmp(cfg.vmtas[v].name, "v"))
			assert_string_equal(cfg.vmtas[v].source.text, "192.0.2.1");
		else if (!strcmp(cfg.vmtas[v].name, "w"))
			assert_string_equal(cfg.vmtas[v].source.text, "192.0.2.9");
	config_free(&cfg);
	expect_err("<virtual-mta v>\n smtp-source-host 192.0.2.1-host v.example\n</virtual-mta>\n",
		   "test.conf:2: smtp-source-host 192.0.2.1-host: a range of local addresses is not supported: give one "
		   "address per <virtual-mta> and list them in a <virtual-mta-pool>");

	/* an unknown directive close to one of the open block's says so */
	expect_domain_err("max-smpt-out 3", "test.conf:2: unknown directive \"max-smpt-out\" (did you mean max-smtp-out?)");
	expect_domain_err("smtp-auth-username u", "test.conf:2: unknown directive \"smtp-auth-username\" (did you mean "
			  "auth-username?)");
	expect_domain_err("frobnicate 3", "test.conf:2: unknown directive \"frobnicate\"");
	expect_err("max-smpt-out 3\n", "test.conf:1: unknown directive \"max-smpt-out\""); /* none at top level */

	/* a file saved by a Windows editor: a byte order mark, CRLF line ends */
	load_ok(&cfg, "\xef\xbb\xbfhost-name mta.example\r\n<domain *>\r\n max-smtp-out 4\r\n</domain>\r\n");
	assert_string_equal(cfg.host_name, "mta.example");
	config_free(&cfg);
	expect_err("host-name mta.example\n\xef\xbb\xbfmax-smtp-out 4\n",
		   "test.conf:2: unknown directive \"\xef\xbb\xbfmax-smtp-out\"");

	/* a wildcard include that matches nothing includes nothing; a missing file is an error */
	load_warns(&cfg, "include /nonexistent-salvo-dir/*.conf\nhost-name a.example\n",
		   (const char *const[]){"test.conf:1: warning: include: /nonexistent-salvo-dir/*.conf matches no file, "
					 "so nothing is included", NULL});
	config_free(&cfg);
	expect_err("include /nonexistent-salvo-dir/one.conf\n",
		   "test.conf:1: include: /nonexistent-salvo-dir/one.conf: no such file");
}

static void test_pmta_round2(void **state)
{
	struct config cfg;
	struct config_domain r;
	(void)state;

	/* a domain named twice is merged, a later value wins, and it is said */
	load_warns(&cfg, "<domain a.example>\n max-smtp-out 3\n retry-after 1m\n</domain>\n"
			 "<domain *>\n</domain>\n<domain *>\n bounce-after 1h\n</domain>\n"
			 "domain-macro m a.example,b.example,a.example\n<domain $m>\n max-smtp-out 5\n</domain>\n",
		   (const char *const[]){"test.conf:11: warning: <domain a.example> again (first at line 1)",
					 "test.conf:7: warning: <domain *> again (first at line 5)", NULL});
	assert_int_equal(config_domain_resolve(&cfg, "a.example", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 5);
	assert_int_equal(r.retry_after_ms[0], MIN);
	assert_int_equal(r.bounce_after_ms, HOUR);
	config_domain_release(&r);
	config_free(&cfg);
	/* a macro may be used before its line; still never undefined, never twice */
	load_ok(&cfg, "<domain $late>\n max-smtp-out 2\n</domain>\ndomain-macro late x.example\n");
	assert_int_equal(config_domain_resolve(&cfg, "x.example", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 2);
	config_domain_release(&r);
	config_free(&cfg);
	expect_err("domain-macro m a.example\ndomain-macro m b.example\n", "test.conf:2: duplicate domain-macro m");
	/* quoted values, sizes, smtp-port, total-max-smtp-in, max-msg-per-hour */
	load_ok(&cfg, "<smtp-user u>\n password \"s3cret\"\n</smtp-user>\n<source 10/8>\n max-message-size 0\n</source>\n"
		      "<source 11/8>\n max-message-size 100b\n</source>\nsmtp-port 2526\ntotal-max-smtp-in 7\n"
		      "<domain *>\n max-msg-per-hour 360\n</domain>\n");
	assert_string_equal(cfg.smtp_users[0].password, "s3cret");
	assert_int_equal(source_for(&cfg, "10.1.1.1")->max_message_size, UINT64_MAX);
	assert_int_equal(source_for(&cfg, "11.1.1.1")->max_message_size, 100);
	assert_int_equal(cfg.smtp_max_connections, 7);
	assert_int_equal(cfg.domains[0].max_msg_rate.count, 360);
	config_free(&cfg);
	expect_source_err("max-message-size 10x", "test.conf:2: invalid size, 0 or \"unlimited\" \"10x\" for max-message-size");
	expect_err("smtp-port 0\n", "test.conf:1: invalid port (1-65535) \"0\" for smtp-port");
	expect_domain_err("max-msg-per-hour 1/h", "test.conf:2: invalid count per hour (or unlimited) \"1/h\" for max-msg-per-hour");
	/* /REGEX/WORD with no space; an unclosed one still fails */
	load_ok(&cfg, "<bounce-category-patterns>\n/x\\/y/other\n</bounce-category-patterns>\n");
	config_free(&cfg);
	expect_err("<bounce-category-patterns>\n/abc\n</bounce-category-patterns>\n",
		   "test.conf:2: bounce-category-pattern: unterminated /REGEX/ in \"/abc\" (a pattern must be on one line)");
	/* domain-key: * and names; relay-domain forms; vmta host-name */
	load_ok(&cfg, "domain-key s,*,/k.pem\nrelay-domain [*.]b.example\nrelay-domain *.c.example\n"
		      "<virtual-mta v>\n host-name v.example\n smtp-source-host 192.0.2.1\n</virtual-mta>\n");
	assert_string_equal(cfg.domain_keys[0].domain, "*");
	for (size_t i = 0; i < cfg.n_vmtas; i++)
		if (!strcmp(cfg.vmtas[i].name, "v"))
			assert_string_equal(cfg.vmtas[i].helo, "v.example");
	config_free(&cfg);
	expect_err("domain-key s,*x,/k.pem\n", "test.conf:1: invalid domain \"*x\" for domain-key (a domain name or *)");
	expect_err("relay-domain [*.]\n", "test.conf:1: invalid domain name (or *.name, [*.]name) \"[*.]\" for relay-domain");
	expect_err("<virtual-mta v>\n host-name a..b\n</virtual-mta>\n", "test.conf:2: invalid host name \"a..b\" for host-name");
	/* PowerMTA's directives Salvo does not have: a warning, or refused with what to use */
	load_warns(&cfg, "total-max-smtp-out 100\n<domain *>\n dk-sign yes\n reuse-ssl-session yes\n</domain>\n",
		   (const char *const[]){"total-max-smtp-out is accepted but not applied: not a Salvo feature",
					 "dk-sign is accepted but not applied", "reuse-ssl-session is accepted but not applied", NULL});
	config_free(&cfg);
	expect_domain_err("reuse-ssl-session maybe", "test.conf:2: invalid boolean \"maybe\" for reuse-ssl-session");
	load_warns(&cfg, "dummy-smtp-port 25\n", (const char *const[]){"test.conf:1: warning: dummy-smtp-port is "
		   "accepted but has no effect: it is PowerMTA's built-in test sink, which Salvo does not have by design: "
		   "run salvo-sink (or Postfix's smtp-sink) as the test peer", NULL});
	config_free(&cfg);
	load_warns(&cfg, "<virtual-mta v>\n smtp-source-host 192.0.2.1 v.example\n max-smtp-out 5\n</virtual-mta>\n",
		   (const char *const[]){"test.conf:3: warning: max-smtp-out in <virtual-mta> is accepted but not applied: "
					 "Salvo limits each queue, not a virtual MTA's total, so it has no effect; put the "
					 "limit in a <domain *> inside the <virtual-mta>", NULL});
	config_free(&cfg);
	expect_err("<virtual-mta v>\n max-smtp-out many\n</virtual-mta>\n",
		   "test.conf:2: invalid number, rate (e.g. 100/h) or unlimited \"many\" for max-smtp-out");
	load_warns(&cfg, "<domain x.example>\nsmtp-tls-allow-tlsv1 yes\n</domain>\n",
		   (const char *const[]){"test.conf:2: warning: smtp-tls-allow-tlsv1 yes is accepted but has no effect: "
					 "SSLv3, TLS 1.0 and 1.1 are deprecated (RFC 8996) and never used", NULL});
	config_free(&cfg);
	expect_domain_err("smtp-tls-allow-tlsv1 maybe", "test.conf:2: invalid boolean \"maybe\" for smtp-tls-allow-tlsv1");
	/* PowerMTA's own defaults (its `show settings`): unlimited, never, "" (clear) */
	load_warns(&cfg, "<domain *>\n max-smtp-out unlimited\n max-errors-per-connection unlimited\n"
			 " backoff-to-normal-after never\n smtp-pattern-list \"\"\n reenable-source-ip-after never\n"
			 " max-data-volume-rate unlimited\n sparkpost-sandbox false\n</domain>\n"
			 "<domain a.example>\n smtp-hosts \"\"\n</domain>\n",
		   (const char *const[]){"test.conf:11: warning: smtp-hosts \"\" (clear the inherited value) is accepted but "
					 "not applied", NULL});
	assert_int_equal(cfg.domains[0].max_smtp_out, UINT_MAX);
	assert_int_equal(cfg.domains[0].max_errors_per_connection, 0);
	assert_true(cfg.domains[0].backoff_to_normal_after_ms > 50ULL * 365 * DAY);
	assert_null(cfg.domains[0].smtp_pattern_list);
	config_free(&cfg);
	load_warns(&cfg, "smtp-server-tls-ciphers HIGH:!aNULL\n<domain *>\n bounce-upon-no-mx 30m\n</domain>\n",
		   (const char *const[]){"test.conf:3: warning: bounce-upon-no-mx 30m is accepted as no", NULL});
	assert_string_equal(cfg.tls_ciphers, "HIGH:!aNULL");
	assert_false(cfg.domains[0].bounce_upon_no_mx);
	config_free(&cfg);
	expect_domain_err("bounce-upon-no-mx soon", "test.conf:2: invalid boolean \"soon\" for bounce-upon-no-mx");
	expect_err("<acct-file /x.csv>\n http-webhook-url https://h/\n</acct-file>\n", "test.conf:2: http-webhook-url in "
		   "<acct-file> is not implemented: post accounting records with an <acct-webhook NAME> block (url, records, "
		   "max-batch, secret)");
	expect_domain_err("max-data-volume-rate 10M", "test.conf:2: invalid data rate (e.g. 10M/h) or unlimited "
			  "\"10M\" for max-data-volume-rate");
	expect_domain_err("max-data-volume-rate 10Q/h", "test.conf:2: invalid data rate (e.g. 10M/h) or unlimited "
			  "\"10Q/h\" for max-data-volume-rate");
	expect_domain_err("backoff-to-normal-after sometime", "test.conf:2: invalid duration \"sometime\" for "
			  "backoff-to-normal-after");
	/* <smtp-listener ADDR> blocks; blocks skipped with a warning; blocks refused */
	load_warns(&cfg, "<source {inj}>\n always-allow-relaying yes\n</source>\n<smtp-listener 0/0:2600>\n source {inj}\n"
			 " await-slot true\n</smtp-listener>\n<dns>\n anything at all\n</dns>\n",
		   (const char *const[]){"test.conf:6: warning: await-slot in <smtp-listener> is accepted but not applied",
					 "test.conf:8: warning: <dns> is accepted but not applied", NULL});
	assert_int_equal(cfg.n_smtp_listeners, 1);
	assert_string_equal(cfg.smtp_listeners[0].text, "0.0.0.0:2600");
	assert_string_equal(cfg.smtp_listener_source[0], "inj");
	config_free(&cfg);
	expect_err("<smtp-listener 0/0:25>\n immediate-tls yes\n</smtp-listener>\n",
		   "test.conf:2: immediate-tls yes is not supported: for implicit TLS (SMTPS) use smtps-listener ADDR "
		   "instead of this listener");
	expect_err("<smtp-listener 0/0:25>\n tls-certificate /k.pem secret\n</smtp-listener>\n",
		   "test.conf:2: tls-certificate in <smtp-listener> is not implemented: one certificate serves every "
		   "listener; set smtp-server-tls-certificate FILE (or tls-certificate and tls-private-key)");
	expect_err("<vault>\n</vault>\n", "test.conf:1: <vault> is not implemented: keys are read from files "
		   "(domain-key SELECTOR,DOMAIN,FILE)");
	/* [ip/mask] domains: IP-literal domains in the network, the longest prefix first */
	load_ok(&cfg, "<domain [0/0]>\n max-smtp-out 3\n</domain>\n<domain [192.0.2.0/24]>\n max-smtp-out 4\n</domain>\n");
	assert_int_equal(config_domain_resolve(&cfg, "[192.0.2.7]", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 4);
	config_domain_release(&r);
	assert_int_equal(config_domain_resolve(&cfg, "[10.0.0.1]", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 3);
	config_domain_release(&r);
	assert_int_equal(config_domain_resolve(&cfg, "x10.example", NULL, &r), 0);
	assert_int_equal(r.max_smtp_out, 20);
	config_domain_release(&r);
	config_free(&cfg);
	expect_err("<domain [1.2.3.4/33]>\n</domain>\n", "test.conf:1: invalid domain name \"[1.2.3.4/33]\" for <domain> "
		   "(expected a domain, *, *.example.com, [*.]example.com, [ip/mask] or {queue})");
}

/* `include FILE`: its lines parsed in place, named by their own file. */
static void test_include(void **state)
{
	char dir[] = "/tmp/test_config_inc.XXXXXX", path[256], text[512];
	struct config cfg;
	struct config_report rep;
	FILE *f;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.conf", dir);
	f = fopen(path, "w");
	fputs("max-smtp-out 4\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/b.conf", dir);
	f = fopen(path, "w");
	fputs("<domain b.example>\n bogus 1\n</domain>\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/self.conf", dir);
	f = fopen(path, "w");
	fputs("include self.conf\n", f);
	fclose(f);
	/* relative to the includer; inside a block; a wildcard */
	snprintf(path, sizeof(path), "%s/main.conf", dir);
	f = fopen(path, "w");
	fputs("<domain *>\n include a.conf\n</domain>\n", f);
	fclose(f);
	assert_int_equal(config_load(&cfg, path, (char[CONFIG_ERR_MAX]){0}), 0);
	assert_int_equal(cfg.domains[0].max_smtp_out, 4);
	config_free(&cfg);
	/* every error names its file and line, and the includer's lines go on counting */
	snprintf(text, sizeof(text), "include %s/b.c*\ninclude nope.conf\ninclude http://x/y\n"
		 "include %s/self.conf\ninclude\nfrob 1\n", dir, dir);
	assert_int_equal(config_load_string_report(&cfg, "t.conf", text, &rep), -1);
	snprintf(text, sizeof(text), "%s/b.conf:2: unknown directive \"bogus\"", dir);
	assert_non_null(strstr(rep.errors, text));
	assert_non_null(strstr(rep.errors, "t.conf:2: include: ./nope.conf: no such file"));
	assert_non_null(strstr(rep.errors, "t.conf:3: include of a URL (\"http://x/y\") is not supported"));
	assert_non_null(strstr(rep.errors, "more than 8 levels of include"));
	assert_non_null(strstr(rep.errors, "t.conf:5: missing value for include"));
	assert_non_null(strstr(rep.errors, "t.conf:6: unknown directive \"frob\""));
	config_report_free(&rep);
	/* a device that never ends is refused, not read for ever */
	assert_int_equal(config_load_string_report(&cfg, "t.conf", "include /dev/zero\n", &rep), -1);
	assert_non_null(strstr(rep.errors, "t.conf:1: include: /dev/zero: larger than 64 MiB: not a configuration file"));
	config_report_free(&rep);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

/* ---- delivery policy: virtual MTAs, pools, rollups, patterns ------------ */

static const char *const POLICY =
	"host-name mta.example.com\n"
	"<source 127.0.0.1>\n"
	"  always-allow-relaying yes\n"
	"  process-x-virtual-mta yes\n"
	"  process-x-job yes\n"
	"  default-virtual-mta blast\n"
	"</source>\n"
	"<source 10.0.0.0/8>\n"
	"  default-virtual-mta mta2\n"
	"</source>\n"
	"<virtual-mta-pool blast>\n"          /* members defined further down */
	"  virtual-mta mta1\n"
	"  virtual-mta MTA2\n"
	"</virtual-mta-pool>\n"
	"<virtual-mta mta1>\n"
	"  smtp-source-host 127.0.0.2 mta1.example.com\n"
	"</virtual-mta>\n"
	"<virtual-mta mta2>\n"
	"  smtp-source-host ::1\n"
	"</virtual-mta>\n"
	"<mx-rollup-list>\n"
	"  mx *.google.com      google.rollup\n"
	"  mx *.GoogleMail.com  google.rollup\n"
	"</mx-rollup-list>\n"
	"<smtp-pattern-list blocks>\n"
	"  reply /421.*try again later/ mode=backoff\n"
	"  reply /TS03 a/b/ mode=backoff,disable-source-ip,reenable-after=2h\n"
	"  reply /^5.. .*spam/ bounce-rcpt, skip-mx\n"
	"  reply /all clear/ mode=normal\n"
	"</smtp-pattern-list>\n"
	"<bounce-category-patterns>\n"
	"  /mailbox (is )?full/ quota-issues\n"
	"  /blocked by [a-z]+/ Spam-Related\n"
	"</bounce-category-patterns>\n"
	"<domain *>\n"
	"  smtp-pattern-list blocks\n"
	"  max-msg-rate 100/h\n"
	"  idle-timeout 3s\n"
	"  smtp-data-termination-timeout 90s\n"
	"</domain>\n"
	"<domain google.rollup>\n"
	"  max-smtp-out 10\n"
	"  max-msg-rate 3600/h\n"
	"  max-connect-rate 83/10m\n"
	"  max-rcpt-per-transaction 7\n"
	"  backoff-max-msg-rate 600/h\n"
	"  backoff-max-smtp-out 2\n"
	"  backoff-retry-after 30m,1h\n"
	"  backoff-to-normal-after 1h\n"
	"</domain>\n"
	"<domain hotmail.com>\n"
	"  queue-to Outlook.Example\n"
	"  max-msg-rate unlimited\n"
	"</domain>\n";

static void test_policy_blocks(void **state)
{
	struct config cfg;
	struct sockaddr_storage ss;
	(void)state;

	load_ok(&cfg, POLICY);
	/* vmtas: the built-in default plus the file's two */
	assert_int_equal(cfg.n_vmtas, 3);
	assert_string_equal(cfg.vmtas[0].name, "default");
	assert_false(cfg.vmtas[0].has_source);
	assert_string_equal(cfg.vmtas[1].name, "mta1");
	assert_true(cfg.vmtas[1].has_source);
	assert_int_equal(cfg.vmtas[1].source.sa.ss_family, AF_INET);
	assert_string_equal(cfg.vmtas[1].source.text, "127.0.0.2");
	assert_int_equal(((struct sockaddr_in *)&cfg.vmtas[1].source.sa)->sin_port, 0);
	assert_string_equal(cfg.vmtas[1].helo, "mta1.example.com");
	assert_int_equal(cfg.vmtas[2].source.sa.ss_family, AF_INET6);
	assert_null(cfg.vmtas[2].helo);
	/* pools: default, blast, then one implicit pool per vmta */
	assert_string_equal(cfg.pools[0].name, "default");
	assert_int_equal(cfg.pools[0].n_vmtas, 1);
	assert_int_equal(cfg.pools[0].vmtas[0], 0);
	ssize_t blast = config_pool_find(&cfg, "BLAST");
	assert_true(blast > 0);
	assert_int_equal(cfg.pools[blast].n_vmtas, 2);
	assert_int_equal(cfg.pools[blast].vmtas[0], 1);
	assert_int_equal(cfg.pools[blast].vmtas[1], 2);
	ssize_t m2 = config_pool_find(&cfg, "mta2");
	assert_true(m2 > 0);
	assert_int_equal(cfg.pools[m2].n_vmtas, 1);
	assert_int_equal(cfg.pools[m2].vmtas[0], 2);
	assert_int_equal(config_pool_find(&cfg, "nope"), -1);
	/* sources */
	const struct config_source *src = config_source_for(&cfg, (ss = sa_of("127.0.0.1"), (struct sockaddr *)&ss));
	assert_non_null(src);
	assert_true(src->process_x_virtual_mta);
	assert_true(src->process_x_job);
	assert_int_equal(src->default_pool, blast);
	src = config_source_for(&cfg, (ss = sa_of("10.1.2.3"), (struct sockaddr *)&ss));
	assert_int_equal(src->default_pool, m2);
	assert_false(src->process_x_virtual_mta);
	/* rollups */
	assert_string_equal(config_rollup_for(&cfg, "gmail-smtp-in.l.google.com"), "google.rollup");
	assert_string_equal(config_rollup_for(&cfg, "ASPMX.L.GOOGLE.COM."), "google.rollup");
	assert_string_equal(config_rollup_for(&cfg, "alt1.googlemail.com"), "google.rollup");
	assert_null(config_rollup_for(&cfg, "google.com.evil.example"));
	assert_null(config_rollup_for(&cfg, "mx.example.com"));
	/* pattern lists */
	assert_int_equal(cfg.n_pattern_lists, 1);
	const struct config_pattern_list *pl = &cfg.pattern_lists[0];
	assert_int_equal(pl->n_rules, 4);
	assert_int_equal(pl->rules[0].actions, CONFIG_PAT_MODE_BACKOFF);
	assert_true(pcre_re_match(pl->rules[0].re, "421 4.7.0 Try Again Later"));
	assert_false(pcre_re_match(pl->rules[0].re, "451 4.7.0 later"));
	assert_string_equal(pl->rules[1].text, "TS03 a/b");
	assert_int_equal(pl->rules[1].actions, CONFIG_PAT_MODE_BACKOFF | CONFIG_PAT_DISABLE_SOURCE_IP);
	assert_int_equal(pl->rules[1].reenable_after_ms, 2 * HOUR);
	assert_int_equal(pl->rules[0].reenable_after_ms, HOUR);
	assert_int_equal(pl->rules[2].actions, CONFIG_PAT_BOUNCE_RCPT | CONFIG_PAT_SKIP_MX);
	assert_int_equal(pl->rules[3].actions, CONFIG_PAT_MODE_NORMAL);
	/* bounce category overrides */
	assert_int_equal(cfg.n_category_patterns, 2);
	assert_string_equal(cfg.category_patterns[1].category, "spam-related");
	assert_string_equal(cfg.category_patterns[0].text, "mailbox (is )?full");
	/* domains: inheritance of the new fields */
	const struct config_domain *g = config_domain_for(&cfg, "google.rollup");
	assert_int_equal(g->max_smtp_out, 10);
	assert_int_equal(g->max_msg_rate.count, 3600);
	assert_int_equal(g->max_msg_rate.per_ms, HOUR);
	assert_int_equal(g->max_connect_rate.count, 83);
	assert_int_equal(g->max_connect_rate.per_ms, 10 * MIN);
	assert_int_equal(g->max_rcpt_per_message, 7);
	assert_int_equal(g->backoff_max_msg_rate.count, 600);
	assert_int_equal(g->backoff_max_smtp_out, 2);
	assert_int_equal(g->n_backoff_retry_after, 2);
	assert_int_equal(g->backoff_retry_after_ms[1], HOUR);
	assert_int_equal(g->backoff_to_normal_after_ms, HOUR);
	assert_int_equal(g->idle_timeout_ms, 3 * SEC);
	assert_int_equal(g->smtp_data_termination_timeout_ms, 90 * SEC); /* from <domain *> */
	assert_int_equal(g->data_send_timeout_ms, 180 * SEC);             /* built in */
	assert_int_equal(g->pattern_list, 0);
	assert_null(g->queue_to);
	const struct config_domain *h = config_domain_for(&cfg, "hotmail.com");
	assert_string_equal(h->queue_to, "outlook.example");
	assert_int_equal(h->max_msg_rate.count, 0);
	assert_int_equal(h->pattern_list, 0);
	const struct config_domain *star = config_domain_for(&cfg, "other.example");
	assert_int_equal(star->max_msg_rate.count, 100);
	assert_int_equal(star->max_connect_rate.count, 0);
	assert_int_equal(star->n_backoff_retry_after, 0);
	config_free(&cfg);
}

static void test_policy_defaults(void **state)
{
	struct config cfg;
	(void)state;

	load_ok(&cfg, "host-name a.example\n");
	assert_int_equal(cfg.n_vmtas, 1);
	assert_int_equal(cfg.n_pools, 1);
	assert_int_equal(cfg.sources[0].default_pool, 0);
	const struct config_domain *d = config_domain_for(&cfg, "x.example");
	assert_int_equal(d->idle_timeout_ms, 5 * SEC);
	assert_int_equal(d->connect_timeout_ms, 30 * SEC);
	assert_int_equal(d->smtp_greeting_timeout_ms, 300 * SEC);
	assert_int_equal(d->data_send_timeout_ms, 180 * SEC);
	assert_int_equal(d->smtp_data_termination_timeout_ms, 600 * SEC);
	assert_int_equal(d->pattern_list, -1);
	assert_int_equal(d->backoff_to_normal_after_ms, HOUR);
	assert_int_equal(d->max_msg_rate.count, 0);
	config_free(&cfg);
	/* a file's "default" vmta and pool replace the built-in ones */
	load_ok(&cfg, "<virtual-mta default>\n smtp-source-host 127.0.0.9 d.example\n</virtual-mta>\n"
		      "<virtual-mta other>\n smtp-source-host 127.0.0.8\n</virtual-mta>\n"
		      "<virtual-mta-pool default>\n virtual-mta other\n virtual-mta default\n</virtual-mta-pool>\n");
	assert_int_equal(cfg.n_vmtas, 2);
	assert_true(cfg.vmtas[0].has_source);
	assert_int_equal(cfg.pools[0].n_vmtas, 2);
	assert_int_equal(cfg.pools[0].vmtas[0], 1);
	config_free(&cfg);
}

static void test_policy_errors(void **state)
{
	(void)state;
	expect_err("<virtual-mta a>\n smtp-source-host 127.0.0.300 a.example\n</virtual-mta>\n",
		   "test.conf:2: invalid source address \"127.0.0.300\" for smtp-source-host (an IP address)");
	expect_err("<virtual-mta a>\n smtp-source-host 127.0.0.2:25\n</virtual-mta>\n",
		   "test.conf:2: invalid source address \"127.0.0.2:25\" for smtp-source-host (an IP address)");
	expect_err("<virtual-mta a>\n smtp-source-host 127.0.0.2 bad..name\n</virtual-mta>\n",
		   "test.conf:2: invalid HELO name \"bad..name\" for smtp-source-host");
	expect_err("<virtual-mta a>\n</virtual-mta>\n<virtual-mta A>\n</virtual-mta>\n",
		   "test.conf:3: duplicate <virtual-mta A> (first at line 1)");
	expect_err("<virtual-mta a b>\n</virtual-mta>\n",
		   "test.conf:1: too many arguments for <virtual-mta>: \"a b\"");
	expect_err("<virtual-mta-pool p>\n virtual-mta ghost\n</virtual-mta-pool>\n",
		   "test.conf:1: <virtual-mta-pool p>: no <virtual-mta ghost>");
	expect_err("<virtual-mta-pool p>\n</virtual-mta-pool>\n",
		   "test.conf:1: <virtual-mta-pool p> lists no virtual-mta");
	expect_err("<source 0/0>\n default-virtual-mta nowhere\n</source>\n",
		   "test.conf:1: default-virtual-mta \"nowhere\": no such virtual-mta or virtual-mta-pool");
	expect_err("<mx-rollup-list x>\n</mx-rollup-list>\n", "test.conf:1: <mx-rollup-list> takes no argument");
	expect_err("<mx-rollup-list>\n mx *.google.com\n</mx-rollup-list>\n",
		   "test.conf:2: mx wants a host pattern and a queue name: \"mx *.google.com google.rollup\"");
	expect_err("<mx-rollup-list>\n mx *.goo/gle.com g.rollup\n</mx-rollup-list>\n",
		   "test.conf:2: invalid host pattern \"*.goo/gle.com\" for mx");
	expect_err("<smtp-pattern-list>\n</smtp-pattern-list>\n",
		   "test.conf:1: missing argument for <smtp-pattern-list>");
	expect_err("<smtp-pattern-list p>\n reply 421 mode=backoff\n</smtp-pattern-list>\n",
		   "test.conf:2: reply: expected /REGEX/ at \"421 mode=backoff\"");
	expect_err("<smtp-pattern-list p>\n reply /421 mode=backoff\n</smtp-pattern-list>\n",
		   "test.conf:2: reply: unterminated /REGEX/ in \"/421 mode=backoff\" (a pattern must be on one line)");
	expect_err("<smtp-pattern-list p>\n reply /4(21/ mode=backoff\n</smtp-pattern-list>\n",
		   "test.conf:2: reply: bad regex /4(21/: missing closing parenthesis at offset 4");
	expect_err("<smtp-pattern-list p>\n reply /421/ mode=fast\n</smtp-pattern-list>\n",
		   "test.conf:2: unknown reply action \"mode=fast\" (mode=backoff, mode=normal, "
		   "disable-source-ip, reenable-after=DURATION, skip-mx, bounce-rcpt, bounce-queue, defer-queue)");
	expect_err("<smtp-pattern-list p>\n reply /421/\n</smtp-pattern-list>\n",
		   "test.conf:2: reply rule without actions");
	expect_err("<smtp-pattern-list p>\n reply /421/ mode=backoff,mode=normal\n</smtp-pattern-list>\n",
		   "test.conf:2: reply rule with both mode=backoff and mode=normal");
	expect_err("<smtp-pattern-list p>\n reply /x/ skip-mx\n reply /421/ bounce-queue,defer-queue\n</smtp-pattern-list>\n",
		   "test.conf:3: reply rule with both bounce-queue and defer-queue");
	expect_err("<smtp-pattern-list p>\n reply /421/ defer-queue,bounce-queue-now\n</smtp-pattern-list>\n",
		   "test.conf:2: unknown reply action \"bounce-queue-now\" (mode=backoff, mode=normal, "
		   "disable-source-ip, reenable-after=DURATION, skip-mx, bounce-rcpt, bounce-queue, defer-queue)");
	expect_err("<smtp-pattern-list p>\n reply /421/ reenable-after=0\n</smtp-pattern-list>\n",
		   "test.conf:2: invalid duration \"0\" for reenable-after");
	expect_err("<smtp-pattern-list p>\n</smtp-pattern-list>\n<smtp-pattern-list P>\n</smtp-pattern-list>\n",
		   "test.conf:3: duplicate <smtp-pattern-list P> (first at line 1)");
	expect_err("<domain a.example>\n smtp-pattern-list nope\n</domain>\n",
		   "test.conf:1: smtp-pattern-list \"nope\": no such <smtp-pattern-list>");
	expect_err("<bounce-category-patterns>\n /full/ kinda|full\n</bounce-category-patterns>\n",
		   "test.conf:2: invalid bounce category \"kinda|full\" (one word of letters, digits, '-', '_' or '.', "
		   "e.g. bad-mailbox, quota-issues, spam-related or a name of your own)");
	expect_err("<bounce-category-patterns>\n /full/\n</bounce-category-patterns>\n",
		   "test.conf:2: missing bounce category after the pattern (e.g. /user unknown/ bad-mailbox)");
	expect_err("reply /x/ mode=backoff\n", "test.conf:1: \"reply\" is only valid inside <smtp-pattern-list>");
	expect_domain_err("  max-connect-rate fast", "test.conf:2: invalid rate \"fast\" for max-connect-rate");
	expect_domain_err("  backoff-retry-after 1m,,2m",
			  "test.conf:2: empty element in backoff-retry-after list \"1m,,2m\"");
	expect_domain_err("  queue-to bad/name", "test.conf:2: invalid queue name \"bad/name\" for queue-to");
	expect_domain_err("  idle-timeout soon", "test.conf:2: invalid duration \"soon\" for idle-timeout");
	expect_domain_err("  smtp-data-termination-timeout 5x",
			  "test.conf:2: invalid duration \"5x\" for smtp-data-termination-timeout");
}


/* log-connections, log-commands, log-data (SMTP transcripts): <source>
 * flags, <domain> values inherited from *, no "not applied" warning, bad
 * values refused with the line. */
static void test_transcript_directives(void **state)
{
	struct config cfg;
	struct config_report rep;
	const struct config_domain *d;
	ssize_t kc = -1, kd = -1;
	const char *name;

	(void)state;
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<source 10.0.0.0/8>\n log-commands yes\n log-data true\n log-connections no\n</source>\n"
		"<source 0/0>\n log-connections yes\n log-connections no\n</source>\n"
		"<domain *>\n log-commands yes\n</domain>\n"
		"<domain data.example>\n log-data yes\n</domain>\n"
		"<domain quiet.example>\n log-commands no\n</domain>\n", &rep), 0);
	assert_null(rep.errors);
	assert_null(rep.warnings);
	config_report_free(&rep);
	assert_int_equal(cfg.sources[0].log_flags | cfg.sources[1].log_flags,
			 CONFIG_LOG_COMMANDS | CONFIG_LOG_DATA);
	for (size_t i = 0; (name = config_domain_key_name(i)); i++) {
		if (!strcmp(name, "log-commands"))
			kc = (ssize_t)i;
		if (!strcmp(name, "log-data"))
			kd = (ssize_t)i;
	}
	assert_true(kc >= 0 && kd >= 0);
	d = config_domain_for(&cfg, "data.example");
	assert_string_equal(d->values[kd], "yes");
	assert_null(d->values[kc]); /* <domain *>'s: engine/trace.c reads it there */
	assert_string_equal(cfg.domains[0].values[kc], "yes");
	d = config_domain_for(&cfg, "quiet.example");
	assert_string_equal(d->values[kc], "no");
	assert_null(d->values[kd]);
	config_free(&cfg);
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<source 1.2.3.4>\n log-data maybe\n</source>\n<domain x.example>\n log-commands sometimes\n</domain>\n",
		&rep), -1);
	assert_string_equal(rep.errors, "t.conf:2: invalid boolean \"maybe\" for log-data\n"
					"t.conf:5: invalid boolean \"sometimes\" for log-commands\n");
	config_report_free(&rep);
}

/* http-listener tls=, http-access, http-api-token with roles, the caps, and
 * config_http_role_for(). */
static void test_http_access(void **state)
{
	struct config_report rep;
	struct config cfg;
	struct sockaddr_storage a;
	(void)state;

	/* no http-access line: loopback admin, others none; no tokens */
	load_ok(&cfg, "");
	assert_int_equal(cfg.n_http_access, 0);
	assert_int_equal(cfg.n_http_tokens, 0);
	assert_null(cfg.http_listener_tls);
	assert_int_equal(cfg.http_max_connections, 1000);
	assert_int_equal(cfg.http_max_connections_per_ip, 100);
	a = sa_of("127.0.0.1");
	assert_int_equal(config_http_role_for(&cfg, (struct sockaddr *)&a), CONFIG_HTTP_ADMIN);
	a = sa_of("127.9.9.9");
	assert_int_equal(config_http_role_for(&cfg, (struct sockaddr *)&a), CONFIG_HTTP_ADMIN);
	a = sa_of("::1");
	assert_int_equal(config_http_role_for(&cfg, (struct sockaddr *)&a), CONFIG_HTTP_ADMIN);
	a = sa_of("::ffff:127.0.0.1");
	assert_int_equal(config_http_role_for(&cfg, (struct sockaddr *)&a), CONFIG_HTTP_ADMIN);
	a = sa_of("10.0.0.1");
	assert_int_equal(config_http_role_for(&cfg, (struct sockaddr *)&a), CONFIG_HTTP_NONE);
	a = sa_of("::ffff:10.0.0.1");
	assert_int_equal(config_http_role_for(&cfg, (struct sockaddr *)&a), CONFIG_HTTP_NONE);
	config_free(&cfg);

	load_ok(&cfg, "http-listener 127.0.0.1:8025\n"
		      "http-listener [::1]:8443  tls=YES\n"
		      "http-listener 127.0.0.1:8080 tls=no\n"
		      "tls-certificate /c\ntls-private-key /k\n"
		      "http-access 0/0 none\n"
		      "http-access 10/8 monitor\n"
		      "HTTP-ACCESS 10.1.2.0/24 Admin\n"
		      "http-access 10.1.2.3 none\n"
		      "http-access 2001:db8::/32 monitor\n"
		      "http-api-token aaaaaaaaaaaaaaaa\n"
		      "http-api-token bbbbbbbbbbbbbbbb monitor\n"
		      "http-api-token cccccccccccccccc   admin\n"
		      "http-max-connections 50\nhttp-max-connections-per-ip 7\n");
	assert_int_equal(cfg.n_http_listeners, 3);
	assert_false(cfg.http_listener_tls[0]);
	assert_true(cfg.http_listener_tls[1]);
	assert_false(cfg.http_listener_tls[2]);
	assert_string_equal(cfg.http_listeners[1].text, "[::1]:8443");
	assert_int_equal(cfg.n_http_tokens, 3);
	assert_string_equal(cfg.http_tokens[0].token, "aaaaaaaaaaaaaaaa");
	assert_int_equal(cfg.http_tokens[0].role, CONFIG_HTTP_ADMIN);
	assert_int_equal(cfg.http_tokens[1].role, CONFIG_HTTP_MONITOR);
	assert_string_equal(cfg.http_tokens[2].token, "cccccccccccccccc");
	assert_int_equal(cfg.http_tokens[2].role, CONFIG_HTTP_ADMIN);
	assert_int_equal(cfg.http_max_connections, 50);
	assert_int_equal(cfg.http_max_connections_per_ip, 7);
	assert_int_equal(cfg.n_http_access, 5);
	{
		static const struct {
			const char *ip;
			enum config_http_role want;
		} cases[] = {
			{"192.0.2.1", CONFIG_HTTP_NONE},     /* 0/0 */
			{"127.0.0.1", CONFIG_HTTP_NONE},     /* rules given: loopback is not special */
			{"10.200.0.1", CONFIG_HTTP_MONITOR}, /* 10/8 */
			{"10.1.2.4", CONFIG_HTTP_ADMIN},     /* /24 beats /8 */
			{"10.1.2.3", CONFIG_HTTP_NONE},      /* /32 beats /24 */
			{"::ffff:10.1.2.4", CONFIG_HTTP_ADMIN},
			{"2001:db8::5", CONFIG_HTTP_MONITOR},
			{"2001:db9::5", CONFIG_HTTP_NONE},   /* no IPv6 rule matches */
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			a = sa_of(cases[i].ip);
			if (config_http_role_for(&cfg, (struct sockaddr *)&a) != cases[i].want)
				fail_msg("%s: role %s, want %s", cases[i].ip,
					 config_http_role_name(config_http_role_for(&cfg, (struct sockaddr *)&a)),
					 config_http_role_name(cases[i].want));
		}
	}
	config_free(&cfg);

	/* the first file listener replaces the default, its tls flag too */
	load_ok(&cfg, "http-listener 127.0.0.1:9000 tls=yes\ntls-certificate /c\ntls-private-key /k\n");
	assert_int_equal(cfg.n_http_listeners, 1);
	assert_true(cfg.http_listener_tls[0]);
	config_free(&cfg);

	expect_err("http-listener 127.0.0.1:8443 tls=yes\n",
		   "test.conf:1: http-listener with tls=yes needs tls-certificate and tls-private-key");
	expect_err("tls-certificate /c\n\nhttp-listener 127.0.0.1:80\nhttp-listener 127.0.0.1:8443 tls=yes\n",
		   "test.conf:4: http-listener with tls=yes needs tls-certificate and tls-private-key");
	expect_err("http-listener 127.0.0.1:8443 tls=maybe\n",
		   "test.conf:1: invalid option \"tls=maybe\" for http-listener (expected tls=yes or tls=no)");
	expect_err("http-listener 127.0.0.1:8443 ssl=yes\n",
		   "test.conf:1: invalid option \"ssl=yes\" for http-listener (expected tls=yes or tls=no)");
	expect_err("http-access 10/8\n",
		   "test.conf:1: invalid role \"\" for http-access (expected admin, operator, monitor, monitor,deny-logs or none)");
	expect_err("http-access 10/8 root\n",
		   "test.conf:1: invalid role \"root\" for http-access (expected admin, operator, monitor, monitor,deny-logs or none)");
	expect_err("http-access 10/8 admin extra\n",
		   "test.conf:1: invalid role \"admin extra\" for http-access (expected admin, operator, monitor, monitor,deny-logs or none)");
	expect_err("http-access 10.0.0.0/33 admin\n", "test.conf:1: invalid network \"10.0.0.0/33\" for http-access");
	expect_err("http-access example.com admin\n", "test.conf:1: invalid network \"example.com\" for http-access");
	/* PowerMTA matches its list in order: a second rule for a network never matches */
	load_warns(&cfg, "http-access 10/8 admin\nhttp-access 10.9.9.9/8 none\n",
		   (const char *const[]){"test.conf:2: warning: a second http-access for 10.0.0.0/8 never matches: the "
					 "first (at line 1, admin) decides", NULL});
	assert_int_equal(cfg.n_http_access, 1);
	assert_int_equal(cfg.http_access[0].role, CONFIG_HTTP_ADMIN);
	config_free(&cfg);
	/* PowerMTA's operator and monitor,deny-logs: the nearest role that grants no more */
	load_warns(&cfg, "http-access 10/8 operator\nhttp-access 192.0.2.0/24 monitor,deny-logs\n",
		   (const char *const[]){"test.conf:1: warning: http-access 10/8 operator is taken as monitor",
					 "test.conf:2: warning: http-access 192.0.2.0/24 monitor,deny-logs is taken as none",
					 NULL});
	assert_int_equal(cfg.http_access[0].role, CONFIG_HTTP_MONITOR);
	assert_int_equal(cfg.http_access[1].role, CONFIG_HTTP_NONE);
	config_free(&cfg);
	/* PowerMTA matches in file order, Salvo the most specific: where they differ it is said */
	assert_int_equal(config_load_string_report(&cfg, "test.conf", "http-access 0/0 monitor\nhttp-access 10/8 admin\n"
						   "http-access 10.1.2.3 none\nhttp-access 192.0.2.0/24 monitor\n", &rep), 0);
	assert_int_equal(rep.n_warnings, 2); /* 10.1.2.3 too (0/0 comes first); 192.0.2.0/24 has 0/0's role */
	assert_non_null(strstr(rep.warnings, "test.conf:3: warning: http-access 10.1.2.3/32 none: PowerMTA would give"));
	assert_non_null(strstr(rep.warnings, "test.conf:2: warning: http-access 10.0.0.0/8 admin: PowerMTA would give "
					     "10.0.0.0/8 the role of the earlier 0.0.0.0/0 monitor (at line 1, the first that "
					     "matches); Salvo applies the most specific rule, this one"));
	config_report_free(&rep);
	config_free(&cfg);
	expect_err("http-access 10/8 monitor,deny-all\n", "test.conf:1: invalid role \"monitor,deny-all\" for "
		   "http-access (expected admin, operator, monitor, monitor,deny-logs or none)");
	expect_err("http-api-token short\n",
		   "test.conf:1: invalid value for http-api-token (at least 16 characters, no spaces)");
	expect_err("http-api-token aaaaaaaaaaaaaaaa none\n",
		   "test.conf:1: invalid role \"none\" for http-api-token (expected admin or monitor)");
	expect_err("http-api-token aaaaaaaaaaaaaaaa monitor admin\n",
		   "test.conf:1: invalid role \"monitor admin\" for http-api-token (expected admin or monitor)");
	expect_err("http-api-token aaaaaaaaaaaaaaaa\nhttp-api-token aaaaaaaaaaaaaaaa monitor\n",
		   "test.conf:2: the same http-api-token twice (first at line 1)");
	expect_err("http-max-connections-per-ip 0\n",
		   "test.conf:1: invalid count (1-100000) \"0\" for http-max-connections-per-ip");
	expect_err("http-max-connections lots\n",
		   "test.conf:1: invalid count (1-100000) \"lots\" for http-max-connections");
	expect_err("<source 10/8>\nhttp-access 10/8 admin\n</source>\n",
		   "test.conf:2: \"http-access\" is only valid at top level");
}

/* ---- <pattern-list> and the <source> intake settings (issue 18) ----------- */

#define PL_VMTAS "<virtual-mta v1>\n smtp-source-host 127.0.0.2 v1.test\n</virtual-mta>\n" \
		 "<virtual-mta-pool p>\n virtual-mta v1\n</virtual-mta-pool>\n"

static void test_intake_pattern_list(void **state)
{
	struct config cfg;
	const struct config_intake_list *l;
	const struct config_source *s;
	ssize_t v1, p;
	const char *hdrs = "From: x\r\nSubject:\r\n [n] folded\r\n";
	(void)state;

	load_ok(&cfg, PL_VMTAS "<pattern-list l>\n"
			       " mail-from /@bulk\\.test$/ virtual-mta=v1\n"
			       " rcpt-to /(?i)^VIP\\d/ virtual-mta=v1\n"
			       " header Subject /^\\[n\\]/ virtual-mta=p, recipient-priority=5\n"
			       " mail-from /./ recipient-priority=3\n"
			       "</pattern-list>\n"
			       "<pattern-list other>\n mail-from /x/ virtual-mta=v1\n</pattern-list>\n"
			       "<source 10/8>\n pattern-list L\n add-received-header no\n hide-message-source yes\n"
			       " jobid-header X-Campaign\n retain-x-job yes\n smtp-max-auth-failure-rate 3/m\n</source>\n"
			       "<source 11/8>\n pattern-list other\n</source>\n");
	v1 = config_pool_find(&cfg, "v1");
	p = config_pool_find(&cfg, "p");
	assert_true(v1 > 0 && p > 0 && v1 != p);
	assert_int_equal(cfg.n_intake_lists, 2);
	l = &cfg.intake_lists[0];
	assert_int_equal(l->n_rules, 4);
	assert_true(l->has_rcpt_rules);
	assert_false(cfg.intake_lists[1].has_rcpt_rules);
	s = source_for(&cfg, "10.1.2.3");
	assert_int_equal(s->intake_list, 1);
	assert_true(s->no_received_header && s->hide_message_source && s->retain_x_job && s->header_edits);
	assert_false(s->add_message_id || s->remove_received || s->retain_x_virtual_mta);
	assert_string_equal(s->jobid_header, "X-Campaign");
	assert_int_equal(s->auth_failure_rate.count, 3);
	assert_int_equal(s->auth_failure_rate.per_ms, MIN);
	assert_int_equal(source_for(&cfg, "11.1.2.3")->intake_list, 2);
	assert_false(source_for(&cfg, "11.1.2.3")->header_edits);
	/* --show source:ADDR: the settings as applied, defaults included */
	expect_line(&cfg, "source:10.9.9.9", "source 10.0.0.0/8", true);
	expect_line(&cfg, "source:10.9.9.9", "pattern-list l", true);
	expect_line(&cfg, "source:10.9.9.9", "add-received-header no", true);
	expect_line(&cfg, "source:10.9.9.9", "hide-message-source yes", true);
	expect_line(&cfg, "source:10.9.9.9", "jobid-header X-Campaign", true);
	expect_line(&cfg, "source:10.9.9.9", "verp-default yes", true);
	expect_line(&cfg, "source:10.9.9.9", "smtp-max-auth-failure-rate 3/m", true);
	expect_line(&cfg, "source:11.0.0.1", "jobid-header X-Job", true);
	expect_line(&cfg, "source:11.0.0.1", "add-received-header yes", true);
	expect_line(&cfg, "source:11.0.0.1", "smtp-max-auth-failure-rate built-in (5/5m)", true);
	{
		char err[200];
		FILE *f = fopen("/dev/null", "w");

		assert_int_equal(config_show(f, &cfg, "source:12.0.0.1", err, sizeof(err)), -1);
		assert_string_equal(err, "--show source:12.0.0.1: no <source> matches");
		assert_int_equal(config_show(f, &cfg, "source:nonsense", err, sizeof(err)), -1);
		fclose(f);
	}
	/* the first matching rule with a virtual-mta= wins */
	assert_int_equal(config_intake_match(l, "a@bulk.test", "vip1@x.test", hdrs, strlen(hdrs), &(size_t){SIZE_MAX}), v1);
	assert_int_equal(config_intake_match(l, "a@other.test", "vip1@x.test", hdrs, strlen(hdrs), &(size_t){SIZE_MAX}), v1);
	assert_int_equal(config_intake_match(l, "a@other.test", "plain@x.test", hdrs, strlen(hdrs), &(size_t){SIZE_MAX}), p);
	assert_int_equal(config_intake_match(l, "a@other.test", "plain@x.test", "Subject: [m]\r\n", 14, &(size_t){SIZE_MAX}), -1);
	assert_int_equal(config_intake_match(l, "", NULL, "", 0, &(size_t){SIZE_MAX}), -1);
	/* the header's value only: a longer name, another field's value, no match */
	assert_int_equal(config_intake_match(l, "", NULL, "Subjects: [n]\r\nX: Subject: [n]\r\n", 30, &(size_t){SIZE_MAX}), -1);
	/* the message's own hit is cached across its recipients: a recipient
	 * rule before it still wins, one after it does not matter */
	{
		size_t first = SIZE_MAX;

		assert_int_equal(config_intake_match(l, "a@other.test", "plain@x.test", hdrs, strlen(hdrs), &first), p);
		assert_int_equal(first, 2);
		assert_int_equal(config_intake_match(l, "a@other.test", "vip2@x.test", hdrs, strlen(hdrs), &first), v1);
		assert_int_equal(config_intake_match(l, "a@other.test", NULL, "", 0, &first), p); /* cached */
		first = SIZE_MAX;
		assert_int_equal(config_intake_match(l, "a@bulk.test", "vip2@x.test", hdrs, strlen(hdrs), &first), v1);
		assert_int_equal(first, 0);
	}
	config_free(&cfg);
}

static void test_intake_pattern_list_errors(void **state)
{
	(void)state;
	expect_err("<pattern-list>\n</pattern-list>\n", "test.conf:1: missing argument for <pattern-list>");
	expect_err("<pattern-list l>\n</pattern-list>\n<pattern-list L>\n</pattern-list>\n",
		   "test.conf:3: duplicate <pattern-list L> (first at line 1)");
	expect_err(PL_VMTAS "<pattern-list l>\n mail-from @x virtual-mta=v1\n</pattern-list>\n",
		   "test.conf:8: mail-from: expected /REGEX/ at \"@x virtual-mta=v1\"");
	expect_err(PL_VMTAS "<pattern-list l>\n rcpt-to /x virtual-mta=v1\n</pattern-list>\n",
		   "test.conf:8: rcpt-to: unterminated /REGEX/ in \"/x virtual-mta=v1\" (a pattern must be on one line)");
	expect_err(PL_VMTAS "<pattern-list l>\n mail-from /(/ virtual-mta=v1\n</pattern-list>\n",
		   "test.conf:8: mail-from: bad regex /(/: missing closing parenthesis at offset 1");
	expect_err(PL_VMTAS "<pattern-list l>\n mail-from /x/\n</pattern-list>\n",
		   "test.conf:8: mail-from rule without actions (virtual-mta=NAME, recipient-priority=N)");
	expect_err(PL_VMTAS "<pattern-list l>\n mail-from /x/ pool=v1\n</pattern-list>\n",
		   "test.conf:8: unknown action \"pool=v1\" in mail-from (virtual-mta=NAME, recipient-priority=0..100)");
	expect_err(PL_VMTAS "<pattern-list l>\n rcpt-to /x/ recipient-priority=101\n</pattern-list>\n",
		   "test.conf:8: unknown action \"recipient-priority=101\" in rcpt-to (virtual-mta=NAME, "
		   "recipient-priority=0..100)");
	expect_err(PL_VMTAS "<pattern-list l>\n header /x/ virtual-mta=v1\n</pattern-list>\n",
		   "test.conf:8: header wants a header name and /REGEX/: header Subject /^x/ virtual-mta=NAME");
	expect_err(PL_VMTAS "<pattern-list l>\n header Subject\n</pattern-list>\n",
		   "test.conf:8: header wants a header name and /REGEX/: header Subject /^x/ virtual-mta=NAME");
	expect_err(PL_VMTAS "<pattern-list l>\n header Subject: /x/ virtual-mta=v1\n</pattern-list>\n",
		   "test.conf:8: invalid header name \"Subject:\" in header rule");
	/* names resolved at the end, reported at their own lines */
	expect_err(PL_VMTAS "<pattern-list l>\n mail-from /x/ virtual-mta=v1\n rcpt-to /y/ virtual-mta=nosuch\n"
			    "</pattern-list>\n",
		   "test.conf:9: virtual-mta=nosuch in <pattern-list l>: no such virtual-mta or virtual-mta-pool");
	expect_err("<source 10/8>\n always-allow-relaying yes\n pattern-list nope\n</source>\n",
		   "test.conf:3: pattern-list \"nope\": no such <pattern-list>");
	expect_err("<pattern-list l>\n mail-from /x/ recipient-priority=1\n</pattern-list>\n"
		   "<source 10/8>\n pattern-list l x\n</source>\n",
		   "test.conf:5: invalid name \"l x\" for pattern-list");
	expect_source_err("add-received-header maybe", "test.conf:2: invalid boolean \"maybe\" for add-received-header");
	expect_source_err("jobid-header X-Job:", "test.conf:2: invalid header name \"X-Job:\" for jobid-header");
	expect_source_err("smtp-max-auth-failure-rate 0/m",
			  "test.conf:2: invalid rate such as 5/m (at least 1) \"0/m\" for smtp-max-auth-failure-rate");
	/* every one in one run (the parser goes on) */
	{
		struct config cfg;
		struct config_report rep;

		assert_int_equal(config_load_string_report(&cfg, "t.conf",
			PL_VMTAS "<pattern-list l>\n mail-from /(/ virtual-mta=v1\n header /x/ virtual-mta=v1\n"
			" rcpt-to /x/ virtual-mta=gone\n</pattern-list>\n", &rep), -1);
		assert_non_null(strstr(rep.errors, "t.conf:8: mail-from: bad regex"));
		assert_non_null(strstr(rep.errors, "t.conf:9: header wants a header name"));
		assert_non_null(strstr(rep.errors, "t.conf:10: virtual-mta=gone in <pattern-list l>"));
		config_report_free(&rep);
	}
}

/* `domain-key` inside <virtual-mta>: that vmta's key (issue 18); the same
 * domain in two vmtas and at top level; malformed lines each an error. */
static void test_vmta_domain_key(void **state)
{
	struct config cfg;
	size_t v1 = SIZE_MAX, v2 = SIZE_MAX;

	(void)state;
	load_ok(&cfg, "domain-key g,vm.example,/g.pem\n"
		      "<virtual-mta v1>\n domain-key s1,vm.example,/k1.pem\n domain-key s1,*,/k1.pem\n</virtual-mta>\n"
		      "<virtual-mta v2>\n domain-key s2,VM.example,/k2.pem\n</virtual-mta>\n");
	for (size_t i = 0; i < cfg.n_vmtas; i++) {
		if (!strcmp(cfg.vmtas[i].name, "v1"))
			v1 = i;
		if (!strcmp(cfg.vmtas[i].name, "v2"))
			v2 = i;
	}
	assert_int_equal(cfg.n_domain_keys, 4);
	assert_true(cfg.domain_keys[0].vmta == SIZE_MAX);
	assert_true(cfg.domain_keys[1].vmta == v1 && cfg.domain_keys[2].vmta == v1);
	assert_true(cfg.domain_keys[3].vmta == v2);
	assert_string_equal(cfg.domain_keys[3].domain, "vm.example");
	assert_string_equal(cfg.domain_keys[3].path, "/k2.pem");
	config_free(&cfg);
	/* PowerMTA takes the first matching key: a second one for a domain never signs */
	load_warns(&cfg, "<virtual-mta v>\n smtp-source-host 192.0.2.1 v.example\n domain-key s1,vm.example,/a.pem\n"
			 " domain-key s2,vm.example,/b.pem\n</virtual-mta>\ndomain-key g,vm.example,/g.pem\n"
			 "domain-key h,VM.example,/h.pem\n",
		   (const char *const[]){"test.conf:4: warning: a second domain-key for vm.example in <virtual-mta> v never "
					 "signs: the first (selector s1, at line 3) is used",
					 "test.conf:7: warning: a second domain-key for vm.example never signs: the first "
					 "(selector g, at line 6) is used", NULL});
	assert_int_equal(cfg.n_domain_keys, 2);
	assert_string_equal(cfg.domain_keys[0].selector, "s1");
	assert_string_equal(cfg.domain_keys[1].selector, "g");
	config_free(&cfg);
	/* domain macros name several domains at once (User's Guide 3.3.1.43.1) */
	load_ok(&cfg, "domain-macro topDomain yahoo, google\ndomain-macro topLevel com, de\n"
		      "domain-key m,$topDomain.$topLevel,/m.pem\nrelay-domain [*.]$topDomain.com\n");
	assert_int_equal(cfg.n_domain_keys, 4);
	assert_string_equal(cfg.domain_keys[3].domain, "google.de");
	assert_string_equal(cfg.domain_keys[3].selector, "m");
	assert_true(config_relay_domain(&cfg, "mx.google.com"));
	assert_true(config_relay_domain(&cfg, "yahoo.com"));
	assert_false(config_relay_domain(&cfg, "yahoo.de"));
	config_free(&cfg);
	expect_err("domain-key m,$nope.com,/m.pem\n",
		   "test.conf:1: no domain-macro for \"$nope.com\" (define it with domain-macro NAME values)");
	expect_err("domain-macro t com, c..m\nrelay-domain x.$t\n",
		   "test.conf:2: invalid domain name (or *.name, [*.]name) \"x.c..m\" for relay-domain");
	expect_err("<virtual-mta v>\n domain-key s1\n</virtual-mta>\n",
		   "test.conf:2: domain-key wants SELECTOR,DOMAIN,KEYFILE, not \"s1\"");
	expect_err("<virtual-mta v>\n domain-key s1,vm.example,\n</virtual-mta>\n",
		   "test.conf:2: missing key file for domain-key");
	expect_err("<virtual-mta v>\n domain-key s/1,vm.example,/a.pem\n</virtual-mta>\n",
		   "test.conf:2: invalid selector \"s/1\" for domain-key");
	expect_err("<virtual-mta v>\n domain-key s1,a..b,/a.pem\n</virtual-mta>\n",
		   "test.conf:2: invalid domain \"a..b\" for domain-key (a domain name or *)");
}

/* `default-virtual-mta by-smtp-source-ip`: the vmta whose smtp-source-host
 * is the address the client connected to (issue 18). */
static void test_default_vmta_by_source_ip(void **state)
{
	struct config cfg;
	const struct config_source *src;
	struct sockaddr_storage a = sa_of("192.0.2.6"), b = sa_of("192.0.2.7"), o = sa_of("192.0.2.9");
	struct sockaddr_storage m = sa_of("::ffff:192.0.2.7");

	(void)state;
	load_ok(&cfg, "<virtual-mta va>\n smtp-source-host 192.0.2.6 a.example\n</virtual-mta>\n"
		      "<virtual-mta vb>\n smtp-source-host 192.0.2.7 b.example\n</virtual-mta>\n"
		      "<source 10/8>\n default-virtual-mta by-smtp-source-ip\n</source>\n"
		      "<source 11/8>\n default-virtual-mta va\n</source>\n");
	src = source_for(&cfg, "10.1.2.3");
	assert_non_null(src);
	assert_true(src->default_by_source_ip);
	assert_string_equal(cfg.pools[config_source_pool(&cfg, src, (struct sockaddr *)&a)].name, "va");
	assert_string_equal(cfg.pools[config_source_pool(&cfg, src, (struct sockaddr *)&b)].name, "vb");
	/* a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d */
	assert_string_equal(cfg.pools[config_source_pool(&cfg, src, (struct sockaddr *)&m)].name, "vb");
	assert_int_equal(config_source_pool(&cfg, src, (struct sockaddr *)&o), 0);
	assert_int_equal(config_source_pool(&cfg, src, NULL), 0);
	src = source_for(&cfg, "11.1.2.3");
	assert_false(src->default_by_source_ip);
	assert_string_equal(cfg.pools[config_source_pool(&cfg, src, (struct sockaddr *)&b)].name, "va");
	config_free(&cfg);
	expect_source_err("default-virtual-mta by-smtp-source-ip x",
			  "test.conf:2: invalid name \"by-smtp-source-ip x\" for default-virtual-mta");
	expect_err("<source 10/8>\n default-virtual-mta by-smtp-source\n</source>\n",
		   "test.conf:1: default-virtual-mta \"by-smtp-source\": no such virtual-mta or virtual-mta-pool");
}

/* `cold-virtual-mta NAME` (PowerMTA's warm-up): resolved to the vmta;
 * --show QUEUE/VMTA prints it, the vmta's keys and the cap. */
static void test_cold_vmta(void **state)
{
	struct config cfg;
	char *text = NULL, err[256];
	size_t len = 0, w = SIZE_MAX, c = SIZE_MAX;
	FILE *out;

	(void)state;
	load_ok(&cfg, "<virtual-mta w>\n cold-virtual-mta c\n domain-key s1,w.example,/w.pem\n"
		      " <domain *>\n  max-cold-virtual-mta-msg 400/day\n </domain>\n</virtual-mta>\n"
		      "<virtual-mta c>\n</virtual-mta>\ndomain-key g,*,/g.pem\n");
	for (size_t i = 0; i < cfg.n_vmtas; i++) {
		if (!strcmp(cfg.vmtas[i].name, "w"))
			w = i;
		if (!strcmp(cfg.vmtas[i].name, "c"))
			c = i;
	}
	assert_true(w != SIZE_MAX && c != SIZE_MAX);
	assert_true(cfg.vmtas[w].has_cold);
	assert_int_equal(cfg.vmtas[w].cold, c);
	assert_false(cfg.vmtas[c].has_cold);
	assert_non_null(out = open_memstream(&text, &len));
	assert_int_equal(config_show(out, &cfg, "x.example/w", err, sizeof(err)), 0);
	fclose(out);
	assert_non_null(strstr(text, "\ncold-virtual-mta c\ndomain-key s1,w.example,/w.pem\ndomain-key g,*,/g.pem\n"));
	assert_non_null(strstr(text, "max-cold-virtual-mta-msg 400/day\n"));
	free(text);
	text = NULL;
	assert_non_null(out = open_memstream(&text, &len));
	assert_int_equal(config_show(out, &cfg, "x.example/c", err, sizeof(err)), 0);
	fclose(out);
	assert_null(strstr(text, "max-cold-virtual-mta-msg"));
	assert_null(strstr(text, "cold-virtual-mta c"));
	free(text);
	config_free(&cfg);
	expect_err("<virtual-mta w>\n cold-virtual-mta nope\n</virtual-mta>\n",
		   "test.conf:2: cold-virtual-mta \"nope\": no such <virtual-mta>");
	expect_err("<virtual-mta w>\n cold-virtual-mta W\n</virtual-mta>\n",
		   "test.conf:2: cold-virtual-mta \"W\": a virtual MTA cannot be its own cold one");
	expect_err("<virtual-mta w>\n cold-virtual-mta c\n</virtual-mta>\n<virtual-mta c>\n cold-virtual-mta d\n"
		   "</virtual-mta>\n<virtual-mta d>\n</virtual-mta>\n",
		   "test.conf:2: cold-virtual-mta \"c\": that virtual MTA has a cold one itself (one level only)");
	expect_err("<virtual-mta c>\n</virtual-mta>\n<virtual-mta w>\n cold-virtual-mta c\n cold-virtual-mta c\n</virtual-mta>\n",
		   "test.conf:5: a second cold-virtual-mta for <virtual-mta w> (first at line 4)");
	expect_err("<virtual-mta w>\n cold-virtual-mta a b\n</virtual-mta>\n",
		   "test.conf:2: invalid virtual-mta name \"a b\" for cold-virtual-mta");
	expect_domain_err("max-cold-virtual-mta-msg 400", "test.conf:2: invalid rate (e.g. 100/h) \"400\" for max-cold-virtual-mta-msg");
}

/* `reroute-to-virtual-mta NAME` in <domain>: a vmta name, checked. */
static void test_reroute_vmta(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(&cfg, "<domain *>\n reroute-to-virtual-mta b\n</domain>\n<domain x.example>\n</domain>\n"
		      "<virtual-mta a>\n <domain n.example>\n  reroute-to-virtual-mta B\n </domain>\n</virtual-mta>\n"
		      "<virtual-mta b>\n</virtual-mta>\n");
	config_free(&cfg);
	expect_err("<domain x.example>\n reroute-to-virtual-mta nope\n</domain>\n",
		   "test.conf:1: reroute-to-virtual-mta \"nope\" in <domain x.example>: no such <virtual-mta>");
	/* inherited from <domain *>: reported once, at the * block */
	expect_err("<domain y.example>\n</domain>\n<domain *>\n reroute-to-virtual-mta nope\n</domain>\n",
		   "test.conf:3: reroute-to-virtual-mta \"nope\" in <domain *>: no such <virtual-mta>");
	expect_err("<virtual-mta a>\n <domain n.example>\n  reroute-to-virtual-mta nope\n </domain>\n</virtual-mta>\n",
		   "test.conf:2: reroute-to-virtual-mta \"nope\" in <domain n.example>: no such <virtual-mta>");
	expect_domain_err("reroute-to-virtual-mta a b", "test.conf:2: invalid name (one word) \"a b\" for reroute-to-virtual-mta");
}

/* Issue 18's vmta constructs are applied now: no "not applied" warning
 * for any of them; log-tls sets the source's flag; a bad value fails. */
static void test_vmta_constructs_applied(void **state)
{
	struct config cfg;
	struct config_report rep;

	(void)state;
	assert_int_equal(config_load_string_report(&cfg, "t.conf",
		"<virtual-mta w>\n smtp-source-host 192.0.2.1 w.example\n cold-virtual-mta c\n"
		" domain-key s,*,/k.pem\n <domain *>\n  max-cold-virtual-mta-msg 10/day\n </domain>\n</virtual-mta>\n"
		"<virtual-mta c>\n smtp-source-host 192.0.2.2 c.example\n</virtual-mta>\n"
		"<source 10/8>\n default-virtual-mta by-smtp-source-ip\n log-tls yes\n</source>\n"
		"<smtp-pattern-list p>\n reply /x/ bounce-queue\n reply /y/ defer-queue\n</smtp-pattern-list>\n"
		"<domain *>\n log-tls yes\n reroute-to-virtual-mta w\n smtp-pattern-list p\n</domain>\n", &rep), 0);
	assert_null(rep.errors);
	if (rep.warnings)
		fail_msg("warnings: %s", rep.warnings);
	config_report_free(&rep);
	assert_int_equal(source_for(&cfg, "10.1.2.3")->log_flags, CONFIG_LOG_TLS);
	config_free(&cfg);
	expect_source_err("log-tls maybe", "test.conf:2: invalid boolean \"maybe\" for log-tls");
	/* smtp-listener ... tls=no: per listener */
	load_ok(&cfg, "smtp-listener 127.0.0.1:2525\nsmtp-listener 127.0.0.2:2525 tls=no\n"
		      "smtp-listener 127.0.0.3:2525 tls=no tls=yes\n");
	assert_int_equal(cfg.n_smtp_listeners, 3);
	assert_false(cfg.smtp_listener_no_tls[0]);
	assert_true(cfg.smtp_listener_no_tls[1]);
	assert_false(cfg.smtp_listener_no_tls[2]);
	config_free(&cfg);
	expect_err("smtp-listener 127.0.0.1:2525 tls=maybe\n",
		   "test.conf:1: unknown option \"tls=maybe\" for smtp-listener (expected source=NAME or tls=yes|no)");
	expect_domain_err("log-tls maybe", "test.conf:2: invalid boolean \"maybe\" for log-tls");
}

/* --show source:ADDR prints the intake limits as applied, defaults included */
static void test_source_intake_limits_show(void **state)
{
	struct config cfg;
	(void)state;

	load_ok(&cfg, "<source 10/8>\n max-rcpt-per-message 2\n smtp-command-timeout 90s\n smtp-data-timeout 2m\n"
		      " remove-header X-Mailer,X-Originating-IP\n</source>\n<source 11/8>\n require-auth yes\n</source>\n");
	expect_line(&cfg, "source:10.1.1.1", "max-rcpt-per-message 2", true);
	expect_line(&cfg, "source:10.1.1.1", "smtp-command-timeout 90s", true);
	expect_line(&cfg, "source:10.1.1.1", "smtp-data-timeout 2m", true);
	expect_line(&cfg, "source:10.1.1.1", "remove-header X-Mailer,X-Originating-IP", true);
	expect_line(&cfg, "source:11.1.1.1", "max-rcpt-per-message 1000", true);
	expect_line(&cfg, "source:11.1.1.1", "smtp-command-timeout 5m", true);
	expect_line(&cfg, "source:11.1.1.1", "smtp-data-timeout 10m", true);
	expect_line(&cfg, "source:11.1.1.1", "remove-header none", true);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intake_pattern_list),
		cmocka_unit_test(test_intake_pattern_list_errors),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_intake_limits),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_full_top_level),
		cmocka_unit_test(test_full_sources),
		cmocka_unit_test(test_source_bare_newline),
		cmocka_unit_test(test_source_intake_limits),
		cmocka_unit_test(test_source_intake_limits_show),
		cmocka_unit_test(test_full_domains),
		cmocka_unit_test(test_sources_kept_without_source_blocks),
		cmocka_unit_test(test_listeners),
		cmocka_unit_test(test_later_wins),
		cmocka_unit_test(test_star_route_inherited),
		cmocka_unit_test(test_syntax_details),
		cmocka_unit_test(test_many_domains),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_err_unknown),
		cmocka_unit_test(test_pcre),
		cmocka_unit_test(test_address_lists),
		cmocka_unit_test(test_relay_domains),
		cmocka_unit_test(test_every_error),
		cmocka_unit_test(test_pmta_domains),
		cmocka_unit_test(test_pmta_misc),
		cmocka_unit_test(test_pcre_config),
		cmocka_unit_test(test_err_blocks),
		cmocka_unit_test(test_err_duplicates),
		cmocka_unit_test(test_err_placement),
		cmocka_unit_test(test_err_missing_value),
		cmocka_unit_test(test_err_top_values),
		cmocka_unit_test(test_spool_commit_delay),
		cmocka_unit_test(test_err_block_values),
		cmocka_unit_test(test_zero_limits_hold),
		cmocka_unit_test(test_http_api_key),
		cmocka_unit_test(test_err_after_much),
		cmocka_unit_test(test_pmta_round2),
		cmocka_unit_test(test_pmta_round3),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_policy_blocks),
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_http_access),
		cmocka_unit_test(test_transcript_directives),
		cmocka_unit_test(test_vmta_domain_key),
		cmocka_unit_test(test_default_vmta_by_source_ip),
		cmocka_unit_test(test_cold_vmta),
		cmocka_unit_test(test_reroute_vmta),
		cmocka_unit_test(test_vmta_constructs_applied),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
