/* test_dot_stuff.c - DATA transparency: dot_stuff() (outbound wire form) and
 * the streaming dot_unstuff_feed() (inbound), checked against a simple
 * whole-buffer reference decoder, at every split point, one byte at a time,
 * with output buffers of exactly the promised capacity placed before a
 * PROT_NONE page so an overflow or over-read faults. */
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
};

/* Feed s[0..n) in chunks whose sizes come from next_chunk (0 = all the rest),
 * each chunk at the guard page with an output buffer of exactly the chunk's
 * length; re-feed what a call did not consume, as the server does. */
static void feed_chunks(const char *s, size_t n, size_t (*next_chunk)(void *, size_t), void *ctx,
			struct result *res)
{
	struct dot_unstuff st = {0};
	size_t off = 0, stalls = 0;

	res->out = malloc(2 * n + 1);
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
		o = out_at_guard(c);
		used = dot_unstuff_feed(&st, in, c, o, &ol, &res->done);
		assert_true(used <= c);
		assert_true(ol <= c);
		/* Progress: something consumed or written, never two stalls in a row. */
		if (used == 0 && !res->done) {
			assert_true(ol > 0);
			assert_true(++stalls < 2);
		} else {
			stalls = 0;
		}
		memcpy(res->out + res->out_len, o, ol);
		res->out_len += ol;
		off += used;
	}
	res->consumed = off;
	/* After done, nothing more is consumed. */
	if (res->done && off < n) {
		size_t ol = 99;
		bool d = false;
		char tmp[8];
		size_t c = n - off < sizeof(tmp) ? n - off : sizeof(tmp);

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

/* The reference decoder: whole buffer, line by line. A line ends at LF; a
 * CR right before it is part of the terminator. The line "." ends the data;
 * other lines lose a leading dot; each line is written with CRLF. Returns
 * consumed (through the terminator), or n with *done false. A last partial
 * line is written as the streaming decoder would have, so far: without its
 * leading dot, and nothing at all while it is just "." or ".\r". */
static size_t ref_unstuff(const char *s, size_t n, char *out, size_t *out_len, bool *done)
{
	size_t pos = 0, o = 0;

	*done = false;
	while (pos < n) {
		const char *lf = memchr(s + pos, '\n', n - pos);
		size_t end = lf ? (size_t)(lf - s) : n;
		size_t cl = end - pos;
		size_t start = pos;

		if (!lf) {
			/* Partial last line. */
			if (s[pos] == '.') {
				if (cl == 1 || (cl == 2 && s[pos + 1] == '\r'))
					break;
				start++;
			}
			memcpy(out + o, s + start, end - start);
			o += end - start;
			break;
		}
		if (cl > 0 && s[end - 1] == '\r')
			cl--;
		if (cl == 1 && s[pos] == '.') {
			*done = true;
			*out_len = o;
			return end + 1;
		}
		if (cl > 0 && s[pos] == '.') {
			start++;
			cl--;
		}
		memcpy(out + o, s + start, cl);
		o += cl;
		memcpy(out + o, "\r\n", 2);
		o += 2;
		pos = end + 1;
	}
	*out_len = o;
	return n;
}

static void expect_same_as_ref(const char *s, size_t n, const struct result *res, const char *how)
{
	char *ref = malloc(2 * n + 1);
	size_t ref_len, ref_used;
	bool ref_done;

	assert_non_null(ref);
	ref_used = ref_unstuff(s, n, ref, &ref_len, &ref_done);
	if (res->done != ref_done || res->consumed != ref_used || res->out_len != ref_len ||
	    memcmp(res->out, ref, ref_len) != 0) {
		fprintf(stderr, "input (%zu) %s:", n, how);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %02x", (unsigned char)s[i]);
		fprintf(stderr, "\n got done=%d used=%zu out=%zu, ref done=%d used=%zu out=%zu\n", res->done,
			res->consumed, res->out_len, ref_done, ref_used, ref_len);
		free(ref);
		fail();
	}
	free(ref);
}

/* Decode s whole, one byte at a time, at every single split and (for short
 * inputs) every pair of splits; all must agree with the reference. */
static void check_all_splits(const char *s, size_t n)
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
	UNSTUFF(".\n", "", 2, true);
	UNSTUFF("\r\n.\r\n", "\r\n", 5, true);              /* one empty line */
	UNSTUFF("..\r\n.\r\n", ".\r\n", 7, true);           /* a body that is only "." */
	UNSTUFF("..x\r\n.\r\n", ".x\r\n", 8, true);
	UNSTUFF("...\r\n.\r\n", "..\r\n", 8, true);
	UNSTUFF("a\r\n..\r\n.\r\n", "a\r\n.\r\n", 10, true);
	UNSTUFF(".x\r\n.\r\n", "x\r\n", 7, true);           /* unstuffed dot dropped (RFC 5321 4.5.2) */
	UNSTUFF(". \r\n.\r\n", " \r\n", 7, true);
	UNSTUFF("x.y\r\n.\r\n", "x.y\r\n", 8, true);
	UNSTUFF("a.\r\n.\r\n", "a.\r\n", 7, true);
	/* Bare LF in, CRLF out; bare-LF terminator. */
	UNSTUFF("a\nb\n.\n", "a\r\nb\r\n", 6, true);
	UNSTUFF("a\n.\r\n", "a\r\n", 5, true);
	UNSTUFF("a\r\n.\n", "a\r\n", 5, true);
	UNSTUFF("\n\n.\n", "\r\n\r\n", 4, true);
	UNSTUFF("..\n.\n", ".\r\n", 5, true);
	/* Bare CR is data and starts no line. */
	UNSTUFF("a\r.\r\n.\r\n", "a\r.\r\n", 8, true);
	UNSTUFF("a\r\r\n.\r\n", "a\r\r\n", 7, true);
	UNSTUFF(".\r\r\n.\r\n", "\r\r\n", 7, true);
	UNSTUFF(".\rx\r\n.\r\n", "\rx\r\n", 8, true);
	UNSTUFF(".\r.\r\n.\r\n", "\r.\r\n", 8, true);
	UNSTUFF("\r.\r\n.\r\n", "\r.\r\n", 7, true);
	/* NUL and 8-bit bytes are data. */
	UNSTUFF("\0\xff\r\n.\r\n", "\0\xff\r\n", 7, true);
	/* Not terminated (yet). */
	UNSTUFF("abc", "abc", 3, false);
	UNSTUFF("abc\r\n", "abc\r\n", 5, false);
	UNSTUFF("abc\r\n.", "abc\r\n", 6, false);
	UNSTUFF("abc\r\n.\r", "abc\r\n", 7, false);
	UNSTUFF("abc\r\n..", "abc\r\n.", 7, false);
	UNSTUFF("abc\r\n.\r.", "abc\r\n\r.", 8, false);
	UNSTUFF("", "", 0, false);
	UNSTUFF(" .\r\n", " .\r\n", 4, false);
	UNSTUFF("\r\n. \r\n", "\r\n \r\n", 6, false);
}

