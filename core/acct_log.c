/*
 * acct_log.c - the accounting log: formats events as JSON lines, buffers
 * them, appends them to DIR/acct.jsonl and rotates it (contract in
 * acct_log.h).
 *
 * Owns: the directory fd, the current file's fd and the record buffer;
 * all freed by acct_log_close().
 *
 * Invariants:
 *   - buf holds whole records only, except that its head may be the rest
 *     of a record whose beginning already reached the file (a short or
 *     failed write(2)); mid_line is true exactly then. Written bytes leave
 *     the buffer at once, so a retry never writes anything twice.
 *   - A rotation happens only right after a successful flush, so the file
 *     being archived always ends with a whole line.
 *   - file_size counts the bytes in the current file, so size rotation
 *     needs no fstat per record.
 *   - While write(2) fails, acct_log_write() retries only after another
 *     ACCT_FLUSH_AT bytes (flush_at), so a full disk costs one failing
 *     syscall per 64 KiB of records, not one per record.
 */
#include "core/acct_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/json_str.h"

#define ACCT_FILE "acct.jsonl"
#define ACCT_FLUSH_AT (64u << 10)  /* write() flushes past this much buffered */
#define ACCT_DROP_AT (4u << 20)    /* unwritable: drop records past this much */
#define ACCT_NAME_TRIES 1000       /* archive names tried per rotation */

struct acct_log {
	int dir_fd;
	int fd;
	uint64_t rotate_bytes;
	uint64_t rotate_ms;
	uint64_t file_size;     /* bytes in the current file */
	int64_t file_start_ms;  /* when the current file was started */
	int64_t last_archive_ms;
	bool mid_line;          /* the file ends inside a record (see above) */
	size_t flush_at;        /* write() flushes when this much is buffered */
	uint64_t dropped;
	struct json_buf buf;
	struct acct_tap tap;    /* a second writer (acct_log_set_tap); write NULL: none */
};

static const char *const type_names[ACCT_TYPE_COUNT] = {
	[ACCT_RECEPTION] = "reception",
	[ACCT_DELIVERY] = "delivery",
	[ACCT_TRANSIENT] = "transient",
	[ACCT_BOUNCE] = "bounce",
	[ACCT_EXPIRATION] = "expiration",
	[ACCT_FEEDBACK] = "feedback",
	[ACCT_SUPPRESSED] = "suppressed",
	[ACCT_CANCELLED] = "cancelled",
	[ACCT_REMOTE_STATUS] = "remote_status",
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *acct_type_name(enum acct_type type)
{
	if ((unsigned)type >= ACCT_TYPE_COUNT)
		return NULL;
	return type_names[type];
}

/* Split ms into UTC calendar time and milliseconds (floor, also before 1970). */
static int split_ms(int64_t ms, struct tm *tm, int *milli)
{
	int64_t sec = ms / 1000, rem = ms % 1000;
	time_t t;

	if (rem < 0) {
		rem += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, tm) || tm->tm_year < -1900 || tm->tm_year > 9999 - 1900)
		return -EINVAL;
	*milli = (int)rem;
	return 0;
}

/* n as exactly width decimal digits (n fits). */
static char *put_digits(char *o, unsigned n, int width)
{
	for (int i = width - 1; i >= 0; i--, n /= 10)
		o[i] = (char)('0' + n % 10);
	return o + width;
}

/* Written digit by digit, not with snprintf: two or three of these go into
 * every accounting record, and snprintf was most of the formatting cost. */
int acct_time_rfc3339(int64_t ms, char *out, size_t cap)
{
	struct tm tm;
	int milli;
	char *o = out;

	if (cap < ACCT_TIME_LEN + 1 || split_ms(ms, &tm, &milli) < 0)
		return -EINVAL;
	o = put_digits(o, (unsigned)(tm.tm_year + 1900), 4);
	*o++ = '-';
	o = put_digits(o, (unsigned)tm.tm_mon + 1, 2);
	*o++ = '-';
	o = put_digits(o, (unsigned)tm.tm_mday, 2);
	*o++ = 'T';
	o = put_digits(o, (unsigned)tm.tm_hour, 2);
	*o++ = ':';
	o = put_digits(o, (unsigned)tm.tm_min, 2);
	*o++ = ':';
	o = put_digits(o, (unsigned)tm.tm_sec, 2);
	*o++ = '.';
	o = put_digits(o, (unsigned)milli, 3);
	*o++ = 'Z';
	*o = '\0';
	return 0;
}

/* ---- formatting -------------------------------------------------------------- */

