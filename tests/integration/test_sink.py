#!/usr/bin/python3
"""test_sink.py - salvo-sink's scripted faults, the ISP the other tests play against.

  percent    a 20% rule fires for 15-25% of 1,000 RCPTs; first=N fires exactly N times
  close      a close rule answers 421 and the connection ends
  delay      --reply-delay and delay= hold replies for (at least) their time
  cap        --max-conn-per-ip N: the N+1th session gets 421
  events     the --events log parses and its counts match --stats
  chunking   RFC 3030 BDAT: EHLO offers CHUNKING; pipelined transactions, chunks split
             at any byte, BDAT 0 LAST, sequence errors, malformed lines (501 and close),
             a data fault on the LAST chunk, the size limit, a client gone mid-chunk
  no_chunking  --no-chunking: no CHUNKING in EHLO, BDAT gets 502 and nothing is consumed
"""

import os
import random
import smtplib
import socket
import time

import harness
from harness import Fail, log, wait_until

ADDR = ("127.0.0.2", 25)


def test_sink(env):
    sink = env.salvo_sink("sink", "%s:%d" % ADDR, dump=False, extra_args=[
        "--fault", r"at=rcpt,match=^p[0-9]+@,percent=20,reply=451 4.7.1 sometimes",
        "--fault", r"at=rcpt,match=^f@,first=3,reply=452 4.2.2 three times",
        "--fault", r"at=rcpt,match=^bye@,close,reply=421 4.7.0 go away",
        "--fault", r"at=rcpt,match=^slow@,delay=400",
        "--max-conn-per-ip", "3"])
    s = smtplib.SMTP(*ADDR, timeout=10)
    s.ehlo("client.test")
    s.mail("a@b.test")
    codes = [s.rcpt("p%d@x.test" % i)[0] for i in range(1000)]
    share = codes.count(451) / 10.0
    log("percent=20: %.1f%% of 1000 RCPTs deferred" % share)
    if not 15 <= share <= 25 or set(codes) - {250, 451}:
        raise Fail("percent=20 gave %.1f%% (codes %r)" % (share, set(codes)))
    codes = [s.rcpt("f@x.test")[0] for _ in range(6)]
    if codes != [452, 452, 452, 250, 250, 250]:
        raise Fail("first=3 gave %r" % codes)
    t0 = time.monotonic()
    code = s.rcpt("slow@x.test")[0]
    took = time.monotonic() - t0
    if code != 250 or not 0.38 <= took <= 2.0:
        raise Fail("delay=400: %d after %.2f s" % (code, took))
    code, _ = s.rcpt("bye@x.test")
    if code != 421:
        raise Fail("close rule answered %d" % code)
    try:
        s.noop()
        raise Fail("the connection stayed open after the close rule")
    except (smtplib.SMTPServerDisconnected, ConnectionError, OSError):
        pass
    # the per-IP cap: three sessions, the fourth is told 421
    socks = [socket.create_connection(ADDR) for _ in range(4)]
    firsts = [x.recv(200)[:3] for x in socks]
    if sorted(firsts) != [b"220", b"220", b"220", b"421"]:
        raise Fail("--max-conn-per-ip 3 with four sessions: %r" % firsts)
    for x in socks:
        x.close()
    # events vs stats
    if not wait_until(lambda: (sink.stats() or {}).get("active") == 0, 5, what="sessions to end"):
        raise Fail("sessions did not end")
    time.sleep(0.5)
    evs = sink.events()
    st = sink.stats()
    conns = sum(e["ev"] == "conn" for e in evs)
    closes = sum(e["ev"] == "close" for e in evs)
    replies = [e for e in evs if e["ev"] == "reply"]
    if conns != st["connections"] or closes != conns:
        raise Fail("events: %d conn, %d close; stats: %d connections" % (conns, closes, st["connections"]))
    at_rcpt = sum(r["at"] == "rcpt" for r in replies)
    if at_rcpt != st["rcpt_deferred"] + st["rcpt_rejected"]:
        raise Fail("%d fault replies at RCPT in the events, stats say %d deferred + %d rejected"
                   % (at_rcpt, st["rcpt_deferred"], st["rcpt_rejected"]))
    if st["clients"]["127.0.0.1"]["peak_active"] < 3:
        raise Fail("peak_active %r" % st["clients"]["127.0.0.1"])
    log("faults, delays, the cap and the event log behave")


# --------------------------------------------------------------------------
# BDAT (RFC 3030), over raw sockets: smtplib has no BDAT

