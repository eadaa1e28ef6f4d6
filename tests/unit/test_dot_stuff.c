/* test_dot_stuff.c - DATA transparency: dot_stuff() (outbound wire form) and
 * the streaming dot_unstuff_feed() (inbound), checked against a simple
 * whole-buffer reference decoder, at every split point, one byte at a time,
 * in both modes (bare CR/LF kept and flagged, or normalised to CRLF), with
 * output buffers of exactly the promised capacity placed before a PROT_NONE
 * page so an overflow or over-read faults. Only CRLF "." CRLF may end DATA:
 * the smuggling sequences are checked to end nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/dot_stuff.h"

/* ---- guard pages: one area for input, one for output ---------------------- */

#define GUARD_AREA (4 * 1024 * 1024)

struct guard {
	char *area;
};

static char *guard_end(struct guard *g)
{
	if (!g->area) {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);

		g->area = mmap(NULL, GUARD_AREA + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(g->area != MAP_FAILED);
		assert_int_equal(mprotect(g->area + GUARD_AREA, page, PROT_NONE), 0);
	}
	return g->area + GUARD_AREA;
}

static struct guard gin, gout;

/* Input copied to end right before the guard page. */
static const char *in_at_guard(const char *s, size_t n)
{
	char *e = guard_end(&gin);

	assert_true(n <= GUARD_AREA);
	memmove(e - n, s, n);
	return e - n;
}

/* An output buffer of exactly cap bytes ending at the guard page. */
static char *out_at_guard(size_t cap)
{
	char *e = guard_end(&gout);

	assert_true(cap <= GUARD_AREA);
	return e - cap;
}

/* ---- helpers ----------------------------------------------------------------- */

struct result {
	char *out;
	size_t out_len;
	size_t consumed;
	bool done;
	bool bare_cr, bare_lf;
};

/* The mode feed_chunks() and ref_unstuff() use: normalise bare CR/LF. */
static bool g_norm;

/* Feed s[0..n) in chunks whose sizes come from next_chunk (0 = all the rest),
 * each chunk at the guard page with an output buffer of exactly
 * dot_unstuff_bound() bytes; every call must consume its whole chunk unless
 * it found the terminator. */
static void feed_chunks(const char *s, size_t n, size_t (*next_chunk)(void *, size_t), void *ctx,
			struct result *res)
{
	struct dot_unstuff st = {0};
	size_t off = 0;

	st.normalize = g_norm;
	res->out = malloc(2 * n + 3);
	assert_non_null(res->out);
	res->out_len = 0;
	res->done = false;
	while (off < n && !res->done) {
		size_t c = next_chunk(ctx, n - off);
		size_t ol = 12345, used;
		const char *in;
		char *o;

		if (c == 0 || c > n - off)
			c = n - off;
		in = in_at_guard(s + off, c);
		o = out_at_guard(dot_unstuff_bound(c));
		used = dot_unstuff_feed(&st, in, c, o, &ol, &res->done);
		assert_true(used <= c);
		assert_true(ol <= dot_unstuff_bound(c));
		if (!res->done)
			assert_int_equal(used, c);
		assert_true(res->out_len + ol <= 2 * n + 3);
		memcpy(res->out + res->out_len, o, ol);
		res->out_len += ol;
		off += used;
	}
	res->consumed = off;
	res->bare_cr = st.bare_cr;
	res->bare_lf = st.bare_lf;
	/* After done, nothing more is consumed. */
	if (res->done && off < n) {
		size_t ol = 99;
		bool d = false;
		char tmp[32];
		size_t c = n - off < 8 ? n - off : 8;

		assert_int_equal(dot_unstuff_feed(&st, s + off, c, tmp, &ol, &d), 0);
		assert_int_equal(ol, 0);
		assert_true(d);
	}
}

static size_t chunk_all(void *ctx, size_t rest)
{
	return rest;
}

static size_t chunk_one(void *ctx, size_t rest)
{
	return 1;
}

struct split {
	size_t points[2];
	int i;
	size_t pos;
};

