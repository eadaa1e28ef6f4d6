/*
 * verp.h - VERP return paths: each delivery's envelope sender names the
 * message and recipient it belongs to, signed so that forged bounces are
 * recognised: b-<message id, 16 hex>-<recipient index>-<12 hex of
 * HMAC-SHA256(spool secret, "id.idx")>@<bounce-domain>.
 */
#ifndef SALVO_VERP_H
#define SALVO_VERP_H

#include <stddef.h>
#include <stdint.h>

#define VERP_MAX 320

/* Build the return path into out (VERP_MAX bytes). 0, or -1 if it does not fit. */
int verp_encode(const uint8_t key[32], uint64_t msg_id, uint32_t idx, const char *bounce_domain, char *out,
		size_t cap);

enum verp_result {
	VERP_OK = 0,
	VERP_NOT_VERP = -1,        /* not our format at all */
	VERP_BAD_HASH = -2,        /* our format, wrong signature: forged */
};

/* Decode the local part (or a whole address; the domain is ignored). */
enum verp_result verp_decode(const uint8_t key[32], const char *addr, uint64_t *msg_id, uint32_t *idx);

#endif
