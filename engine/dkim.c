/*
 * dkim.c - DKIM signatures (see dkim.h).
 *
 * Body: relaxed canonicalisation streamed into SHA-256 line by line (runs
 * of blanks become one space, trailing blanks go, trailing empty lines are
 * dropped by holding empty lines back until text follows). Headers: the
 * last instance of each signed name, relaxed (lower-case name, unfolded,
 * blanks collapsed, none around the colon), then the DKIM-Signature header
 * itself with an empty b=, without its final CRLF. RSA keys sign the
 * SHA-256 of that with PKCS#1 v1.5; Ed25519 keys sign the SHA-256 digest
 * (RFC 8463). From is signed one extra time so that a From added later
 * breaks the signature.
 *
 * What is signed is what goes out: the wire form ends every line with CRLF
 * (a bare CR or a bare LF becomes a line end, net/dot_stuff.c), so a message
 * holding either is signed in that form (chunk_form()), not as stored.
 */
#include "engine/dkim.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/json_str.h"
#include "net/dot_stuff.h"

static const char *const signed_headers[] = {
	"from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
	"content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id",
	"in-reply-to", "references",
};

struct dkim_key {
	char *selector, *domain;
	EVP_PKEY *pkey;
	/* RSA: a signing context initialised once; each signature copies it,
	 * which skips OpenSSL 3's per-call algorithm fetch (locks shared by
	 * every worker thread). Only ever read after load. */
	EVP_MD_CTX *rsa_tmpl;
	size_t vmta;               /* config_domain_key.vmta: SIZE_MAX for every vmta */
	bool ed25519;
};

struct dkim_keys {
	struct dkim_key *k;
	size_t n;
};

/* ---- keys ------------------------------------------------------------------------ */

int dkim_keys_load(const struct config *cfg, struct dkim_keys **out, char *err, size_t errlen)
{
	struct dkim_keys *ks = calloc(1, sizeof(*ks));

	*out = NULL;
	if (!ks || (cfg->n_domain_keys && !(ks->k = calloc(cfg->n_domain_keys, sizeof(*ks->k))))) {
		free(ks);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_domain_keys; i++) {
		const struct config_domain_key *dk = &cfg->domain_keys[i];
		struct dkim_key *k = &ks->k[ks->n];
		FILE *f = fopen(dk->path, "r");

		if (!f) {
			snprintf(err, errlen, "%s: cannot open the key for %s: %m", dk->path, dk->domain);
			dkim_keys_free(ks);
			return -1;
		}
		k->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!k->pkey) {
			snprintf(err, errlen, "%s: not a PEM private key", dk->path);
			dkim_keys_free(ks);
			return -1;
		}
		if (EVP_PKEY_base_id(k->pkey) == EVP_PKEY_ED25519) {
			k->ed25519 = true;
		} else if (EVP_PKEY_base_id(k->pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k->pkey) < 1024) {
			snprintf(err, errlen, "%s: DKIM keys are RSA (1024 bits or more) or Ed25519", dk->path);
			EVP_PKEY_free(k->pkey);
			k->pkey = NULL;
			dkim_keys_free(ks);
			return -1;
		} else if (!(k->rsa_tmpl = EVP_MD_CTX_new()) ||
			   EVP_DigestSignInit(k->rsa_tmpl, NULL, EVP_sha256(), NULL, k->pkey) != 1) {
			snprintf(err, errlen, "%s: cannot set up RSA signing", dk->path);
			EVP_MD_CTX_free(k->rsa_tmpl);
			EVP_PKEY_free(k->pkey);
			k->rsa_tmpl = NULL;
			k->pkey = NULL;
			dkim_keys_free(ks);
			return -1;
		}
		k->vmta = dk->vmta;
		k->selector = strdup(dk->selector);
		k->domain = strdup(dk->domain);
		ks->n++;
		if (!k->selector || !k->domain) {
			snprintf(err, errlen, "out of memory");
			dkim_keys_free(ks);
			return -1;
		}
	}
	*out = ks;
	return 0;
}

void dkim_keys_free(struct dkim_keys *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		EVP_MD_CTX_free(ks->k[i].rsa_tmpl);
		EVP_PKEY_free(ks->k[i].pkey);
		free(ks->k[i].selector);
		free(ks->k[i].domain);
	}
	free(ks->k);
	free(ks);
}

size_t dkim_keys_count(const struct dkim_keys *k)
{
	return k ? k->n : 0;
}

