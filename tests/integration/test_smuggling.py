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
  mta_bdat    a real MTA's client sends BDAT into the listener: a second salvod relays
              through this one (its client chunks when CHUNKING is offered; a recording
              TCP relay between them checks BDAT was used); dot lines, a "." line and
              command text arrive at the sink byte-exact, one reception each.
  postfix     Postfix's smtp client relays through salvod (a private Postfix instance,
              master in the foreground). Postfix 3.7's client has no BDAT at all (only
              its smtpd speaks CHUNKING), so this one checks the strict DATA rules take
              what a real MTA sends; its debug log shows DATA was used.
"""

import os
import re
import shutil
import socket
import subprocess
import threading
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


# -- a second salvod as the client ---------------------------------------------------

RELAY_IN = ("127.0.0.4", 2525)     # the recording TCP relay, where salvod B routes b.test
SALVOD_B = ("127.0.0.5", 2525)     # salvod B's listener; B sends to salvod A (SALVOD_SMTP)


class Recorder:
    """Forwards one TCP stream at a time from RELAY_IN to a target, keeping the client's bytes."""

    def __init__(self, target):
        self.target, self.client_bytes, self.stop = target, b"", False
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(RELAY_IN)
        self.ls.listen(8)
        self.ls.settimeout(0.2)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _pipe(self, a, b, keep):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if keep:
                    self.client_bytes += d
                b.sendall(d)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            u = socket.create_connection(self.target, timeout=30)
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    def close(self):
        self.stop = True
        self.t.join(2)
        self.ls.close()


def start_salvod_b(env):
    spool = os.path.join(env.dir, "spool-b")
    conf = env.write("salvod-b.conf", "\n".join([
        "host-name        b.salvo.itest",
        "spool-dir        %s" % spool,
        "smtp-listener    %s:%d" % SALVOD_B,
        "http-listener    %s:18026" % SALVOD_B[0],
        "dns-server       %s:%d" % harness.DNS_ADDR,
        "worker-threads   1",
        "<source 127.0.0.0/8>", "    always-allow-relaying yes", "</source>",
        "<domain *>", "    retry-after 2s", "</domain>",
        "<domain good.test>", "    route %s:%d" % RELAY_IN, "</domain>", ""]))
    err = os.path.join(env.dir, "salvod-b.stderr")
    p = env._spawn("salvod-b", [env.salvod, "-c", conf], err)
    env.on_fail_show.append(("salvod B stderr", err))

    def ready():
        if p.poll() is not None:
            raise Fail("salvod B exited with %s:\n%s" % (p.returncode, harness.tail(err, 30)))
        b = harness.read_banner(SALVOD_B, timeout=0.3)
        return b is not None and b.startswith(b"220") and b"ready:" in open(err, "rb").read()
    if not wait_until(ready, 10, what="salvod B"):
        raise Fail("salvod B did not start:\n" + harness.tail(err, 30))
    return p


def test_mta_bdat(env):
    d, sink = start(env)
    rec = Recorder(harness.SALVOD_SMTP)
    try:
        start_salvod_b(env)
        body = (b"From: trusted@good.test\r\nSubject: via b\r\n\r\nfirst\r\n.\r\n..two dots\r\n"
                b".leading\r\nMAIL FROM:<ceo@bank.test>\r\n\r\n.\r\nlast\r\n")
        for i in range(3):
            with harness.smtplib.SMTP(*SALVOD_B, timeout=10) as c:
                c.sendmail("trusted@good.test", ["m%d@good.test" % i], body)
        want = {"m%d@good.test" % i for i in range(3)}

        def arrived():
            return want <= {r for a in sink.arrivals() for r in a.rcpt_to}
        if not wait_until(arrived, 30, what="the relayed messages at the sink"):
            raise Fail("relayed messages did not arrive: %r; B->A stream %r" % (sink.arrivals(), rec.client_bytes[:300]))
    finally:
        rec.close()
    if b"\r\nBDAT " not in rec.client_bytes or b"\r\nDATA\r\n" in rec.client_bytes:
        raise Fail("salvod B did not send by BDAT: %r" % rec.client_bytes[:400])
    time.sleep(0.5)
    recs = find_records(d.acct(), type="reception")
    if sorted(r["recipient"] for r in recs) != sorted(want):
        raise Fail("receptions at A: %r, want one each for %r" % ([r["recipient"] for r in recs], sorted(want)))
    for a in sink.arrivals():
        if not a.data.endswith(body) or a.mail_from != "trusted@good.test":
            raise Fail("%s: not delivered byte-exact: %r" % (a.file, a.data[-160:]))
    log("salvod B -> salvod A by BDAT (%d bytes on the wire): 3 messages, byte-exact at the sink"
        % len(rec.client_bytes))
    d.check_alive()


# -- Postfix as the client --------------------------------------------------------------

