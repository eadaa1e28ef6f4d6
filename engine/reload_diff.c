/*
 * reload_diff.c - restart-only settings and refused layout changes between
 * two configurations (see reload_diff.h).
 */
#include "engine/reload_diff.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/config_webhook.h"

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool addrs_eq(const struct config_addr *a, size_t na, const struct config_addr *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].text, b[i].text) != 0)
			return false;
	return true;
}

/* What an HTTP listener keeps from start: its limits, and the tls= of an
 * address that stays (addresses follow a reload, and so do http-access
 * and http-api-token, read per request). */
static bool http_eq(const struct config *a, const struct config *b)
{
	if (a->http_max_body_size != b->http_max_body_size || a->http_max_connections != b->http_max_connections ||
	    a->http_max_connections_per_ip != b->http_max_connections_per_ip)
		return false;
	for (size_t i = 0; i < a->n_http_listeners; i++)
		for (size_t k = 0; k < b->n_http_listeners; k++)
			if (!strcmp(a->http_listeners[i].text, b->http_listeners[k].text) &&
			    (a->http_listener_tls && a->http_listener_tls[i]) !=
				    (b->http_listener_tls && b->http_listener_tls[k]))
				return false;
	return true;
}

static bool dns_eq(const struct config *a, const struct config *b)
{
	return a->has_dns_server == b->has_dns_server &&
	       (!a->has_dns_server || strcmp(a->dns_server.text, b->dns_server.text) == 0) &&
	       addrs_eq(a->name_servers, a->n_name_servers, b->name_servers, b->n_name_servers);
}

static bool acct_files_eq(const struct config *a, const struct config *b)
{
	if (a->n_acct_files != b->n_acct_files)
		return false;
	for (size_t i = 0; i < a->n_acct_files; i++) {
		const struct config_acct_file *x = &a->acct_files[i], *y = &b->acct_files[i];

		if (!str_eq(x->path, y->path) || x->pipe != y->pipe || x->records != y->records ||
		    x->move_interval_ms != y->move_interval_ms || !str_eq(x->move_to, y->move_to) ||
		    x->max_size != y->max_size || x->delete_after_ms != y->delete_after_ms)
			return false;
		for (unsigned t = 0; t < CONFIG_ACCT_N_TYPES; t++)
			if (!str_eq(x->record_fields[t], y->record_fields[t]))
				return false;
	}
	return true;
}

static bool webhooks_eq(const struct config *a, const struct config *b)
{
	if (a->n_webhooks != b->n_webhooks)
		return false;
	for (size_t i = 0; i < a->n_webhooks; i++) {
		const struct config_webhook *x = &a->webhooks[i], *y = &b->webhooks[i];

		if (!str_eq(x->name, y->name) || !str_eq(x->url, y->url) || x->records != y->records ||
		    x->max_batch != y->max_batch || x->max_delay_ms != y->max_delay_ms ||
		    x->timeout_ms != y->timeout_ms || x->retry_max_ms != y->retry_max_ms ||
		    !str_eq(x->secret, y->secret) || x->n_headers != y->n_headers ||
		    !str_eq(x->ca_file, y->ca_file) || x->tls_verify != y->tls_verify)
			return false;
		for (size_t h = 0; h < x->n_headers; h++)
			if (!str_eq(x->headers[h], y->headers[h]))
				return false;
	}
	return true;
}

bool reload_webhooks_differ(const struct config *a, const struct config *b)
{
	return !webhooks_eq(a, b);
}

static bool listener_sources_eq(const struct config *a, const struct config *b)
{
	for (size_t i = 0; i < a->n_smtp_listeners; i++)
		if (!str_eq(a->smtp_listener_source ? a->smtp_listener_source[i] : NULL,
			    b->smtp_listener_source ? b->smtp_listener_source[i] : NULL))
			return false;
	return true;
}