/* ---- header fields ------------------------------------------------------------------ */

struct field {
	const char *p;             /* the whole field, continuation lines included */
	size_t n;                  /* without the final CRLF */
	size_t name_len;
};

/* The header fields of msg, in order; returns how many (at most max) and
 * the offset of the body in *body_off. */
static size_t fields(const char *msg, size_t len, struct field *f, size_t max, size_t *body_off)
{
	size_t n = 0, off = 0;

	while (off < len) {
		const char *p = msg + off;
		size_t end = off;

		if (p[0] == '\r' || p[0] == '\n') { /* the empty line */
			off += p[0] == '\r' && off + 1 < len && p[1] == '\n' ? 2 : 1;
			break;
		}
		/* the field runs to the line end not followed by a blank */
		for (;;) {
			const char *nl = memchr(msg + end, '\n', len - end);

			end = nl ? (size_t)(nl - msg) + 1 : len;
			if (end >= len || (msg[end] != ' ' && msg[end] != '\t'))
				break;
		}
		if (n < max) {
			const char *colon = memchr(p, ':', end - off);

			f[n].p = p;
			f[n].n = end - off;
			while (f[n].n && (p[f[n].n - 1] == '\n' || p[f[n].n - 1] == '\r'))
				f[n].n--;
			f[n].name_len = colon ? (size_t)(colon - p) : 0;
			while (f[n].name_len && (p[f[n].name_len - 1] == ' ' || p[f[n].name_len - 1] == '\t'))
				f[n].name_len--;
			if (colon)
				n++;
		}
		off = end;
	}
	*body_off = off;
	return n;
}