static int put_key(struct json_buf *b, const char *key)
{
	int ret;

	if ((ret = json_buf_put(b, ",\"", 2)) < 0 || (ret = json_buf_puts(b, key)) < 0)
		return ret;
	return json_buf_put(b, "\":", 2);
}

static int put_str(struct json_buf *b, const char *key, const char *val)
{
	int ret;

	if (!val)
		return 0;
	if ((ret = put_key(b, key)) < 0)
		return ret;
	return json_buf_strz(b, val);
}

static int put_id(struct json_buf *b, const char *key, uint64_t id)
{
	static const char hex[] = "0123456789abcdef";
	char v[18];
	int ret;

	if (id == 0)
		return 0;
	v[0] = v[17] = '"';
	for (int i = 16; i >= 1; i--, id >>= 4)
		v[i] = hex[id & 15];
	if ((ret = put_key(b, key)) < 0)
		return ret;
	return json_buf_put(b, v, sizeof(v));
}

static int put_time(struct json_buf *b, const char *key, int64_t ms)
{
	char t[ACCT_TIME_LEN + 1];
	int ret;

	if ((ret = acct_time_rfc3339(ms, t, sizeof(t))) < 0 || (ret = put_key(b, key)) < 0 ||
	    (ret = json_buf_putc(b, '"')) < 0 || (ret = json_buf_put(b, t, ACCT_TIME_LEN)) < 0)
		return ret;
	return json_buf_putc(b, '"');
}

static bool nonempty(const char *s)
{
	return s && s[0];
}

static int put_response(struct json_buf *b, const struct acct_event *ev)
{
	const char *sep = "";
	int ret;

	if (ev->response_code == 0 && !nonempty(ev->response_text))
		return 0;
	if ((ret = json_buf_puts(b, ",\"response\":{")) < 0)
		return ret;
	if (ev->response_code) {
		if ((ret = json_buf_printf(b, "\"code\":%d", ev->response_code)) < 0)
			return ret;
		sep = ",";
	}
	if (nonempty(ev->response_enhanced)) {
		if ((ret = json_buf_printf(b, "%s\"enhanced\":", sep)) < 0 ||
		    (ret = json_buf_strz(b, ev->response_enhanced)) < 0)
			return ret;
		sep = ",";
	}
	if (nonempty(ev->response_text)) {
		if ((ret = json_buf_printf(b, "%s\"text\":", sep)) < 0 ||
		    (ret = json_buf_strz(b, ev->response_text)) < 0)
			return ret;
	}
	return json_buf_putc(b, '}');
}

/* "headers":{"Name":"value",...} from "Name: value\n" lines; nothing when none. */
static int put_headers(struct json_buf *b, const char *lines)
{
	bool first = true;
	int ret;

	if (!lines || !*lines)
		return 0;
	if ((ret = put_key(b, "headers")) < 0 || (ret = json_buf_put(b, "{", 1)) < 0)
		return ret;
	for (const char *l = lines; *l;) {
		const char *colon = strchr(l, ':'), *end = strchr(l, '\n');
		const char *v;

		if (!end)
			end = l + strlen(l);
		if (!colon || colon > end)
			break; /* not ours: the lines are made by acct_headers_take() */
		v = colon + 1 + (colon[1] == ' ');
		if ((!first && (ret = json_buf_put(b, ",", 1)) < 0) || (ret = json_buf_str(b, l, (size_t)(colon - l))) < 0 ||
		    (ret = json_buf_put(b, ":", 1)) < 0 || (ret = json_buf_str(b, v, (size_t)(end - v))) < 0)
			return ret;
		first = false;
		l = *end ? end + 1 : end;
	}
	return json_buf_put(b, "}", 1);
}

const char *acct_event_header(const struct acct_event *ev, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	for (const char *l = ev->headers; l && *l;) {
		const char *end = strchr(l, '\n');

		if (!end)
			end = l + strlen(l);
		if ((size_t)(end - l) > n && l[n] == ':' && !strncasecmp(l, name, n)) {
			const char *v = l + n + 1 + (l[n + 1] == ' ');

			snprintf(out, cap, "%.*s", (int)(end - v), v);
			return out;
		}
		l = *end ? end + 1 : end;
	}
	return NULL;
}

