/*
 * conn_window.h - how many outbound sessions one (queue, virtual MTA) unit
 * may have open: a concurrency window moved by the destination's answers,
 * and an estimate of what one session carries, so that sessions follow the
 * ready backlog instead of the cap.
 *
 * The window (after Postfix's per-destination concurrency feedback):
 *   - starts at CONN_WINDOW_INIT sessions;
 *   - a successful transaction adds 1/window, but only while the window is
 *     in use (window < open sessions + CONN_WINDOW_INIT), so a unit that
 *     carried its backlog on one session does not earn the right to open
 *     twenty at the next burst;
 *   - a failed session (refused, timed out, no greeting) takes 1/window
 *     away, never below 1: a window of w loses about one session per w
 *     failures, i.e. per "cohort" of failed sessions;
 *   - it never exceeds the unit's max-smtp-out (the caller's cap).
 *
 * The carry: an exponentially weighted mean of the time a transaction took
 * per recipient, turned into recipients per second. A queue wants one more
 * session only while its ready backlog exceeds what its open sessions carry
 * in about a second (conn_window_want). Before any sample the estimate is
 * CONN_WINDOW_START_US per recipient, on the side of fewer sessions.
 *
 * Pure and single-threaded; no clock of its own (the caller passes
 * durations). Tested in isolation (tests/unit/test_conn_window.c).
 */
#ifndef SALVO_CONN_WINDOW_H
#define SALVO_CONN_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_WINDOW_INIT 1.0
#define CONN_WINDOW_START_US 10000.0 /* 100 recipients a second per session */
#define CONN_WINDOW_HORIZON_US 1000000.0 /* "about a second" of backlog per session */

struct conn_window {
	double window;       /* sessions allowed now, >= 1 */
	double us_per_rcpt;  /* smoothed transaction time per recipient */
	unsigned samples;
};

void conn_window_init(struct conn_window *cw);
/* A transaction of n_rcpts recipients took us microseconds on this unit. */
void conn_window_sample(struct conn_window *cw, unsigned n_rcpts, int64_t us);
/* A transaction was accepted (some recipient 2xx); n_open sessions are open
 * on the unit (connecting ones included); max = its max-smtp-out. */
void conn_window_success(struct conn_window *cw, unsigned n_open, unsigned max);
/* A session failed before it could carry mail. */
void conn_window_failure(struct conn_window *cw);
/* May the unit open one more session, with n_open open, under max? */
bool conn_window_allows(const struct conn_window *cw, unsigned n_open, unsigned max);
/* Recipients one session of this unit carries in about a second (>= 1). */
double conn_window_carry(const struct conn_window *cw);
/* Does a queue with `ready` recipients waiting, whose open sessions carry
 * `capacity` recipients in about a second (sum of n_open x carry over its
 * units), want one more session? Always when it has work and no session. */
bool conn_window_want(size_t ready, double capacity);

#endif
