/* fuzz_smtp_session.c - libFuzzer harness: whole SMTP sessions through the
 * intake server (net/smtp_server.c) on a real io_uring loop.
 *
 * Each input is one client session over loopback TCP: the first byte picks
 * the mode (bit 0: bare newlines normalised, bit 1: the submit hook answers
 * at once from inside itself, else on a later turn of the loop; bit 2:
 * AUTH offered), the rest is sent as the client's bytes, then the client
 * half-closes and reads whatever comes back. The server's receive buffers
 * are 512 bytes, so commands, DATA and BDAT chunks arrive split. STARTTLS is
 * offered (a throwaway self-signed certificate), so the bytes after it meet
 * the TLS boundary. The loop runs until the session has been freed; a
 * session still alive after 10 s is a hang (abort).
 *
 * Checked: no crash, leak or sanitizer report; every message the server
 * hands over has a recipient, starts with the trace header and fits the
 * size limit; no session yields more messages than its bytes hold CRLF "."
 * CRLF sequences and BDAT LASTs (a message ending anywhere else is
 * smuggling); in reject mode a message that came by DATA holds no bare CR
 * or LF.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "net/loop.h"
#include "net/smtp_server.h"
#include "net/tls.h"

#define MAX_MSG 4096
#define PENDING_MAX 64

static struct loop g_loop;
static struct smtp_server *g_srv;
static struct sockaddr_in g_addr;
static unsigned g_mode;
static struct smtp_session *g_pending[PENDING_MAX];
static size_t g_npending;
static bool g_has_bdat;        /* the input holds "BDAT" somewhere */
static size_t g_ends;          /* CRLF "." CRLF and "LAST" in the input: most messages it can make */
static size_t g_messages;      /* messages handed over in this session */

static bool hook_rcpt(void *ctx, struct smtp_session *s, const char *addr, char *reply, size_t cap)
{
	(void)ctx;
	(void)s;
	if (strncmp(addr, "no", 2) == 0) {
		snprintf(reply, cap, "550 5.7.1 no");
		return false;
	}
	snprintf(reply, cap, "250 2.1.5 Ok");
	return true;
}

static void check_message(const struct smtp_envelope *env, const char *body, size_t len)
{
	if (env->n_rcpts == 0 || len < 10 || memcmp(body, "Received: ", 10) != 0 || len > MAX_MSG + 4096) {
		fprintf(stderr, "bad message: %zu rcpts, %zu bytes\n", env->n_rcpts, len);
		abort();
	}
	if (g_mode & 1 || g_has_bdat)
		return;
	/* Only DATA could have brought it, and bare newlines are refused. */
	for (size_t i = 0; i < len; i++) {
		if ((body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) ||
		    (body[i] == '\r' && (i + 1 == len || body[i + 1] != '\n'))) {
			fprintf(stderr, "a bare CR or LF at %zu of a DATA message in reject mode\n", i);
			abort();
		}
	}
}

static void hook_submit(void *ctx, struct smtp_session *s, struct smtp_envelope *env, char *body, size_t len)
{
	(void)ctx;
	check_message(env, body, len);
	if (++g_messages > g_ends) {
		/* a message ended where no CRLF "." CRLF nor BDAT LAST was: smuggling */
		fprintf(stderr, "%zu messages from an input with %zu possible ends\n", g_messages, g_ends);
		abort();
	}
	smtp_envelope_free(env);
	free(body);
	if (g_mode & 2 || g_npending == PENDING_MAX) {
		smtp_session_submitted(s, "250 2.0.0 Ok: queued");
		return;
	}
	g_pending[g_npending++] = s;
}

static bool hook_auth_allowed(void *ctx, struct smtp_session *s, bool tls)
{
	(void)ctx;
	(void)s;
	(void)tls;
	return g_mode & 4;
}

/* Answered at once, from inside the session's input loop (the checker
 * thread's answer comes a turn later; the server must take both). */
static void hook_auth_start(void *ctx, struct smtp_session *s, const char *user, const char *pass)
{
	(void)ctx;
	if (strcmp(user, "block") == 0)
		smtp_session_auth_done(s, 2);
	else
		smtp_session_auth_done(s, strcmp(user, "user") == 0 && strcmp(pass, "pass") == 0 ? 0 : 1);
}

/* Half the modes see a stranger: small messages, a short session. */
static void hook_peer_policy(void *ctx, const struct sockaddr *peer, struct smtp_peer_policy *out)
{
	(void)ctx;
	(void)peer;
	out->trusted = !(g_mode & 8);
	if (g_mode & 8) {
		out->max_message_size = 2048;
		out->max_session_ms = 300; /* short: an input that never ends costs little */
	}
}

static bool hook_normalize(void *ctx, struct smtp_session *s)
{
	(void)ctx;
	(void)s;
	return g_mode & 1;
}

static const struct smtp_server_hooks hooks = {
	.rcpt = hook_rcpt,
	.submit = hook_submit,
	.auth_allowed = hook_auth_allowed,
	.auth_start = hook_auth_start,
	.peer_policy = hook_peer_policy,
	.normalize_bare_newlines = hook_normalize,
};

