#!/usr/bin/python3
"""test_smuggling.py - message data boundaries on the intake listener (issue 16, items 1-2).

  smuggling   a trusted client (a <source> allowed to relay) sends a body holding one of
              "\\n.\\n", "\\n.\\r\\n", "\\r\\n.\\n", "\\r.\\r\\n", "\\r\\n.\\r" followed by pipelined
              MAIL FROM:<ceo@bank.test> / RCPT / DATA / a forged message / "." and QUIT.
              Only CRLF "." CRLF ends DATA, so by default the whole is one message
              with a bare newline: refused with 550 5.5.2 after its end, the session in
              step (the QUIT gets 221), nothing logged or delivered. From a source with
              `bare-newline normalize` it is one message from the trusted sender, the
              would-be commands inside it as content, delivered as such; never a second
              message from ceo@bank.test.
  bdat        CHUNKING is offered; BDAT chunks are counted bytes ("\\r\\n.\\r\\n", a bare LF
              and command text inside a chunk are data); BDAT without MAIL or RCPT is
              503 with its chunk read and dropped; a chunk that takes the message over
              max-message-size is 552, the transaction is reset and the next BDAT is 503
              (RFC 3030 2), the session stays in step; DATA after BDAT is 503; a BDAT
              whose size cannot be read is 501 and the connection closes.
"""

import re
import socket
import time

import harness
from harness import Fail, find_records, log, wait_until

TRUSTED = "127.0.0.1"        # always-allow-relaying, bare newlines refused (the default)
NORMALIZING = "127.0.0.3"    # always-allow-relaying, bare-newline normalize
SEQUENCES = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r"]