/* Cut at absolute positions points[0] then points[1]. */
static size_t chunk_split(void *ctx, size_t rest)
{
	struct split *sp = ctx;

	while (sp->i < 2) {
		size_t p = sp->points[sp->i];

		if (p > sp->pos) {
			size_t c = p - sp->pos;

			sp->pos += c;
			return c;
		}
		sp->i++;
	}
	sp->pos += rest;
	return rest;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t chunk_random(void *ctx, size_t rest)
{
	return 1 + rng_next(ctx) % 9;
}

/* Bare CRs and LFs of a CRLF-free piece: flagged, and written as they are
 * or (g_norm) as CRLF. */
static size_t ref_bare(const char *s, size_t n, char *out, struct result *f)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			if (s[i] == '\r')
				f->bare_cr = true;
			else
				f->bare_lf = true;
			if (g_norm) {
				out[o++] = '\r';
				out[o++] = '\n';
				continue;
			}
		}
		out[o++] = s[i];
	}
	return o;
}

/* Does the line at s (n bytes, n >= 2) lose its leading dot? */
static bool ref_drops_dot(const char *s, size_t n)
{
	return s[0] == '.' && s[1] != '\r' && s[1] != '\n';
}

/* The reference decoder: whole buffer. The data ends at the first CRLF "."
 * CRLF (the start counting as a CRLF); before it, lines end at CRLF only;
 * each loses a leading dot unless a CR or LF follows the dot; bare CR/LF
 * inside are handled by ref_bare(). A last partial line is written as the
 * streaming decoder would have, so far: nothing while it is just "." or
 * ".\r", and a final CR unflagged (its LF may still come). */
static void ref_unstuff(const char *s, size_t n, struct result *r)
{
	size_t pos = 0, o = 0, end_data = n;
	const char *t;

	r->done = false;
	r->bare_cr = r->bare_lf = false;
	r->out = malloc(2 * n + 3);
	assert_non_null(r->out);
	if (n >= 3 && memcmp(s, ".\r\n", 3) == 0) {
		r->done = true;
		end_data = 0;
	} else if ((t = memmem(s, n, "\r\n.\r\n", 5))) {
		r->done = true;
		end_data = (size_t)(t - s) + 2;
	}
	while (pos < end_data) {
		const char *crlf = memmem(s + pos, end_data - pos, "\r\n", 2);
		size_t lend = crlf ? (size_t)(crlf - s) : end_data, l = lend - pos, start = pos;

		if (!crlf) {
			if (s[pos] == '.' && (l == 1 || (l == 2 && s[pos + 1] == '\r')))
				break;             /* held: maybe the terminator */
			if (l >= 2 && ref_drops_dot(s + pos, l))
				start++;
			if (s[lend - 1] == '\r') {
				o += ref_bare(s + start, lend - 1 - start, r->out + o, r);
				r->out[o++] = '\r';
			} else {
				o += ref_bare(s + start, lend - start, r->out + o, r);
			}
			break;
		}
		if (l >= 2 && ref_drops_dot(s + pos, l))
			start++;
		o += ref_bare(s + start, lend - start, r->out + o, r);
		memcpy(r->out + o, "\r\n", 2);
		o += 2;
		pos = lend + 2;
	}
	r->out_len = o;
	r->consumed = r->done ? (end_data ? end_data + 3 : 3) : n;
}

static void expect_same_as_ref(const char *s, size_t n, const struct result *res, const char *how)
{
	struct result ref;

	ref_unstuff(s, n, &ref);
	if (res->done != ref.done || res->consumed != ref.consumed || res->out_len != ref.out_len ||
	    memcmp(res->out, ref.out, ref.out_len) != 0 || res->bare_cr != ref.bare_cr ||
	    res->bare_lf != ref.bare_lf) {
		fprintf(stderr, "input (%zu) %s, normalize %d:", n, how, g_norm);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %02x", (unsigned char)s[i]);
		fprintf(stderr, "\n got done=%d used=%zu out=%zu cr=%d lf=%d, ref done=%d used=%zu out=%zu cr=%d lf=%d\n",
			res->done, res->consumed, res->out_len, res->bare_cr, res->bare_lf, ref.done, ref.consumed,
			ref.out_len, ref.bare_cr, ref.bare_lf);
		free(ref.out);
		fail();
	}
	free(ref.out);
}

