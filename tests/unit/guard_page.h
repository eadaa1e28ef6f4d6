/*
 * guard_page.h - test helper: place bytes so they end exactly where an
 * inaccessible page begins, so a parser that reads one byte too far faults.
 * One 1 MiB area per test process, reused by every call (header-only).
 */
#ifndef SALVO_TEST_GUARD_PAGE_H
#define SALVO_TEST_GUARD_PAGE_H

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_AREA (1024 * 1024)

static inline const char *at_guard(const void *s, size_t n)
{
	static char *area;

	if (!area) {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);

		area = mmap(NULL, GUARD_AREA + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(area != MAP_FAILED);
		assert_int_equal(mprotect(area + GUARD_AREA, page, PROT_NONE), 0);
	}
	assert_true(n <= GUARD_AREA);
	memmove(area + GUARD_AREA - n, s, n);
	return area + GUARD_AREA - n;
}

#endif
