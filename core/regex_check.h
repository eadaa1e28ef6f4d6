/*
 * regex_check.h - a bound on what a configured POSIX ERE costs to compile.
 *
 * glibc's regcomp() copies a sub-expression for every '+' and bounded
 * repetition applied to it, so stacked or nested repetitions grow the
 * compiled form exponentially ("a++++...", "((a{200}){200}){200}") and a
 * one-line config typo can take gigabytes. Patterns from the config pass
 * this check before regcomp().
 */
#ifndef SALVO_REGEX_CHECK_H
#define SALVO_REGEX_CHECK_H

#include <stddef.h>

#define REGEX_CHECK_MAX_LEN 1024     /* characters */
#define REGEX_CHECK_MAX_COPIES 4096  /* estimated atoms after expansion */
#define REGEX_CHECK_MAX_REPEAT 255   /* largest {n,m} bound */
#define REGEX_CHECK_MAX_DEPTH 32     /* nested groups */

/* 0 when re may be compiled; -1 with the reason in why (cap bytes). Syntax
 * errors are left to regcomp(), which says more. */
int regex_check(const char *re, char *why, size_t cap);

#endif