/* Decode s whole, one byte at a time, at every single split and (for short
 * inputs) every pair of splits; all must agree with the reference. */
static void check_splits_mode(const char *s, size_t n)
{
	struct result res;
	struct split sp;

	feed_chunks(s, n, chunk_all, NULL, &res);
	expect_same_as_ref(s, n, &res, "whole");
	free(res.out);
	feed_chunks(s, n, chunk_one, NULL, &res);
	expect_same_as_ref(s, n, &res, "bytewise");
	free(res.out);
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			if (n > 48 && b != a)
				break;
			sp = (struct split){{a, b}, 0, 0};
			feed_chunks(s, n, chunk_split, &sp, &res);
			expect_same_as_ref(s, n, &res, "split");
			free(res.out);
		}
	}
}

static void check_all_splits(const char *s, size_t n)
{
	bool was = g_norm;

	g_norm = false;
	check_splits_mode(s, n);
	g_norm = true;
	check_splits_mode(s, n);
	g_norm = was;
}

static void unstuff_expect(const char *in, size_t in_len, const char *want, size_t want_len, size_t want_used,
			   bool want_done)
{
	struct result res;

	feed_chunks(in, in_len, chunk_all, NULL, &res);
	assert_int_equal(res.done, want_done);
	assert_int_equal(res.consumed, want_used);
	assert_int_equal(res.out_len, want_len);
	assert_memory_equal(res.out, want, want_len);
	free(res.out);
	check_all_splits(in, in_len);
}

#define UNSTUFF(in, want, used, done) unstuff_expect(in, sizeof(in) - 1, want, sizeof(want) - 1, used, done)

/* ---- outbound ----------------------------------------------------------------- */

static void stuff_expect(const char *in, size_t n, const char *want, size_t want_len)
{
	size_t bound = dot_stuff_bound(n);
	char *o = out_at_guard(bound);     /* an overrun faults */
	size_t got = dot_stuff(in_at_guard(in, n), n, o);

	if (got != want_len || memcmp(o, want, want_len) != 0) {
		fprintf(stderr, "stuff got %zu: ", got);
		fwrite(o, 1, got, stderr);
		fprintf(stderr, "\n");
		fail();
	}
	assert_true(got <= bound);
}

#define STUFF(in, want) stuff_expect(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_stuff(void **state)
{
	STUFF("", ".\r\n");
	STUFF("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
	STUFF("abc", "abc\r\n.\r\n");                       /* missing final CRLF */
	STUFF(".", "..\r\n.\r\n");                          /* a body that is only "." */
	STUFF(".\r\n", "..\r\n.\r\n");
	STUFF("..", "...\r\n.\r\n");
	STUFF("..x\r\n", "...x\r\n.\r\n");
	STUFF("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n");
	STUFF("a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n");      /* would-be terminator */
	STUFF("a\r\n.", "a\r\n..\r\n.\r\n");
	STUFF("x.y\r\n", "x.y\r\n.\r\n");                   /* dots inside lines stay */
	STUFF("\r\n", "\r\n.\r\n");
	STUFF("\r\n\r\n", "\r\n\r\n.\r\n");
	/* Bare LF and bare CR become CRLF. */
	STUFF("a\nb\n", "a\r\nb\r\n.\r\n");
	STUFF("a\n.\n", "a\r\n..\r\n.\r\n");
	STUFF("a\rb", "a\r\nb\r\n.\r\n");
	STUFF("a\r.b\r", "a\r\n..b\r\n.\r\n");
	STUFF("\n\n", "\r\n\r\n.\r\n");
	STUFF("\r\r\n", "\r\n\r\n.\r\n");
	STUFF("\n\r", "\r\n\r\n.\r\n");
	STUFF("\r", "\r\n.\r\n");
	STUFF(".\n.\r.\r\n.", "..\r\n..\r\n..\r\n..\r\n.\r\n");
	/* 8-bit and NUL bytes pass. */
	STUFF("\xff\0\x80\r\n", "\xff\0\x80\r\n.\r\n");
}

/* The bound is tight for the worst inputs, and never exceeded. */
static void test_stuff_bound(void **state)
{
	static const char *units[] = {".\n", ".\r", "\n", "\r", ".", "\r\n", "a"};
	char in[4096];

	assert_int_equal(dot_stuff_bound(0), 5);
	assert_int_equal(dot_stuff_bound(10), 25);
	assert_int_equal(dot_stuff_bound(SIZE_MAX), SIZE_MAX);
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		size_t ul = strlen(units[u]), n = 0;

		while (n + ul <= sizeof(in)) {
			memcpy(in + n, units[u], ul);
			n += ul;
		}
		for (size_t k = 0; k <= n; k += 1 + k / 3) {
			size_t bound = dot_stuff_bound(k);
			char *o = out_at_guard(bound);
			size_t got = dot_stuff(in_at_guard(in, k), k, o);

			assert_true(got <= bound);
		}
	}
}

