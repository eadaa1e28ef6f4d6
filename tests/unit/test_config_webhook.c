/*
 * test_config_webhook.c - the <acct-webhook NAME> parser (core/config_webhook.c):
 * defaults, every directive's value, and malformed blocks refused with
 * "FILE:LINE: message" leaving the config empty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/config_webhook.h"

static void load_ok(struct config *cfg, const char *text)
{
	char err[CONFIG_ERR_MAX];

	if (config_load_string(cfg, "hook.conf", text, err) != 0)
		fail_msg("unexpected error: %s", err);
	assert_string_equal(err, "");
}

/* text fails with exactly want and leaves cfg zeroed. */
static void expect_err(const char *text, const char *want)
{
	static const struct config zero;
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	memset(&cfg, 0xa5, sizeof(cfg));
	if (config_load_string(&cfg, "hook.conf", text, err) != -1)
		fail_msg("accepted: %s", text);
	if (strcmp(err, want) != 0)
		fail_msg("for input:\n%s\n got: %s\nwant: %s", text, err, want);
	assert_memory_equal(&cfg, &zero, sizeof(zero));
	config_free(&cfg);
}

/* One directive in a block with a url: errors are on line 3. */
static void expect_line_err(const char *line, const char *want)
{
	char text[512];

	snprintf(text, sizeof(text), "<acct-webhook a>\n  url http://h.test/x\n  %s\n</acct-webhook>\n", line);
	expect_err(text, want);
}

static void test_defaults_and_values(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(&cfg, "<acct-webhook backend>\n"
		      "  url https://esp.example/hooks/salvo\n"
		      "</acct-webhook>\n"
		      "<acct-webhook second>\n"
		      "  url http://127.0.0.1:8080/h\n"
		      "  records delivery, bounce\n"
		      "  max-batch 10000\n"
		      "  max-delay 0\n"
		      "  timeout 2s\n"
		      "  retry-max 5m\n"
		      "  secret s3cr3t\n"
		      "  header Authorization \"Bearer abc\"\n"
		      "  header X-Tenant t1\n"
		      "  ca-file /etc/ssl/x.pem\n"
		      "  tls-verify no\n"
		      "</acct-webhook>\n");
	assert_int_equal(cfg.n_webhooks, 2);
	const struct config_webhook *a = &cfg.webhooks[0], *b = &cfg.webhooks[1];

	assert_string_equal(a->name, "backend");
	assert_int_equal(a->line, 1);
	assert_int_equal(a->max_batch, 100);
	assert_int_equal(a->max_delay_ms, 1000);
	assert_int_equal(a->timeout_ms, 10000);
	assert_int_equal(a->retry_max_ms, 60000);
	assert_true(a->tls_verify);
	assert_null(a->secret);
	assert_null(a->ca_file);
	assert_true(config_webhook_wants(a, "delivery", 8));
	assert_true(config_webhook_wants(a, "cancelled", 9));
	assert_false(config_webhook_wants(a, "reception", 9));
	assert_false(config_webhook_wants(a, "bogus", 5));

	assert_string_equal(b->url, "http://127.0.0.1:8080/h");

	assert_int_equal(b->line, 4);
	assert_int_equal(b->max_batch, 10000);
	assert_int_equal(b->max_delay_ms, 0);
	assert_int_equal(b->timeout_ms, 2000);
	assert_int_equal(b->retry_max_ms, 300000);
	assert_string_equal(b->secret, "s3cr3t");
	assert_int_equal(b->n_headers, 2);
	assert_string_equal(b->headers[0], "Authorization: Bearer abc");
	assert_string_equal(b->headers[1], "X-Tenant: t1");
	assert_string_equal(b->ca_file, "/etc/ssl/x.pem");
	assert_false(b->tls_verify);
	/* records delivery,bounce: those two only */
	assert_true(config_webhook_wants(b, "delivery", 8));
	assert_true(config_webhook_wants(b, "bounce", 6));
	assert_false(config_webhook_wants(b, "transient", 9));
	assert_false(config_webhook_wants(b, "feedback", 8));
	config_free(&cfg);
}

