/*
 * micro_smtp.cc - the SMTP text paths: reply parsing (net/smtp_reply.c, the
 * delivery client), command framing and parsing (net/smtp_cmd.c, the intake
 * server) and dot-stuffing a stored message into wire form
 * (net/dot_stuff.c, egress).
 */
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "net/dot_stuff.h"
#include "net/smtp_cmd.h"
#include "net/smtp_reply.h"
}

#include "micro.h"

/* ---- replies: smtp_client's cli_pump() parses each reply, and an EHLO reply's
 * extensions are read with smtp_reply_ehlo_exts() ----------------------------- */

static const char REPLY_RCPT[] = "250 2.1.5 Ok\r\n";
static const char REPLY_QUEUED[] = "250 2.0.0 OK  1764151234 a640c23a62f3a-b76b3f4c1e2si123456566b.312 - gsmtp\r\n";
static const char REPLY_EHLO[] =
	"250-mx.google.com at your service, [203.0.113.25]\r\n"
	"250-SIZE 157286400\r\n"
	"250-8BITMIME\r\n"
	"250-STARTTLS\r\n"
	"250-ENHANCEDSTATUSCODES\r\n"
	"250-PIPELINING\r\n"
	"250-CHUNKING\r\n"
	"250 SMTPUTF8\r\n";

static void BM_SmtpReplyParse(benchmark::State &state, const char *reply, bool ehlo)
{
	const size_t len = strlen(reply);

	for (auto _ : state) {
		struct smtp_reply r;
		ssize_t n = smtp_reply_parse(reply, len, &r);

		micro::keep(n);
		micro::keep(r);
		if (ehlo) {
			uint64_t size_limit;
			unsigned exts = smtp_reply_ehlo_exts(&r, &size_limit);

			micro::keep(exts);
			micro::keep(size_limit);
		}
		if (n != (ssize_t)len) {
			state.SkipWithError("reply did not parse");
			break;
		}
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)len);
}
BENCHMARK_CAPTURE(BM_SmtpReplyParse, single_line_rcpt, REPLY_RCPT, false);
BENCHMARK_CAPTURE(BM_SmtpReplyParse, single_line_queued, REPLY_QUEUED, false);
BENCHMARK_CAPTURE(BM_SmtpReplyParse, multi_line_ehlo, REPLY_EHLO, true);

/* ---- commands: smtp_server frames a line with smtp_line_find(), then
 * smtp_cmd_parse() parses it --------------------------------------------------- */

static void BM_SmtpCmdParse(benchmark::State &state, const char *line, int want_verb)
{
	const size_t len = strlen(line);

	for (auto _ : state) {
		size_t line_len = 0;
		ssize_t n = smtp_line_find(line, len, SMTP_MAX_CMD_LINE, &line_len);
		struct smtp_cmd c;
		int err = smtp_cmd_parse(line, line_len, &c);

		micro::keep(n);
		micro::keep(err);
		micro::keep(c);
		if (n != (ssize_t)len || err != SMTP_CMD_OK || c.verb != want_verb) {
			state.SkipWithError("command did not parse");
			break;
		}
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)len);
}
BENCHMARK_CAPTURE(BM_SmtpCmdParse, mail_from_params,
		  "MAIL FROM:<bounces+campaign-2026.user=example.org@mail.example.com> SIZE=4096 BODY=8BITMIME SMTPUTF8\r\n",
		  SMTP_VERB_MAIL);
BENCHMARK_CAPTURE(BM_SmtpCmdParse, rcpt_to, "RCPT TO:<first.last+tag@subdomain.example.net>\r\n", SMTP_VERB_RCPT);
BENCHMARK_CAPTURE(BM_SmtpCmdParse, data, "DATA\r\n", SMTP_VERB_DATA);

/* ---- dot-stuffing: egress mallocs dot_stuff_bound() and stuffs the stored
 * body once per delivery transaction ------------------------------------------ */

/* A message of exactly `size` bytes: a header, then body lines of 20..77
 * characters of which every third begins with '.'. CRLF throughout. */
static std::string dotty_message(size_t size)
{
	std::string m = "From: news@example.com\r\nTo: someone@example.net\r\nSubject: dots\r\n"
			"Message-ID: <1@example.com>\r\n\r\n";
	micro::rng rng;

	for (size_t line = 0; m.size() < size; line++) {
		size_t n = 20 + rng.next() % 58;
		std::string l(n, 'x');

		for (size_t i = 0; i < n; i++)
			l[i] = (char)('a' + rng.next() % 26);
		if (line % 3 == 0)
			l[0] = '.';
		m += l;
		m += "\r\n";
	}
	m.resize(size - 2);
	if (m.back() == '\r')
		m.back() = 'x'; /* no bare CR: it would grow into CRLF */
	m += "\r\n";
	return m;
}

/* One wire form of msg per iteration, into a fresh buffer, as egress builds
 * it per transaction; the last output length. */
static size_t bench_wire_form(benchmark::State &state, const std::string &msg,
			      size_t (*form)(const char *, size_t, char *))
{
	size_t out_len = 0;

	for (auto _ : state) {
		char *wire = static_cast<char *>(malloc(dot_stuff_bound(msg.size())));

		if (!wire) {
			state.SkipWithError("out of memory");
			break;
		}
		out_len = form(msg.data(), msg.size(), wire);
		micro::keep(out_len);
		micro::keep(wire);
		benchmark::ClobberMemory();
		free(wire);
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)msg.size());
	return out_len;
}

static void BM_DotStuff(benchmark::State &state)
{
	const std::string msg = dotty_message((size_t)state.range(0));
	size_t dot_lines = 0;

	for (size_t i = 0; i < msg.size(); i++)
		dot_lines += msg[i] == '.' && (i == 0 || msg[i - 1] == '\n');
	if (bench_wire_form(state, msg, dot_stuff) != msg.size() + dot_lines + 3)
		state.SkipWithError("unexpected dot_stuff() output length");
	state.SetLabel(std::to_string(dot_lines) + " dot lines");
}
BENCHMARK(BM_DotStuff)->Arg(4096)->Arg(100 * 1024);

/* The BDAT form egress builds instead when the receiver offers CHUNKING:
 * the same copy, no dots added, no terminator. */
static void BM_ChunkForm(benchmark::State &state)
{
	const std::string msg = dotty_message((size_t)state.range(0));

	if (bench_wire_form(state, msg, chunk_form) != msg.size())
		state.SkipWithError("unexpected chunk_form() output length");
}
BENCHMARK(BM_ChunkForm)->Arg(4096)->Arg(100 * 1024);
