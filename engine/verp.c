/*
 * verp.c - signed VERP return paths (see verp.h). HMAC from OpenSSL.
 */
#include "engine/verp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sign(const uint8_t key[32], uint64_t id, uint32_t idx, char hex[13])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char msg[40];
	int len = snprintf(msg, sizeof(msg), "%016llx.%u", (unsigned long long)id, idx);

	HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, (size_t)len, mac, &n);
	for (int i = 0; i < 6; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

int verp_encode(const uint8_t key[32], uint64_t msg_id, uint32_t idx, const char *bounce_domain, char *out,
		size_t cap)
{
	char hex[13];
	int n;

	sign(key, msg_id, idx, hex);
	n = snprintf(out, cap, "b-%016llx-%u-%s@%s", (unsigned long long)msg_id, idx, hex, bounce_domain);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

enum verp_result verp_decode(const uint8_t key[32], const char *addr, uint64_t *msg_id, uint32_t *idx)
{
	const char *p = addr;
	uint64_t id = 0;
	unsigned long long ix = 0;
	char want[13], got[13];
	int i;

	if (*p == '<')
		p++;
	if ((p[0] != 'b' && p[0] != 'B') || p[1] != '-')
		return VERP_NOT_VERP;
	p += 2;
	for (i = 0; i < 16; i++, p++) {
		int v = hexval(*p);

		if (v < 0)
			return VERP_NOT_VERP;
		id = id << 4 | (uint64_t)v;
	}
	if (*p++ != '-' || *p < '0' || *p > '9')
		return VERP_NOT_VERP;
	for (i = 0; *p >= '0' && *p <= '9'; p++, i++) {
		ix = ix * 10 + (unsigned)(*p - '0');
		if (i > 9 || ix > UINT32_MAX)
			return VERP_NOT_VERP;
	}
	if (*p++ != '-')
		return VERP_NOT_VERP;
	for (i = 0; i < 12; i++, p++) {
		if (hexval(*p) < 0)
			return VERP_NOT_VERP;
		got[i] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
	}
	got[12] = '\0';
	if (*p && *p != '@' && *p != '>')
		return VERP_NOT_VERP;
	sign(key, id, (uint32_t)ix, want);
	if (CRYPTO_memcmp(want, got, 12) != 0)
		return VERP_BAD_HASH;
	*msg_id = id;
	*idx = (uint32_t)ix;
	return VERP_OK;
}
