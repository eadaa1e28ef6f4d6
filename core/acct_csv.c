/*
 * acct_csv.c - PowerMTA CSV accounting files (see acct_csv.h): column
 * layout from `records`/`record-fields`, record formatting (RFC 4180),
 * file rotation (move-interval, max-size, move-to, delete-after) and pipes.
 *
 * Owns: each file's descriptor, pipe child, column names and pending bytes.
 */
#include "core/acct_csv.h"
#include "core/acct_csv_fields.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CSV_MAX_PENDING (4u << 20)
#define CSV_MAX_COLS 64

struct csv_file {
	const struct config_acct_file *cf;
	char *cols[CSV_MAX_COLS];         /* header: "type", then the union of fields */
	size_t n_cols;
	bool has[CONFIG_ACCT_N_TYPES][CSV_MAX_COLS]; /* type t fills column i */
	int fd;                           /* -1: closed */
	pid_t pid;                        /* pipe child, 0 none */
	int64_t started_ms, retry_ms;
	uint64_t size;                    /* bytes in the current file */
	char *buf;                        /* pending bytes */
	size_t len, cap;
	bool failing;                     /* an error was reported; quiet until it clears */
	bool has_records;                 /* the current file holds a record (not only the header) */
	char last_tq[256];                /* queue and diagnostic of the last tq record */
	int64_t last_tq_s;                /* and its second */
};

struct acct_csv {
	struct csv_file *f;
	size_t n;
	uint64_t dropped;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const type_letters[CONFIG_ACCT_N_TYPES] = {"d", "b", "t", "tq", "r", "f", "rb", "rs"};

/* ---- columns ------------------------------------------------------------ */

static ssize_t col_find(const struct csv_file *f, const char *name)
{
	for (size_t i = 0; i < f->n_cols; i++)
		if (!strcasecmp(f->cols[i], name))
			return (ssize_t)i;
	return -1;
}

static int col_add(struct csv_file *f, const char *name, int type)
{
	ssize_t i = col_find(f, name);

	if (i < 0) {
		if (f->n_cols == CSV_MAX_COLS || !(f->cols[f->n_cols] = strdup(name)))
			return -ENOMEM;
		i = (ssize_t)f->n_cols++;
	}
	f->has[type][i] = true;
	return 0;
}

static bool known_field(const char *name)
{
	if (!strncasecmp(name, "header_", 7) && name[7])
		return true;
	for (size_t i = 0; i < ACCT_CSV_N_FIELDS; i++)
		if (!strcasecmp(name, acct_csv_fields[i]))
			return true;
	return false;
}

/* Type t's fields: the default list, or `record-fields` (`*`, `!x`, names). */
static int layout_type(struct csv_file *f, int t, char *err, size_t cap)
{
	const char *spec = f->cf->record_fields[t];
	bool want[ACCT_CSV_N_FIELDS] = {0};
	char *copy, *tok, *save = NULL;
	char *extra[CSV_MAX_COLS];
	size_t n_extra = 0;
	int ret = 0;

	if (!spec) {
		for (size_t i = 0; i < ACCT_CSV_N_FIELDS; i++)
			want[i] = true;
	} else {
		if (!(copy = strdup(spec)))
			return -ENOMEM;
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			bool neg = *tok == '!';
			const char *name = tok + neg;
			bool done = false;

			if (!strcmp(name, "*")) {
				for (size_t i = 0; i < ACCT_CSV_N_FIELDS; i++)
					want[i] = !neg;
				continue;
			}
			if (!known_field(name)) {
				snprintf(err, cap, "acct-file %s (line %d): unknown field \"%s\" in record-fields %s",
					 f->cf->path, f->cf->line, name, type_letters[t]);
				ret = -EINVAL;
				break;
			}
			for (size_t i = 0; i < ACCT_CSV_N_FIELDS && !done; i++)
				if (!strcasecmp(name, acct_csv_fields[i]))
					want[i] = !neg, done = true;
			if (!done && !neg && n_extra < CSV_MAX_COLS)
				extra[n_extra++] = tok + neg;
		}
		if (ret == 0)
			for (size_t i = 0; i < n_extra && ret == 0; i++)
				ret = col_add(f, extra[i], t); /* header_X after the standard ones below */
		if (ret < 0) {
			free(copy);
			return ret;
		}
		free(copy);
	}
	want[0] = true; /* type is always first */
	for (size_t i = 0; i < ACCT_CSV_N_FIELDS; i++)
		if (want[i] && (ret = col_add(f, acct_csv_fields[i], t)) < 0)
			return ret;
	return 0;
}