def start(env, extra=""):
    env.dns(mx={"good.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"},
            check=[("good.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={TRUSTED: {"always-allow-relaying": "yes"},
                                   NORMALIZING: {"always-allow-relaying": "yes", "bare-newline": "normalize"}},
                          extra=extra)
    d.start()
    return d, sink


class Session:
    """A raw SMTP client: bytes out exactly as given, reply lines in."""

    def __init__(self, source=TRUSTED):
        self.s = socket.create_connection(harness.SALVOD_SMTP, timeout=10, source_address=(source, 0))
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """One whole reply (multi-line joined): (code, text)."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                try:
                    got = self.s.recv(65536)
                except socket.timeout:
                    raise Fail("no reply within 10s (so far %r)" % lines)
                if not got:
                    self.closed = True
                    if lines:
                        raise Fail("connection closed inside a reply: %r" % lines)
                    return None, "(closed)"
                self.buf += got
            ln, self.buf = self.buf.split(b"\n", 1)
            ln = ln.rstrip(b"\r").decode("utf-8", "replace")
            lines.append(ln)
            if not re.match(r"^\d{3}-", ln):
                return int(ln[:3]), "\n".join(lines)

    def expect(self, code, what):
        c, t = self.reply()
        if c != code:
            raise Fail("%s: got %s %r, want %d" % (what, c, t, code))
        return t

    def hello(self):
        self.expect(220, "banner")
        self.send(b"EHLO client.test\r\n")
        return self.expect(250, "EHLO")

    def at_eof(self, timeout=5):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def forged_tail(seq, n):
    return (b"hello %d" % n + seq + b"MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim%d@good.test>\r\nDATA\r\n" % n
            + b"From: ceo@bank.test\r\nSubject: forged %d\r\n\r\nwire the money\r\n.\r\nQUIT\r\n" % n)


def smuggle(source, seq, n):
    """One session: the trusted transaction with seq in its body, everything pipelined
    after DATA. Returns the replies after the 354."""
    c = Session(source)
    try:
        c.hello()
        c.send(b"MAIL FROM:<trusted@good.test>\r\nRCPT TO:<rcpt%d@good.test>\r\nDATA\r\n" % n)
        c.expect(250, "MAIL")
        c.expect(250, "RCPT")
        c.expect(354, "DATA")
        c.send(b"From: trusted@good.test\r\nSubject: real %d\r\n\r\n" % n + forged_tail(seq, n))
        out = []
        while True:
            code, text = c.reply()
            if code is None:
                break
            out.append((code, text))
            if code == 221:
                break
        return out
    finally:
        c.close()


def test_smuggling(env):
    d, sink = start(env)
    # default: one message with a bare newline, refused after its end, the QUIT in step
    for n, seq in enumerate(SEQUENCES):
        got = smuggle(TRUSTED, seq, n)
        if len(got) != 2 or got[0][0] != 550 or "5.5.2" not in got[0][1] or got[1][0] != 221:
            raise Fail("sequence %r: replies after DATA %r, want [550 5.5.2, 221]" % (seq, got))
    # normalize: exactly one message per session, from the trusted sender
    base = 10
    for n, seq in enumerate(SEQUENCES, base):
        got = smuggle(NORMALIZING, seq, n)
        if len(got) != 2 or got[0][0] != 250 or got[1][0] != 221:
            raise Fail("normalize, sequence %r: replies after DATA %r, want [250 queued, 221]" % (seq, got))
    want = {"rcpt%d@good.test" % n for n in range(base, base + len(SEQUENCES))}

    def arrived():
        return want <= {r for a in sink.arrivals() for r in a.rcpt_to}
    if not wait_until(arrived, 30, what="the normalised messages at the sink"):
        raise Fail("normalised messages did not all arrive: %r" % sink.arrivals())
    time.sleep(0.5)
    recs = d.acct()
    rec = find_records(recs, type="reception")
    senders = {r.get("sender") for r in rec}
    rcpts = sorted(r.get("recipient") for r in rec)
    if senders != {"trusted@good.test"} or rcpts != sorted(want):
        raise Fail("receptions: senders %r, recipients %r; want only trusted@good.test to %r"
                   % (senders, rcpts, sorted(want)))
    arrivals = sink.arrivals()
    if len(arrivals) != len(SEQUENCES) or any(a.mail_from != "trusted@good.test" for a in arrivals):
        raise Fail("sink: %r, want %d messages from trusted@good.test" % (arrivals, len(SEQUENCES)))
    for a in arrivals:
        body = a.data
        if b"MAIL FROM:<ceo@bank.test>\r\n" not in body or b"wire the money\r\n" not in body:
            raise Fail("%s: the would-be commands are not in the delivered content: %r" % (a.file, body[-300:]))
        if re.search(rb"[^\r]\n|\r[^\n]", body):
            raise Fail("%s: a bare CR or LF was delivered: %r" % (a.file, body[-300:]))
    log("5 smuggling sequences: refused by default (550 5.5.2, in step); normalised: 5 messages, "
        "none from ceo@bank.test")
    d.check_alive()


def bdat_session(c, chunks, mail=True, rcpt="b@good.test"):
    """MAIL/RCPT then BDAT chunks, pipelined; returns the replies to the chunks."""
    out = b""
    if mail:
        out += b"MAIL FROM:<trusted@good.test>\r\n"
    if rcpt:
        out += b"RCPT TO:<%s>\r\n" % rcpt.encode()
    for i, ch in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        out += b"BDAT %d%s\r\n" % (len(ch), last) + ch
    c.send(out)
    if mail:
        c.expect(250, "MAIL")
    if rcpt:
        c.expect(250, "RCPT")
    return [c.reply() for _ in chunks]


def test_bdat(env):
    d, sink = start(env, extra="max-message-size 100K\n")
    c = Session()
    ehlo = c.hello()
    if not re.search(r"^250[- ]CHUNKING$", ehlo, re.M):
        raise Fail("EHLO does not offer CHUNKING: %r" % ehlo)
    # chunks are counted bytes: a terminator, a bare LF and commands inside are data
    part1 = b"From: trusted@good.test\r\nSubject: chunked\r\n\r\nline one\r\n.\r\nMAIL FROM:<ceo@bank.test>\r\n"
    part2 = b"RCPT TO:<victim@good.test>\r\nbare\nlf\r\n.\r\n"
    got = bdat_session(c, [part1, b"", part2])
    if [g[0] for g in got] != [250, 250, 250] or "queued as" not in got[2][1]:
        raise Fail("BDAT chunks: %r, want 250, 250, 250 queued" % got)
    # without MAIL: 503, the chunk read and dropped (its NOOP is not answered)
    c.send(b"BDAT 6\r\nNOOP\r\nRSET\r\n")
    c.expect(503, "BDAT without MAIL")
    c.expect(250, "RSET after the dropped chunk")
    # without RCPT: 503
    got = bdat_session(c, [b"x" * 10], rcpt=None)
    if got[0][0] != 503:
        raise Fail("BDAT without RCPT: %r, want 503" % (got,))
    c.send(b"RSET\r\n")
    c.expect(250, "RSET")
    # over max-message-size: 552 for the chunk, then 503 for the next (transaction reset)
    big = b"y" * 60000 + b"\r\n"
    got = bdat_session(c, [big, big, b"tail\r\n"], rcpt="big@good.test")
    if [g[0] for g in got] != [250, 552, 503]:
        raise Fail("BDAT over the size limit: %r, want 250, 552, 503" % got)
    c.send(b"NOOP\r\n")
    c.expect(250, "NOOP after the refused chunks")
    # DATA after BDAT: 503; the BDAT transaction goes on
    mixed = b"Subject: mixed\r\n\r\nhi\r\n"
    c.send(b"MAIL FROM:<trusted@good.test>\r\nRCPT TO:<mixed@good.test>\r\nBDAT %d\r\n" % len(mixed) + mixed
           + b"DATA\r\nBDAT 0 LAST\r\n")
    c.expect(250, "MAIL")
    c.expect(250, "RCPT")
    c.expect(250, "BDAT (first chunk)")
    c.expect(503, "DATA after BDAT")
    c.expect(250, "BDAT 0 LAST")
    # a size that cannot be read: 501 and the connection closes (the stream is out of step)
    c.send(b"BDAT 12x\r\nQUIT\r\n")
    t = c.expect(501, "BDAT 12x")
    if not c.at_eof():
        raise Fail("the connection stayed open after an unreadable BDAT size (%r)" % t)
    c.close()

    want = {"b@good.test", "mixed@good.test"}

    def arrived():
        return want <= {r for a in sink.arrivals() for r in a.rcpt_to}
    if not wait_until(arrived, 30, what="the BDAT messages at the sink"):
        raise Fail("BDAT messages did not arrive: %r" % sink.arrivals())
    time.sleep(0.5)
    rec = find_records(d.acct(), type="reception")
    if sorted(r["recipient"] for r in rec) != sorted(want) or {r["sender"] for r in rec} != {"trusted@good.test"}:
        raise Fail("receptions %r, want one each for %r" % ([(r["sender"], r["recipient"]) for r in rec], want))
    by = {a.rcpt_to[0]: a for a in sink.arrivals()}
    body = by["b@good.test"].data
    if b"line one\r\n.\r\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@good.test>\r\nbare\r\nlf\r\n.\r\n" \
            not in body:
        raise Fail("the chunked content did not arrive intact: %r" % body[-200:])
    log("BDAT: 2 messages taken, 503/552/503/501 refusals in step, content delivered as data")
    d.check_alive()


if __name__ == "__main__":
    harness.main([test_smuggling, test_bdat])