/* Everything after "type", in the documented order. */
static int put_fields(struct json_buf *b, const struct acct_event *ev)
{
	int ret;

	if ((ret = put_id(b, "id", ev->id)) < 0 || (ret = put_str(b, "sender", ev->sender)) < 0 ||
	    (ret = put_str(b, "recipient", ev->recipient)) < 0 || (ret = put_str(b, "queue", ev->queue)) < 0 ||
	    (ret = put_str(b, "vmta", ev->vmta)) < 0 || (ret = put_str(b, "source_ip", ev->source_ip)) < 0 ||
	    (ret = put_str(b, "mx_host", ev->mx_host)) < 0 || (ret = put_str(b, "mx_ip", ev->mx_ip)) < 0)
		return ret;
	if (ev->attempt && (ret = json_buf_printf(b, ",\"attempt\":%u", (unsigned)ev->attempt)) < 0)
		return ret;
	if (ev->queued_time_ms && (ret = put_time(b, "queued_time", ev->queued_time_ms)) < 0)
		return ret;
	if (ev->has_size && (ret = json_buf_printf(b, ",\"size\":%llu", (unsigned long long)ev->size)) < 0)
		return ret;
	if ((ret = put_response(b, ev)) < 0 || (ret = put_str(b, "bounce_category", ev->bounce_category)) < 0 ||
	    (ret = put_str(b, "kind", ev->kind)) < 0 || (ret = put_str(b, "campaign", ev->campaign)) < 0 ||
	    (ret = put_str(b, "tls", ev->tls)) < 0 || (ret = put_id(b, "dsn_id", ev->dsn_id)) < 0 ||
	    (ret = put_str(b, "filter", ev->filter)) < 0 || (ret = put_str(b, "src_type", ev->src_type)) < 0 ||
	    (ret = put_str(b, "pool", ev->pool)) < 0 || (ret = put_str(b, "esmtp", ev->esmtp)) < 0 ||
	    (ret = put_headers(b, ev->headers)) < 0 || (ret = put_str(b, "dsn_action", ev->dsn_action)) < 0 ||
	    (ret = put_str(b, "envid", ev->envid)) < 0 || (ret = put_str(b, "orcpt", ev->orcpt)) < 0)
		return ret;
	return 0;
}

/* ---- event_id ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* A 64-bit hash of p[0..n): word at a time, each word mixed before it is
 * folded in. Not cryptographic: it tells the events of one message apart. */
static uint64_t hash64(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xc2b2ae3d27d4eb4full), w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h ^= mix64(w);
		h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
	}
	w = 0;
	memcpy(&w, p + i, n - i);
	h ^= mix64(w ^ 0x165667b19e3779f9ull);
	return mix64(h);
}

static void put_hex16(char *o, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		o[i] = hex[v & 15];
}

/* ,"event_id":"<16 hex message id><16 hex hash of the record so far>". The
 * record so far (b->data[mark..]) holds the time, type, message id,
 * recipient and attempt, so two events never share it; re-sends carry the
 * logged bytes, so an event keeps its id. */
static int put_event_id(struct json_buf *b, size_t mark, uint64_t msg_id)
{
	char v[sizeof(ACCT_EVENT_ID_KEY) - 1 + ACCT_EVENT_ID_LEN + 1];
	size_t k = sizeof(ACCT_EVENT_ID_KEY) - 1;

	memcpy(v, ACCT_EVENT_ID_KEY, k);
	put_hex16(v + k, msg_id);
	put_hex16(v + k + 16, hash64(b->data + mark, b->len - mark));
	v[sizeof(v) - 1] = '"';
	return json_buf_put(b, v, sizeof(v));
}

int acct_event_format(struct json_buf *b, const struct acct_event *ev)
{
	const char *type = acct_type_name(ev->type);
	char t[ACCT_TIME_LEN + 1];
	size_t mark = b->len;
	int ret;

	if (!type || acct_time_rfc3339(ev->time_ms ? ev->time_ms : wall_ms(), t, sizeof(t)) < 0)
		return -EINVAL;
	if ((ret = json_buf_put(b, "{\"time\":\"", 9)) == 0 && (ret = json_buf_put(b, t, ACCT_TIME_LEN)) == 0 &&
	    (ret = json_buf_put(b, "\",\"type\":\"", 10)) == 0 && (ret = json_buf_puts(b, type)) == 0)
		ret = json_buf_putc(b, '"');
	if (ret == 0)
		ret = put_fields(b, ev);
	if (ret == 0)
		ret = put_event_id(b, mark, ev->id);
	if (ret == 0)
		ret = json_buf_put(b, "}\n", 2);
	if (ret < 0)
		b->len = mark; /* all or nothing */
	return ret;
}

/* ---- file handling ------------------------------------------------------------ */