/* The union of the types' fields, in the default order, then header_X. */
static int layout(struct csv_file *f, char *err, size_t cap)
{
	struct csv_file tmp = {.cf = f->cf};
	int ret = 0;

	/* pass 1 in a scratch file: which columns; pass 2: ordered */
	for (int t = 0; t < CONFIG_ACCT_N_TYPES && ret == 0; t++)
		if (f->cf->records & (1u << t))
			ret = layout_type(&tmp, t, err, cap);
	if (ret == 0) {
		for (size_t i = 0; i < ACCT_CSV_N_FIELDS && ret == 0; i++)
			if (col_find(&tmp, acct_csv_fields[i]) >= 0 && !(f->cols[f->n_cols++] = strdup(acct_csv_fields[i])))
				ret = -ENOMEM;
		for (size_t i = 0; i < tmp.n_cols && ret == 0; i++)
			if (col_find(f, tmp.cols[i]) < 0 && !(f->cols[f->n_cols++] = strdup(tmp.cols[i])))
				ret = -ENOMEM;
		for (size_t i = 0; i < f->n_cols && ret == 0; i++) {
			ssize_t j = col_find(&tmp, f->cols[i]);
			for (int t = 0; t < CONFIG_ACCT_N_TYPES; t++)
				f->has[t][i] = tmp.has[t][j];
		}
	}
	for (size_t i = 0; i < tmp.n_cols; i++)
		free(tmp.cols[i]);
	return ret;
}

/* ---- formatting --------------------------------------------------------- */

static int put(struct csv_file *f, const char *s, size_t n)
{
	if (f->len + n + 1 > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		char *g;

		while (cap < f->len + n + 1)
			cap *= 2;
		if (!(g = realloc(f->buf, cap)))
			return -ENOMEM;
		f->buf = g;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, s, n);
	f->len += n;
	return 0;
}

/* One value, quoted when it holds a comma, a quote, CR or LF (RFC 4180). */
static int put_value(struct csv_file *f, const char *v)
{
	if (!v)
		return 0;
	if (!v[strcspn(v, ",\"\r\n")])
		return put(f, v, strlen(v));
	if (put(f, "\"", 1) < 0)
		return -ENOMEM;
	for (const char *q; (q = strchr(v, '"')); v = q + 1)
		if (put(f, v, (size_t)(q - v) + 1) < 0 || put(f, "\"", 1) < 0)
			return -ENOMEM;
	return put(f, v, strlen(v)) < 0 || put(f, "\"", 1) < 0 ? -ENOMEM : 0;
}

#define TYPE_RS 7

static int type_of(const struct acct_event *ev)
{
	switch (ev->type) {
	case ACCT_DELIVERY: return 0;
	case ACCT_BOUNCE: return ev->kind && !strcmp(ev->kind, "dsn") ? 6 : 1;
	case ACCT_EXPIRATION: return 1;
	case ACCT_TRANSIENT: return 2;
	case ACCT_RECEPTION: return 4;
	case ACCT_FEEDBACK: return 5;
	/* cancelled (an operator's delete): PowerMTA logs the recipients its
	 * `pmta delete` removes as bounces, so a "b" record with dsnAction
	 * failed, dsnStatus 5.0.0, dsnDiag "deleted by the operator: FILTER" */
	case ACCT_CANCELLED: return 1;
	case ACCT_REMOTE_STATUS: return TYPE_RS;
	default: return -1; /* suppressed: PowerMTA has no such record */
	}
}

