/*
 * reload_file.c - the configuration file as a reload reads it: all of a
 * regular, readable, stable text file, or a reason (see reload_file.h).
 */
#include "engine/reload_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a plain file";
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Does the text hold a line that is neither blank nor a comment? */
static bool has_directive(const char *p, size_t n)
{
	bool start = true;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\n') {
			start = true;
		} else if (start && c != ' ' && c != '\t' && c != '\r') {
			if (c != '#')
				return true;
			start = false; /* a comment: skip to its end */
		}
	}
	return false;
}

static int64_t ts_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* Milliseconds since the file last changed (its mtime or ctime, whichever
 * is later). The kernel stamps files by a coarse clock or a finer one
 * (multigrain timestamps): a stamp up to a second ahead of ours is "just
 * now"; one further in the future (a clock set back, a touch -d) counts as
 * long ago: there is nothing to wait for. */
static int64_t quiet_for(const struct stat *st)
{
	struct timespec now;
	int64_t m = ts_ms(&st->st_mtim), c = ts_ms(&st->st_ctim), age;

	clock_gettime(CLOCK_REALTIME, &now);
	age = ts_ms(&now) - (m > c ? m : c);
	if (age < -1000)
		return RELOAD_FILE_QUIET_MS;
	return age < 0 ? 0 : age;
}

/* Wait (at most RELOAD_FILE_SETTLE_MS) until the file at path has not
 * changed for RELOAD_FILE_QUIET_MS: a writer that stops for a moment in
 * the middle of the file looks finished to a reader that came then. 0, or
 * -1 when it kept changing. */
static int settle(const char *path)
{
	struct stat st;
	int64_t waited = 0, q;

	while (stat(path, &st) == 0 && (q = quiet_for(&st)) < RELOAD_FILE_QUIET_MS) {
		int64_t ms = RELOAD_FILE_QUIET_MS - q + 5;

		if (waited >= RELOAD_FILE_SETTLE_MS)
			return -1;
		usleep((useconds_t)ms * 1000);
		waited += ms;
	}
	return 0; /* or stat failed: open() says why */
}

int reload_file_read(const char *path, char **text, size_t *len, char *err, size_t cap)
{
	int fd;
	struct stat before, after, by_name;
	size_t n = 0, want;
	char *buf = NULL, *nul;

	*text = NULL;
	*len = 0;
	if (settle(path) < 0) {
		snprintf(err, cap, "%s: still changing after %d ms (is it being written?); reload again once it "
			 "is complete", path, RELOAD_FILE_SETTLE_MS);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, cap, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &before) < 0) {
		snprintf(err, cap, "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(before.st_mode)) {
		snprintf(err, cap, "%s: not a regular file (%s)", path, kind_of(before.st_mode));
		goto fail;
	}
	if (!(before.st_mode & (S_IRUSR | S_IRGRP | S_IROTH))) {
		snprintf(err, cap, "%s: not readable: its mode %04o gives read permission to no one", path,
			 (unsigned)(before.st_mode & 07777));
		goto fail;
	}
	if ((unsigned long long)before.st_size > RELOAD_FILE_MAX) {
		snprintf(err, cap, "%s: larger than %zu MiB (%lld bytes): not a configuration file", path,
			 RELOAD_FILE_MAX >> 20, (long long)before.st_size);
		goto fail;
	}
	want = (size_t)before.st_size;
	/* one byte more than it says: a file growing meanwhile is seen */
	if (!(buf = malloc(want + 2))) {
		snprintf(err, cap, "%s: out of memory", path);
		goto fail;
	}
	while (n < want + 1) {
		ssize_t r = read(fd, buf + n, want + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, cap, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (fstat(fd, &after) < 0 || stat(path, &by_name) < 0 || n != want || !same_file(&before, &after) ||
	    !same_file(&before, &by_name) || quiet_for(&after) < RELOAD_FILE_QUIET_MS) {
		snprintf(err, cap, "%s: changed while being read (is it still being written?); reload again once it "
			 "is complete", path);
		goto fail;
	}
	close(fd);
	buf[n] = '\0';
	if ((nul = memchr(buf, '\0', n))) {
		size_t line = 1;

		for (const char *c = buf; c < nul; c++)
			line += *c == '\n';
		snprintf(err, cap, "%s:%zu: a NUL byte: not a text file", path, line);
		free(buf);
		return -1;
	}
	if (!has_directive(buf, n)) {
		snprintf(err, cap, "%s: %s: a reload takes the whole configuration from the file (built-in "
			 "defaults would drop every listener, source and domain)", path,
			 n ? "no directive (blank lines and comments only)" : "empty");
		free(buf);
		return -1;
	}
	*text = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}