/* mkdir -p: create every missing component of path (mode 0750). */
static int mkdir_p(const char *path)
{
	size_t n = strlen(path);
	char *p, *buf;
	int ret = 0;

	if (n == 0)
		return -EINVAL;
	if (!(buf = strdup(path)))
		return -ENOMEM;
	for (p = buf + 1; *p && ret == 0; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			ret = -errno;
		*p = '/';
	}
	if (ret == 0 && mkdir(buf, 0750) < 0 && errno != EEXIST)
		ret = -errno;
	free(buf);
	return ret;
}

/* When the file was started: its birth time if the file system keeps one. */
static int64_t file_birth_ms(int fd, uint64_t size)
{
	struct statx sx;

	if (size > 0 && statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
		return (int64_t)sx.stx_btime.tv_sec * 1000 + sx.stx_btime.tv_nsec / 1000000;
	return wall_ms();
}

/* Put c before everything buffered (the end of a line someone else began). */
static int buf_put_front(struct json_buf *b, char c)
{
	int ret = json_buf_reserve(b, 1);

	if (ret < 0)
		return ret;
	memmove(b->data + 1, b->data, b->len);
	b->data[0] = c;
	b->len++;
	return 0;
}

/* Open DIR/acct.jsonl (creating it) and learn its size and age. A file
 * left ending mid-line (a crash during a write) gets a "\n" first so our
 * first record starts on its own line. */
static int open_current(struct acct_log *log)
{
	struct stat st;
	char last = '\n';
	int fd, ret = 0;

	fd = openat(log->dir_fd, ACCT_FILE, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	if (ret == 0 && st.st_size > 0) {
		int rfd = openat(log->dir_fd, ACCT_FILE, O_RDONLY | O_CLOEXEC);

		if (rfd >= 0) {
			if (pread(rfd, &last, 1, st.st_size - 1) != 1)
				last = '\n';
			close(rfd);
		}
	}
	if (ret == 0 && last != '\n')
		ret = buf_put_front(&log->buf, '\n');
	if (ret < 0) {
		close(fd);
		return ret;
	}
	log->fd = fd;
	log->file_size = (uint64_t)st.st_size;
	log->file_start_ms = file_birth_ms(fd, log->file_size);
	log->mid_line = last != '\n';
	return 0;
}

int acct_log_open(struct acct_log **out, const char *dir, uint64_t rotate_bytes, uint64_t rotate_ms)
{
	struct acct_log *log;
	int ret;

	if ((ret = mkdir_p(dir)) < 0)
		return ret;
	if (!(log = calloc(1, sizeof(*log))))
		return -ENOMEM;
	log->fd = -1;
	log->rotate_bytes = rotate_bytes ? rotate_bytes : ACCT_ROTATE_BYTES_DEFAULT;
	log->rotate_ms = rotate_ms;
	log->flush_at = ACCT_FLUSH_AT;
	log->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dir_fd < 0) {
		ret = -errno;
		free(log);
		return ret;
	}
	if ((ret = open_current(log)) < 0) {
		acct_log_close(log);
		return ret;
	}
	*out = log;
	return 0;
}

/* Count the newline-terminated records in p[0..n). */
static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t k = 0;
	const char *e = p + n;

	while (p < e && (p = memchr(p, '\n', (size_t)(e - p)))) {
		k++;
		p++;
	}
	return k;
}

/* The file stays unwritable and the buffer is too big: drop what is
 * buffered, except the rest of a record already begun in the file, which
 * must still end that line. */
static void drop_buffered(struct acct_log *log)
{
	size_t keep = 0;

	if (log->mid_line) {
		const char *nl = memchr(log->buf.data, '\n', log->buf.len);

		keep = nl ? (size_t)(nl - log->buf.data) + 1 : log->buf.len;
	}
	log->dropped += count_lines(log->buf.data + keep, log->buf.len - keep);
	log->buf.len = keep;
}