#define TYPE_TQ 3
#define TYPE_R 4

/* The value of field name for ev (into tmp when it must be built). */
static const char *field(const char *name, const struct acct_event *ev, int t, int64_t now, char *tmp, size_t cap)
{
	if (!strcmp(name, "type"))
		return type_letters[t];
	/* tq: the queue's failure, not one message's */
	if (t == TYPE_TQ && (!strcmp(name, "timeQueued") || !strcmp(name, "orig") || !strcmp(name, "rcpt") ||
			     !strcmp(name, "dlvSize") || !strcmp(name, "jobId")))
		return NULL;
	if (!strcmp(name, "timeLogged")) {
		snprintf(tmp, cap, "%lld", (long long)((ev->time_ms ? ev->time_ms : now) / 1000));
		return tmp;
	}
	if (!strcmp(name, "timeQueued")) {
		if (!ev->queued_time_ms)
			return NULL;
		snprintf(tmp, cap, "%lld", (long long)(ev->queued_time_ms / 1000));
		return tmp;
	}
	if (!strcmp(name, "orig"))
		return ev->sender;
	if (!strcmp(name, "rcpt"))
		return ev->recipient;
	if (!strcmp(name, "dsnAction") && t == TYPE_RS)
		return ev->dsn_action;
	if (!strcmp(name, "dsnAction")) {
		static const char *const act[CONFIG_ACCT_N_TYPES] = {"relayed", "failed", "delayed", "delayed",
								     NULL, NULL, "failed", NULL};
		return act[t];
	}
	if (ev->type == ACCT_CANCELLED && !strcmp(name, "dsnStatus"))
		return "5.0.0";
	if (ev->type == ACCT_CANCELLED && !strcmp(name, "dsnDiag")) {
		snprintf(tmp, cap, "deleted by the operator: %s", ev->filter ? ev->filter : "");
		return tmp;
	}
	if (!strcmp(name, "dsnStatus")) {
		if (ev->response_enhanced && *ev->response_enhanced)
			return ev->response_enhanced;
		if (ev->type == ACCT_DELIVERY)
			return "2.0.0";
		if (ev->type == ACCT_EXPIRATION)
			return "4.4.7";
		if (ev->response_code >= 400)
			snprintf(tmp, cap, "%d.0.0", ev->response_code / 100);
		else
			return NULL;
		return tmp;
	}
	if (!strcmp(name, "dsnDiag")) {
		if (!ev->response_code && !(ev->response_text && *ev->response_text))
			return NULL;
		if (ev->response_code)
			snprintf(tmp, cap, "smtp;%d %s%s%s", ev->response_code,
				 ev->response_enhanced ? ev->response_enhanced : "",
				 ev->response_enhanced && *ev->response_enhanced ? " " : "",
				 ev->response_text ? ev->response_text : "");
		else
			snprintf(tmp, cap, "%s", ev->response_text);
		return tmp;
	}
	if (!strcmp(name, "dsnMta")) {
		if (!ev->mx_host)
			return NULL;
		snprintf(tmp, cap, "%s (%s)", ev->mx_host, ev->mx_ip ? ev->mx_ip : "");
		return tmp;
	}
	if (!strcmp(name, "bounceCat")) {
		if (ev->type == ACCT_CANCELLED && !ev->bounce_category)
			return "other";
		if (ev->type == ACCT_EXPIRATION && !ev->bounce_category)
			return "message-expired";
		return ev->bounce_category;
	}
	if (!strcmp(name, "dlvType"))
		return ev->mx_host || ev->mx_ip ? "smtp" : NULL;
	/* a reception's source_ip is the client that sent it: srcMta, not a
	 * delivery's source */
	if (!strcmp(name, "srcMta"))
		return t == TYPE_R ? ev->source_ip : NULL;
	if (!strcmp(name, "dlvSourceIp"))
		return t == TYPE_R ? NULL : ev->source_ip;
	if (!strcmp(name, "dlvDestinationIp"))
		return ev->mx_ip;
	if (!strcmp(name, "dlvSize")) {
		if (!ev->has_size)
			return NULL;
		snprintf(tmp, cap, "%llu", (unsigned long long)ev->size);
		return tmp;
	}
	if (!strcmp(name, "vmta"))
		return ev->vmta;
	if (!strcmp(name, "jobId"))
		return ev->campaign;
	if (!strcmp(name, "envId"))
		return ev->envid;
	if (!strcmp(name, "queue"))
		return ev->queue;
	if (!strcmp(name, "srcType"))
		return ev->src_type;
	if (!strcmp(name, "vmtaPool"))
		return ev->pool && *ev->pool ? ev->pool : NULL;
	if (!strcmp(name, "dlvEsmtpAvailable"))
		return t == TYPE_R ? NULL : ev->esmtp;
	if (!strncasecmp(name, "header_", 7))
		return acct_event_header(ev, name + 7, tmp, cap);
	if (!strcmp(name, "orcpt"))
		return ev->orcpt; /* RCPT ... ORCPT= as "type;address"; empty when not given */
	return NULL;
}

