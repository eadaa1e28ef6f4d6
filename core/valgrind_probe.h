/*
 * valgrind_probe.h - SALVO_UNDER_VALGRIND(): whether this process runs under
 * valgrind, from valgrind's own client-request header when it is installed
 * (a few no-op instructions natively), else always 0.
 */
#ifndef SALVO_VALGRIND_PROBE_H
#define SALVO_VALGRIND_PROBE_H

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SALVO_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef SALVO_UNDER_VALGRIND
#define SALVO_UNDER_VALGRIND() 0
#endif

#endif
