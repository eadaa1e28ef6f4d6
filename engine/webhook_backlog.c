/*
 * webhook_backlog.c - a webhook's backlog in records, counted incrementally
 * over the accounting log's files (contract in webhook_backlog.h).
 *
 * Owns the per-file counts (b->files) and, during an update, one read
 * buffer.
 */
#include "engine/webhook_backlog.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct scan {
	int fd;
	char *buf;
	wh_wants_fn wants;
	const void *ctx;
};

/* Is this line (without its "\n") a record the webhook wants? A line too
 * long for the buffer is judged by its start (its type comes early). */
static bool wanted(const struct scan *sc, const char *line, size_t n, bool cut)
{
	const char *type;
	size_t tlen;

	if (cut) {
		static const char key[] = "\"type\":\"";
		const char *t = memmem(line, n < 256 ? n : 256, key, sizeof(key) - 1), *e;

		if (!t)
			return false;
		t += sizeof(key) - 1;
		e = memchr(t, '"', (size_t)(line + n - t));
		return e && sc->wants(sc->ctx, t, (size_t)(e - t));
	}
	return wh_record_type(line, n, &type, &tlen) && sc->wants(sc->ctx, type, tlen);
}

/* Count the wanted records of the whole lines in [from, to): *end is just
 * after the last whole line counted (a line cut by `to` is left for later);
 * *budget is what reading may still cost. Returns the count. */
static uint64_t count(const struct scan *sc, uint64_t from, uint64_t to, uint64_t *end, uint64_t *budget)
{
	uint64_t n = 0, at = from;

	while (at < to && *budget > 0) {
		size_t want = to - at < CHUNK ? (size_t)(to - at) : CHUNK;
		ssize_t got = pread(sc->fd, sc->buf, want, (off_t)at);
		size_t p = 0;
		char *nl;

		if (got <= 0)
			break;
		*budget = (uint64_t)got >= *budget ? 0 : *budget - (uint64_t)got;
		while ((nl = memchr(sc->buf + p, '\n', (size_t)got - p))) {
			n += wanted(sc, sc->buf + p, (size_t)(nl - sc->buf) - p, false);
			p = (size_t)(nl - sc->buf) + 1;
		}
		if (p == 0 && (size_t)got == CHUNK) {
			/* a line longer than the buffer: judged by its start, then
			 * skipped to its end */
			bool w = wanted(sc, sc->buf, (size_t)got, true);
			uint64_t q = at + (uint64_t)got;

			for (;;) {
				ssize_t g = q < to ? pread(sc->fd, sc->buf, to - q < CHUNK ? (size_t)(to - q) : CHUNK, (off_t)q) : 0;

				if (g <= 0)
					goto out; /* not ended yet: counted later */
				if ((nl = memchr(sc->buf, '\n', (size_t)g))) {
					q += (uint64_t)(nl - sc->buf) + 1;
					break;
				}
				q += (uint64_t)g;
			}
			n += w;
			at = q;
			continue;
		}
		if (p == 0)
			break; /* only a line still being written */
		at += p;
	}
out:
	*end = at;
	return n;
}

static struct wh_count *find(struct wh_backlog *b, uint64_t ino)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->files[i].ino == ino)
			return &b->files[i];
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct wh_count *g = realloc(b->files, cap * sizeof(*g));

		if (!g)
			return NULL;
		b->files = g;
		b->cap = cap;
	}
	b->files[b->n] = (struct wh_count){.ino = ino};
	return &b->files[b->n++];
}

/* One file of the log, counted from start (0, or the position's offset). */
static bool update_file(struct wh_backlog *b, struct scan *sc, int dir_fd, const char *name, uint64_t start,
			bool is_pos_file, uint64_t pos_ino, uint64_t passed_hint, uint64_t *budget)
{
	struct stat st;
	struct wh_count *c;
	uint64_t end, size;

	if ((sc->fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return true; /* gone since the listing: nothing to count */
	if (fstat(sc->fd, &st) < 0 || (is_pos_file && (uint64_t)st.st_ino != pos_ino) ||
	    !(c = find(b, (uint64_t)st.st_ino))) {
		close(sc->fd);
		return false;
	}
	size = (uint64_t)st.st_size;
	b->bytes += size > start ? size - start : 0;
	c->seen = true;
	if (c->start != start || c->off < c->start || size < c->off) {
		if (start > c->start && start <= c->off && size >= c->off) {
			/* the position moved on within what is counted: take off
			 * the records it passed (just sent: cheap to read again) */
			uint64_t unlimited = UINT64_MAX;
			uint64_t passed = passed_hint != WH_WANTED_UNKNOWN ? passed_hint
									   : count(sc, c->start, start, &end, &unlimited);

			c->n = c->n > passed ? c->n - passed : 0;
		} else {
			c->off = start; /* anything else: count again */
			c->n = 0;
		}
		c->start = start;
	}
	if (c->off < size) {
		c->n += count(sc, c->off, size, &end, budget);
		c->off = end;
	}
	close(sc->fd);
	sc->fd = -1;
	b->records += c->n;
	/* exact when only a line still being written is left */
	return *budget > 0 || c->off >= size;
}

void wh_backlog_update(struct wh_backlog *b, int dir_fd, const struct wh_pos *pos, wh_wants_fn wants,
		       const void *ctx, uint64_t budget, uint64_t acked_wanted)
{
	struct scan sc = {.fd = -1, .wants = wants, .ctx = ctx};
	char **names = NULL;
	size_t n = 0, k = 0;
	bool after = pos->ino == 0, exact = true;
	/* what the position passed since the last update, when the sender
	 * knows it and the position stayed in its file */
	uint64_t hint = b->have_last && acked_wanted != WH_WANTED_UNKNOWN && pos->ino == b->last_ino &&
				acked_wanted >= b->last_wanted && ++b->updates % 64
			    ? acked_wanted - b->last_wanted
			    : WH_WANTED_UNKNOWN;

	b->records = b->bytes = 0;
	if (wh_log_files(dir_fd, &names, &n) < 0) {
		b->exact = false;
		return;
	}
	if (!(sc.buf = malloc(CHUNK)))
		budget = 0; /* the bytes are still summed; the count waits */
	for (size_t i = 0; i < b->n; i++)
		b->files[i].seen = false;
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (!after) {
			if (fstatat(dir_fd, names[i], &st, 0) < 0 || (uint64_t)st.st_ino != pos->ino)
				continue;
			after = true;
			exact &= update_file(b, &sc, dir_fd, names[i], pos->off, true, pos->ino, hint, &budget);
			continue;
		}
		exact &= update_file(b, &sc, dir_fd, names[i], 0, false, 0, WH_WANTED_UNKNOWN, &budget);
	}
	wh_log_files_free(names, n);
	free(sc.buf);
	for (size_t i = 0; i < b->n; i++) /* files deleted from the log */
		if (b->files[i].seen)
			b->files[k++] = b->files[i];
	b->n = k;
	b->exact = exact;
	b->have_last = acked_wanted != WH_WANTED_UNKNOWN && pos->ino != 0;
	b->last_ino = pos->ino;
	b->last_wanted = acked_wanted;
}

void wh_backlog_free(struct wh_backlog *b)
{
	free(b->files);
	*b = (struct wh_backlog){0};
}