class Client:
    """A raw SMTP client: send bytes as given, read replies (multi-line ones whole)."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.expect(["220"])

    def _one(self):
        """One complete reply from buf, or None: its lines joined by LF, CRLFs removed."""
        lines, off = [], 0
        while True:
            end = self.buf.find(b"\r\n", off)
            if end < 0:
                return None
            line = self.buf[off:end].decode("utf-8", "replace")
            lines.append(line)
            off = end + 2
            if len(line) < 4 or line[3] != "-":
                self.buf = self.buf[off:]
                return "\n".join(lines)

    def replies(self, n):
        out = []
        deadline = time.monotonic() + 5
        while len(out) < n:
            r = self._one()
            if r is not None:
                out.append(r)
                continue
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                raise Fail("waited 5 s for reply %d of %d; have %r" % (len(out) + 1, n, out))
            if not data:
                raise Fail("connection closed after %r, %d replies wanted" % (out, n))
            self.buf += data
        return out

    def expect(self, want):
        """want: a list of exact replies, or of 3-digit codes (any text)."""
        got = self.replies(len(want))
        for g, w in zip(got, want):
            if not (g == w or (len(w) == 3 and g[:3] == w and g[3:4] in (" ", "-"))):
                raise Fail("wanted %r, got %r" % (want, got))
        return got

    def send(self, data):
        self.s.sendall(data)

    def expect_closed(self):
        """The server closes the connection with no further reply."""
        self.s.settimeout(3)
        data = self.buf
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    break
                data += d
        except socket.timeout:
            raise Fail("connection still open 3 s later")
        except ConnectionResetError:
            pass
        if data:
            raise Fail("more bytes before the close: %r" % data)

    def close(self):
        self.s.close()


def queued_seq(reply):
    if not reply.startswith("250 2.0.0 Ok: queued as "):
        raise Fail("not a queued reply: %r" % reply)
    return int(reply.rsplit(" ", 1)[1])


def dumped(sink, reply):
    """The --dump .eml bytes of the message a "queued as N" reply names."""
    path = os.path.join(sink.dump, "%d.eml" % queued_seq(reply))
    with open(path, "rb") as f:
        return f.read()


def bdat(data, last=False):
    return b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data


def test_chunking(env):
    addr = ("127.0.0.3", 25)
    sink = env.salvo_sink("chunk", "%s:%d" % addr, extra_args=[
        "--fault", r"at=rcpt,match=^refused@,reply=550 5.1.1 no such user",
        "--fault", r"at=data,match=^datafault@,reply=554 5.7.1 no"])
    accepted = 0

    # (a) EHLO offers CHUNKING, just before the last line
    c = Client(addr)
    c.send(b"EHLO client.test\r\n")
    ehlo = c.expect(["250"])[0].split("\n")
    if ehlo[-2:] != ["250-CHUNKING", "250 SMTPUTF8"]:
        raise Fail("EHLO reply %r" % ehlo)

    # (b) two whole transactions in one write: bodies with dots at line starts, a bare
    # LF, CRLF.CRLF in the middle, no final CRLF, a NUL and 8-bit bytes: all literal
    body1 = (b"Subject: one\r\n\r\n.leading dot\r\n..two dots\r\nbare\nLF\r\n"
             b"\r\n.\r\nafter the DATA terminator\r\n.\r\n")
    body2 = b".\r\n\r\n.\r\nMAIL FROM:<not@a.command>\r\nBDAT 5 LAST\r\n\x00\xff\xfe no CRLF at the end."
    c.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<one@y.test>\r\n" + bdat(body1, True) +
           b"MAIL FROM:<b@x.test>\r\nRCPT TO:<two@y.test>\r\n" + bdat(body2, True) + b"NOOP\r\n")
    got = c.expect(["250 2.1.0 Ok", "250 2.1.5 Ok", "250", "250 2.1.0 Ok", "250 2.1.5 Ok", "250",
                    "250 2.0.0 Ok"])
    if dumped(sink, got[2]) != body1 or dumped(sink, got[5]) != body2:
        raise Fail("pipelined BDAT LAST: dumps differ from the bytes sent")
    accepted += 2
    log("EHLO offers CHUNKING; two pipelined BDAT LAST transactions dumped byte-exact")

    # (c) three chunks, the stream cut inside the BDAT lines, inside the data, between a
    # BDAT line's CR and LF, exactly at a chunk's end, and a chunk's tail sent together
    # with the next BDAT line and the start of its data
    rng = random.Random(3030)
    d1 = b"BDAT 5\r\nQUIT\r\n\r\n.\r\n"
    d1 += bytes(rng.randrange(256) for _ in range(1000 - len(d1)))
    d2 = bytes(rng.randrange(256) for _ in range(997)) + b"\r\n."
    d3 = b"\r\n.\r\nQUIT\r\nRSET\r\n"
    assert (len(d1), len(d2), len(d3)) == (1000, 1000, 17)
    head = b"MAIL FROM:<c@x.test>\r\nRCPT TO:<three@y.test>\r\n"
    stream = head + bdat(d1) + bdat(d2) + bdat(d3, True) + b"NOOP\r\n"
    b1 = len(head)
    b2 = b1 + len(b"BDAT 1000\r\n") + 1000
    b3 = b2 + len(b"BDAT 1000\r\n") + 1000
    cuts = [b1 + 2, b1 + len(b"BDAT 1000\r"), b1 + 12, b1 + 500, b2 - 1, b2 + 11 + 300, b3,
            b3 + len(b"BDAT 17 LA"), b3 + len(b"BDAT 17 LAST\r\n") + 5, len(stream) - 3]
    prev = 0
    for cut in cuts + [len(stream)]:
        c.send(stream[prev:cut])
        prev = cut
        time.sleep(0.02)
    got = c.expect(["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 1000 octets received",
                    "250 2.0.0 1000 octets received", "250", "250 2.0.0 Ok"])
    if dumped(sink, got[4]) != d1 + d2 + d3:
        raise Fail("three split chunks: the dump differs from d1 + d2 + d3")
    # and one byte per send
    d4, d5 = b"ab\r\n.\r", b"\n.\n"
    stream = b"MAIL FROM:<d@x.test>\r\nRCPT TO:<four@y.test>\r\n" + bdat(d4) + bdat(d5, True) + b"NOOP\r\n"
    for i in range(len(stream)):
        c.send(stream[i:i + 1])
        time.sleep(0.001)
    got = c.expect(["250", "250", "250 2.0.0 6 octets received", "250", "250 2.0.0 Ok"])
    if dumped(sink, got[3]) != d4 + d5:
        raise Fail("one byte per send: the dump is %r" % dumped(sink, got[3]))
    accepted += 2
    log("chunks split at awkward points, and one byte per send, arrive whole")

    # (d) BDAT 0 LAST: an empty message, or the end of one
    c.send(b"MAIL FROM:<e@x.test>\r\nRCPT TO:<five@y.test>\r\nBDAT 0 LAST\r\n"
           b"MAIL FROM:<e@x.test>\r\nRCPT TO:<six@y.test>\r\nBDAT 5\r\nhelloBDAT 0 last\r\n")
    got = c.expect(["250", "250", "250", "250", "250", "250 2.0.0 5 octets received", "250"])
    if dumped(sink, got[2]) != b"" or dumped(sink, got[6]) != b"hello":
        raise Fail("BDAT 0 LAST: dumps %r and %r" % (dumped(sink, got[2]), dumped(sink, got[6])))
    accepted += 2

    # (e) sequence errors: the chunk is consumed all the same, the session goes on
    c.send(b"BDAT 12\r\nNOOP\r\nNOOP\r\nNOOP\r\n")
    c.expect(["503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok"])
    c.send(b"MAIL FROM:<f@x.test>\r\n" + bdat(b"RSET\r\n") + b"NOOP\r\n")
    c.expect(["250", "503 5.5.1 Error: need RCPT command", "250 2.0.0 Ok"])
    c.send(b"MAIL FROM:<f@x.test>\r\nRCPT TO:<refused@y.test>\r\n" + bdat(b"x" * 10) +
           bdat(b"NOOP\r\n", True) + b"NOOP\r\n")
    c.expect(["250", "550 5.1.1 no such user", "554 5.5.1 Error: no valid recipients",
              "503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok"])
    c.send(b"MAIL FROM:<g@x.test>\r\nRCPT TO:<seven@y.test>\r\n" + bdat(b"12345") +
           b"DATA\r\n" + bdat(b"678", True))
    got = c.expect(["250", "250", "250 2.0.0 5 octets received", "503 5.5.1 Error: DATA after BDAT", "250"])
    if dumped(sink, got[4]) != b"12345678":
        raise Fail("DATA after BDAT: the dump is %r" % dumped(sink, got[4]))
    c.send(b"MAIL FROM:<g@x.test>\r\nRCPT TO:<eight@y.test>\r\n" + bdat(b"abc") + b"RSET\r\n" +
           bdat(b"def", True))
    c.expect(["250", "250", "250 2.0.0 3 octets received", "250 2.0.0 Ok",
              "503 5.5.1 Error: need MAIL command"])
    accepted += 1
    log("BDAT without MAIL or RCPT, after refused RCPTs, after RSET: refused, consumed; DATA after BDAT: 503")

    # (g) a --fault at=data rule answers the LAST chunk, as it answers DATA
    c.send(b"MAIL FROM:<h@x.test>\r\nRCPT TO:<datafault@y.test>\r\n" + bdat(b"abc") +
           bdat(b"def", True) + bdat(b"ghi", True) + b"NOOP\r\n")
    c.expect(["250", "250", "250 2.0.0 3 octets received", "554 5.7.1 no",
              "503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok"])
    c.send(b"MAIL FROM:<h@x.test>\r\nRCPT TO:<datafault@y.test>\r\nDATA\r\n")
    c.expect(["250", "250", "354"])
    c.send(b"abc\r\n.\r\n")
    c.expect(["554 5.7.1 no"])
    # the size limit too: 64 MiB + 1 byte over three chunks, 552 at the LAST one
    half = b"x" * (32 << 20)
    c.send(b"MAIL FROM:<i@x.test>\r\nRCPT TO:<big@y.test>\r\n" + bdat(half) + bdat(half) +
           bdat(b"!", True) + b"NOOP\r\n")
    c.expect(["250", "250", "250 2.0.0 33554432 octets received", "250 2.0.0 33554432 octets received",
              "552 5.3.4 Error: message too big", "250 2.0.0 Ok"])
    log("a data fault rule and the size limit answer the LAST chunk")

    # (f) malformed BDAT lines: 501 and the connection is closed
    for bad in (b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT 10 FIRST", b"BDAT 99999999999999999999999",
                b"BDAT 18446744073709551616", b"BDAT 10 LAST LAST", b"BDAT 1O", b"BDAT 0x10"):
        m = Client(addr)
        m.send(b"MAIL FROM:<j@x.test>\r\nRCPT TO:<nine@y.test>\r\n" + bad + b"\r\nNOOP\r\n")
        try:
            m.expect(["250", "250", "501 5.5.4 Syntax: BDAT chunk-size [LAST]"])
            m.expect_closed()
        except Fail as e:
            raise Fail("%r: %s" % (bad, e))
        m.close()
    log("malformed BDAT lines: 501 and close")

    # (h) a client that goes away inside a chunk: aborted
    before = sink.stats()
    m = Client(addr)
    m.send(b"MAIL FROM:<k@x.test>\r\nRCPT TO:<ten@y.test>\r\nBDAT 100 LAST\r\n" + b"y" * 40)
    m.expect(["250", "250"])
    m.close()
    c.send(b"QUIT\r\n")
    c.expect(["221"])
    c.expect_closed()
    c.close()

    def settled():
        st = sink.stats()
        return st if st and st["active"] == 0 and st["aborted"] == before["aborted"] + 1 else None
    st = wait_until(settled, 5, what="the mid-chunk session to count as aborted")
    if not st:
        raise Fail("after a close mid-chunk: stats %r (before: aborted %d)" % (sink.stats(), before["aborted"]))
    if st["messages"] != accepted or st["data_rejected"] != 1:
        raise Fail("stats count %d messages, %d rejected at the end of data; wanted %d and 1"
                   % (st["messages"], st["data_rejected"], accepted))
    if len(sink.arrivals()) != accepted:
        raise Fail("%d dumps for %d accepted messages" % (len(sink.arrivals()), accepted))
    log("a session gone mid-chunk counts as aborted; %d messages, all dumped" % accepted)


def test_no_chunking(env):
    addr = ("127.0.0.4", 25)
    env.salvo_sink("nochunk", "%s:%d" % addr, dump=False, extra_args=["--no-chunking"])
    c = Client(addr)
    c.send(b"EHLO client.test\r\n")
    ehlo = c.expect(["250"])[0].split("\n")
    if any("CHUNKING" in ln for ln in ehlo) or ehlo[-1] != "250 SMTPUTF8":
        raise Fail("--no-chunking: EHLO reply %r" % ehlo)
    # BDAT is refused and its "chunk" is read as commands, as by a server without CHUNKING
    c.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 6 LAST\r\nNOOP\r\nBDAT x\r\n")
    c.expect(["250", "250", "502 5.5.1 Error: command not implemented", "250 2.0.0 Ok",
              "502 5.5.1 Error: command not implemented"])
    c.send(b"DATA\r\nhi\r\n.\r\nQUIT\r\n")
    c.expect(["354", "250", "221"])
    c.close()
    log("--no-chunking: no CHUNKING in EHLO, BDAT gets 502, DATA works")


if __name__ == "__main__":
    harness.main([test_sink, test_chunking, test_no_chunking], needs_salvod=False)