static void chunk_expect(const char *in, size_t n, const char *want, size_t want_len)
{
	size_t bound = dot_stuff_bound(n);
	char *o = out_at_guard(bound);
	size_t got = chunk_form(in_at_guard(in, n), n, o);

	assert_int_equal(got, want_len);
	assert_memory_equal(o, want, want_len);
}

#define CHUNK(in, want) chunk_expect(in, sizeof(in) - 1, want, sizeof(want) - 1)

/* BDAT's form: line endings normalised, dots and "\r\n.\r\n" left alone,
 * no terminator. */
static void test_chunk_form(void **state)
{
	CHUNK("", "");
	CHUNK("a\r\nb\r\n", "a\r\nb\r\n");
	CHUNK("abc", "abc\r\n");
	CHUNK(".", ".\r\n");
	CHUNK("a\r\n.\r\nb", "a\r\n.\r\nb\r\n");        /* a DATA terminator is just data */
	CHUNK("..x\n.\r", "..x\r\n.\r\n");
	CHUNK("a\nb\rc\r\r\n", "a\r\nb\r\nc\r\n\r\n");
	CHUNK("\xff\0\x80", "\xff\0\x80\r\n");
}

/* chunk_form() and dot_stuff() agree on everything but the dots: stuffing
 * the chunk form by hand gives dot_stuff()'s output less its terminator. */
static void test_chunk_form_vs_stuff(void **state)
{
	static const char alphabet[] = {'a', '.', '\r', '\n'};
	char in[64], chunk[2 * 64 + 5], stuffed[2 * 64 + 5], by_hand[4 * 64 + 8];
	unsigned seed = 7;

	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof(in));
		for (size_t i = 0; i < n; i++)
			in[i] = alphabet[rand_r(&seed) % sizeof(alphabet)];
		size_t cl = chunk_form(in, n, chunk), sl = dot_stuff(in, n, stuffed), hl = 0;
		bool bol = true;
		for (size_t i = 0; i < cl; i++) {
			if (bol && chunk[i] == '.')
				by_hand[hl++] = '.';
			by_hand[hl++] = chunk[i];
			bol = chunk[i] == '\n';
		}
		assert_int_equal(hl + 3, sl);
		assert_memory_equal(by_hand, stuffed, hl);
		assert_memory_equal(stuffed + hl, ".\r\n", 3);
	}
}

/* ---- inbound ------------------------------------------------------------------ */

