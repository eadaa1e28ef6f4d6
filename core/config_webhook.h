/*
 * config_webhook.h - one <acct-webhook NAME> block: where the accounting
 * records go, which ones, in what batches, how they are signed.
 *
 *   <acct-webhook backend>
 *       url        https://esp.example/hooks/salvo  # http:// or https://, a host, port 1..65535; required
 *       records    delivery,bounce                  # default: every type but reception
 *       max-batch  100                              # records per POST (1..10000)
 *       max-delay  1s                               # a partial batch goes out after this
 *       secret     s3cr3t                           # X-Salvo-Signature: sha256=<hex HMAC>
 *       timeout    10s                              # per POST
 *       header     Authorization "Bearer abc"       # repeatable
 *       retry-max  1m                               # cap of the retry backoff (1m)
 *       ca-file    /etc/salvo/esp-ca.pem            # trust for https (default: system CAs)
 *       tls-verify yes                              # no: accept any certificate (tests only)
 *   </acct-webhook>
 *
 * Parsed by core/config_webhook.c; owned by struct config (config_free).
 */
#ifndef SALVO_CONFIG_WEBHOOK_H
#define SALVO_CONFIG_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_WEBHOOK_BATCH_MAX 10000

struct config_webhook {
	char *name;
	int line;              /* where the block starts */
	char *url;
	uint32_t records;      /* bit i: config_webhook_type_name(i) is sent */
	uint64_t max_batch;    /* 100 */
	uint64_t max_delay_ms; /* 1000 */
	uint64_t timeout_ms;   /* 10000 */
	uint64_t retry_max_ms; /* 60000 */
	char *secret;          /* NULL: unsigned */
	char **headers;        /* "Name: value" lines */
	size_t n_headers;
	char *ca_file;         /* NULL: the system's trust store */
	bool tls_verify;       /* true */
};

/* The record type names `records` knows ("reception" ... "cancelled"), by
 * index; NULL past the end. */
const char *config_webhook_type_name(unsigned i);

/* Does w send records of type name[0..len)? */
bool config_webhook_wants(const struct config_webhook *w, const char *name, size_t len);

#endif
