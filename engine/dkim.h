/*
 * dkim.h - DKIM signing (RFC 6376; ed25519-sha256 per RFC 8463) with
 * OpenSSL's EVP primitives: relaxed/relaxed canonicalisation, the key
 * chosen by the From header's domain.
 *
 * Keys come from `domain-key SELECTOR,DOMAIN,KEYFILE` (PEM, RSA or
 * Ed25519; the algorithm follows the key). A key set is loaded once and
 * read-only afterwards, so any thread may sign with it concurrently (each
 * call uses its own digest contexts).
 */
#ifndef SALVO_DKIM_H
#define SALVO_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dkim_keys;
struct config;

/* Load every domain-key of cfg. 0, or -1 with "FILE: why" in err. A config
 * without keys gives an empty set. */
int dkim_keys_load(const struct config *cfg, struct dkim_keys **out, char *err, size_t errlen);
void dkim_keys_free(struct dkim_keys *k);
size_t dkim_keys_count(const struct dkim_keys *k);

/* The domain of the (first) address in the message's From header,
 * lower-cased, into out; -1 when there is no usable From. */
int dkim_from_domain(const char *msg, size_t len, char *out, size_t cap);

/* Sign msg (CRLF lines) with the key for its From domain. On success *hdr
 * is a malloc'd "DKIM-Signature: ...\r\n" to put in front of the message
 * and *hdr_len its length; returns 0. 1 when no key applies (nothing to
 * do), -1 on an error (message in err). t is the signing time (s). */
int dkim_sign(const struct dkim_keys *k, const char *msg, size_t len, int64_t t, char **hdr, size_t *hdr_len,
	      char *err, size_t errlen);

/* The same, as mail sent through virtual MTA vmta (an index into
 * cfg->vmtas): that vmta's own domain-keys first, then the top-level ones.
 * vmta SIZE_MAX: the top-level keys only (dkim_sign()). */
int dkim_sign_vmta(const struct dkim_keys *k, size_t vmta, const char *msg, size_t len, int64_t t, char **hdr,
		   size_t *hdr_len, char *err, size_t errlen);

/* Whether any key was given inside a <virtual-mta>. */
bool dkim_keys_per_vmta(const struct dkim_keys *k);

/* Where a message that may go through any of vmtas[0..n_vmtas) is signed:
 * DKIM_NONE, no key applies to any of them; DKIM_SAME, every one would sign
 * with the same key: sign once now, as *vmta; DKIM_PER_VMTA, they differ
 * (or some have none): each delivery signs with its own vmta's key. With
 * n_vmtas 0 only the top-level keys count. */
enum dkim_choice { DKIM_NONE, DKIM_SAME, DKIM_PER_VMTA };
enum dkim_choice dkim_choose(const struct dkim_keys *k, const size_t *vmtas, size_t n_vmtas, const char *msg,
			     size_t len, size_t *vmta);

#endif
