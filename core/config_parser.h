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
 *   config_pmta.c    PowerMTA's other directives: refused by design, stored
 *                    but not applied yet (warned), value-restricted, no-ops;
 *                    domain-macro, <acct-file>, <spool>, relay-domain,
 *                    the processors' other settings, <rewrite-list>
 *   config_intake_list.c  <pattern-list NAME> (intake: rule -> virtual MTA)
 *   config_address_list.c  <address-list>, suppression-lists, the processors'
 *                    deliver-*-email
 *   config_show.c    --show QUEUE[/VMTA] (no parser state); config_show_source.c
 *                    --show source:ADDR
 *
 * Errors: cp_err() records "FILE:LINE: message" and returns -1; the line
 * loop goes on (a block whose opening fails is skipped to its end), and
 * the load fails when any error was recorded.
 *
 * Each block file exports a directive table and its block openers; the
 * finishing step of each resolves names across blocks once parsing is done.
 */
#ifndef SALVO_CONFIG_PARSER_H
#define SALVO_CONFIG_PARSER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

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
	CTX_PATTERN_LIST,   /* <pattern-list NAME> (config_pmta.c) */
	CTX_ADDRESS_LIST,   /* <address-list [NAME]>, also inside the processors */
	CTX_BOUNCE_PROC,    /* <bounce-processor> */
	CTX_FBL_PROC,       /* <feedback-loop-processor> */
	CTX_REWRITE_LIST,   /* <rewrite-list NAME> */
	CTX_ACCT_FILE,      /* <acct-file PATH> */
	CTX_SPOOL,          /* <spool PATH> */
	CTX_WEBHOOK,
	CTX_SMTP_LISTENER,  /* <smtp-listener ADDR> (config_pmta.c) */
	CTX_N
};

#define CP_NEST_MAX 3       /* <virtual-mta x><domain y> is two deep */
#define CP_ERR_LIST_MAX 200 /* messages kept in one run; further ones are counted */

/* An open block: which kind, its entry, where it started. */
struct cp_frame {
	enum cp_ctx ctx;
	size_t cur;
	int line;
};

/* `domain-macro NAME a, b, c` */
struct cp_macro {
	char *name;
	char **vals;
	size_t n;
	int line;                  /* where it is defined (global line, see segs) */
};

/* A growing text of "FILE:LINE: message\n" lines. */
struct cp_msgs {
	char *text;
	size_t len, cap;
	unsigned n;       /* messages in all, kept or not */
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
	/* every error of the run and the warnings (config.h, config_report) */
	struct cp_msgs errs, warns;
	char **warned;             /* directive names warned about once */
	size_t n_warned;
	/* blocks opened around the current one (<virtual-mta> around <domain>) */
	struct cp_frame stack[CP_NEST_MAX];
	size_t depth;
	/* a block whose opening failed is skipped to its closing tag */
	char *skip_name;
	int skip_depth;
	/* the open <domain> entries: one, or one per value of a macro */
	size_t *curs;
	size_t n_curs;
	struct cp_macro *macros;
	size_t n_macros;
	/* top-level `smtp-source-host IP HOST`: every virtual MTA without its
	 * own (the default one too) sends from it (cp_vmtas_finish) */
	struct config_addr global_source;
	char *global_helo;
	int global_source_line;
	int include_depth;         /* include files open around this line */
	bool macro_pass;           /* the first pass: domain-macro lines only, no messages */
	/* p->line counts the lines of every file read, includes too, so that a
	 * stored line number names one place; segs maps it back to FILE:LINE */
	struct cp_seg {
		int gstart;        /* global line before the segment's first */
		int lstart;        /* the file's line before it */
		char *file;
	} *segs;
	size_t n_segs;
	char *scope;               /* the enclosing <virtual-mta>/<virtual-mta-pool> name of a <domain>, or NULL */
};