/* name:value in relaxed form, with CRLF. */
static int canon_header(struct json_buf *b, const struct field *f)
{
	const char *v = f->p + f->name_len, *end = f->p + f->n;
	int rc = 0;
	bool space = false, any = false;

	for (size_t i = 0; i < f->name_len && !rc; i++) {
		char c = f->p[i];

		rc = json_buf_putc(b, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	v++; /* the colon */
	rc |= json_buf_putc(b, ':');
	for (; v < end && !rc; v++) {
		if (*v == '\r' || *v == '\n' || *v == ' ' || *v == '\t') {
			space = any;
			continue;
		}
		if (space)
			rc = json_buf_putc(b, ' ');
		space = false;
		any = true;
		rc |= json_buf_putc(b, *v);
	}
	return rc | json_buf_puts(b, "\r\n");
}

int dkim_from_domain(const char *msg, size_t len, char *out, size_t cap)
{
	struct field f[256];
	size_t body, n = fields(msg, len, f, 256, &body);

	for (size_t i = 0; i < n; i++) {
		const char *v, *end, *at, *a;
		size_t o = 0;
		int depth = 0;
		bool quoted = false;

		if (f[i].name_len != 4 || strncasecmp(f[i].p, "from", 4))
			continue;
		v = f[i].p + 5;
		end = f[i].p + f[i].n;
		/* the address: in <> if present, else the bare addr-spec; skip comments and quotes */
		const char *lt = NULL;
		for (const char *p = v; p < end; p++) {
			if (quoted) {
				if (*p == '\\' && p + 1 < end)
					p++;
				else if (*p == '"')
					quoted = false;
			} else if (*p == '"') {
				quoted = true;
			} else if (*p == '(') {
				depth++;
			} else if (*p == ')' && depth) {
				depth--;
			} else if (*p == '<' && !depth) {
				lt = p;
				break;
			}
		}
		a = lt ? lt + 1 : v;
		at = NULL;
		for (const char *p = a; p < end && *p != '>' && *p != ',' && !(*p == ' ' && at); p++)
			if (*p == '@')
				at = p;
		if (!at)
			return -1;
		for (const char *p = at + 1; p < end && *p != '>' && *p != ' ' && *p != ',' && *p != '(' && *p != '\r' &&
					     *p != '\n' && o + 1 < cap; p++)
			out[o++] = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		out[o] = '\0';
		return o ? 0 : -1;
	}
	return -1;
}

/* ---- body hash --------------------------------------------------------------------------- */

static int body_hash(const char *body, size_t len, unsigned char md[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t off = 0, held_empty = 0;
	char line[1024];
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);

	while (ok && off < len) {
		const char *p = body + off, *nl = memchr(p, '\n', len - off);
		size_t l = nl ? (size_t)(nl - p) : len - off, o = 0;
		bool space = false;

		off += nl ? l + 1 : l;
		if (l && p[l - 1] == '\r')
			l--;
		while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
			l--;
		if (!l) {
			held_empty++;
			continue;
		}
		for (; held_empty && ok; held_empty--)
			ok = EVP_DigestUpdate(c, "\r\n", 2);
		for (size_t i = 0; i < l && ok; i++) {
			if (p[i] == ' ' || p[i] == '\t') {
				space = true;
				continue;
			}
			if (space)
				line[o++] = ' ';
			space = false;
			line[o++] = p[i];
			if (o >= sizeof(line) - 2) {
				ok = EVP_DigestUpdate(c, line, o);
				o = 0;
			}
		}
		line[o++] = '\r';
		line[o++] = '\n';
		ok = ok && EVP_DigestUpdate(c, line, o);
	}
	ok = ok && EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

/* ---- signing ------------------------------------------------------------------------------- */

/* PowerMTA's choice: the first key, in config order, whose domain equals
 * the sending domain or is a parent of it, or is `*` (then d= is the
 * sending domain itself); the keys of the sending virtual MTA's own block
 * first, then the top-level ones. vmta SIZE_MAX: top-level keys only. */
static bool key_matches(const struct dkim_key *k, const char *domain, size_t dl)
{
	const char *kd = k->domain;
	size_t kl = strlen(kd);

	return !strcmp(kd, "*") || !strcasecmp(kd, domain) ||
	       (dl > kl && domain[dl - kl - 1] == '.' && !strcasecmp(domain + dl - kl, kd));
}

static const struct dkim_key *key_for(const struct dkim_keys *ks, const char *domain, size_t vmta)
{
	size_t dl = strlen(domain);

	for (int pass = vmta == SIZE_MAX; pass < 2; pass++)
		for (size_t i = 0; ks && i < ks->n; i++)
			if (ks->k[i].vmta == (pass ? SIZE_MAX : vmta) && key_matches(&ks->k[i], domain, dl))
				return &ks->k[i];
	return NULL;
}

bool dkim_keys_per_vmta(const struct dkim_keys *ks)
{
	for (size_t i = 0; ks && i < ks->n; i++)
		if (ks->k[i].vmta != SIZE_MAX)
			return true;
	return false;
}

enum dkim_choice dkim_choose(const struct dkim_keys *ks, const size_t *vmtas, size_t n_vmtas, const char *msg,
			     size_t len, size_t *vmta)
{
	char domain[256];
	const struct dkim_key *first = NULL;

	*vmta = SIZE_MAX;
	if (dkim_from_domain(msg, len, domain, sizeof(domain)) < 0)
		return DKIM_NONE;
	if (!n_vmtas)
		return key_for(ks, domain, SIZE_MAX) ? DKIM_SAME : DKIM_NONE;
	for (size_t i = 0; i < n_vmtas; i++) {
		const struct dkim_key *k = key_for(ks, domain, vmtas[i]);

		if (i && k != first)
			return DKIM_PER_VMTA;
		first = k;
	}
	if (!first)
		return DKIM_NONE;
	*vmta = vmtas[0];
	return DKIM_SAME;
}

static int b64(struct json_buf *b, const unsigned char *p, size_t n)
{
	int rc = json_buf_reserve(b, 4 * ((n + 2) / 3) + 1);

	if (!rc)
		b->len += (size_t)EVP_EncodeBlock((unsigned char *)b->data + b->len, p, (int)n);
	return rc;
}

/* Does msg hold a CR or LF that is not part of a CRLF (the wire form
 * would differ)? */
static bool has_bare_cr_lf(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;

	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		if (!cr && !lf)
			return false;
		if (!cr || (lf && lf < cr))
			return true;   /* an LF before any CR: bare */
		if (cr + 1 == end || cr[1] != '\n')
			return true;   /* a CR not followed by LF */
		p = cr + 2;
	}
	return false;
}

static int dkim_sign_form(const struct dkim_keys *ks, size_t vmta, const char *msg, size_t len, int64_t t,
			  char **hdr, size_t *hdr_len, char *err, size_t errlen);

int dkim_sign(const struct dkim_keys *ks, const char *msg, size_t len, int64_t t, char **hdr, size_t *hdr_len,
	      char *err, size_t errlen)
{
	return dkim_sign_vmta(ks, SIZE_MAX, msg, len, t, hdr, hdr_len, err, errlen);
}

int dkim_sign_vmta(const struct dkim_keys *ks, size_t vmta, const char *msg, size_t len, int64_t t, char **hdr,
		   size_t *hdr_len, char *err, size_t errlen)
{
	char *wire;
	int rc;

	if (!has_bare_cr_lf(msg, len))
		return dkim_sign_form(ks, vmta, msg, len, t, hdr, hdr_len, err, errlen);
	if (!(wire = malloc(dot_stuff_bound(len)))) {
		*hdr = NULL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = dkim_sign_form(ks, vmta, wire, chunk_form(msg, len, wire), t, hdr, hdr_len, err, errlen);
	free(wire);
	return rc;
}

static int dkim_sign_form(const struct dkim_keys *ks, size_t vmta, const char *msg, size_t len, int64_t t,
			  char **hdr, size_t *hdr_len, char *err, size_t errlen)
{
	struct field f[512];
	size_t body_off, n = fields(msg, len, f, 512, &body_off);
	char domain[256];
	const struct dkim_key *k;
	unsigned char bh[32], sig[1024], md[32];
	size_t sig_len = sizeof(sig);
	struct json_buf h = {0}, data = {0};
	bool used[512] = {false};
	EVP_MD_CTX *c = NULL;
	int rc = -1;

	*hdr = NULL;
	if (dkim_from_domain(msg, len, domain, sizeof(domain)) < 0 || !(k = key_for(ks, domain, vmta)))
		return 1;
	if (body_hash(msg + body_off, len - body_off, bh) < 0) {
		snprintf(err, errlen, "SHA-256 failed");
		return -1;
	}
	/* the header list and the canonical signed headers, bottom-up per name */
	int e = json_buf_printf(&h, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;\r\n\tt=%lld; h=",
				k->ed25519 ? "ed25519-sha256" : "rsa-sha256", strcmp(k->domain, "*") ? k->domain : domain,
				k->selector, (long long)t);
	bool first = true;
	for (size_t s = 0; s < sizeof(signed_headers) / sizeof(signed_headers[0]); s++) {
		size_t nl = strlen(signed_headers[s]);

		for (size_t i = n; i-- > 0;) {
			if (used[i] || f[i].name_len != nl || strncasecmp(f[i].p, signed_headers[s], nl))
				continue;
			used[i] = true;
			e |= json_buf_printf(&h, "%s%s", first ? "" : ":", signed_headers[s]);
			e |= canon_header(&data, &f[i]);
			first = false;
			break;
		}
	}
	e |= json_buf_puts(&h, ":from;\r\n\tbh=") | b64(&h, bh, 32) | json_buf_puts(&h, ";\r\n\tb=");
	if (e) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* the signature header itself, b= empty, no final CRLF */
	{
		struct field self = {h.data, h.len, 14};
		size_t before = data.len;

		if (canon_header(&data, &self)) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		data.len -= 2;
		(void)before;
	}
	if (!(c = EVP_MD_CTX_new())) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (k->ed25519) {
		unsigned int mdl = 0;

		if (!EVP_Digest(data.data, data.len, md, &mdl, EVP_sha256(), NULL) ||
		    EVP_DigestSignInit(c, NULL, NULL, NULL, k->pkey) != 1 ||
		    EVP_DigestSign(c, sig, &sig_len, md, sizeof(md)) != 1) {
			snprintf(err, errlen, "Ed25519 signing failed");
			goto out;
		}
	} else if (EVP_MD_CTX_copy_ex(c, k->rsa_tmpl) != 1 ||
		   EVP_DigestSign(c, sig, &sig_len, (const unsigned char *)data.data, data.len) != 1) {
		snprintf(err, errlen, "RSA signing failed");
		goto out;
	}
	/* b=, folded every 72 characters */
	{
		struct json_buf s64 = {0};

		if (b64(&s64, sig, sig_len)) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < s64.len && !e; i += 72)
			e |= json_buf_put(&h, s64.data + i, s64.len - i < 72 ? s64.len - i : 72) |
			     (i + 72 < s64.len ? json_buf_puts(&h, "\r\n\t ") : 0);
		json_buf_free(&s64);
		e |= json_buf_puts(&h, "\r\n");
	}
	if (e) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	*hdr = h.data;
	*hdr_len = h.len;
	h.data = NULL;
	rc = 0;
out:
	EVP_MD_CTX_free(c);
	json_buf_free(&h);
	json_buf_free(&data);
	return rc;
}
