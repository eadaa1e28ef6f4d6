/*
 * webhook_log.c - reading the accounting log for the webhooks, line by
 * line across rotations; the record and position parsers (contract in
 * webhook_log.h).
 *
 * Owns, per reader: the directory fd, the open file's fd, the read buffer
 * (wh_reader_fini frees them).
 *
 * Invariant: buf[pos..len) is read from the file at offset off + pos and
 * not yet taken; a rotated file is left only after a read at its end that
 * came after the rotation was seen (the writer may add lines to it up to
 * the rename, never after).
 */
#include "engine/webhook_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/acct_log.h"

#define READ_CHUNK (256u << 10)

/* ---- the log's files ---------------------------------------------------- */

static bool log_name(const char *n)
{
	size_t len = strlen(n);

	if (!strcmp(n, WH_CUR_FILE))
		return true;
	return len > 11 && len < 64 && !strncmp(n, "acct-", 5) && !strcmp(n + len - 6, ".jsonl");
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The log's files in reading order: archives by name, then acct.jsonl
 * ('-' sorts before '.'). *out is malloc'd, each name too. */
int wh_log_files(int dir_fd, char ***out, size_t *n)
{
	int fd = dup(dir_fd), ret = 0;
	DIR *d;
	struct dirent *e;
	char **v = NULL;
	size_t k = 0, cap = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		return ret;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		if (!log_name(e->d_name))
			continue;
		if (k == cap) {
			char **g = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!g)
				break;
			v = g;
		}
		if (!(v[k] = strdup(e->d_name)))
			break;
		k++;
	}
	closedir(d);
	if (k)
		qsort(v, k, sizeof(*v), cmp_names);
	*out = v;
	*n = k;
	return 0;
}

void wh_log_files_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* name's inode number (0 when it does not exist) and size. */
static uint64_t ino_of(int dir_fd, const char *name, uint64_t *size)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, 0) < 0)
		return 0;
	if (size)
		*size = (uint64_t)st.st_size;
	return (uint64_t)st.st_ino;
}

/* ---- the reader -------------------------------------------------------------- */

int wh_reader_init(struct wh_reader *r, const char *dir, const char *who)
{
	memset(r, 0, sizeof(*r));
	r->who = who;
	r->fd = -1;
	r->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return r->dir_fd < 0 ? -errno : 0;
}

void wh_reader_fini(struct wh_reader *r)
{
	free(r->buf);
	if (r->fd >= 0)
		close(r->fd);
	if (r->dir_fd >= 0)
		close(r->dir_fd);
	r->buf = NULL;
	r->fd = r->dir_fd = -1;
}