static void test_unstuff_basic(void **state)
{
	UNSTUFF("a\r\nb\r\n.\r\n", "a\r\nb\r\n", 9, true);
	UNSTUFF(".\r\n", "", 3, true);                      /* empty body right after DATA */
	UNSTUFF("\r\n.\r\n", "\r\n", 5, true);              /* one empty line */
	UNSTUFF("..\r\n.\r\n", ".\r\n", 7, true);           /* a body that is only "." */
	UNSTUFF("..x\r\n.\r\n", ".x\r\n", 8, true);
	UNSTUFF("...\r\n.\r\n", "..\r\n", 8, true);
	UNSTUFF("a\r\n..\r\n.\r\n", "a\r\n.\r\n", 10, true);
	UNSTUFF(".x\r\n.\r\n", "x\r\n", 7, true);           /* unstuffed dot dropped (RFC 5321 4.5.2) */
	UNSTUFF(". \r\n.\r\n", " \r\n", 7, true);
	UNSTUFF("x.y\r\n.\r\n", "x.y\r\n", 8, true);
	UNSTUFF("a.\r\n.\r\n", "a.\r\n", 7, true);
	/* Bare LF and bare CR are data (flagged, see test_unstuff_bare) and end
	 * no line: no terminator but CRLF "." CRLF. */
	UNSTUFF(".\n", ".\n", 2, false);
	UNSTUFF("a\nb\n.\n", "a\nb\n.\n", 6, false);
	UNSTUFF("a\n.\r\n", "a\n.\r\n", 5, false);
	UNSTUFF("a\r\n.\n", "a\r\n.\n", 5, false);
	UNSTUFF("\n\n.\n", "\n\n.\n", 4, false);
	UNSTUFF("a\r.\r\n.\r\n", "a\r.\r\n", 8, true);
	UNSTUFF("a\r\r\n.\r\n", "a\r\r\n", 7, true);
	UNSTUFF(".\r\r\n.\r\n", ".\r\r\n", 7, true);        /* dot before a bare CR: kept */
	UNSTUFF(".\rx\r\n.\r\n", ".\rx\r\n", 8, true);
	UNSTUFF(".\r.\r\n.\r\n", ".\r.\r\n", 8, true);
	UNSTUFF("\r.\r\n.\r\n", "\r.\r\n", 7, true);
	UNSTUFF("a\r\n.\rM", "a\r\n.\rM", 6, false);
	/* NUL and 8-bit bytes are data. */
	UNSTUFF("\0\xff\r\n.\r\n", "\0\xff\r\n", 7, true);
	/* Not terminated (yet). */
	UNSTUFF("abc", "abc", 3, false);
	UNSTUFF("abc\r\n", "abc\r\n", 5, false);
	UNSTUFF("abc\r\n.", "abc\r\n", 6, false);
	UNSTUFF("abc\r\n.\r", "abc\r\n", 7, false);
	UNSTUFF("abc\r\n..", "abc\r\n.", 7, false);
	UNSTUFF("abc\r\n.\r.", "abc\r\n.\r.", 8, false);
	UNSTUFF("", "", 0, false);
	UNSTUFF(" .\r\n", " .\r\n", 4, false);
	UNSTUFF("\r\n. \r\n", "\r\n \r\n", 6, false);
}

static void bare_expect(const char *in, size_t n, bool norm, const char *want, size_t want_len, bool cr, bool lf)
{
	struct result res;
	bool was = g_norm;

	g_norm = norm;
	feed_chunks(in, n, chunk_all, NULL, &res);
	g_norm = was;
	assert_true(res.done);
	assert_int_equal(res.consumed, n);
	assert_int_equal(res.bare_cr, cr);
	assert_int_equal(res.bare_lf, lf);
	if (res.out_len != want_len || memcmp(res.out, want, want_len) != 0) {
		fprintf(stderr, "got (%zu): ", res.out_len);
		fwrite(res.out, 1, res.out_len, stderr);
		fprintf(stderr, "\n");
		fail();
	}
	free(res.out);
	check_all_splits(in, n);
}

#define BARE(in, norm, want, cr, lf) bare_expect(in, sizeof(in) - 1, norm, want, sizeof(want) - 1, cr, lf)

/* The flags, and what normalize stores: the smuggling sequences become
 * content lines (a "." line among them goes out stuffed again). */
