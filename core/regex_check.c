/*
 * regex_check.c - estimates how many atoms regcomp() will build for an ERE
 * (see regex_check.h): a group counts the sum of its alternatives, '+' on
 * an element doubles it (glibc expands x+ to xx*), {n,m} multiplies it by
 * m (or n + 1 for {n,}), '*' and '?' keep it. A quantifier directly after
 * another is refused outright: POSIX leaves it undefined and glibc doubles
 * on each.
 */
#include "core/regex_check.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
	const char *p;
	const char *why;
	int depth;
};

static size_t cap_add(size_t a, size_t b)
{
	return a + b > REGEX_CHECK_MAX_COPIES ? REGEX_CHECK_MAX_COPIES + 1 : a + b;
}

static size_t cap_mul(size_t a, size_t b)
{
	return b && a > (REGEX_CHECK_MAX_COPIES + 1) / b ? REGEX_CHECK_MAX_COPIES + 1 : a * b;
}

/* A bracket expression from its '[': ']' first (or after '^') is a member;
 * [:class:], [.coll.] and [=equiv=] hold ']' of their own. */
static void skip_bracket(struct scan *s)
{
	const char *p = s->p + 1;

	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	while (*p && *p != ']') {
		if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			const char *e = strchr(p + 2, p[1]);

			while (e && e[1] != ']')
				e = strchr(e + 1, p[1]);
			p = e ? e + 2 : p + strlen(p);
			continue;
		}
		p++;
	}
	s->p = *p ? p + 1 : p;
}

/* "{n}", "{n,}" or "{n,m}" at s->p: the factor it multiplies by, or 0 when
 * this is not an interval (regcomp() judges it). */
static size_t interval(struct scan *s)
{
	const char *p = s->p + 1;
	char *end;
	unsigned long n, m;

	if (!isdigit((unsigned char)*p))
		return 0;
	n = m = strtoul(p, &end, 10);
	p = end;
	if (*p == ',') {
		p++;
		m = isdigit((unsigned char)*p) ? strtoul(p, &end, 10) : n + 1;
		if (isdigit((unsigned char)*p))
			p = end;
	}
	if (*p != '}')
		return 0;
	if (n > REGEX_CHECK_MAX_REPEAT || m > REGEX_CHECK_MAX_REPEAT + 1) {
		s->why = "a repetition bound over 255";
		return 0;
	}
	s->p = p + 1;
	return m > n ? m : n ? n : 1;
}

static size_t alternatives(struct scan *s);

static size_t atom(struct scan *s)
{
	size_t n = 1;

	switch (*s->p) {
	case '(':
		if (++s->depth > REGEX_CHECK_MAX_DEPTH) {
			s->why = "groups nested too deep";
			return 0;
		}
		s->p++;
		n = alternatives(s);
		if (*s->p == ')')
			s->p++;
		s->depth--;
		return n ? n : 1;
	case '[':
		skip_bracket(s);
		return 1;
	case '\\':
		s->p += s->p[1] ? 2 : 1;
		return 1;
	default:
		s->p++;
		return 1;
	}
}

static size_t sequence(struct scan *s)
{
	size_t sum = 0;

	while (*s->p && *s->p != '|' && *s->p != ')' && !s->why) {
		size_t n = atom(s);
		bool quantified = false;

		while (!s->why) {
			size_t f;

			if (*s->p == '*' || *s->p == '?')
				f = 1, s->p++;
			else if (*s->p == '+')
				f = 2, s->p++;
			else if (*s->p != '{' || !(f = interval(s)))
				break; /* no quantifier (a '{' that is no interval is regcomp's to judge) */
			if (quantified) {
				s->why = "a repetition applied to a repetition";
				break;
			}
			quantified = true;
			n = cap_mul(n, f);
		}
		sum = cap_add(sum, n);
	}
	return sum;
}

static size_t alternatives(struct scan *s)
{
	size_t sum = sequence(s);

	while (*s->p == '|' && !s->why) {
		s->p++;
		sum = cap_add(sum, sequence(s));
	}
	return sum;
}

int regex_check(const char *re, char *why, size_t cap)
{
	struct scan s = {.p = re};
	size_t n = 0;

	if (strlen(re) > REGEX_CHECK_MAX_LEN) {
		snprintf(why, cap, "longer than %d characters", REGEX_CHECK_MAX_LEN);
		return -1;
	}
	while (*s.p && !s.why) {
		n = cap_add(n, alternatives(&s));
		if (*s.p == ')') /* unbalanced: regcomp() says so */
			s.p++;
	}
	if (!s.why && n > REGEX_CHECK_MAX_COPIES)
		s.why = "its repetitions expand too far";
	if (s.why) {
		snprintf(why, cap, "%s", s.why);
		return -1;
	}
	return 0;
}
