/*
 * acct_csv_move.c - an <acct-file> moved aside and its old moved files
 * removed (see acct_csv_move.h).
 */
#include "core/acct_csv_move.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir part of path into out ("." when none) and the name into *base. */
static void split_path(const char *path, char *out, size_t cap, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		snprintf(out, cap, ".");
		*base = path;
	} else if (slash == path) {
		snprintf(out, cap, "/");
		*base = slash + 1;
	} else {
		snprintf(out, cap, "%.*s", (int)(slash - path), path);
		*base = slash + 1;
	}
}

/* Is s "-YYYY-MM-DD-HHMM[.n]EXT" (the rest of an archive's name after the
 * stem)? Exactly: another file's archives ("acct-bounce-..." beside
 * "acct.csv") and live files are not ours. */
static bool archive_name(const char *s, const char *ext)
{
	static const char shape[] = "-dddd-dd-dd-dddd";

	for (size_t i = 0; shape[i]; i++, s++)
		if (shape[i] == 'd' ? !(*s >= '0' && *s <= '9') : *s != shape[i])
			return false;
	if (*s == '.' && s[1] >= '0' && s[1] <= '9') {
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	}
	return !strcmp(s, ext);
}

/* The directory the moved files go to, the name's stem and extension. */
static void parts(const char *path, const char *move_to, char *dir, size_t dcap, char *stem, size_t scap, char *ext,
		  size_t ecap)
{
	const char *base, *dot;

	split_path(path, dir, dcap, &base);
	if (move_to)
		snprintf(dir, dcap, "%s", move_to);
	dot = strrchr(base, '.');
	snprintf(stem, scap, "%.*s", dot ? (int)(dot - base) : (int)strlen(base), base);
	snprintf(ext, ecap, "%s", dot ? dot : "");
}

void acct_csv_expire(const char *path, const char *move_to, uint64_t age_ms)
{
	char dir[4096], stem[512], ext[64];
	DIR *d;
	struct dirent *e;
	time_t cut = time(NULL) - (time_t)(age_ms / 1000);
	size_t sl;

	parts(path, move_to, dir, sizeof(dir), stem, sizeof(stem), ext, sizeof(ext));
	sl = strlen(stem);
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		char p[4096 + 260];
		struct stat st;

		if (strncmp(e->d_name, stem, sl) || !archive_name(e->d_name + sl, ext))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < cut)
			unlink(p);
	}
	closedir(d);
}

/* Copy from to a new file to (move-to on another file system), then
 * remove from. Nothing is removed unless the copy is whole on disk. */
static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out, ret = 0;
	char buf[65536];

	if (in < 0)
		return -errno;
	if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
		ret = -errno;
		close(in);
		return ret;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf)), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : 0;
			break;
		}
		while (w < n && ret == 0) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));

			if (k < 0 && errno != EINTR)
				ret = -errno;
			else if (k > 0)
				w += k;
		}
		if (ret < 0)
			break;
	}
	if (ret == 0 && fsync(out) < 0)
		ret = -errno;
	if (close(out) < 0 && ret == 0)
		ret = -errno;
	close(in);
	if (ret == 0 && unlink(from) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(to); /* the original stays in use: no second copy later */
	return ret;
}

int acct_csv_move(const char *path, const char *move_to, time_t begun, char *to, size_t cap)
{
	char dir[4096], stem[512], ext[64];
	struct tm tm;

	parts(path, move_to, dir, sizeof(dir), stem, sizeof(stem), ext, sizeof(ext));
	gmtime_r(&begun, &tm);
	for (int i = 0;; i++) {
		char num[16] = "";

		if (i > 100000)
			return -EEXIST;
		if (i)
			snprintf(num, sizeof(num), ".%d", i);
		if ((size_t)snprintf(to, cap, "%s/%s-%04d-%02d-%02d-%02d%02d%s%s", dir, stem, tm.tm_year + 1900,
				     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, num, ext) >= cap)
			return -ENAMETOOLONG;
		if (access(to, F_OK) != 0)
			break;
	}
	if (rename(path, to) == 0)
		return 0;
	return errno == EXDEV ? copy_file(path, to) : -errno;
}