struct directive {
	const char *name;
	enum cp_ctx ctx;
	int (*set)(struct parser *p, const struct directive *d, char *v);
	const char *pending;       /* non-NULL: accepted and stored, but the engine does not
				    * apply it yet; --check-config warns with this text */
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
/* A warning "FILE:LINE: warning: message" (does not fail the load). */
__attribute__((format(printf, 2, 3))) void cp_warn(struct parser *p, const char *fmt, ...);
/* Warn once per load that directive d is parsed but not applied yet. */
void cp_warn_pending(struct parser *p, const struct directive *d);
/* The index of a <domain> directive among all of them (for values[]), or -1. */
ssize_t cp_dom_key(const char *name);
size_t cp_dom_keys(void);
const char *cp_dom_key_name(size_t i);
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

/* config_pmta.c: PowerMTA directives Salvo refuses, and those it stores
 * without applying them yet; <address-list>, the
 * processors, <rewrite-list>, <acct-file>, <spool>, domain-macro */
extern const struct directive_table cp_pmta_directives;
/* The reason a PowerMTA directive or block (block true) Salvo does not
 * have is refused, or NULL; *inert: it is accepted with a warning that it
 * has no effect instead. */
const char *cp_refused(const char *name, bool block, bool *inert);
int cp_open_processor(struct parser *p, char *arg);
int cp_open_rewrite_list(struct parser *p, char *arg);
int cp_open_acct_file(struct parser *p, char *arg);
int cp_open_spool(struct parser *p, char *arg);
/* "yahoo.$tld" into its values (each malloc'ed), or a copy of name. */
/* the most names one <domain> (its macros multiplied out) may stand for */
#define CP_MACRO_MAX_NAMES 10000
int cp_macro_expand(struct parser *p, const char *name, char ***out, size_t *n);
/* Free cp_macro_expand's names (each, and the array). */
void cp_macro_names_free(char **names, size_t n);
/* An IP address given as a host name: "[IP]" in buf (with a warning), or NULL. */
const char *cp_ip_as_host(struct parser *p, const struct directive *d, const char *v, char *buf, size_t cap);
int cp_pmta_finish(struct parser *p);
void cp_pmta_free(struct config *cfg);
/* config_address_list.c: <address-list>, suppression-lists */
extern const struct directive_table cp_address_list_directives;
int cp_open_address_list(struct parser *p, char *arg);
int cp_address_lists_finish(struct parser *p);
void cp_address_lists_free(struct config *cfg);
/* config_intake_list.c: <pattern-list NAME> */
extern const struct directive_table cp_intake_list_directives;
int cp_open_pattern_list(struct parser *p, char *arg);
int cp_intake_lists_finish(struct parser *p);
void cp_intake_lists_free(struct config *cfg);
void cp_parser_free(struct parser *p);
/* Where global line gline is: "line N" in the current file, else "FILE:N". */
#define CP_AT_BUF (PATH_MAX + 24)
const char *cp_at(const struct parser *p, int gline, char *buf);
/* The file the current line is in (an include's name, or the main file). */
const char *cp_file_here(const struct parser *p);
/* `smtp-listener` itself (smtp-port is its PowerMTA shorthand, and
 * <smtp-listener ADDR> its block form) */
int cp_open_smtp_listener(struct parser *p, char *arg);
/* A PowerMTA block Salvo has no engine for, whose contents it does not
 * read: the reason (the block is skipped, with this warning), or NULL. */
const char *cp_unapplied_block(const char *name);
int cp_smtp_listener(struct parser *p, const struct directive *d, char *v);

/* config_domain.c */
extern const struct directive_table cp_domain_directives;
int cp_open_domain(struct parser *p, char *arg);
int cp_domain_default(struct config_domain *d);
int cp_domains_finish(struct parser *p);
void cp_domains_free(struct config *cfg);

/* config_vmta.c */
struct pcre_re;
int cp_take_regex(struct parser *p, const char *what, char *v, struct pcre_re **re, char **rest);
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
