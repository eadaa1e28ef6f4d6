/*
 * pcre_re.h - Perl-compatible regular expressions for the configuration
 * (<smtp-pattern-list>, <bounce-category-patterns>, <pattern-list>,
 * address lists) through PCRE2: `\d`, `\b`, `(?i)` mean what they mean in
 * PowerMTA's (Perl's) dialect. Patterns are compiled case-insensitive
 * (the configuration's convention since it began), JIT-compiled when the
 * platform allows, and every match runs under PCRE2's match and depth
 * limits, so a pathological pattern fails a match instead of spinning:
 * such a failed match counts as no match.
 *
 * A compiled pattern is immutable; pcre_re_match() may be called from any
 * thread at once (each call uses its own match data).
 */
#ifndef SALVO_PCRE_RE_H
#define SALVO_PCRE_RE_H

#include <stdbool.h>
#include <stddef.h>

#define PCRE_RE_MAX_LEN 1024          /* characters of pattern */
#define PCRE_RE_MATCH_LIMIT 100000    /* PCRE2's match limit (backtracking steps) */
#define PCRE_RE_DEPTH_LIMIT 10000     /* PCRE2's depth limit */
#define PCRE_RE_HEAP_LIMIT 2048       /* KiB of backtracking memory */

struct pcre_re;

/* Compile pattern (UTF-8 not required: bytes). NULL with the reason in
 * why (cap bytes, "... at offset N") on a bad or too long pattern or
 * ENOMEM. */
struct pcre_re *pcre_re_compile(const char *pattern, char *why, size_t cap);

/* Does re match somewhere in s? A match that hits a limit is false. */
bool pcre_re_match(const struct pcre_re *re, const char *s);

/* The pattern as written. */
const char *pcre_re_text(const struct pcre_re *re);

void pcre_re_free(struct pcre_re *re);

#endif