/* Write buf[0..len) to the file; written bytes leave the buffer. */
static int write_prefix(struct acct_log *log, size_t len)
{
	size_t done = 0;
	int ret = 0;

	while (done < len) {
		ssize_t n = write(log->fd, log->buf.data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (done) {
		log->file_size += done;
		log->mid_line = log->buf.data[done - 1] != '\n';
		memmove(log->buf.data, log->buf.data + done, log->buf.len - done);
		log->buf.len -= done;
	}
	if (ret < 0 && log->buf.len > ACCT_DROP_AT)
		drop_buffered(log);
	/* While the file is failing, write() retries once per ACCT_FLUSH_AT
	 * more bytes, not once per record. */
	log->flush_at = (ret < 0 ? log->buf.len : 0) + ACCT_FLUSH_AT;
	return ret;
}

int acct_log_flush(struct acct_log *log)
{
	int tr = log->tap.flush ? log->tap.flush(log->tap.ctx) : 0, ret = write_prefix(log, log->buf.len);

	/* a tap that could not write keeps its records (acct_csv.c): the
	 * outbox must keep them too, so its failure is the flush's */
	return ret < 0 ? ret : tr;
}

/* Archive name for a rotation at ms: acct-YYYYMMDDTHHMMSS.mmmZ.jsonl. */
static int archive_name(int64_t ms, char *out, size_t cap)
{
	struct tm tm;
	int milli;

	if (split_ms(ms, &tm, &milli) < 0)
		return -EINVAL;
	snprintf(out, cap, "acct-%04d%02d%02dT%02d%02d%02d.%03dZ.jsonl", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
	return 0;
}

/* Rename acct.jsonl to name unless name exists (-EEXIST then). */
static int rename_noreplace(int dir_fd, const char *name)
{
	if (renameat2(dir_fd, ACCT_FILE, dir_fd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* The file system cannot do RENAME_NOREPLACE: link() never replaces. */
	if (linkat(dir_fd, ACCT_FILE, dir_fd, name, 0) < 0)
		return -errno;
	if (unlinkat(dir_fd, ACCT_FILE, 0) < 0) {
		int ret = -errno;

		unlinkat(dir_fd, name, 0);
		return ret;
	}
	return 0;
}

/* Move acct.jsonl to a fresh archive name; *name gets it. */
static int archive_current(struct acct_log *log, char *name, size_t cap)
{
	int64_t ms = wall_ms();
	int ret = -EEXIST;

	if (ms <= log->last_archive_ms)
		ms = log->last_archive_ms + 1; /* keep names unique and in order */
	for (int i = 0; i < ACCT_NAME_TRIES && ret == -EEXIST; i++, ms++) {
		if ((ret = archive_name(ms, name, cap)) < 0)
			return ret;
		ret = rename_noreplace(log->dir_fd, name);
		if (ret == 0)
			log->last_archive_ms = ms;
	}
	return ret;
}

/* Archive the current file and start a new one. On failure the current
 * file stays in place (renamed back if needed) and remains in use. */
static int rotate(struct acct_log *log)
{
	char name[64];
	int old_fd = log->fd, ret;
	uint64_t old_size = log->file_size;
	int64_t old_start = log->file_start_ms;

	ret = archive_current(log, name, sizeof(name));
	if (ret == -ENOENT)
		name[0] = 0; /* someone removed acct.jsonl: just start a new one */
	else if (ret < 0)
		return ret;
	if ((ret = open_current(log)) < 0) {
		if (name[0])
			renameat(log->dir_fd, name, log->dir_fd, ACCT_FILE);
		log->fd = old_fd;
		log->file_size = old_size;
		log->file_start_ms = old_start;
		return ret;
	}
	close(old_fd);
	return 0;
}

/* Is a rotation due before adding a record of rec_len bytes, given that
 * `ahead` bytes are buffered before it? */
static bool rotation_due(const struct acct_log *log, size_t ahead, size_t rec_len)
{
	uint64_t before = log->file_size + ahead;

	if (before == 0)
		return false; /* never archive an empty file */
	if (before + rec_len > log->rotate_bytes)
		return true;
	return log->rotate_ms && wall_ms() - log->file_start_ms >= (int64_t)log->rotate_ms;
}

int acct_log_write(struct acct_log *log, const struct acct_event *ev)
{
	size_t mark = log->buf.len;
	int ret;

	if ((ret = acct_event_format(&log->buf, ev)) < 0)
		return ret;
	if (log->tap.write)
		log->tap.write(log->tap.ctx, ev); /* its errors are its own (logged there) */
	if (rotation_due(log, mark, log->buf.len - mark)) {
		/* The records ahead of this one belong to the old file. */
		if ((ret = write_prefix(log, mark)) < 0 || (ret = rotate(log)) < 0)
			return ret;
	}
	if (log->buf.len >= log->flush_at)
		return acct_log_flush(log);
	return 0;
}

/* ---- the second writer's hook (kept apart to merge easily) ------------ */

void acct_log_set_tap(struct acct_log *log, const struct acct_tap *tap)
{
	if (tap)
		log->tap = *tap;
	else
		memset(&log->tap, 0, sizeof(log->tap));
}

uint64_t acct_log_dropped(const struct acct_log *log)
{
	return log->dropped;
}

void acct_log_close(struct acct_log *log)
{
	if (!log)
		return;
	if (log->fd >= 0) {
		acct_log_flush(log);
		close(log->fd);
	}
	if (log->dir_fd >= 0)
		close(log->dir_fd);
	json_buf_free(&log->buf);
	free(log);
}