static int put_header(struct csv_file *f)
{
	for (size_t i = 0; i < f->n_cols; i++)
		if ((i && put(f, ",", 1) < 0) || put_value(f, f->cols[i]) < 0)
			return -ENOMEM;
	return put(f, "\r\n", 2);
}

/* ---- files, rotation, pipes ---------------------------------------------- */

static void report(struct csv_file *f, const char *what, int err)
{
	if (f->failing)
		return;
	f->failing = true;
	fprintf(stderr, "salvod: acct-file %s%s: %s: %s\n", f->cf->pipe ? "|" : "", f->cf->path, what, strerror(err));
}

static int open_pipe(struct csv_file *f)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	if ((pid = fork()) < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		dup2(fds[0], STDIN_FILENO);
		execl("/bin/sh", "sh", "-c", f->cf->path, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	f->fd = fds[1];
	f->pid = pid;
	f->size = 0;
	return 0;
}

static int open_file(struct csv_file *f)
{
	struct stat st;

	f->fd = open(f->cf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (f->fd < 0)
		return -errno;
	f->size = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	f->has_records = f->size > 0;
	f->started_ms = now_ms();
	return 0;
}

/* Open (or reopen) and queue the header when the output starts empty. */
static int start(struct csv_file *f)
{
	int ret = f->cf->pipe ? open_pipe(f) : open_file(f);

	if (ret < 0)
		return ret;
	if (f->size == 0) {
		/* the header goes before whatever is pending */
		size_t pending = f->len;
		char *saved = pending ? malloc(pending) : NULL;

		if (pending && !saved)
			return -ENOMEM;
		if (pending)
			memcpy(saved, f->buf, pending);
		f->len = 0;
		ret = put_header(f);
		if (ret == 0 && pending)
			ret = put(f, saved, pending);
		free(saved);
	}
	return ret;
}

/* dir part of path into out ("." when none) and the name into *base. */
static void split_path(const char *path, char *out, size_t cap, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		snprintf(out, cap, ".");
		*base = path;
	} else {
		snprintf(out, cap, "%.*s", (int)(slash - path), slash == path ? "/" : path);
		if (slash == path)
			snprintf(out, cap, "/");
		*base = slash + 1;
	}
}

/* Remove archives of this file in dir older than delete-after. */
static void expire(struct csv_file *f, const char *dir, const char *stem, const char *ext)
{
	DIR *d;
	struct dirent *e;
	time_t cut = (time_t)((now_ms() - (int64_t)f->cf->delete_after_ms) / 1000);
	size_t sl = strlen(stem);

	if (!f->cf->delete_after_ms || !(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		char p[4096 + 260];
		struct stat st;
		size_t n = strlen(e->d_name);

		/* NAME-YYYY-MM-DD-HHMMSS[.n]EXT */
		if (strncmp(e->d_name, stem, sl) || e->d_name[sl] != '-' || n < sl + 18 ||
		    strcmp(e->d_name + n - strlen(ext), ext))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < cut)
			unlink(p);
	}
	closedir(d);
}

/* Move the current file aside and start a new one. */
static int rotate(struct csv_file *f)
{
	char dir[4096], stem[512], ext[64], to[4096 + 512 + 64 + 64];
	const char *base, *dot;
	struct tm tm;
	time_t now = time(NULL);
	int ret;

	split_path(f->cf->path, dir, sizeof(dir), &base);
	if (f->cf->move_to)
		snprintf(dir, sizeof(dir), "%s", f->cf->move_to);
	dot = strrchr(base, '.');
	snprintf(stem, sizeof(stem), "%.*s", dot ? (int)(dot - base) : (int)strlen(base), base);
	snprintf(ext, sizeof(ext), "%s", dot ? dot : "");
	gmtime_r(&now, &tm);
	for (int i = 0;; i++) {
		char num[16] = "";

		if (i)
			snprintf(num, sizeof(num), ".%d", i);
		snprintf(to, sizeof(to), "%s/%s-%04d-%02d-%02d-%02d%02d%02d%s%s", dir, stem, tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, num, ext);
		if (access(to, F_OK) != 0)
			break;
		if (i > 1000)
			return -EEXIST;
	}
	if (rename(f->cf->path, to) < 0)
		return -errno;
	close(f->fd);
	f->fd = -1;
	if ((ret = start(f)) < 0)
		return ret;
	expire(f, dir, stem, ext);
	return 0;
}

/* Write what is pending; a pipe that would block keeps the rest. */
static int drain(struct csv_file *f)
{
	size_t off = 0;
	int ret = 0;

	while (off < f->len) {
		ssize_t w = write(f->fd, f->buf + off, f->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ret = errno == EAGAIN ? 0 : -errno;
			break;
		}
		off += (size_t)w;
		f->size += (uint64_t)w;
	}
	if (off && off < f->len)
		memmove(f->buf, f->buf + off, f->len - off);
	f->len -= off;
	return ret;
}

static void stop_pipe(struct csv_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->pid > 0)
		waitpid(f->pid, NULL, 0);
	f->pid = 0;
}

