/*
 * acct_csv.c - PowerMTA CSV accounting files (see acct_csv.h): column
 * layout from `records`/`record-fields`, record formatting (RFC 4180),
 * when to move a file (move-interval, max-size; the move itself and
 * delete-after: acct_csv_move.c) and pipes.
 *
 * Owns: each file's descriptor, pipe child, column names and pending bytes.
 */
#include "core/acct_csv.h"
#include "core/acct_csv_fields.h"
#include "core/acct_csv_move.h"
#include "core/json_str.h"

#include <poll.h>
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

#define CSV_MAX_PENDING_PIPE (4u << 20)  /* a program that does not keep up */
#define CSV_MAX_PENDING_FILE (64u << 20) /* a file that cannot be written (the outbox holds the rest) */
#define CSV_MAX_COLS 64

struct csv_file {
	const struct config_acct_file *cf;
	char *cols[CSV_MAX_COLS];         /* header: "type", then each type's fields */
	size_t n_cols;
	bool has[CONFIG_ACCT_N_TYPES][CSV_MAX_COLS]; /* type t fills column i */
	int fd;                           /* -1: closed */
	pid_t pid;                        /* pipe child, 0 none */
	int64_t started_ms, retry_ms, move_retry_ms;
	uint64_t size;                    /* bytes in the current file */
	struct json_buf out;              /* pending bytes: whole records (the header is one) */
	size_t *ends;                     /* where each pending record ends in out */
	size_t n_ends, cap_ends;
	size_t head_done;                 /* bytes of the first pending record already written */
	bool failing;                     /* an error was reported; quiet until it clears */
	bool move_failing;                /* a move was refused; quiet until one works */
	bool dropping;                    /* records are being dropped; said once */
	bool said_127;                    /* the program was not found; said once */
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

/* Column name, marked as filled by type t (-1: by none); appended when new. */
static int col_add(struct csv_file *f, const char *name, int type)
{
	ssize_t i = col_find(f, name);

	if (i < 0) {
		if (f->n_cols == CSV_MAX_COLS || !(f->cols[f->n_cols] = strdup(name)))
			return -ENOMEM;
		i = (ssize_t)f->n_cols++;
	}
	if (type >= 0)
		f->has[type][i] = true;
	return 0;
}

/* Type t's fields in the order configured (PowerMTA writes them so:
 * scripts read columns by position): the default list, or `record-fields`
 * applied left to right (`*` adds the default fields not listed yet, at
 * that place; `!x` removes x; a name adds it). `type` is always first. */
/* Remove name from list (neg), or append it when it is not there yet. */
static void list_apply(const char **list, size_t *n, const char *name, bool neg)
{
	size_t k;

	for (k = 0; k < *n && strcasecmp(list[k], name); k++)
		;
	if (neg && k < *n)
		memmove(&list[k], &list[k + 1], (--*n - k) * sizeof(*list));
	else if (!neg && k == *n && *n < CSV_MAX_COLS)
		list[(*n)++] = name;
}

/* Type t's columns in the order configured (PowerMTA writes them so:
 * scripts read columns by position): the default list, or `record-fields`
 * applied left to right (`*` adds the default fields not listed yet, at
 * that place; `!x` removes x; a name adds it). `type` is always first.
 * PowerMTA's fields Salvo has no value for (acct_csv_extra_fields) get a
 * column that type t leaves empty, never looked up per record. */
static int layout_type(struct csv_file *f, int t, char *err, size_t cap)
{
	const char *spec = f->cf->record_fields[t], *list[CSV_MAX_COLS];
	char *copy = NULL, *tok, *save = NULL;
	size_t n = 0;
	int ret = 0;

	list[n++] = acct_csv_fields[0];
	if (!spec) {
		for (size_t i = 1; i < ACCT_CSV_N_FIELDS; i++)
			list[n++] = acct_csv_fields[i];
	} else if (!(copy = strdup(spec))) {
		return -ENOMEM;
	}
	for (tok = spec ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
		bool neg = *tok == '!';
		const char *name = tok + neg, *canon;

		if (!strcmp(name, "*")) {
			for (size_t i = 1; i < ACCT_CSV_N_FIELDS; i++)
				list_apply(list, &n, acct_csv_fields[i], neg);
			continue;
		}
		if (!(canon = acct_csv_field_name(name))) {
			snprintf(err, cap, "acct-file %s (line %d): unknown field \"%s\" in record-fields %s",
				 f->cf->path, f->cf->line, name, type_letters[t]);
			ret = -EINVAL;
			break;
		}
		if (strcmp(canon, "type")) /* always there, always first */
			list_apply(list, &n, canon, neg);
	}
	/* header_X names point into copy: the columns take their own copies */
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = col_add(f, list[i], acct_csv_field_is_extra(list[i]) ? -1 : t);
	free(copy);
	return ret;
}

/* The file's columns: `type`, then each record type's fields in its order
 * (types in the order d b t tq r f rb rs), a field already there kept at
 * its first place; has[t][i]: type t fills column i (others leave it empty). */
static int layout(struct csv_file *f, char *err, size_t cap)
{
	int ret = 0;

	for (int t = 0; t < CONFIG_ACCT_N_TYPES && ret == 0; t++)
		if (f->cf->records & (1u << t))
			ret = layout_type(f, t, err, cap);
	return ret;
}

/* ---- formatting --------------------------------------------------------- */

static int put(struct json_buf *b, const char *s, size_t n)
{
	return json_buf_put(b, s, n);
}

/* s[0..n) with every ill-formed UTF-8 sequence as U+FFFD (like the JSON
 * log: a hostile receiver's reply or header must not make the file
 * unreadable to a UTF-8 CSV reader). */
static int put_utf8(struct json_buf *f, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, from = 0;

	while (i < n) {
		size_t skip, k = u[i] < 0x80 ? 1 : json_utf8_seq(u + i, n - i, &skip);

		if (k) {
			i += k;
			continue;
		}
		if (put(f, s + from, i - from) < 0 || put(f, "\xef\xbf\xbd", 3) < 0)
			return -ENOMEM;
		i += skip;
		from = i;
	}
	return put(f, s + from, n - from);
}

/* One value, quoted when it holds a comma, a quote, CR or LF (RFC 4180;
 * a quote inside is doubled). */
static int put_value(struct json_buf *f, const char *v)
{
	if (!v)
		return 0;
	if (!v[strcspn(v, ",\"\r\n")])
		return put_utf8(f, v, strlen(v));
	if (put(f, "\"", 1) < 0)
		return -ENOMEM;
	for (const char *q; (q = strchr(v, '"')); v = q + 1)
		if (put_utf8(f, v, (size_t)(q - v) + 1) < 0 || put(f, "\"", 1) < 0)
			return -ENOMEM;
	return put_utf8(f, v, strlen(v)) < 0 || put(f, "\"", 1) < 0 ? -ENOMEM : 0;
}

/* The record that ends at f->out.len is complete. */
static int end_record(struct csv_file *f)
{
	if (f->n_ends == f->cap_ends) {
		size_t cap = f->cap_ends ? 2 * f->cap_ends : 64;
		size_t *g = realloc(f->ends, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		f->ends = g;
		f->cap_ends = cap;
	}
	f->ends[f->n_ends++] = f->out.len;
	return 0;
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
		/* PowerMTA's d records say "success" here */
		if (ev->type == ACCT_DELIVERY && !ev->bounce_category)
			return "success";
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

/* ---- files, rotation, pipes ---------------------------------------------- */

static uint64_t dropped_total; /* all writers of the process; any thread reads it */

static const char *prefix(const struct csv_file *f)
{
	return f->cf->pipe ? "|" : "";
}

static void report(struct csv_file *f, const char *what, int err)
{
	if (f->failing)
		return;
	f->failing = true;
	fprintf(stderr, "salvod: acct-file %s%s: %s: %s (records are kept and retried)\n", prefix(f), f->cf->path,
		what, strerror(err));
}

static void drop(struct acct_csv *c, struct csv_file *f)
{
	c->dropped++;
	__atomic_add_fetch(&dropped_total, 1, __ATOMIC_RELAXED);
	if (!f->dropping)
		fprintf(stderr, "salvod: acct-file %s%s: %s: records are dropped (counted in "
			"salvo_acct_csv_dropped_total) until it catches up\n", prefix(f), f->cf->path,
			f->cf->pipe ? "the program does not keep up" : "the file cannot be written");
	f->dropping = true;
}

/* Put data (a whole record: the header) before everything pending. */
static int prepend(struct csv_file *f, const char *data, size_t n)
{
	size_t len = f->out.len;

	if (json_buf_reserve(&f->out, n) < 0 || end_record(f) < 0)
		return -ENOMEM;
	memmove(f->out.data + n, f->out.data, len);
	memcpy(f->out.data, data, n);
	f->out.len = len + n;
	memmove(f->ends + 1, f->ends, (f->n_ends - 1) * sizeof(*f->ends));
	for (size_t i = 1; i < f->n_ends; i++)
		f->ends[i] += n;
	f->ends[0] = n;
	return 0;
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
	/* a file left by an earlier run belongs to the period of its last record */
	if (f->size > 0 && (int64_t)st.st_mtime * 1000 < f->started_ms)
		f->started_ms = (int64_t)st.st_mtime * 1000;
	return 0;
}

/* Open (or reopen) and queue the header first when the output starts
 * empty; a record a dead program got part of is sent again whole. */
static int start(struct csv_file *f)
{
	int ret = f->cf->pipe ? open_pipe(f) : open_file(f);

	if (ret < 0)
		return ret;
	f->head_done = 0;
	if (f->size > 0)
		return 0;
	{
		struct json_buf head = {0};

		for (size_t i = 0; i < f->n_cols && ret == 0; i++)
			ret = (i && put(&head, ",", 1) < 0) || put_value(&head, f->cols[i]) < 0 ? -ENOMEM : 0;
		if (ret == 0)
			ret = put(&head, "\r\n", 2);
		if (ret == 0)
			ret = prepend(f, head.data, head.len);
		json_buf_free(&head);
	}
	return ret;
}

/* move-interval periods are aligned on multiples of the interval since the
 * epoch (UTC): `move-interval 1d` moves at midnight, `5m` at :00, :05, ... */
static int64_t period_start(const struct csv_file *f, int64_t ms)
{
	int64_t iv = (int64_t)f->cf->move_interval_ms;

	return iv ? ms - ms % iv : ms;
}

static bool period_over(const struct csv_file *f, int64_t now)
{
	return f->cf->move_interval_ms && period_start(f, now) != period_start(f, f->started_ms);
}

/* Move the current file aside (acct_csv_move.h), name after the start of
 * its period, and start a new one. When the move fails the file stays in
 * use (nothing lost) and the move is tried again a second later. */
static int rotate(struct csv_file *f)
{
	char to[8192];
	int ret = acct_csv_move(f->cf->path, f->cf->move_to, (time_t)(period_start(f, f->started_ms) / 1000), to,
				sizeof(to));

	if (ret < 0) {
		if (!f->move_failing)
			fprintf(stderr, "salvod: acct-file %s: cannot move it to %s: %s (it stays in use; "
				"retried)\n", f->cf->path, f->cf->move_to ? f->cf->move_to : "its directory",
				strerror(-ret));
		f->move_failing = true;
		f->move_retry_ms = now_ms() + 1000;
		return ret;
	}
	if (f->move_failing)
		fprintf(stderr, "salvod: acct-file %s: moved to %s\n", f->cf->path, to);
	f->move_failing = false;
	close(f->fd);
	f->fd = -1;
	f->has_records = false;
	if ((ret = start(f)) < 0)
		report(f, "cannot open", -ret); /* retried at the next flush */
	if (f->cf->delete_after_ms)
		acct_csv_expire(f->cf->path, f->cf->move_to, f->cf->delete_after_ms);
	return 0;
}

/* Write what is pending before limit (f->out.len: all of it; less: a
 * record being formatted stays behind); a pipe that would block keeps the
 * rest. A file that fails (disk full) is cut back to its last whole
 * record, so a record is never split, whatever happens next. */
static int drain(struct csv_file *f, size_t limit)
{
	size_t off = f->head_done, done = 0, k = 0;
	int ret = 0;

	while (off < limit) {
		ssize_t w = write(f->fd, f->out.data + off, limit - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ret = w < 0 && errno == EAGAIN ? 0 : w < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
		f->size += (uint64_t)w;
	}
	while (k < f->n_ends && f->ends[k] <= off)
		done = f->ends[k++];
	if (done) {
		memmove(f->out.data, f->out.data + done, f->out.len - done);
		f->out.len -= done;
		memmove(f->ends, f->ends + k, (f->n_ends - k) * sizeof(*f->ends));
		f->n_ends -= k;
		for (size_t i = 0; i < f->n_ends; i++)
			f->ends[i] -= done;
	}
	f->head_done = off - done;
	if (ret < 0 && !f->cf->pipe && f->head_done && ftruncate(f->fd, (off_t)(f->size - f->head_done)) == 0) {
		f->size -= f->head_done;
		f->head_done = 0;
	}
	return ret;
}

/* Wait up to ms for the program to end, then end it. */
static void reap(struct csv_file *f, int ms)
{
	int status = 0;
	pid_t r = 0;

	for (int i = 0; i < ms / 10 && (r = waitpid(f->pid, &status, WNOHANG)) == 0; i++)
		usleep(10000);
	if (r == 0) {
		kill(f->pid, SIGTERM);
		for (int i = 0; i < 100 && (r = waitpid(f->pid, &status, WNOHANG)) == 0; i++)
			usleep(10000);
		if (r == 0) {
			kill(f->pid, SIGKILL);
			r = waitpid(f->pid, &status, 0);
		}
	}
	bool not_found = r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127;

	if (not_found && !f->said_127)
		fprintf(stderr, "salvod: acct-file |%s: the program was not found (sh exited 127; started again "
			"each second)\n", f->cf->path);
	f->said_127 = not_found;
}

static void stop_pipe(struct csv_file *f, int ms)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->pid > 0)
		reap(f, ms);
	f->pid = 0;
}

static int file_flush(struct csv_file *f)
{
	int64_t now = now_ms();
	int ret;

	if (f->fd < 0) {
		if (now < f->retry_ms)
			return f->cf->pipe ? 0 : -EAGAIN;
		f->retry_ms = now + 1000;
		if ((ret = start(f)) < 0) {
			report(f, f->cf->pipe ? "cannot start the program" : "cannot open", -ret);
			return f->cf->pipe ? 0 : ret;
		}
	}
	if ((ret = drain(f, f->out.len)) < 0) {
		report(f, "write", -ret);
		if (f->cf->pipe) {
			/* the program is gone (EPIPE): started again a second
			 * later, the records it did not take go to the new one */
			stop_pipe(f, 0);
			f->retry_ms = now + 1000;
		}
	} else if (f->failing) {
		fprintf(stderr, "salvod: acct-file %s%s: writing again\n", prefix(f), f->cf->path);
		f->failing = false;
	}
	if (!f->out.len)
		f->dropping = false;
	return f->cf->pipe ? 0 : ret;
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

/* May f's file be moved aside now (a file with records, not a pipe, not
 * waiting after a refused move)? */
static bool may_move(const struct csv_file *f, int64_t now)
{
	return !f->cf->pipe && f->fd >= 0 && f->has_records && now >= f->move_retry_ms;
}

static void write_record(struct acct_csv *c, struct csv_file *f, const struct acct_event *ev, int t, int64_t now)
{
	size_t mark = f->out.len;
	char tmp[1200];

	for (size_t k = 0; k < f->n_cols; k++) {
		const char *v = f->has[t][k] ? field(f->cols[k], ev, t, now, tmp, sizeof(tmp)) : NULL;

		if ((k && put(&f->out, ",", 1) < 0) || put_value(&f->out, v) < 0)
			goto drop;
	}
	if (put(&f->out, "\r\n", 2) < 0)
		goto drop;
	if (f->out.len > (f->cf->pipe ? CSV_MAX_PENDING_PIPE : CSV_MAX_PENDING_FILE))
		goto drop;
	/* rotation before this record, once what is ahead of it is in the
	 * old file (whole: a record is never split across files); the record
	 * stays at the end of the buffer meanwhile, not yet in ends[] */
	if (!f->has_records && period_over(f, now)) {
		f->started_ms = now; /* an empty file is never moved: it starts this period */
	} else if (may_move(f, now) &&
		   (period_over(f, now) || (f->cf->max_size && f->size + f->out.len > f->cf->max_size))) {
		size_t keep = f->out.len - mark;

		drain(f, mark);
		/* only once everything ahead of the record is in the old file:
		 * after a failed write (disk full) older records are still
		 * pending, and they belong to the old period */
		if (f->out.len == keep)
			rotate(f);
	}
	if (end_record(f) < 0)
		goto drop;
	f->has_records = true;
	return;
drop:
	f->out.len = mark;
	drop(c, f);
}

int acct_csv_flush(void *ctx)
{
	struct acct_csv *c = ctx;
	int64_t now = now_ms();
	int ret = 0;

	/* move-interval also moves a file that no new record touches */
	for (size_t i = 0; i < c->n; i++) {
		struct csv_file *f = &c->f[i];

		if (may_move(f, now) && !f->out.len && period_over(f, now))
			rotate(f);
	}
	for (size_t i = 0; i < c->n; i++) {
		int r = c->f[i].out.len || c->f[i].fd < 0 ? file_flush(&c->f[i]) : 0;

		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

uint64_t acct_csv_dropped(const struct acct_csv *c)
{
	return c ? c->dropped : 0;
}

uint64_t acct_csv_dropped_total(void)
{
	return __atomic_load_n(&dropped_total, __ATOMIC_RELAXED);
}

/* A pipe's last records: written while the program takes them, for up
 * to 2 seconds in all (a program that stopped reading cannot hold up a
 * shutdown). */
static void drain_pipe_last(struct csv_file *f)
{
	int64_t end = now_ms() + 2000;

	while (f->fd >= 0 && f->out.len && now_ms() < end) {
		struct pollfd pfd = {.fd = f->fd, .events = POLLOUT};
		int64_t left = end - now_ms();

		if (drain(f, f->out.len) < 0)
			break;
		if (f->out.len && poll(&pfd, 1, (int)(left > 0 ? left : 0)) < 0 && errno != EINTR)
			break;
	}
}

void acct_csv_close(struct acct_csv *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct csv_file *f = &c->f[i];

		if (f->cf->pipe) {
			drain_pipe_last(f);
			stop_pipe(f, 2000);
		} else if (f->fd >= 0) {
			if (f->out.len)
				drain(f, f->out.len);
			close(f->fd);
		}
		for (size_t k = 0; k < f->n_cols; k++)
			free(f->cols[k]);
		json_buf_free(&f->out);
		free(f->ends);
	}
	free(c->f);
	free(c);
}

/* A directory that move-to can move into: there and writable. */
static int check_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return access(dir, W_OK | X_OK) < 0 ? -errno : 0;
}

/* The program of a pipe: when its first word is a path, it must be there. */
static int check_program(const char *cmd)
{
	char word[4096];
	size_t n = strcspn(cmd, " \t");

	if (n >= sizeof(word) || !memchr(cmd, '/', n))
		return 0;
	memcpy(word, cmd, n);
	word[n] = '\0';
	return access(word, X_OK) < 0 ? -errno : 0;
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
		if (f->cf->move_to && !f->cf->pipe && (ret = check_dir(f->cf->move_to)) < 0) {
			snprintf(err, cap, "acct-file %s (line %d): move-to %s: %s", f->cf->path, f->cf->line,
				 f->cf->move_to, strerror(-ret));
			break;
		}
		if (f->cf->pipe && (ret = check_program(f->cf->path)) < 0) {
			snprintf(err, cap, "acct-file |%s (line %d): the program cannot be run: %s", f->cf->path,
				 f->cf->line, strerror(-ret));
			break;
		}
		if ((ret = start(f)) < 0)
			snprintf(err, cap, "acct-file %s%s (line %d): %s", prefix(f), f->cf->path, f->cf->line,
				 strerror(-ret));
		else
			drain(f, f->out.len);
	}
	if (ret < 0) {
		acct_csv_close(c);
		return ret;
	}
	*out = c;
	return 0;
}
