/*
 * config_address_list.c - PowerMTA's <address-list [NAME]> (`address
 * LOCALPART`, `address USER@DOMAIN`, `address /REGEX/`, `domain DOMAIN`,
 * `address-file PATH`) and `suppression-lists NAME[,NAME]` in <source>:
 * parsing, name resolution, matching. A recipient matched by one of its
 * source's suppression lists is refused at RCPT (engine/intake.c).
 * Unnamed lists inside <bounce-processor>/<feedback-loop-processor> are
 * stored with their owner (CONFIG_ALIST_BOUNCE/_FBL).
 * Ownership: every list hangs off the struct config being built.
 */
#include "core/config_parser.h"
#include "core/pcre_re.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libgen.h>
#include <sys/stat.h>

#define ADDRESS_FILE_MAX (64u << 20) /* bytes of one address-file */

static struct config_address_list *cur_list(struct parser *p)
{
	return &p->cfg->address_lists[p->cur];
}

int cp_open_address_list(struct parser *p, char *arg)
{
	struct config *c = p->cfg;
	char sb[CP_SHOW_BUF];
	int owner = CONFIG_ALIST_NAMED;
	size_t idx;

	if (p->depth && p->stack[p->depth - 1].ctx == CTX_BOUNCE_PROC)
		owner = CONFIG_ALIST_BOUNCE;
	else if (p->depth && p->stack[p->depth - 1].ctx == CTX_FBL_PROC)
		owner = CONFIG_ALIST_FBL;
	if (*arg && (strlen(arg) > 64 || cp_has_space(arg)))
		return cp_err(p, "invalid name \"%s\" for <address-list>", cp_show(sb, arg));
	if (owner == CONFIG_ALIST_NAMED)
		for (size_t i = 0; i < c->n_address_lists; i++)
			if (c->address_lists[i].name && !strcasecmp(c->address_lists[i].name, arg))
				return cp_err(p, "duplicate <address-list %s> (first at %s)", arg,
					      cp_at(p, c->address_lists[i].line, (char[CP_AT_BUF]){0}));
	if (cp_grow(p, (void **)&c->address_lists, &c->n_address_lists, sizeof(*c->address_lists), &idx) < 0)
		return -1;
	p->cur = idx;
	c->address_lists[idx].line = p->line;
	c->address_lists[idx].owner = owner;
	return *arg ? cp_set_string(p, &c->address_lists[idx].name, arg) : 0;
}

static int push_str(struct parser *p, char ***arr, size_t *n, const char *v)
{
	size_t idx;
	char *s = strdup(v);

	if (!s)
		return cp_oom(p);
	cp_lower(s);
	if (cp_grow(p, (void **)arr, n, sizeof(**arr), &idx) < 0) {
		free(s);
		return -1;
	}
	(*arr)[idx] = s;
	return 0;
}

/* One entry: LOCALPART, USER@DOMAIN or /REGEX/. NULL on success, else why. */
static const char *add_entry(struct parser *p, struct config_address_list *l, char *v, char *why, size_t cap)
{
	char *at;

	if (*v == '/') {
		size_t len = strlen(v), idx;
		struct pcre_re *re;

		if (len < 2 || v[len - 1] != '/')
			return "a regular expression must be written /REGEX/";
		v[len - 1] = '\0';
		re = pcre_re_compile(v + 1, why, cap);
		v[len - 1] = '/';
		if (!re)
			return why;
		if (cp_grow(p, (void **)&l->res, &l->n_res, sizeof(*l->res), &idx) < 0) {
			pcre_re_free(re);
			return "out of memory";
		}
		l->res[idx] = re;
		return NULL;
	}
	if (!*v || cp_has_space(v) || strlen(v) > 320)
		return "expected LOCALPART, USER@DOMAIN or /REGEX/";
	if ((at = strrchr(v, '@'))) {
		if (at == v || !cp_valid_domain_name(at + 1) || memchr(v, '@', (size_t)(at - v)))
			return "expected USER@DOMAIN";
		return push_str(p, &l->addrs, &l->n_addrs, v) < 0 ? "out of memory" : NULL;
	}
	return push_str(p, &l->locals, &l->n_locals, v) < 0 ? "out of memory" : NULL;
}

static int d_address(struct parser *p, const struct directive *d, char *v)
{
	char why[160];
	const char *e = add_entry(p, cur_list(p), v, why, sizeof(why));
	char sb[CP_SHOW_BUF];

	return e ? cp_err(p, "invalid %s \"%s\": %s", d->name, cp_show(sb, v), e) : 0;
}

