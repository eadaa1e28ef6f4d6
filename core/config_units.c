/*
 * config_units.c - the value parsers of the configuration language:
 * durations, rates, sizes, integers, booleans, CIDR networks and socket
 * addresses, plus CIDR matching and formatting (contract in config.h).
 *
 * Owns: nothing. Every function is pure over its arguments: no allocation,
 * no global state, safe from any thread.
 *
 * Conventions shared by every parser here:
 *   - The whole string must be consumed: no leading or trailing whitespace,
 *     no signs, no junk. (config_parse.c trims values before calling.)
 *   - Numbers are decimal digits only (never strtoul: it would accept
 *     " -5" and silently wrap it). Every multiplication and addition is
 *     checked, so overflow is a parse error, never a wrapped value.
 *   - On failure the function returns -1 and *out is unspecified.
 *
 * Durations: one or more NUMBER UNIT components with units ms, s, m, h, d,
 * w (lower case; `M` is not minutes), strictly largest unit first and each
 * unit at most once (`4d12h`, `1h30m`, `1m30s500ms`); `30m1h` and `1h1h`
 * are rejected as likely typos. A bare number is seconds, but only on its
 * own (`90`; `1h30` is ambiguous and rejected).
 *
 * CIDR: an IPv4 network may omit trailing zero octets when it has a prefix
 * (`10/8`, `192.168/16`, `0/0`); without a prefix it is a full dotted quad
 * meaning /32. Octets with leading zeros (`010`) are rejected, because
 * inet_aton() would read them as octal. Bits beyond the prefix are cleared.
 * An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is stored as the IPv4
 * network it denotes (10.0.0.0/8), and matching maps IPv4-mapped client
 * addresses to IPv4 the same way, so each rule has exactly one family.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

/* Decimal digits at *sp into *out; at least one digit, no overflow. */
static int digits_u64(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!is_digit(*s))
		return -1;
	for (; is_digit(*s); s++) {
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -1;
	}
	*sp = s;
	*out = v;
	return 0;
}

int config_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (!s || digits_u64(&s, &v) < 0 || *s || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ---- durations and rates ----------------------------------------------- */

static const struct {
	const char *name;
	uint64_t ms;
} duration_units[] = {
	{"w", 7 * 86400000ULL}, {"d", 86400000ULL}, {"h", 3600000ULL},
	{"m", 60000ULL}, {"s", 1000ULL}, {"ms", 1ULL},
};

/* The unit spelled by the lower-case letters at *sp (advanced past them);
 * its length in ms, or 0 when the letters are not a unit. */
static uint64_t unit_ms(const char **sp)
{
	const char *s = *sp, *e = s;

	while (is_lower(*e))
		e++;
	for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
		size_t n = strlen(duration_units[i].name);
		if ((size_t)(e - s) == n && memcmp(s, duration_units[i].name, n) == 0) {
			*sp = e;
			return duration_units[i].ms;
		}
	}
	return 0;
}

/* The duration grammar described at the top; bare_ok allows a lone number
 * (seconds). */
static int duration(const char *s, bool bare_ok, uint64_t *out_ms)
{
	uint64_t total = 0, last_unit = UINT64_MAX;

	if (!s || !*s)
		return -1;
	while (*s) {
		uint64_t n, unit, part;
		bool first = last_unit == UINT64_MAX;

		if (digits_u64(&s, &n) < 0)
			return -1;
		if (!*s && first && bare_ok)
			unit = 1000;
		else if ((unit = unit_ms(&s)) == 0 || unit >= last_unit)
			return -1;
		if (__builtin_mul_overflow(n, unit, &part) || __builtin_add_overflow(total, part, &total))
			return -1;
		last_unit = unit;
	}
	*out_ms = total;
	return 0;
}

int config_parse_duration(const char *s, uint64_t *out_ms)
{
	return duration(s, true, out_ms);
}

int config_parse_rate(const char *s, struct config_rate *out)
{
	uint64_t count, per_ms;

	static const struct {
		const char *word;
		uint64_t ms;
	} words[] = {
		/* PowerMTA writes these too: `1/min`, `1000/day`; and configs `10/minute`, `5/Hour` */
		{"sec", 1000ULL}, {"min", 60000ULL}, {"hour", 3600000ULL}, {"hr", 3600000ULL},
		{"day", 86400000ULL}, {"week", 604800000ULL}, {"second", 1000ULL}, {"minute", 60000ULL},
	};

	if (!s || digits_u64(&s, &count) < 0 || *s++ != '/')
		return -1;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcasecmp(s, words[i].word)) {
			out->count = count;
			out->per_ms = words[i].ms;
			return 0;
		}
	if (is_lower(*s)) {
		/* "1000/h": one unit, no count */
		if ((per_ms = unit_ms(&s)) == 0 || *s)
			return -1;
	} else if (duration(s, false, &per_ms) < 0) {
		/* "83/10m", "5/1h30m"; a bare "83/10" is ambiguous */
		return -1;
	}
	if (per_ms == 0)
		return -1;
	out->count = count;
	out->per_ms = per_ms;
	return 0;
}

/* ---- sizes, booleans ---------------------------------------------------- */