static void test_unstuff_bare(void **state)
{
	BARE("a\r\nb\r\n.\r\n", false, "a\r\nb\r\n", false, false);
	BARE("a\r\nb\r\n.\r\n", true, "a\r\nb\r\n", false, false);
	BARE("a\nb\r\n.\r\n", false, "a\nb\r\n", false, true);
	BARE("a\nb\r\n.\r\n", true, "a\r\nb\r\n", false, true);
	BARE("a\rb\r\n.\r\n", true, "a\r\nb\r\n", true, false);
	BARE("a\r\r\n.\r\n", true, "a\r\n\r\n", true, false);
	BARE("\n\r\n.\r\n", true, "\r\n\r\n", false, true);
	BARE("hi\n.\nMAIL FROM:<ceo@bank.test>\r\n.\r\n", true, "hi\r\n.\r\nMAIL FROM:<ceo@bank.test>\r\n", false,
	     true);
	BARE("hi\n.\r\nMAIL\r\n.\r\n", true, "hi\r\n.\r\nMAIL\r\n", false, true);
	BARE("hi\r\n.\nMAIL\r\n.\r\n", true, "hi\r\n.\r\nMAIL\r\n", false, true);
	BARE("hi\r.\r\nMAIL\r\n.\r\n", true, "hi\r\n.\r\nMAIL\r\n", true, false);
	BARE("hi\r\n.\rMAIL\r\n.\r\n", true, "hi\r\n.\r\nMAIL\r\n", true, false);
	BARE("hi\r\n.\r\r\n.\r\n", true, "hi\r\n.\r\n\r\n", true, false);
	BARE("hi\r\n.\n\r\n.\r\n", true, "hi\r\n.\r\n\r\n", false, true);
}