static int file_flush(struct acct_csv *c, struct csv_file *f)
{
	int ret;

	if (f->fd < 0) {
		int64_t now = now_ms();

		if (now < f->retry_ms)
			return 0;
		f->retry_ms = now + 1000;
		if ((ret = start(f)) < 0) {
			report(f, f->cf->pipe ? "cannot start" : "cannot open", -ret);
			return ret;
		}
	}
	if ((ret = drain(f)) < 0) {
		report(f, "write", -ret);
		if (f->cf->pipe)
			stop_pipe(f); /* restarted at a later flush */
	} else {
		f->failing = false;
	}
	if (f->len > CSV_MAX_PENDING) {
		c->dropped++;
		f->len = 0;
	}
	return ret;
}

/* ---- the interface -------------------------------------------------------- */

/* A transient failure without an SMTP reply (no session: connection or
 * lookup failure) is the queue's: PowerMTA's tq record, once per queue and
 * diagnostic per second (every recipient of the queue gets its t record). */
static bool tq_new(struct csv_file *f, const struct acct_event *ev, int64_t now)
{
	char key[sizeof(f->last_tq)];

	snprintf(key, sizeof(key), "%s\n%s", ev->queue ? ev->queue : "", ev->response_text ? ev->response_text : "");
	if (f->last_tq_s == now / 1000 && !strcmp(key, f->last_tq))
		return false;
	memcpy(f->last_tq, key, sizeof(key));
	f->last_tq_s = now / 1000;
	return true;
}

static void write_record(struct acct_csv *c, struct csv_file *f, const struct acct_event *ev, int t, int64_t now);

int acct_csv_write(void *ctx, const struct acct_event *ev)
{
	struct acct_csv *c = ctx;
	int t = type_of(ev);
	int64_t now = now_ms();

	if (t < 0)
		return 0;
	for (size_t i = 0; i < c->n; i++) {
		struct csv_file *f = &c->f[i];

		if (f->cf->records & (1u << t))
			write_record(c, f, ev, t, now);
		if (ev->type == ACCT_TRANSIENT && !ev->response_code && (f->cf->records & (1u << TYPE_TQ)) &&
		    tq_new(f, ev, now))
			write_record(c, f, ev, TYPE_TQ, now);
	}
	return 0;
}