/* Bytes after the terminator belong to the next command. */
static void test_unstuff_pipelined(void **state)
{
	UNSTUFF("a\r\n.\r\nQUIT\r\n", "a\r\n", 6, true);
	UNSTUFF(".\r\nMAIL FROM:<a@b>\r\n", "", 3, true);
	UNSTUFF("a\r\n.\r\n.\r\n", "a\r\n", 6, true);
	UNSTUFF("a\n.\nRSET\n", "a\r\n", 4, true);
	UNSTUFF(".\r\n\r\n", "", 3, true);

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

/* Bare LFs double the output: a capacity of exactly len must still suffice,
 * by consuming less; one byte per call with capacity one included. */
static void test_unstuff_capacity(void **state)
{
	char in[1000];
	struct result res;

	memset(in, '\n', sizeof(in));
	memcpy(in + sizeof(in) - 2, ".\n", 2);
	feed_chunks(in, sizeof(in), chunk_one, NULL, &res);
	assert_true(res.done);
	assert_int_equal(res.consumed, sizeof(in));
	assert_int_equal(res.out_len, 2 * (sizeof(in) - 2));
	for (size_t i = 0; i < res.out_len; i += 2)
		assert_memory_equal(res.out + i, "\r\n", 2);
	free(res.out);
	check_all_splits(in, 60);
	/* One call with the whole buffer consumes only what fits. */
	struct dot_unstuff st = {0};
	char out[8];
	size_t ol;
	bool done;
	size_t used = dot_unstuff_feed(&st, "\n\n\n\n\n\n\n\n", 8, out, &ol, &done);

	assert_int_equal(ol, 8);
	assert_int_equal(used, 4);
	assert_false(done);
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
	feed_chunks(wire, wl, chunk_all, NULL, &res);
	assert_true(res.done);
	assert_int_equal(res.consumed, wl);
	assert_int_equal(res.out_len, nl);
	assert_memory_equal(res.out, norm, nl);
	free(res.out);
	feed_chunks(wire, wl, chunk_random, seed, &res);
	assert_true(res.done);
	assert_int_equal(res.out_len, nl);
	assert_memory_equal(res.out, norm, nl);
	free(res.out);
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
		feed_chunks(buf, n, chunk_random, &seed, &res);
		expect_same_as_ref(buf, n, &res, "random chunks");
		free(res.out);
		feed_chunks(buf, n, chunk_one, NULL, &res);
		expect_same_as_ref(buf, n, &res, "random bytewise");
		free(res.out);
	}
}

/* A large body through 8 KiB feeds, like the server. */
static void test_large(void **state)
{
	size_t n = 2 * 1024 * 1024;
	char *body = malloc(n), *wire = malloc(dot_stuff_bound(n)), *out = malloc(8192), *got = malloc(2 * n + 2);
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
		cmocka_unit_test(test_unstuff_pipelined),
		cmocka_unit_test(test_unstuff_splits),
		cmocka_unit_test(test_unstuff_capacity),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