/* Bytes after the terminator belong to the next command. */
static void test_unstuff_pipelined(void **state)
{
	UNSTUFF("a\r\n.\r\nQUIT\r\n", "a\r\n", 6, true);
	UNSTUFF(".\r\nMAIL FROM:<a@b>\r\n", "", 3, true);
	UNSTUFF("a\r\n.\r\n.\r\n", "a\r\n", 6, true);
	UNSTUFF(".\r\n\r\n", "", 3, true);
	/* The smuggling sequences followed by pipelined commands: all content. */
	static const char *const smuggle[] = {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r"};

	for (size_t k = 0; k < sizeof(smuggle) / sizeof(smuggle[0]); k++) {
		char in[256];
		int n = snprintf(in, sizeof(in), "hello%sMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\nx\r\n",
				 smuggle[k]);
		struct result res;

		feed_chunks(in, (size_t)n, chunk_all, NULL, &res);
		assert_false(res.done);
		assert_int_equal(res.consumed, (size_t)n);
		assert_true(res.bare_cr || res.bare_lf);
		free(res.out);
		check_all_splits(in, (size_t)n);
	}

	/* Feeding after done consumes nothing. */
	struct dot_unstuff st = {0};
	char out[32];
	size_t ol;
	bool done = false;

	assert_int_equal(dot_unstuff_feed(&st, ".\r\n", 3, out, &ol, &done), 3);
	assert_true(done);
	assert_int_equal(ol, 0);
	done = false;
	assert_int_equal(dot_unstuff_feed(&st, "x\r\n", 3, out, &ol, &done), 0);
	assert_true(done);
	assert_int_equal(ol, 0);
	/* Started mid-line (DATA's command line ended in a bare LF): "." at once
	 * is data, and only a real CRLF "." CRLF ends. */
	struct dot_unstuff st3 = {0};
	char out3[32];

	done = false;
	dot_unstuff_start_midline(&st3);
	assert_int_equal(dot_unstuff_feed(&st3, ".\r\nhi\r\n.\r\n", 10, out3, &ol, &done), 10);
	assert_true(done);
	assert_int_equal(ol, 7);
	assert_memory_equal(out3, ".\r\nhi\r\n", 7);
	/* Zero-length feeds are harmless at any point. */
	struct dot_unstuff st2 = {0};

	assert_int_equal(dot_unstuff_feed(&st2, "", 0, out, &ol, &done), 0);
	assert_false(done);
	assert_int_equal(ol, 0);
	assert_int_equal(dot_unstuff_feed(&st2, ".", 1, out, &ol, &done), 1);
	assert_int_equal(dot_unstuff_feed(&st2, "", 0, out, &ol, &done), 0);
	assert_int_equal(dot_unstuff_feed(&st2, "\r", 1, out, &ol, &done), 1);
	assert_int_equal(dot_unstuff_feed(&st2, "\n", 1, out, &ol, &done), 1);
	assert_true(done);
}

/* Every split of the sequences where streaming decoders go wrong. */
static void test_unstuff_splits(void **state)
{
	static const char *tricky[] = {
		"line\r\n..dot\r\n.\r\nNEXT",
		"\r\n.\r\n",
		".\r\n",
		"..\r\n...\r\n.\r\n",
		"a\r\n.\r.\r\n.\r\n",
		"a\n.\n",
		"a\n\n\n.\r\nX",
		".\r\r\n.\r\r\r\n..\r\n.\n",
		"x\r\r\n.\r\n",
		"\n\n\n\n\n\n\n\n.\n",
		".a\r\n.\r\nb",
		"a\r\n.\rb\r\n.\r\n",
	};
	for (size_t t = 0; t < sizeof(tricky) / sizeof(tricky[0]); t++)
		check_all_splits(tricky[t], strlen(tricky[t]));
}

/* Normalised bare LFs double the output; the worst case for the bound is
 * a held ".\r" released by a CR, one byte per call. */
static void test_unstuff_capacity(void **state)
{
	char in[1000];
	struct result res;
	bool was = g_norm;

	memset(in, '\n', sizeof(in));
	memcpy(in + sizeof(in) - 5, "\r\n.\r\n", 5);
	g_norm = true;
	feed_chunks(in, sizeof(in), chunk_one, NULL, &res);
	g_norm = was;
	assert_true(res.done);
	assert_int_equal(res.consumed, sizeof(in));
	assert_int_equal(res.out_len, 2 * (sizeof(in) - 5) + 2);
	for (size_t i = 0; i < res.out_len; i += 2)
		assert_memory_equal(res.out + i, "\r\n", 2);
	free(res.out);
	check_all_splits(in, 60);
	static const char held[] = "\r\n.\r\r\r\n.\r\r\n.\r\n";

	check_all_splits(held, sizeof(held) - 1);

	struct dot_unstuff st = {.normalize = true};
	char out[8];
	size_t ol;
	bool done;

	assert_int_equal(dot_unstuff_bound(1), 4);
	assert_int_equal(dot_unstuff_feed(&st, ".", 1, out, &ol, &done), 1);
	assert_int_equal(dot_unstuff_feed(&st, "\r", 1, out, &ol, &done), 1);
	assert_int_equal(ol, 0);
	assert_int_equal(dot_unstuff_feed(&st, "\r", 1, out, &ol, &done), 1);
	assert_int_equal(ol, 4);                            /* ".\r\n\r" */
	assert_memory_equal(out, ".\r\n\r", 4);
}

/* Stuff then unstuff: the original, with line ends normalised to CRLF and
 * a final CRLF added; the wire form holds no early terminator. */
static size_t normalise(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
		} else {
			out[o++] = s[i];
		}
	}
	if (o && !(o >= 2 && out[o - 2] == '\r' && out[o - 1] == '\n')) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

static void round_trip(const char *body, size_t n, uint64_t *seed)
{
	size_t bound = dot_stuff_bound(n);
	char *wire = malloc(bound), *norm = malloc(2 * n + 2);
	size_t wl, nl;
	struct result res;
	const char *first;

	assert_non_null(wire);
	assert_non_null(norm);
	wl = dot_stuff(body, n, wire);
	nl = normalise(body, n, norm);
	/* Transparency: the only terminator is the last one. */
	if (wl == 3) {
		assert_memory_equal(wire, ".\r\n", 3);
	} else {
		first = memmem(wire, wl, "\r\n.\r\n", 5);
		assert_ptr_equal(first, wire + wl - 5);
		assert_false(wl >= 3 && memcmp(wire, ".\r\n", 3) == 0);
	}
	/* Only CRLF line ends on the wire. */
	for (size_t i = 0; i < wl; i++) {
		if (wire[i] == '\n')
			assert_true(i > 0 && wire[i - 1] == '\r');
		if (wire[i] == '\r')
			assert_true(i + 1 < wl && wire[i + 1] == '\n');
	}
	for (int mode = 0; mode < 2; mode++) {
		bool was = g_norm;

		g_norm = mode;
		feed_chunks(wire, wl, chunk_all, NULL, &res);
		assert_true(res.done);
		assert_int_equal(res.consumed, wl);
		assert_int_equal(res.out_len, nl);
		assert_memory_equal(res.out, norm, nl);
		assert_false(res.bare_cr || res.bare_lf);
		free(res.out);
		feed_chunks(wire, wl, chunk_random, seed, &res);
		g_norm = was;
		assert_true(res.done);
		assert_int_equal(res.out_len, nl);
		assert_memory_equal(res.out, norm, nl);
		free(res.out);
	}
	free(wire);
	free(norm);
}

