/*
 * tmp_dir.h - test helper: a fresh directory under /tmp for one test, and
 * its removal with everything in it (header-only).
 */
#ifndef SALVO_TEST_TMP_DIR_H
#define SALVO_TEST_TMP_DIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

/* "/tmp/NAME.XXXXXX" made with mkdtemp() into dir (cap bytes); 0 or -1. */
static inline int tmp_dir_make(char *dir, size_t cap, const char *name)
{
	if ((size_t)snprintf(dir, cap, "/tmp/%s.XXXXXX", name) >= cap)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

static inline int tmp_dir_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void tmp_dir_remove(const char *dir)
{
	nftw(dir, tmp_dir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
