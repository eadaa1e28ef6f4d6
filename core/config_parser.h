/*
 * config_parser.h - internal to core/: the parser state shared by the files
 * that handle the configuration language's blocks and directives.
 *
 *   config_parse.c   the language (lines, tags, dispatch), top-level
 *                    directives, defaults, load/free
 *   config_source.c  <source> blocks and config_source_for()
 *   config_domain.c  <domain> blocks, inheritance from `*`, config_domain_for()
 *   config_vmta.c    <virtual-mta>, <virtual-mta-pool>, <mx-rollup-list>,
 *                    <smtp-pattern-list>, <bounce-category-patterns>
 *   config_http.c    the HTTP API's directives (http-listener, http-access,
 *                    http-api-token, http-max-*)
 *
 * Each block file exports a directive table and its block openers; the
 * finishing step of each resolves names across blocks once parsing is done.
 */
#ifndef SALVO_CONFIG_PARSER_H
#define SALVO_CONFIG_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

#define CP_WS " \t\r\v\f"
#define CP_SHOW_LEN 72 /* values quoted in messages are cut to this */
#define CP_SHOW_BUF (CP_SHOW_LEN + 4)

enum cp_ctx {
	CTX_TOP,
	CTX_SOURCE,
	CTX_DOMAIN,
	CTX_VMTA,
	CTX_POOL,
	CTX_ROLLUP,
	CTX_PATTERNS,
	CTX_CATEGORIES,
	CTX_SMTP_USER,
	CTX_WEBHOOK,
	CTX_N
};

struct parser {
	struct config *cfg;
	const char *file;
	int line;
	char *err;                 /* CONFIG_ERR_MAX bytes */
	enum cp_ctx ctx;           /* the open block; CTX_TOP when none */
	int block_line;            /* where the open block started */
	size_t cur;                /* the open block's entry in its cfg array */
	size_t dom_cap;
	bool file_smtp_listeners;  /* the file's listeners replace the default */
	bool file_http_listeners;
	int http_tls_line;         /* the first `http-listener ... tls=yes` */
	bool file_sources;         /* the file's sources replace the loopback ones */
};

struct directive {
	const char *name;
	enum cp_ctx ctx;
	int (*set)(struct parser *p, const struct directive *d, char *v);
};

struct directive_table {
	const struct directive *d;
	size_t n;
};

/* helpers (config_parse.c) */
char *cp_trim(char *s);
void cp_lower(char *s);
bool cp_has_space(const char *s);
bool cp_valid_domain_name(const char *s);
const char *cp_show(char buf[CP_SHOW_BUF], const char *v);
__attribute__((format(printf, 2, 3))) int cp_err(struct parser *p, const char *fmt, ...);
int cp_bad_value(struct parser *p, const char *kind, const struct directive *d, const char *v);
int cp_oom(struct parser *p);
int cp_set_string(struct parser *p, char **field, const char *v);
/* Grow *arr (of elem bytes each, *n used) by one zeroed element; its index
 * in *idx. -1 (and an error) on ENOMEM. */
int cp_grow(struct parser *p, void **arr, size_t *n, size_t elem, size_t *idx);
/* "15m" or "15m,15m,1h": each more than 0. The list replaces *list. */
int cp_duration_list(struct parser *p, const struct directive *d, char *v,
		     uint64_t **list, size_t *n);

int cp_add_listener(struct parser *p, const struct directive *d, char *v, struct config_addr **arr, size_t *n,
		    bool *from_file);

/* config_http.c */
extern const struct directive_table cp_http_directives;
int cp_http_finish(struct parser *p);
void cp_http_free(struct config *cfg);

/* config_source.c */
extern const struct directive_table cp_source_directives;
int cp_open_source(struct parser *p, char *arg);
int cp_sources_default(struct config *cfg);
int cp_sources_finish(struct parser *p);
void cp_sources_free(struct config *cfg);

/* config_domain.c */
extern const struct directive_table cp_domain_directives;
int cp_open_domain(struct parser *p, char *arg);
int cp_domain_default(struct config_domain *d);
int cp_domains_finish(struct parser *p);
void cp_domains_free(struct config *cfg);

/* config_vmta.c */
extern const struct directive_table cp_vmta_directives;
int cp_open_vmta(struct parser *p, char *arg);
int cp_open_pool(struct parser *p, char *arg);
int cp_open_rollup(struct parser *p, char *arg);
int cp_open_patterns(struct parser *p, char *arg);
int cp_open_categories(struct parser *p, char *arg);
int cp_open_smtp_user(struct parser *p, char *arg);
int cp_vmtas_default(struct config *cfg);
/* After domains are finished: implicit pools, name resolution. */
int cp_vmtas_finish(struct parser *p);
void cp_vmtas_free(struct config *cfg);

/* config_webhook.c */
extern const struct directive_table cp_webhook_directives;
int cp_open_webhook(struct parser *p, char *arg);
int cp_webhooks_finish(struct parser *p);
void cp_webhooks_free(struct config *cfg);

#endif