static void test_good_urls(void **state)
{
	static const char *const good[] = {
		"HTTPS://ESP.example/h", "http://u:p@h.test:65535/x?y=1#z", "https://[::1]:8443/", "https://[fe80::1]",
		"http://h_1.test", "http://10.0.0.1:1/",
	};
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text), "<acct-webhook g>\n  url %s\n</acct-webhook>\n", good[i]);
		load_ok(&cfg, text);
		assert_string_equal(cfg.webhooks[0].url, good[i]);
		config_free(&cfg);
	}
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_line_err("max-batch 0", "hook.conf:3: invalid count (1 to 10000) \"0\" for max-batch");
	expect_line_err("max-batch -1", "hook.conf:3: invalid count (1 to 10000) \"-1\" for max-batch");
	expect_line_err("max-batch 10001", "hook.conf:3: invalid count (1 to 10000) \"10001\" for max-batch");
	expect_line_err("max-batch 1e3", "hook.conf:3: invalid count (1 to 10000) \"1e3\" for max-batch");
	expect_line_err("max-batch", "hook.conf:3: missing value for max-batch");
	expect_line_err("max-delay abc", "hook.conf:3: invalid duration \"abc\" for max-delay");
	expect_line_err("max-delay -1s", "hook.conf:3: invalid duration \"-1s\" for max-delay");
	expect_line_err("timeout 0", "hook.conf:3: invalid duration \"0\" for timeout");
	expect_line_err("timeout 10 parsecs", "hook.conf:3: invalid duration \"10 parsecs\" for timeout");
	expect_line_err("retry-max 0s", "hook.conf:3: invalid duration \"0s\" for retry-max");
	expect_line_err("url ftp://h.test/x", "hook.conf:3: invalid URL (http://... or https://...) \"ftp://h.test/x\" for url");
	expect_line_err("url http://", "hook.conf:3: invalid URL (http://... or https://...) \"http://\" for url");
	expect_line_err("url h.test/x", "hook.conf:3: invalid URL (http://... or https://...) \"h.test/x\" for url");
	expect_line_err("url", "hook.conf:3: missing value for url");
	static const char *const bad_urls[] = {
		"http://:80/", "http://h.test:99999/", "http://h.test:abc/", "http://h.test:0/", "http://h.test:/x",
		"https://[::1/", "https://[]/", "http:///path", "http://h_t est/", "http://h.test%2f/", "https://[::1]x/",
	};
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		char line[128], want[256];

		snprintf(line, sizeof(line), "url %s", bad_urls[i]);
		snprintf(want, sizeof(want), "hook.conf:3: invalid URL (%s) \"%s\" for url",
			 strchr(bad_urls[i], ' ') ? "no blanks or control characters"
						  : "http[s]://HOST[:PORT]/..., PORT 1 to 65535",
			 bad_urls[i]);
		expect_line_err(line, want);
	}
	expect_line_err("records delivery,bogus",
			"hook.conf:3: unknown record type \"bogus\" for records (one of reception, delivery, transient, "
			"bounce, expiration, feedback, suppressed, cancelled)");
	expect_line_err("records delivery,,bounce",
			"hook.conf:3: unknown record type \"\" for records (one of reception, delivery, transient, "
			"bounce, expiration, feedback, suppressed, cancelled)");
	expect_line_err("tls-verify maybe", "hook.conf:3: invalid yes or no \"maybe\" for tls-verify");
	expect_line_err("header Bad:Name x", "hook.conf:3: invalid header name \"Bad:Name\" for header");
	expect_line_err("header X-Y", "hook.conf:3: missing header value for header X-Y");
	expect_line_err("header X-Y \"open", "hook.conf:3: unterminated quoted value for header X-Y");
	expect_line_err("header Content-Length 5", "hook.conf:3: header Content-Length: that header is set by salvod");
	expect_line_err("header X-Salvo-Signature forged",
			"hook.conf:3: header X-Salvo-Signature: that header is set by salvod");
}

static void test_bad_blocks(void **state)
{
	(void)state;
	/* missing url: reported at the block's first line */
	expect_err("spool-dir /tmp/s\n<acct-webhook a>\n  records delivery\n</acct-webhook>\n",
		   "hook.conf:2: <acct-webhook a> needs a url");
	expect_err("<acct-webhook a>\n  url http://x/\n</acct-webhook>\n<acct-webhook a>\n  url http://y/\n"
		   "</acct-webhook>\n",
		   "hook.conf:4: duplicate <acct-webhook a> (first at line 1)");
	expect_err("<acct-webhook a/b>\n  url http://x/\n</acct-webhook>\n",
		   "hook.conf:1: invalid name \"a/b\" for <acct-webhook> (letters, digits, - _ . only; at most 64)");
	expect_err("url http://x/\n", "hook.conf:1: \"url\" is only valid inside <acct-webhook>");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_good_urls),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