static void test_round_trip(void **state)
{
	static const char *bodies[] = {
		"", ".", "..", ".\r\n", "\r\n.\r\n", "a", "a\r\n", "a\nb\n", "a\rb\r", ".\n.\n",
		"Subject: x\r\n\r\n.leading\r\n..two\r\n.\r\nend", "\r\n", "\n", "\r", "\r\r\n\n",
	};
	uint64_t seed = 42;

	for (size_t t = 0; t < sizeof(bodies) / sizeof(bodies[0]); t++)
		round_trip(bodies[t], strlen(bodies[t]), &seed);
}

/* Random bodies over the bytes that matter, whole and in random chunks, and
 * random streams (not stuffed) against the reference decoder. */
static void test_random(void **state)
{
	static const char alpha[] = "..\r\r\n\nab\xff";
	uint64_t seed = 0xdeadbeefcafef00dull;
	char buf[200];

	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rng_next(&seed) % 64;
		struct result res;

		for (size_t i = 0; i < n; i++)
			buf[i] = alpha[rng_next(&seed) % (sizeof(alpha) - 1)];
		round_trip(buf, n, &seed);
		g_norm = iter & 1;
		feed_chunks(buf, n, chunk_random, &seed, &res);
		expect_same_as_ref(buf, n, &res, "random chunks");
		free(res.out);
		feed_chunks(buf, n, chunk_one, NULL, &res);
		expect_same_as_ref(buf, n, &res, "random bytewise");
		free(res.out);
		g_norm = false;
	}
}

/* A large body through 8 KiB feeds, like the server. */
static void test_large(void **state)
{
	size_t n = 2 * 1024 * 1024;
	char *body = malloc(n), *wire = malloc(dot_stuff_bound(n)), *out = malloc(dot_unstuff_bound(8192)), *got = malloc(2 * n + 2);
	char *norm = malloc(2 * n + 2);
	struct dot_unstuff st = {0};
	size_t wl, off = 0, gl = 0, nl;
	bool done = false;
	uint64_t seed = 7;

	assert_true(body && wire && out && got && norm);
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rng_next(&seed) % 100;

		body[i] = r < 2 ? '\n' : r < 4 ? '.' : r < 5 ? '\r' : (char)('a' + r % 26);
	}
	wl = dot_stuff(body, n, wire);
	nl = normalise(body, n, norm);
	while (!done) {
		size_t chunk = wl - off < 8192 ? wl - off : 8192, ol;
		size_t used = dot_unstuff_feed(&st, wire + off, chunk, out, &ol, &done);

		memcpy(got + gl, out, ol);
		gl += ol;
		off += used;
		assert_true(off <= wl);
	}
	assert_int_equal(off, wl);
	assert_int_equal(gl, nl);
	assert_memory_equal(got, norm, nl);
	free(body);
	free(wire);
	free(out);
	free(got);
	free(norm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stuff),
		cmocka_unit_test(test_stuff_bound),
		cmocka_unit_test(test_chunk_form),
		cmocka_unit_test(test_chunk_form_vs_stuff),
		cmocka_unit_test(test_unstuff_basic),
		cmocka_unit_test(test_unstuff_bare),
		cmocka_unit_test(test_unstuff_pipelined),
		cmocka_unit_test(test_unstuff_splits),
		cmocka_unit_test(test_unstuff_capacity),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