static int d_domain(struct parser *p, const struct directive *d, char *v)
{
	if (!cp_valid_domain_name(v))
		return cp_bad_value(p, "domain name", d, v);
	return push_str(p, &cur_list(p)->domains, &cur_list(p)->n_domains, v);
}

/* `address-file PATH`: one entry a line (as `address`), `#` comments and
 * blank lines skipped. Each bad line is an error naming PATH:LINE. A
 * relative PATH is taken from the directory of the file that names it
 * (as `include`). */
static int d_address_file(struct parser *p, const struct directive *d, char *v)
{
	char sb[CP_SHOW_BUF], why[160], *line = NULL, path[PATH_MAX], dir[PATH_MAX];
	size_t cap = 0, total = 0;
	ssize_t n;
	int ln = 0, rc = 0;
	FILE *f;
	struct stat st;

	(void)d;
	if (!*v)
		return cp_err(p, "missing value for address-file (a file name)");
	snprintf(dir, sizeof(dir), "%s", cp_file_here(p));
	if (*v != '/' && (size_t)snprintf(path, sizeof(path), "%s/%s", dirname(dir), v) >= sizeof(path))
		return cp_err(p, "address-file \"%s\": path too long", cp_show(sb, v));
	f = fopen(*v == '/' ? v : path, "re");
	if (!f)
		return cp_err(p, "cannot read address-file \"%s\": %s", cp_show(sb, v), strerror(errno));
	/* a regular file of bounded size: /dev/zero has no line end to stop getline() */
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)ADDRESS_FILE_MAX) {
		fclose(f);
		return cp_err(p, "address-file \"%s\" is not a regular file of at most 64 MiB", cp_show(sb, v));
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s;
		const char *e;

		ln++;
		total += (size_t)n;
		if (total > ADDRESS_FILE_MAX) {
			rc = cp_err(p, "address-file \"%s\" is larger than 64 MiB", cp_show(sb, v));
			break;
		}
		if (memchr(line, '\0', (size_t)n)) {
			rc = cp_err(p, "%s:%d: NUL byte in address-file", cp_show(sb, v), ln);
			continue;
		}
		line[strcspn(line, "\n")] = '\0';
		s = cp_trim(line);
		if (!*s || *s == '#')
			continue;
		if ((e = add_entry(p, cur_list(p), s, why, sizeof(why))))
			rc = cp_err(p, "%s:%d: invalid address \"%s\": %s", cp_show(sb, v), ln, s, e);
	}
	if (ferror(f))
		rc = cp_err(p, "cannot read address-file \"%s\": %s", cp_show(sb, v), strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

/* `suppression-lists NAME[,NAME]` in <source>: resolved at finish */
static int d_suppression_lists(struct parser *p, const struct directive *d, char *v)
{
	struct config_source *s = &p->cfg->sources[p->cur];

	if (!*v)
		return cp_bad_value(p, "list of <address-list> names", d, v);
	s->suppression_lists_line = p->line;
	return cp_set_string(p, &s->suppression_lists, v);
}

/* `deliver-matched-email` and `deliver-unmatched-email` in a processor:
 * `no` is what Salvo does; `yes` (PowerMTA's default for unmatched mail)
 * is warned at finish */
static int d_proc_deliver(struct parser *p, const struct directive *d, char *v)
{
	int k = p->ctx == CTX_FBL_PROC;
	bool b;

	if (config_parse_bool(v, &b) < 0)
		return cp_bad_value(p, "yes or no", d, v);
	if (!strcasecmp(d->name, "deliver-matched-email"))
		p->cfg->proc_matched_yes[k] = b;
	else
		p->cfg->proc_unmatched_no[k] = !b;
	return 0;
}

static const struct directive directives[] = {
	{"deliver-matched-email", CTX_BOUNCE_PROC, d_proc_deliver, NULL},
	{"deliver-unmatched-email", CTX_BOUNCE_PROC, d_proc_deliver, NULL},
	{"deliver-matched-email", CTX_FBL_PROC, d_proc_deliver, NULL},
	{"deliver-unmatched-email", CTX_FBL_PROC, d_proc_deliver, NULL},
	{"address", CTX_ADDRESS_LIST, d_address, NULL},
	{"domain", CTX_ADDRESS_LIST, d_domain, NULL},
	{"address-file", CTX_ADDRESS_LIST, d_address_file, NULL},
	{"suppression-lists", CTX_SOURCE, d_suppression_lists, NULL},
};

const struct directive_table cp_address_list_directives = {directives, sizeof(directives) / sizeof(directives[0])};

static ssize_t find_list(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_address_lists; i++)
		if (c->address_lists[i].name && !strcasecmp(c->address_lists[i].name, name))
			return (ssize_t)i;
	return -1;
}