static void write_record(struct acct_csv *c, struct csv_file *f, const struct acct_event *ev, int t, int64_t now)
{
	size_t mark = f->len;
	char tmp[1200];

	for (size_t k = 0; k < f->n_cols; k++) {
		const char *v = f->has[t][k] ? field(f->cols[k], ev, t, now, tmp, sizeof(tmp)) : NULL;

		if ((k && put(f, ",", 1) < 0) || put_value(f, v) < 0)
			goto oom;
	}
	if (put(f, "\r\n", 2) < 0)
		goto oom;
	/* rotation before this record: its bytes stay pending meanwhile */
	if (!f->cf->pipe && f->fd >= 0 && f->has_records &&
	    ((f->cf->move_interval_ms && now - f->started_ms >= (int64_t)f->cf->move_interval_ms) ||
	     (f->cf->max_size && f->size + (f->len - mark) + mark > f->cf->max_size))) {
		size_t keep = f->len - mark;
		char *rec = malloc(keep);

		if (!rec)
			goto oom;
		memcpy(rec, f->buf + mark, keep);
		f->len = mark;
		drain(f);
		if (rotate(f) < 0)
			report(f, "move", errno);
		put(f, rec, keep);
		free(rec);
	}
	f->has_records = true;
	return;
oom:
	f->len = mark;
	c->dropped++;
}

int acct_csv_flush(void *ctx)
{
	struct acct_csv *c = ctx;
	int64_t now = now_ms();
	int ret = 0;

	/* move-interval also moves a file that no new record touches */
	for (size_t i = 0; i < c->n; i++) {
		struct csv_file *f = &c->f[i];

		if (!f->cf->pipe && f->fd >= 0 && f->has_records && !f->len && f->cf->move_interval_ms &&
		    now - f->started_ms >= (int64_t)f->cf->move_interval_ms && rotate(f) < 0)
			report(f, "move", errno);
	}
	for (size_t i = 0; i < c->n; i++)
		if (c->f[i].len || c->f[i].fd < 0)
			if (file_flush(c, &c->f[i]) < 0)
				ret = -EIO;
	return ret;
}

uint64_t acct_csv_dropped(const struct acct_csv *c)
{
	return c ? c->dropped : 0;
}

void acct_csv_close(struct acct_csv *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct csv_file *f = &c->f[i];

		if (f->fd >= 0 && f->len) {
			if (f->cf->pipe)
				fcntl(f->fd, F_SETFL, 0); /* the last records: wait for the program */
			drain(f);
		}
		if (f->cf->pipe)
			stop_pipe(f);
		else if (f->fd >= 0)
			close(f->fd);
		for (size_t k = 0; k < f->n_cols; k++)
			free(f->cols[k]);
		free(f->buf);
	}
	free(c->f);
	free(c);
}

int acct_csv_open(struct acct_csv **out, const struct config_acct_file *files, size_t n, char *err, size_t cap)
{
	struct acct_csv *c = calloc(1, sizeof(*c));
	int ret = 0;

	if (!c || !(c->f = calloc(n ? n : 1, sizeof(*c->f)))) {
		free(c);
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		c->f[i].cf = &files[i];
		c->f[i].fd = -1;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct csv_file *f = &c->f[i];

		if ((ret = layout(f, err, cap)) < 0) {
			if (ret == -ENOMEM)
				snprintf(err, cap, "out of memory");
			break;
		}
		if ((ret = start(f)) < 0)
			snprintf(err, cap, "acct-file %s%s (line %d): %s", f->cf->pipe ? "|" : "", f->cf->path,
				 f->cf->line, strerror(-ret));
		else
			drain(f);
	}
	if (ret < 0) {
		acct_csv_close(c);
		return ret;
	}
	*out = c;
	return 0;
}