/* Make name the reader's file, positioned at off. */
static int reader_open(struct wh_reader *r, const char *name, uint64_t off)
{
	int fd = openat(r->dir_fd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || lseek(fd, (off_t)off, SEEK_SET) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	if (r->fd >= 0)
		close(r->fd);
	r->fd = fd;
	r->ino = (uint64_t)st.st_ino;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->off = off;
	r->len = r->pos = 0;
	return 0;
}

void wh_reader_where(const struct wh_reader *r, struct wh_pos *out)
{
	out->ino = r->fd >= 0 ? r->ino : 0;
	out->off = r->off + r->pos;
	snprintf(out->name, sizeof(out->name), "%s", r->name);
}

/* Is off in name just after a line (or the start)? */
static bool after_line(int dir_fd, const char *name, uint64_t off)
{
	char before = '\n';
	int fd;

	if (off == 0)
		return true;
	if ((fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	if (pread(fd, &before, 1, (off_t)off - 1) != 1)
		before = 0;
	close(fd);
	return before == '\n';
}

void wh_reader_resume(struct wh_reader *r, const struct wh_pos *pos)
{
	char **files = NULL;
	size_t n = 0, i;
	uint64_t off, size = 0;

	if (!pos) {
		if (ino_of(r->dir_fd, WH_CUR_FILE, &size))
			reader_open(r, WH_CUR_FILE, size);
		return;
	}
	if (wh_log_files(r->dir_fd, &files, &n) < 0)
		return;
	off = pos->off;
	for (i = 0; i < n && ino_of(r->dir_fd, files[i], NULL) != pos->ino; i++)
		;
	if (pos->ino == 0) {
		i = 0; /* the whole log */
		off = 0;
	} else if (i == n) {
		for (i = 0; i < n && strcmp(pos->name, WH_CUR_FILE) && strcmp(files[i], pos->name) <= 0; i++)
			;
		if (i < n)
			fprintf(stderr, "salvod: webhook %s: its accounting file %s is gone; going on with %s\n", r->who,
				pos->name, files[i]);
		off = 0;
	} else {
		ino_of(r->dir_fd, files[i], &size);
		if (off > size || !after_line(r->dir_fd, files[i], off)) {
			fprintf(stderr, "salvod: webhook %s: its position does not fit %s; reading that file from the start\n",
				r->who, files[i]);
			off = 0;
		}
	}
	if (i < n)
		reader_open(r, files[i], off);
	wh_log_files_free(files, n);
}

/* Is the reader's file no longer acct.jsonl (or has it none yet)? */
static bool reader_rotated(const struct wh_reader *r)
{
	return r->fd < 0 || ino_of(r->dir_fd, WH_CUR_FILE, NULL) != r->ino;
}

/* The reader read its rotated file to the end after seeing it rotated:
 * move to the next file. true when it moved. */
static bool reader_next_file(struct wh_reader *r)
{
	char **files = NULL;
	size_t n = 0, i;
	bool moved = false;

	if (wh_log_files(r->dir_fd, &files, &n) < 0)
		return false;
	if (r->fd < 0) {
		i = 0; /* no file yet: the first that appeared */
	} else {
		for (i = 0; i < n && ino_of(r->dir_fd, files[i], NULL) != r->ino; i++)
			;
		if (i < n) {
			i++;
		} else {
			struct stat st;

			/* deleted under us: the first file modified after ours */
			fstat(r->fd, &st);
			for (i = 0; i < n; i++) {
				struct stat o;

				if (fstatat(r->dir_fd, files[i], &o, 0) == 0 && o.st_mtim.tv_sec >= st.st_mtim.tv_sec)
					break;
			}
		}
	}
	if (i < n) {
		if (r->len > r->pos) {
			r->skipped++;
			fprintf(stderr, "salvod: webhook %s: %s ended inside a line; %zu bytes skipped\n", r->who, r->name,
				r->len - r->pos);
		}
		moved = reader_open(r, files[i], 0) == 0;
	}
	wh_log_files_free(files, n);
	return moved;
}

/* Read more into the buffer. >0 bytes read, 0 at the end, <0 -errno
 * (-EMSGSIZE: the line in the buffer is longer than WH_LINE_MAX). */
static ssize_t reader_fill(struct wh_reader *r)
{
	ssize_t got;

	if (r->fd < 0)
		return 0;
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->off += r->pos;
		r->len -= r->pos;
		r->pos = 0;
	}
	if (r->cap - r->len < READ_CHUNK / 2) {
		size_t cap = r->cap ? r->cap * 2 : READ_CHUNK;
		char *g;

		if (cap > WH_LINE_MAX + READ_CHUNK)
			return -EMSGSIZE;
		if (!(g = realloc(r->buf, cap)))
			return -ENOMEM;
		r->buf = g;
		r->cap = cap;
	}
	do
		got = read(r->fd, r->buf + r->len, r->cap - r->len);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	r->len += (size_t)got;
	return got;
}

int wh_reader_line(struct wh_reader *r, const char **line, size_t *len)
{
	bool rotated = false, skipping = false;

	for (;;) {
		char *p = r->buf + r->pos, *nl = r->len > r->pos ? memchr(p, '\n', r->len - r->pos) : NULL;
		ssize_t got;

		if (nl) {
			size_t n = (size_t)(nl - p);

			r->pos += n + 1;
			if (skipping) {
				skipping = false; /* the end of an over-long line */
				continue;
			}
			if (n == 0)
				continue;
			*line = p;
			*len = n;
			return 1;
		}
		got = reader_fill(r);
		if (got > 0)
			continue;
		if (got == -EMSGSIZE) {
			if (!skipping) {
				r->skipped++;
				fprintf(stderr, "salvod: webhook %s: a line of more than %u bytes in %s; skipped\n", r->who,
					WH_LINE_MAX, r->name);
			}
			skipping = true;
			r->off += r->len; /* drop what is buffered of it */
			r->len = r->pos = 0;
			continue;
		}
		if (got < 0)
			return (int)got;
		/* At the end. A file seen rotated is read once more (the writer
		 * may have added lines before renaming it), then left. */
		if (!rotated) {
			if (!reader_rotated(r))
				return 0;
			rotated = true;
			continue;
		}
		if (!reader_next_file(r))
			return 0;
		rotated = false;
	}
}

/* ---- parsers ------------------------------------------------------------------ */

int64_t wh_parse_time(const char *p, size_t n)
{
	static const char seps[] = "--T::.Z";
	static const int w[7] = {4, 2, 2, 2, 2, 2, 3};
	struct tm tm = {0};
	int v[7], k = 0;

	if (n < ACCT_TIME_LEN)
		return 0;
	for (int f = 0; f < 7; f++) {
		v[f] = 0;
		for (int d = 0; d < w[f]; d++, k++) {
			if (p[k] < '0' || p[k] > '9')
				return 0;
			v[f] = v[f] * 10 + (p[k] - '0');
		}
		if (p[k++] != seps[f])
			return 0;
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
		return 0;
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	return (int64_t)timegm(&tm) * 1000 + v[6];
}

bool wh_record_type(const char *line, size_t n, const char **type, size_t *tlen)
{
	static const char key[] = "\"type\":\"";
	size_t klen = strlen(ACCT_EVENT_ID_KEY), tail = klen + ACCT_EVENT_ID_LEN + 2;
	const char *t, *e;

	if (n < tail + sizeof(key) + 2 || line[0] != '{' || memcmp(line + n - 2, "\"}", 2) ||
	    memcmp(line + n - tail, ACCT_EVENT_ID_KEY, klen))
		return false;
	for (size_t i = n - tail + klen; i < n - 2; i++)
		if (!((line[i] >= '0' && line[i] <= '9') || (line[i] >= 'a' && line[i] <= 'f')))
			return false;
	/* {"time":"...","type":" at its usual place, else searched for */
	if (n > 43 && !memcmp(line + 33, "\",\"type\":\"", 10))
		t = line + 43;
	else if ((t = memmem(line, n - tail, key, sizeof(key) - 1)))
		t += sizeof(key) - 1;
	else
		return false;
	if (!(e = memchr(t, '"', (size_t)(line + n - tail - t))) || e == t)
		return false;
	*type = t;
	*tlen = (size_t)(e - t);
	return true;
}

void wh_pos_format(const struct wh_pos *pos, char out[WH_POS_LEN])
{
	int n;

	memset(out, ' ', WH_POS_LEN);
	n = snprintf(out, WH_POS_LEN, "%llu %llu %s", (unsigned long long)pos->ino, (unsigned long long)pos->off,
		     pos->name);
	if (n >= 0 && n < WH_POS_LEN)
		out[n] = ' ';
	out[WH_POS_LEN - 1] = '\n';
}

int wh_pos_parse(const char *text, size_t n, struct wh_pos *out)
{
	char buf[WH_POS_LEN + 1], name[64], *end;
	unsigned long long ino, off;

	if (n == 0 || n > WH_POS_LEN)
		return -1;
	memcpy(buf, text, n);
	buf[n] = 0;
	if (strlen(buf) != n || buf[0] < '0' || buf[0] > '9')
		return -1;
	errno = 0;
	ino = strtoull(buf, &end, 10);
	if (errno || *end != ' ' || end[1] < '0' || end[1] > '9')
		return -1;
	off = strtoull(end + 1, &end, 10);
	if (errno || *end != ' ' || sscanf(end, " %63s", name) != 1 || !log_name(name) || ino == 0)
		return -1;
	/* only blanks after the name, then the final newline */
	end = strstr(end, name) + strlen(name);
	end += strspn(end, " ");
	if (strcmp(end, "\n") && *end)
		return -1;
	out->ino = ino;
	out->off = off;
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
}
