/* test_dkim.c - DKIM signing (engine/dkim.c) checked by an independent
 * verifier: keys made at test time with the openssl CLI (RSA-2048 and
 * Ed25519), messages with the hard cases (folded and duplicate headers,
 * trailing blanks, trailing empty lines, an empty body, 8-bit text, long
 * lines, From with a display name and a comment), each verified by
 * python3-dkim; a tampered body and a tampered header must fail; error
 * cases: missing file, not a key, an EC key, no From, no key for the
 * From domain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "engine/dkim.h"
#include "net/dot_stuff.h"

static char dir[64];

static const char *const VERIFY_PY =
	"import sys, dkim, base64, subprocess\n"
	"pub = {}\n"
	"for a in sys.argv[2:]:\n"
	"    name, path = a.split('=', 1)\n"
	"    pub[name] = open(path).read()\n"
	"def dns(name, timeout=5):\n"
	"    n = name.decode() if isinstance(name, bytes) else name\n"
	"    return pub.get(n.rstrip('.'), '').encode()\n"
	"msg = open(sys.argv[1], 'rb').read()\n"
	"sys.exit(0 if dkim.verify(msg, dnsfunc=dns) else 1)\n";

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* A TXT record "v=DKIM1; k=...; p=..." for the key's public half. */
static void make_key(const char *name, const char *alg, const char *k, const char *dns_name)
{
	if (!strcmp(alg, "rsa"))
		assert_int_equal(sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s/%s.pem 2>/dev/null",
				    dir, name), 0);
	else
		assert_int_equal(sh("openssl genpkey -algorithm %s -out %s/%s.pem 2>/dev/null", alg, dir, name), 0);
	if (!strcmp(k, "ed25519"))
		/* RFC 8463: p= is the raw 32-byte public key */
		assert_int_equal(sh("openssl pkey -in %s/%s.pem -pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0 | "
				    "sed 's/^/v=DKIM1; k=ed25519; p=/' > %s/%s.txt", dir, name, dir, dns_name), 0);
	else
		assert_int_equal(sh("openssl pkey -in %s/%s.pem -pubout -outform DER 2>/dev/null | base64 -w0 | "
				    "sed 's/^/v=DKIM1; k=rsa; p=/' > %s/%s.txt", dir, name, dir, dns_name), 0);
}

static int setup(void **state)
{
	FILE *f;

	strcpy(dir, "/tmp/test_dkim.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	make_key("rsa", "rsa", "rsa", "s1._domainkey.example.com");
	make_key("ed", "ED25519", "ed25519", "e1._domainkey.ed.example");
	make_key("ec", "EC -pkeyopt ec_paramgen_curve:P-256", "rsa", "unused");
	f = fopen("/dev/null", "r");
	if (f)
		fclose(f);
	char path[128];
	snprintf(path, sizeof(path), "%s/verify.py", dir);
	f = fopen(path, "w");
	fputs(VERIFY_PY, f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	return getenv("KEEP") ? 0 : sh("rm -rf %s", dir);
}

static struct dkim_keys *load(const char *text, int want)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX], kerr[256];
	struct dkim_keys *ks = NULL;

	if (config_load_string(&cfg, "t.conf", text, err) != 0)
		fail_msg("config: %s", err);
	assert_int_equal(dkim_keys_load(&cfg, &ks, kerr, sizeof(kerr)), want);
	config_free(&cfg);
	return ks;
}

/* Sign msg, write HEADER + msg's wire form (what a receiver gets: every
 * line ending CRLF, net/dot_stuff.c) and verify that with python3-dkim. */
static int sign_and_verify_wire(const struct dkim_keys *ks, const char *msg, size_t len)
{
	char *hdr = NULL, err[256], path[128];
	char *wire = malloc(dot_stuff_bound(len));
	size_t hl = 0, wl;
	FILE *f;

	assert_non_null(wire);
	assert_int_equal(dkim_sign(ks, msg, len, (int64_t)time(NULL), &hdr, &hl, err, sizeof(err)), 0);
	wl = chunk_form(msg, len, wire);
	snprintf(path, sizeof(path), "%s/m.eml", dir);
	f = fopen(path, "wb");
	fwrite(hdr, 1, hl, f);
	fwrite(wire, 1, wl, f);
	fclose(f);
	free(hdr);
	free(wire);
	return sh("/usr/bin/python3 %s/verify.py %s/m.eml s1._domainkey.example.com=%s/s1._domainkey.example.com.txt "
		  "e1._domainkey.ed.example=%s/e1._domainkey.ed.example.txt", dir, dir, dir, dir);
}