static ssize_t pool_index(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_pools; i++)
		if (strcasecmp(c->pools[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

int reload_align_pools(const struct config *cur, struct config *neu)
{
	size_t n = neu->n_pools, next = cur->n_pools;
	size_t *where;              /* neu's pool i goes to where[i] */
	struct config_pool *p;

	if (cur->n_pools > n)
		return -1;
	for (size_t i = 0; i < cur->n_pools; i++)
		if (pool_index(neu, cur->pools[i].name) < 0)
			return -1;
	if (!(where = calloc(n ? n : 1, sizeof(*where))) || !(p = calloc(n ? n : 1, sizeof(*p)))) {
		free(where);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		ssize_t k = pool_index(cur, neu->pools[i].name);

		where[i] = k >= 0 ? (size_t)k : next++;
	}
	for (size_t i = 0; i < n; i++)
		p[where[i]] = neu->pools[i];
	memcpy(neu->pools, p, n * sizeof(*p));
	for (size_t i = 0; i < neu->n_sources; i++)
		if (neu->sources[i].default_pool < n)
			neu->sources[i].default_pool = where[neu->sources[i].default_pool];
	free(p);
	free(where);
	return 0;
}

static void restart_only(FILE *warn, bool same, const char *what)
{
	if (!same && warn)
		fprintf(warn, "%s changes on restart only\n", what);
}

unsigned reload_diff(const struct config *boot, const struct config *cur, const struct config *neu, FILE *warn,
		     FILE *err)
{
	const struct config *old = boot;
	unsigned errors = 0;
	bool smtp_same = addrs_eq(old->smtp_listeners, old->n_smtp_listeners, neu->smtp_listeners,
				  neu->n_smtp_listeners);

	restart_only(warn, str_eq(old->spool_dir, neu->spool_dir), "spool-dir");
	restart_only(warn, old->spool_commit_delay_ms == neu->spool_commit_delay_ms, "spool-commit-delay");
	restart_only(warn, old->worker_threads == neu->worker_threads, "worker-threads");
	/* the listeners themselves follow a reload; their source= does not */
	restart_only(warn, !smtp_same || listener_sources_eq(old, neu), "smtp-listener source=");
	restart_only(warn, http_eq(old, neu), "tls= of an open http-listener, and http-max-*,");
	restart_only(warn, dns_eq(old, neu), "dns-server / name-server");
	restart_only(warn, str_eq(old->tls_certificate, neu->tls_certificate) &&
		     str_eq(old->tls_private_key, neu->tls_private_key) &&
		     str_eq(old->tls_ciphers, neu->tls_ciphers) && str_eq(old->tls_ciphersuites, neu->tls_ciphersuites),
		     "tls-certificate, tls-private-key, tls-ciphers and tls-ciphersuites");
	restart_only(warn, str_eq(old->host_name, neu->host_name), "host-name of the SMTP listeners' greeting");
	restart_only(warn, old->max_rcpt_per_session_message == neu->max_rcpt_per_session_message &&
		     old->smtp_command_timeout_ms == neu->smtp_command_timeout_ms &&
		     old->smtp_data_timeout_ms == neu->smtp_data_timeout_ms && old->smtp_max_errors == neu->smtp_max_errors,
		     "max-rcpt-per-message (intake), smtp-command-timeout, smtp-data-timeout and smtp-max-errors");
	restart_only(warn, old->smtp_max_connections == neu->smtp_max_connections &&
		     old->smtp_max_connections_per_ip == neu->smtp_max_connections_per_ip,
		     "smtp-max-connections and smtp-max-connections-per-ip");
	restart_only(warn, old->bounce_max_reports_per_ip.count == neu->bounce_max_reports_per_ip.count &&
		     old->bounce_max_reports_per_ip.per_ms == neu->bounce_max_reports_per_ip.per_ms,
		     "bounce-max-reports-per-ip");
	restart_only(warn, old->bounce_verp_retention_ms == neu->bounce_verp_retention_ms, "bounce-verp-retention");
	restart_only(warn, str_eq(old->log_file, neu->log_file), "log-file");
	restart_only(warn, old->run_as_root == neu->run_as_root, "run-as-root");
	restart_only(warn, acct_files_eq(old, neu), "acct-file");

	old = cur;

	for (size_t i = 0; i < old->n_vmtas; i++) {
		if (i < neu->n_vmtas && !strcmp(old->vmtas[i].name, neu->vmtas[i].name))
			continue;
		if (err)
			fprintf(err, "%s: virtual-mta %s is removed or moved: existing virtual MTAs must keep their "
				"order (new ones go after them); removing or reordering needs a restart\n",
				neu->path ? neu->path : "config", old->vmtas[i].name);
		errors++;
		break;
	}
	for (size_t i = 0; i < old->n_pools; i++) {
		if (i < neu->n_pools && !strcmp(old->pools[i].name, neu->pools[i].name))
			continue;
		if (err)
			fprintf(err, "%s: virtual-mta-pool %s is removed: removing a pool needs a restart\n",
				neu->path ? neu->path : "config", old->pools[i].name);
		errors++;
		break;
	}
	return errors;
}