/* Each source's suppression-lists names <address-list>s of the file; a
 * name with no list is warned (PowerMTA's lists may also be managed at
 * run time, which Salvo does with its own suppression list). */
int cp_address_lists_finish(struct parser *p)
{
	struct config *c = p->cfg;
	bool warned[2] = {false, false};

	/* the processors' lists take the bounce domain's path; what that path
	 * does not do is said once per processor */
	for (size_t i = 0; i < c->n_address_lists; i++) {
		const struct config_address_list *l = &c->address_lists[i];
		int k = l->owner == CONFIG_ALIST_FBL, keep = p->line;
		const char *what = k ? "feedback-loop-processor" : "bounce-processor";

		if (l->owner == CONFIG_ALIST_NAMED || warned[k])
			continue;
		warned[k] = true;
		p->line = l->line;
		if (!c->proc_unmatched_no[k])
			cp_warn(p, "<%s>: deliver-unmatched-email yes (PowerMTA's default) is not applied: mail to "
				"these addresses that reports none of Salvo's mail is counted and dropped; say "
				"deliver-unmatched-email no", what);
		if (c->proc_matched_yes[k])
			cp_warn(p, "<%s>: deliver-matched-email yes is not applied: a report is applied, never "
				"delivered", what);
		p->line = keep;
	}
	for (size_t i = 0; i < c->n_sources; i++) {
		struct config_source *s = &c->sources[i];
		char *copy, *save = NULL;

		if (!s->suppression_lists)
			continue;
		if (!(copy = strdup(s->suppression_lists)))
			return cp_oom(p);
		for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
			ssize_t k = find_list(c, t);
			size_t idx;

			if (k < 0) {
				char sb[CP_SHOW_BUF];
				int keep = p->line;

				p->line = s->suppression_lists_line;
				cp_warn(p, "suppression-lists: no <address-list %s> in the configuration: that name "
					"suppresses nothing (Salvo's own suppression list still applies)", cp_show(sb, t));
				p->line = keep;
				continue;
			}
			if (cp_grow(p, (void **)&s->suppress, &s->n_suppress, sizeof(*s->suppress), &idx) < 0) {
				free(copy);
				return -1;
			}
			s->suppress[idx] = (size_t)k;
		}
		free(copy);
	}
	return 0;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void cp_address_lists_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_address_lists; i++) {
		struct config_address_list *l = &cfg->address_lists[i];

		free(l->name);
		free_strs(l->locals, l->n_locals);
		free_strs(l->addrs, l->n_addrs);
		free_strs(l->domains, l->n_domains);
		for (size_t k = 0; k < l->n_res; k++)
			pcre_re_free(l->res[k]);
		free(l->res);
	}
	free(cfg->address_lists);
	cfg->address_lists = NULL;
	cfg->n_address_lists = 0;
}

bool config_address_list_match(const struct config_address_list *l, const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t local_len = at ? (size_t)(at - addr) : strlen(addr);

	for (size_t i = 0; i < l->n_addrs; i++)
		if (!strcasecmp(l->addrs[i], addr))
			return true;
	for (size_t i = 0; i < l->n_locals; i++)
		if (strlen(l->locals[i]) == local_len && !strncasecmp(l->locals[i], addr, local_len))
			return true;
	if (at)
		for (size_t i = 0; i < l->n_domains; i++)
			if (!strcasecmp(l->domains[i], at + 1))
				return true;
	for (size_t i = 0; i < l->n_res; i++)
		if (pcre_re_match(l->res[i], addr))
			return true;
	return false;
}

bool config_processor_address(const struct config *cfg, const char *addr)
{
	for (size_t i = 0; i < cfg->n_address_lists; i++)
		if (cfg->address_lists[i].owner != CONFIG_ALIST_NAMED &&
		    config_address_list_match(&cfg->address_lists[i], addr))
			return true;
	return false;
}

const char *config_source_suppressed(const struct config *cfg, const struct config_source *src, const char *addr)
{
	if (!src)
		return NULL;
	for (size_t i = 0; i < src->n_suppress; i++) {
		const struct config_address_list *l = &cfg->address_lists[src->suppress[i]];

		if (config_address_list_match(l, addr))
			return l->name;
	}
	return NULL;
}