/* Sign, write HEADER+msg to a file, verify with python3-dkim: its exit status. */
static int sign_and_verify(const struct dkim_keys *ks, const char *msg, const char *tamper_from, const char *tamper_to)
{
	char *hdr = NULL, err[256], path[128];
	size_t hl = 0;
	FILE *f;

	assert_int_equal(dkim_sign(ks, msg, strlen(msg), (int64_t)time(NULL), &hdr, &hl, err, sizeof(err)), 0);
	assert_non_null(strstr(hdr, "DKIM-Signature: v=1;"));
	assert_true(hdr[hl - 1] == '\n');
	snprintf(path, sizeof(path), "%s/m.eml", dir);
	f = fopen(path, "wb");
	fwrite(hdr, 1, hl, f);
	if (tamper_from) {
		const char *at = strstr(msg, tamper_from);
		fwrite(msg, 1, (size_t)(at - msg), f);
		fputs(tamper_to, f);
		fputs(at + strlen(tamper_from), f);
	} else {
		fputs(msg, f);
	}
	fclose(f);
	free(hdr);
	return sh("/usr/bin/python3 %s/verify.py %s/m.eml s1._domainkey.example.com=%s/s1._domainkey.example.com.txt "
		  "e1._domainkey.ed.example=%s/e1._domainkey.ed.example.txt", dir, dir, dir, dir);
}

static const char *const MSGS[] = {
	"From: Sender <news@example.com>\r\nTo: a@x.test\r\nSubject: hello\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	"Message-ID: <1@example.com>\r\n\r\nHello\r\n",
	/* folded subject, duplicate Received, trailing blanks, trailing empty lines */
	"Received: from a\r\nReceived: from b\r\nFrom: \"Quoted, Name\" (comment) <news@EXAMPLE.com>\r\n"
	"Subject: a long\r\n\tfolded   subject   \r\nTo: a@x.test,\r\n b@x.test\r\nMIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n\r\nline with  two  spaces   \r\n\ttab line\r\n\r\n\r\n\r\n",
	/* empty body */
	"From: news@example.com\r\nSubject: empty\r\n\r\n",
	/* 8-bit and a long line */
	"From: news@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nGr\xc3\xbc\xc3\x9f\x65 aus K\xc3\xb6ln\r\n"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
};

static void test_rsa_and_ed25519_verify(void **state)
{
	char text[512];
	struct dkim_keys *ks;
	(void)state;

	snprintf(text, sizeof(text), "domain-key s1,example.com,%s/rsa.pem\ndomain-key e1,ed.example,%s/ed.pem\n", dir, dir);
	ks = load(text, 0);
	assert_int_equal(dkim_keys_count(ks), 2);
	for (size_t i = 0; i < sizeof(MSGS) / sizeof(MSGS[0]); i++) {
		if (sign_and_verify(ks, MSGS[i], NULL, NULL) != 0)
			fail_msg("message %zu (rsa) does not verify", i);
	}
	/* the same through the Ed25519 key */
	if (sign_and_verify(ks, "From: x@ed.example\r\nTo: y@z.test\r\nSubject: ed\r\n\r\nbody\r\n", NULL, NULL) != 0)
		fail_msg("the ed25519 signature does not verify");
	/* tampering must break it (so the verification above can fail) */
	assert_int_not_equal(sign_and_verify(ks, MSGS[0], "Hello", "Hellx"), 0);
	assert_int_not_equal(sign_and_verify(ks, MSGS[0], "Subject: hello", "Subject: hellO"), 0);
	dkim_keys_free(ks);
}

/* A bare CR or LF in the stored message goes out as a line end: the
 * signature must be over that, the bytes the receiver gets. */
