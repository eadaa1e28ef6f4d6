/*
 * webhook_log.h - internal to the webhook sender (webhook.c): reading the
 * accounting log as a stream of whole lines across its files, and the
 * small parsers that go with it.
 *
 * The log's files in reading order: DIR/acct-*.jsonl archives by name
 * (their names sort by rotation time), then DIR/acct.jsonl. A reader holds
 * one of them open; when acct.jsonl is rotated (renamed to an archive), the
 * reader reads its file to the end, then goes on with the next one.
 */
#ifndef SALVO_WEBHOOK_LOG_H
#define SALVO_WEBHOOK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WH_CUR_FILE "acct.jsonl"
#define WH_LINE_MAX (4u << 20) /* a longer "line" is skipped */
#define WH_POS_LEN 256         /* a position file's fixed size */

struct wh_reader {
	const char *who;    /* the webhook's name, for messages */
	int dir_fd;
	int fd;             /* -1: no file yet (the log has none) */
	uint64_t ino;
	char name[64];      /* its name when opened (archives are renamed from acct.jsonl) */
	uint64_t off;       /* file offset of buf[0] */
	char *buf;
	size_t len, pos;    /* buf[pos..len) is read and not taken */
	size_t cap;
	uint64_t skipped;   /* lines that were no record */
};

/* A position: just after a line of the file with that inode number, which
 * was called name when the position was taken. */
struct wh_pos {
	uint64_t ino, off;
	char name[64];
};

/* Open dir for r (fd -1, nothing read). -errno. */
int wh_reader_init(struct wh_reader *r, const char *dir, const char *who);
void wh_reader_fini(struct wh_reader *r);
/* Put r at pos; a new webhook (pos NULL) at the end of acct.jsonl; pos
 * with ino 0 at the start of the oldest file. When
 * pos's file is gone: the next file by name (the oldest when it was
 * acct.jsonl); when pos is not just after a line there (another file got
 * its inode number): that file from its start. Messages say so. */
void wh_reader_resume(struct wh_reader *r, const struct wh_pos *pos);
/* Where r is (after the last line taken). */
void wh_reader_where(const struct wh_reader *r, struct wh_pos *out);
/* The next whole line (without its "\n") in *line, *len: 1 a line, 0 none
 * yet (at the end of acct.jsonl), <0 -errno. Follows rotations; a file
 * that ends inside a line, or a line over WH_LINE_MAX, is skipped (counted
 * in r->skipped, and said). */
int wh_reader_line(struct wh_reader *r, const char **line, size_t *len);
/* The log's file names in reading order (archives by name, then
 * acct.jsonl); *names and each name malloc'd (wh_log_files_free). -errno. */
int wh_log_files(int dir_fd, char ***names, size_t *n);
void wh_log_files_free(char **names, size_t n);

/* The record's "type" value; false when the line is no whole record of
 * this log (a whole one ends with its event_id, acct_log.h). */
bool wh_record_type(const char *line, size_t n, const char **type, size_t *tlen);
/* "2026-11-22T10:01:02.345Z" at p -> ms since the epoch; 0 when not that. */
int64_t wh_parse_time(const char *p, size_t n);
/* A position file's text: "INO OFF NAME", blank-padded to WH_POS_LEN with a
 * final "\n". */
void wh_pos_format(const struct wh_pos *pos, char out[WH_POS_LEN]);
/* Parse that text (n bytes, not NUL-terminated): 0, or -1 when malformed. */
int wh_pos_parse(const char *text, size_t n, struct wh_pos *out);

#endif