/* A throwaway P-256 key and self-signed certificate, as files for tls_server_ctx(). */
static SSL_CTX *make_tls(void)
{
	char dir[] = "/tmp/fuzz-smtp-session-XXXXXX", cert[64], key[64], err[256];
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *ctx = NULL;
	FILE *f;

	if (!pk || !x || !mkdtemp(dir))
		abort();
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"fuzz.test",
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (!X509_sign(x, pk, EVP_sha256()))
		abort();
	if (!(f = fopen(cert, "w")) || !PEM_write_X509(f, x) || fclose(f))
		abort();
	if (!(f = fopen(key, "w")) || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) || fclose(f))
		abort();
	if (tls_server_ctx(cert, key, &ctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "tls_server_ctx: %s\n", err);
		abort();
	}
	unlink(cert);
	unlink(key);
	rmdir(dir);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ctx;
}

/* A free loopback port: bind port 0, read it, let it go. */
static void pick_addr(struct config_addr *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t sl = sizeof(g_addr);

	memset(&g_addr, 0, sizeof(g_addr));
	g_addr.sin_family = AF_INET;
	g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&g_addr, &sl) < 0)
		abort();
	close(fd);
	memset(a, 0, sizeof(*a));
	memcpy(&a->sa, &g_addr, sizeof(g_addr));
	a->salen = sizeof(g_addr);
	snprintf(a->text, sizeof(a->text), "127.0.0.1:%u", ntohs(g_addr.sin_port));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct smtp_server_limits lim = {
		.host_name = "fuzz.test",
		.max_message_size = MAX_MSG,
		.max_rcpts = 5,
		.command_timeout_ms = 300,
		.data_timeout_ms = 300,
		.max_errors = 20,
	};
	struct config_addr a;
	char err[256];
	int ret;

	(void)argc;
	(void)argv;
	if ((ret = loop_init(&g_loop, 256, 64, 512)) < 0) {
		fprintf(stderr, "loop_init: %s (io_uring needed)\n", strerror(-ret));
		exit(1);
	}
	lim.tls = make_tls();
	pick_addr(&a);
	if (smtp_server_start(&g_srv, &g_loop, &a, 1, NULL, 0, &lim, &hooks, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "smtp_server_start: %s\n", err);
		exit(1);
	}
	return 0;
}

/* One turn of the loop (as loop_run() does it), waiting at most 50 ms. */
static void loop_turn(void)
{
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
	struct io_uring_cqe *cqe;

	io_uring_submit_and_wait_timeout(&g_loop.ring, &cqe, 1, &ts, NULL);
	while (io_uring_peek_cqe(&g_loop.ring, &cqe) == 0) {
		struct loop_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		unsigned flags = cqe->flags;

		io_uring_cqe_seen(&g_loop.ring, cqe);
		if (op)
			op->done(op, res, flags);
	}
	/* Submissions answered on a later turn, as the spool writer does. */
	while (g_npending) {
		struct smtp_session *s = g_pending[--g_npending];

		smtp_session_submitted(s, g_npending & 1 ? "451 4.3.0 Error: try again" : "250 2.0.0 Ok: queued");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd;
	size_t sent = 0;
	bool eof = false, shut = false;
	uint64_t deadline = loop_now_ms() + 10000;
	char sink[4096];

	if (size == 0)
		return 0;
	g_mode = data[0];
	data++;
	size--;
	g_has_bdat = false;
	g_messages = g_ends = 0;
	for (size_t i = 0; i + 5 <= size; i++)
		g_ends += memcmp(data + i, "\r\n.\r\n", 5) == 0;
	for (size_t i = 0; i + 4 <= size; i++)
		g_ends += (data[i] | 0x20) == 'l' && (data[i + 1] | 0x20) == 'a' && (data[i + 2] | 0x20) == 's' &&
			  (data[i + 3] | 0x20) == 't';
	for (size_t i = 0; i + 4 <= size && !g_has_bdat; i++)
		g_has_bdat = (data[i] | 0x20) == 'b' && (data[i + 1] | 0x20) == 'd' && (data[i + 2] | 0x20) == 'a' &&
			     (data[i + 3] | 0x20) == 't';
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) < 0) {
		fprintf(stderr, "cannot connect to the server: %s\n", strerror(errno));
		abort();
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (!eof || smtp_server_session_count(g_srv) > 0 || g_npending) {
		if (loop_now_ms() > deadline) {
			fprintf(stderr, "session not over after 10 s (%zu sessions)\n", smtp_server_session_count(g_srv));
			abort();
		}
		if (sent < size) {
			ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);

			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				sent = size;       /* reset by the server: stop writing */
		}
		if (sent == size && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		for (;;) {
			ssize_t n = recv(fd, sink, sizeof(sink), 0);

			if (n > 0)
				continue;
			if (n == 0 || (n < 0 && errno != EAGAIN))
				eof = true;
			break;
		}
		loop_turn();
	}
	/* the session is over: close with a reset, so no TIME_WAIT is left per
	 * input (a thousand inputs a second used up the ephemeral ports) */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){.l_onoff = 1, .l_linger = 0}, sizeof(struct linger));
	close(fd);
	return 0;
}