static void test_bare_cr_lf(void **state)
{
	static const char *const bare[] = {
		"From: news@example.com\r\nSubject: cr\r\n\r\nline one\rline two\r\n",
		"From: news@example.com\r\nSubject: lf\r\n\r\nline one\nline two\r\n",
		"From: news@example.com\r\nSubject: crcr\r\n\r\na \r\r\nb\r",
		"From: news@example.com\r\nSubject: in a header\rX-Odd: 1\r\n\r\nbody\r\n",
		"From: x@ed.example\r\nSubject: ed\r\n\r\nbare\rcr\r\n",
	};
	char text[512];
	struct dkim_keys *ks;
	(void)state;

	snprintf(text, sizeof(text), "domain-key s1,example.com,%s/rsa.pem\ndomain-key e1,ed.example,%s/ed.pem\n", dir, dir);
	ks = load(text, 0);
	for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++)
		if (sign_and_verify_wire(ks, bare[i], strlen(bare[i])) != 0)
			fail_msg("message %zu with a bare CR/LF does not verify as sent", i);
	/* CRLF-only messages sign the same either way (the fast path) */
	if (sign_and_verify_wire(ks, MSGS[1], strlen(MSGS[1])) != 0)
		fail_msg("a CRLF message does not verify as sent");
	dkim_keys_free(ks);
}

static void test_errors(void **state)
{
	char text[512], *hdr = NULL, err[256], dom[64];
	size_t hl;
	struct dkim_keys *ks;
	(void)state;

	load("domain-key s,example.com,/nonexistent/key.pem\n", -1);
	snprintf(text, sizeof(text), "domain-key s,example.com,%s/verify.py\n", dir);
	load(text, -1);
	snprintf(text, sizeof(text), "domain-key s,example.com,%s/ec.pem\n", dir);
	load(text, -1);
	snprintf(text, sizeof(text), "domain-key s1,example.com,%s/rsa.pem\n", dir);
	ks = load(text, 0);
	assert_int_equal(dkim_sign(ks, "Subject: no from\r\n\r\nx\r\n", 22, 1, &hdr, &hl, err, sizeof(err)), 1);
	assert_int_equal(dkim_sign(ks, "From: a@other.test\r\n\r\nx\r\n", 24, 1, &hdr, &hl, err, sizeof(err)), 1);
	assert_null(hdr);
	assert_int_equal(dkim_from_domain("From: \"a@b\" <c@D.example>\r\n\r\n", 28, dom, sizeof(dom)), 0);
	assert_string_equal(dom, "d.example");
	assert_int_equal(dkim_from_domain("From: undisclosed\r\n\r\n", 21, dom, sizeof(dom)), -1);
	dkim_keys_free(ks);
}

/* PowerMTA's choice of key: the first, in config order, whose domain is the
 * sending domain or a parent of it, or `*`, which signs as the sending
 * domain itself (d=); a verifier finds the key at s1._domainkey.<d=>. */
static void test_key_choice(void **state)
{
	char text[512], *hdr = NULL, err[256], path[128];
	const char *msgs[] = {"From: a@sub.example.com\r\nSubject: s\r\n\r\nbody\r\n",
			      "From: b@other.test\r\nSubject: s\r\n\r\nbody\r\n"};
	const char *want_d[] = {"d=example.com;", "d=other.test;"};
	struct dkim_keys *ks;
	size_t hl;
	FILE *f;
	(void)state;

	snprintf(text, sizeof(text), "domain-key s1,example.com,%s/rsa.pem\ndomain-key s1,*,%s/rsa.pem\n", dir, dir);
	ks = load(text, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(dkim_sign(ks, msgs[i], strlen(msgs[i]), (int64_t)time(NULL), &hdr, &hl, err, sizeof(err)), 0);
		assert_non_null(strstr(hdr, want_d[i]));
		snprintf(path, sizeof(path), "%s/m.eml", dir);
		f = fopen(path, "wb");
		fwrite(hdr, 1, hl, f);
		fwrite(msgs[i], 1, strlen(msgs[i]), f);
		fclose(f);
		free(hdr);
		hdr = NULL;
		assert_int_equal(sh("/usr/bin/python3 %s/verify.py %s/m.eml s1._domainkey.example.com=%s/s1._domainkey.example.com.txt "
				    "s1._domainkey.other.test=%s/s1._domainkey.example.com.txt", dir, dir, dir, dir), 0);
	}
	dkim_keys_free(ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_and_ed25519_verify),
		cmocka_unit_test(test_bare_cr_lf),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_key_choice),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