int config_parse_size(const char *s, uint64_t *out)
{
	uint64_t n, mult = 1;

	if (!s || digits_u64(&s, &n) < 0)
		return -1;
	switch (*s) {
	case 'k': case 'K': mult = 1ULL << 10; s++; break;
	case 'm': case 'M': mult = 1ULL << 20; s++; break;
	case 'g': case 'G': mult = 1ULL << 30; s++; break;
	case 't': case 'T': mult = 1ULL << 40; s++; break;
	case 'b': s++; goto end; /* PowerMTA's N{b|k|m|g|t}: 100b is bytes */
	default: break;
	}
	if (*s == 'B')
		s++;
end:
	if (*s || __builtin_mul_overflow(n, mult, &n))
		return -1;
	*out = n;
	return 0;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* ---- CIDR networks ------------------------------------------------------ */

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* 1..4 dotted decimal octets; fewer than 4 only when short_ok. */
static int ipv4_octets(const char *s, bool short_ok, uint8_t addr[4])
{
	int n = 0;

	memset(addr, 0, 4);
	for (;;) {
		uint64_t v;
		const char *start = s;

		if (n == 4 || digits_u64(&s, &v) < 0 || v > 255)
			return -1;
		if (*start == '0' && s - start > 1)
			return -1; /* "010": octal to inet_aton, decimal to us */
		addr[n++] = (uint8_t)v;
		if (!*s)
			break;
		if (*s++ != '.')
			return -1;
	}
	return n == 4 || short_ok ? 0 : -1;
}

/* Clear the bits beyond the prefix. */
static void cidr_mask(struct config_cidr *c)
{
	size_t len = c->family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < len; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= c->prefix)
			c->addr[i] = 0;
		else if (c->prefix - bit < 8)
			c->addr[i] &= (uint8_t)(0xff00u >> (c->prefix - bit));
	}
}

int config_parse_cidr(const char *s, struct config_cidr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash;
	size_t hlen;
	uint64_t prefix = 0;

	if (!s)
		return -1;
	slash = strchr(s, '/');
	hlen = slash ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(out, 0, sizeof(*out));
	if (strchr(host, ':')) {
		out->family = AF_INET6;
		if (inet_pton(AF_INET6, host, out->addr) != 1)
			return -1;
	} else {
		out->family = AF_INET;
		if (ipv4_octets(host, slash != NULL, out->addr) < 0)
			return -1;
	}
	unsigned max = out->family == AF_INET ? 32 : 128;
	if (!slash)
		prefix = max;
	else if (strlen(slash + 1) > 3 || config_parse_uint(slash + 1, 0, max, &prefix) < 0)
		return -1;
	out->prefix = (unsigned)prefix;
	if (out->family == AF_INET6 && out->prefix >= 96 &&
	    memcmp(out->addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->prefix -= 96;
	}
	cidr_mask(out);
	return 0;
}

/* The client's family and address bytes; IPv4-mapped IPv6 becomes IPv4. */
static int sockaddr_bytes(const struct sockaddr *sa, uint8_t addr[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			memcpy(addr, a + 12, 4);
			return AF_INET;
		}
		memcpy(addr, a, 16);
		return AF_INET6;
	}
	return -1;
}

bool config_cidr_match(const struct config_cidr *net, const struct sockaddr *addr)
{
	uint8_t a[16];

	if (!net || !addr || sockaddr_bytes(addr, a) != net->family)
		return false;
	return config_cidr_match_bytes(net, a);
}

bool config_cidr_match_bytes(const struct config_cidr *net, const uint8_t a[16])
{
	unsigned full, rest;

	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(a, net->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (a[full] & mask) == net->addr[full];
}

int config_cidr_format(const struct config_cidr *net, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (!inet_ntop(net->family, net->addr, host, sizeof(host)))
		return -1;
	int n = snprintf(buf, len, "%s/%u", host, net->prefix);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- socket addresses --------------------------------------------------- */

/* Fill out from a numeric host (no brackets) and a port. */
static int addr_fill(const char *host, uint16_t port, struct config_addr *out)
{
	char text[INET6_ADDRSTRLEN];
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->salen = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
		snprintf(out->text, sizeof(out->text), "%s:%u", text, port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->salen = sizeof(*sin6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
		snprintf(out->text, sizeof(out->text), "[%s]:%u", text, port);
		return 0;
	}
	return -1;
}

/*
 * Forms: "HOST:PORT", "[HOST]:PORT", "*:PORT", and without ":PORT" when
 * default_port is not 0 ("HOST", "[HOST]", "*", and a bare IPv6 address
 * such as "::1", which has more than one colon). HOST is numeric IPv4 or
 * IPv6; "*" is 0.0.0.0. A port is 1..65535.
 */
int config_parse_addr(const char *s, uint16_t default_port, struct config_addr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *h, *port = NULL;
	size_t hlen;
	uint64_t p = default_port;

	if (!s || !*s)
		return -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close)
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return -1;
	} else {
		const char *colon = strchr(s, ':');
		h = s;
		hlen = strlen(s);
		if (colon && !strchr(colon + 1, ':')) {
			hlen = (size_t)(colon - s);
			port = colon + 1;
		}
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (port ? config_parse_uint(port, 1, 65535, &p) < 0 : p == 0)
		return -1;
	if (strcmp(host, "*") == 0 && h == s)
		return addr_fill("0.0.0.0", (uint16_t)p, out);
	return addr_fill(host, (uint16_t)p, out);
}