PF_MASTER = "/usr/lib/postfix/sbin/master"
PF_LISTEN = ("127.0.0.1", 2526)


def start_postfix(env):
    if not os.access(PF_MASTER, os.X_OK) or not shutil.which("postfix"):
        raise harness.Skip("Postfix not installed")
    base = os.path.join(env.dir, "pf")
    for sub in ("etc", "spool", "data"):
        os.makedirs(os.path.join(base, sub))
    shutil.chown(os.path.join(base, "data"), user="postfix")
    os.chmod(env.dir, 0o755)
    with open("/usr/share/postfix/master.cf.dist") as f:
        lines = []
        for ln in f:
            w = ln.split()
            if ln[:1].isalnum() and len(w) >= 8:
                w[4] = "n"                             # no chroot: nothing to copy in
                if w[0] == "smtp" and w[1] == "inet":
                    w[0] = "%s:%d" % PF_LISTEN
                ln = " ".join(w) + "\n"
            lines.append(ln)
    env.write("pf/etc/master.cf", "".join(lines))
    env.write("pf/etc/main.cf", "\n".join([
        "compatibility_level = 3.6",
        "config_directory = %s/etc" % base,
        "queue_directory = %s/spool" % base,
        "data_directory = %s/data" % base,
        "maillog_file_prefixes = %s" % base,
        "maillog_file = %s/maillog" % base,
        "myhostname = relay.pf.test",
        "mydestination =", "relay_domains =", "local_recipient_maps =", "alias_maps =", "alias_database =",
        "biff = no",
        "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4", "smtp_bind_address = 127.0.0.1",
        "mynetworks = 127.0.0.0/8",
        "smtpd_relay_restrictions = permit_mynetworks, reject",
        "relayhost = [%s]:%d" % harness.SALVOD_SMTP,
        "smtp_tls_security_level = none",
        "debug_peer_list = %s" % harness.SALVOD_SMTP[0], ""]))
    chk = subprocess.run(["postfix", "-c", base + "/etc", "check"], capture_output=True, text=True, timeout=60)
    if chk.returncode != 0:
        raise Fail("postfix check: %s" % chk.stderr)
    err = os.path.join(base, "master.stderr")
    p = env._spawn("postfix-master", [PF_MASTER, "-c", base + "/etc", "-d"], err)
    env.on_fail_show.append(("postfix maillog", os.path.join(base, "maillog")))

    def ready():
        if p.poll() is not None:
            raise Fail("postfix master exited with %s:\n%s" % (p.returncode, harness.tail(err, 30)))
        b = harness.read_banner(PF_LISTEN, timeout=0.3)
        return b is not None and b.startswith(b"220")
    if not wait_until(ready, 15, what="postfix"):
        raise Fail("postfix did not answer on %s:%d" % PF_LISTEN)
    return os.path.join(base, "maillog")


def test_postfix(env):
    d, sink = start(env)
    maillog = start_postfix(env)
    body = (b"From: trusted@good.test\r\nSubject: via postfix\r\n\r\nfirst\r\n.\r\n..two dots\r\n"
            b"MAIL FROM:<ceo@bank.test>\r\nlast\r\n")
    for i in range(3):
        with harness.smtplib.SMTP(*PF_LISTEN, timeout=10) as c:
            c.sendmail("trusted@good.test", ["p%d@good.test" % i], body)
    want = {"p%d@good.test" % i for i in range(3)}

    def arrived():
        return want <= {r for a in sink.arrivals() for r in a.rcpt_to}
    if not wait_until(arrived, 60, what="Postfix's messages at the sink"):
        raise Fail("Postfix's messages did not arrive: %r\n%s" % (sink.arrivals(), harness.tail(maillog, 30)))
    time.sleep(0.5)
    recs = find_records(d.acct(), type="reception")
    if sorted(r["recipient"] for r in recs) != sorted(want):
        raise Fail("receptions: %r, want one each for %r" % ([r["recipient"] for r in recs], sorted(want)))
    for a in sink.arrivals():
        if b"\r\n\r\nfirst\r\n.\r\n..two dots\r\nMAIL FROM:<ceo@bank.test>\r\nlast\r\n" not in a.data:
            raise Fail("%s: content changed: %r" % (a.file, a.data[-160:]))
    with open(maillog, "rb") as f:
        log_text = f.read()
    used = "BDAT" if b"> 127.0.0.1[127.0.0.1]:12525: BDAT" in log_text else \
        "DATA" if b"> 127.0.0.1[127.0.0.1]:12525: DATA" in log_text else "?"
    log("Postfix -> salvod: 3 messages by %s (Postfix's smtp client has no BDAT), content intact" % used)
    d.check_alive()


if __name__ == "__main__":
    harness.main([test_smuggling, test_bdat, test_mta_bdat, test_postfix])
