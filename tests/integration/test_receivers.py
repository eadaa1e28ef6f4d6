#!/usr/bin/python3
"""test_receivers.py - what real receivers notice about the delivery client (issues 14 and
21), each against a receiver written here (Python's ssl and socket modules) that records
what it gets:

  test_sni          three receivers that fail the handshake on an IP-literal or ported
                    SNI (as Exim built with GnuTLS does) and record the name: an IP route
                    sends none, a host route the route's host name, an MX route the MX
                    host name; with require-starttls all three deliver over TLS
  test_tls_fallback a failed handshake sends that MX host in clear, not the whole queue:
                    the next MX host still gets TLS; under require-starttls never clear
  test_size         SIZE= on MAIL FROM seen by the receiver; a message over the SIZE it
                    advertised is bounced at once (552 5.3.4) and its body never sent
  test_reply_text   a UTF-8 reply text intact in the accounting log and the DSN; a
                    multi-line reply with its enhanced code on the last line only gives
                    that status; Remote-MTA is the MX host name, [ip] for an IP route
  test_hostile      a receiver dripping its final reply a byte at a time: the transaction
                    ends at smtp-data-termination-timeout and the recipient is deferred;
                    one dripping its banner meets smtp-greeting-timeout; a reply longer
                    than the receive buffer is a protocol error; a final reply given
                    early (while the message is still going out) still counts when
                    the peer then closes, or stops reading until data-send-timeout:
                    the recipient bounces with that reply
  test_smtputf8     SMTPUTF8 end to end to a receiver that offers it; 5.6.7 bounce for a
                    UTF-8 address at one that does not (its ASCII recipient still goes)
  test_big_memory   20 parallel deliveries of a 20 MB message (BDAT inside TLS, and DATA
                    in clear to Postfix's smtp-sink): salvod's peak memory stays under
                    25 MB per session
"""

import http.client
import ipaddress
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import harness
from harness import Fail, Injected, find_records, log, make_body


def make_cert(env):
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=rx.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def bad_sni(name):
    """GnuTLS refuses an IP literal (and anything with a port) as a server name."""
    if ":" in name:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Rx:
    """One SMTP receiver on addr. Knobs: cert/key (STARTTLS; the handshake fails on an
    IP-literal SNI), broken_tls (garbage instead of a handshake), size (SIZE limit),
    smtputf8, chunking, replies {rcpt: raw reply bytes for its RCPT}, drip ("banner" or
    "final": that reply one byte every 0.3 s, never finished), ehlo_lines (extra EHLO
    lines). Records: sni (server names per handshake, None when none), mails (MAIL
    lines), rcpt_lines, got [(mail, rcpts, tls, body)], bodies_started (DATA/BDAT seen)."""

    def __init__(self, addr, cert=None, key=None, broken_tls=False, size=None, smtputf8=False, chunking=False,
                 replies=None, drip=None, ehlo_lines=(), fast=False):
        self.addr, self.broken, self.size, self.smtputf8 = addr, broken_tls, size, smtputf8
        self.chunking, self.replies, self.drip, self.ehlo_lines = chunking, replies or {}, drip, list(ehlo_lines)
        self.fast = fast
        self.sni, self.mails, self.rcpt_lines, self.got, self.hs_errors = [], [], [], [], []
        self.bodies_started = 0
        self.lock = threading.Lock()
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
            self.ctx.sni_callback = self.on_sni
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(64)
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def on_sni(self, sslobj, name, ctx):
        with self.lock:
            self.sni.append(name)
        if name is not None and bad_sni(name):
            return ssl.ALERT_DESCRIPTION_ILLEGAL_PARAMETER
        return None

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.stop:
                c.close()
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def dripping(self, c, text):
        for ch in text:
            if self.stop:
                return
            c.sendall(ch)
            time.sleep(0.3)

    def session(self, c):
        f = c.makefile("rb")
        tls = None

        def send(line):
            c.sendall(line.encode() + b"\r\n")
        try:
            if self.drip == "banner":
                self.dripping(c, [bytes([b]) for b in b"220 " + b"x" * 400])
                return
            send("220 rx.test ESMTP")
            rcpts, mail = [], None
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                up = cmd.upper()
                if up.startswith("EHLO"):
                    lines = ["rx.test"] + self.ehlo_lines
                    if self.ctx and tls is None:
                        lines.append("STARTTLS")
                    if self.size is not None:
                        lines.append("SIZE %d" % self.size)
                    if self.smtputf8:
                        lines.append("SMTPUTF8")
                    if self.chunking:
                        lines.append("CHUNKING")
                    lines += ["8BITMIME", "PIPELINING"]
                    c.sendall(b"".join(("250-%s\r\n" % x).encode() for x in lines[:-1]) +
                              ("250 %s\r\n" % lines[-1]).encode())
                elif up == "STARTTLS":
                    send("220 2.0.0 go ahead")
                    if self.broken:
                        c.recv(4096)
                        c.sendall(b"\x15\x03\x03\x00\x02\x02\x28garbage")
                        c.close()
                        return
                    try:
                        c = self.ctx.wrap_socket(c, server_side=True)
                    except (ssl.SSLError, OSError) as e:
                        with self.lock:
                            self.hs_errors.append(str(e))
                        return
                    f = c.makefile("rb")
                    tls = "%s %s" % (c.version(), c.cipher()[0])
                elif up.startswith("MAIL"):
                    rcpts, mail = [], cmd
                    with self.lock:
                        self.mails.append(cmd)
                    send("250 ok")
                elif up.startswith("RCPT"):
                    addr = line.decode("utf-8", "replace").split("<", 1)[1].split(">", 1)[0]
                    with self.lock:
                        self.rcpt_lines.append(cmd)
                    if addr in self.replies:
                        c.sendall(self.replies[addr])
                    else:
                        rcpts.append(addr)
                        send("250 ok")
                elif up == "DATA" and self.drip in ("early", "early-stall"):
                    # refuse after the first 64 KiB, then half-close ("early") or
                    # just stop reading ("early-stall")
                    with self.lock:
                        self.bodies_started += 1
                    send("354 go")
                    f.read(65536)
                    c.sendall(b"552 5.3.4 message too big for this mailbox\r\n")
                    if self.drip == "early":
                        c.shutdown(socket.SHUT_WR)
                        time.sleep(1.5)
                    else:
                        for _ in range(40):
                            if self.stop:
                                break
                            time.sleep(0.25)
                    return
                elif up == "DATA":
                    with self.lock:
                        self.bodies_started += 1
                    send("354 go")
                    parts = []
                    while True:
                        ln = f.readline()
                        if not ln or ln == b".\r\n":
                            break
                        if not self.fast:
                            parts.append(ln[1:] if ln.startswith(b".") else ln)
                    self.finish(c, mail, rcpts, tls, b"".join(parts))
                elif up.startswith("BDAT") and self.chunking:
                    with self.lock:
                        self.bodies_started += 1
                    words = up.split()
                    n, body = int(words[1]), b""
                    while n > 0:   # in pieces: a 20 MB chunk is not held twice
                        piece = f.read(min(n, 1 << 20))
                        if not piece:
                            return
                        n -= len(piece)
                        if not self.fast:
                            body += piece
                    if len(words) == 3 and words[2] == "LAST":
                        self.finish(c, mail, rcpts, tls, body)
                    else:
                        send("250 octets")
                elif up == "QUIT":
                    send("221 bye")
                    return
                else:
                    send("250 ok")
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def finish(self, c, mail, rcpts, tls, body):
        with self.lock:
            self.got.append((mail, rcpts, tls, body))
        if self.drip == "final":
            self.dripping(c, [bytes([b]) for b in b"250 " + b"x" * 400])
            return
        c.sendall(b"250 2.0.0 ok queued\r\n")

    def close(self):
        """Stop listening now (shutdown wakes the blocked accept; close alone would not)."""
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def wait_records(env, pred, timeout, what):
    return harness.wait_for_records(env, pred, timeout, what=what)


def outs(recs, rcpt):
    """The outcome records (not the reception) of a recipient."""
    return [r for r in find_records(recs, recipient=rcpt) if r.get("type") != "reception"]


def one(recs, **kw):
    got = [r for r in find_records(recs, **kw) if r.get("type") != "reception"]
    if not got:
        raise Fail("no record %r" % kw)
    return got[0]


def dsn_fields(data):
    """Per-recipient fields of the DSN's (global-)delivery-status part: [{name: value}].
    Parsed from the text (the email package reads message/global-delivery-status as
    one embedded message)."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    m = re.search(r"^Content-Type: message/(global-)?delivery-status\n(?:[^\n]+\n)*\n", text, re.M | re.I)
    if not m:
        return []
    part = text[m.end():].split("\n--", 1)[0]
    blocks = []
    for chunk in part.split("\n\n"):
        d = {}
        for ln in chunk.split("\n"):
            if ":" in ln and not ln[:1].isspace():
                k, v = ln.split(":", 1)
                d[k.strip().lower()] = v.strip()
        if "final-recipient" in d:
            blocks.append(d)
    return blocks


# --------------------------------------------------------------------------

def test_sni(env):
    cert, key = make_cert(env)
    env.dns(mx={"mx.test": [(10, "mx1.rx.test")]},
            a={"mx1.rx.test": "127.0.0.13", "relay.rx.test": "127.0.0.12"}, check=[("mx.test", "MX")])
    rx = {n: Rx(("127.0.0.%d" % n, 25), cert, key, chunking=(n == 13)) for n in (11, 12, 13)}
    try:
        d = env.salvod_daemon(domains={"ip.test": {"route": "[127.0.0.11]:25", "require-starttls": "yes"},
                                       "host.test": {"route": "relay.rx.test:25", "require-starttls": "yes"},
                                       "mx.test": {"require-starttls": "yes"}},
                              default_domain={"retry-after": "1h"})
        d.start()
        msgs = [Injected("s%d" % i, "s@senders.test", [r], None)
                for i, r in enumerate(["a@ip.test", "b@host.test", "c@mx.test"])]
        for m in msgs:
            m.data = make_body(__import__("random").Random(5), m.mid, m.sender, m.rcpts, 500)
        # and a 3 MB message each to the host route (DATA) and the MX route (BDAT): many
        # TLS records, sent from salvod's one copy 64 KiB at a time, must arrive intact
        for i, r in enumerate(["big1@host.test", "big2@mx.test"]):
            m = Injected("sbig%d" % i, "s@senders.test", [r], None)
            m.data = make_body(__import__("random").Random(6 + i), m.mid, m.sender, m.rcpts, 3 << 20)
            msgs.append(m)
        harness.inject(msgs, threads=1, per_conn=5)
        recs = wait_records(env, lambda r: all(outs(r, m.rcpts[0]) for m in msgs), 30,
                            "outcomes for the three routes")
        for m, n in ((msgs[3], 12), (msgs[4], 13)):
            got = [g for g in rx[n].got if g[1] == m.rcpts]
            why = harness.check_trace_prefix(got[0][3], m.data) if got else "not received"
            if why:
                raise Fail("%s (3 MB over TLS): %s" % (m.rcpts[0], why))
        for m, n, want in ((msgs[0], 11, None), (msgs[1], 12, "relay.rx.test"), (msgs[2], 13, "mx1.rx.test")):
            r = outs(recs, m.rcpts[0])[0]
            if r["type"] != "delivery" or not r.get("tls", "").startswith("TLSv1"):
                raise Fail("%s: %r (SNI seen: %r, handshake errors %r)" % (m.rcpts[0], r, rx[n].sni, rx[n].hs_errors))
            if not rx[n].sni or set(rx[n].sni) != {want}:
                raise Fail("%s: the receiver got SNI %r, want %r" % (m.rcpts[0], rx[n].sni, [want]))
            if not rx[n].got or any(g[2] is None for g in rx[n].got):
                raise Fail("%s: the receiver got %r" % (m.rcpts[0], [g[:3] for g in rx[n].got]))
        log("SNI: IP route none, host route %r, MX route %r; all three delivered over TLS under "
            "require-starttls" % (rx[12].sni[0], rx[13].sni[0]))
    finally:
        for r in rx.values():
            r.close()


def test_tls_fallback(env):
    cert, key = make_cert(env)
    env.dns(mx={"fb.test": [(10, "bad.rx.test"), (20, "good.rx.test")],
                "req.test": [(10, "bad2.rx.test")]},
            a={"bad.rx.test": "127.0.0.21", "good.rx.test": "127.0.0.22", "bad2.rx.test": "127.0.0.23"},
            check=[("fb.test", "MX")])
    bad = Rx(("127.0.0.21", 25), cert, key, broken_tls=True)
    good = Rx(("127.0.0.22", 25), cert, key)
    bad2 = Rx(("127.0.0.23", 25), cert, key, broken_tls=True)
    try:
        d = env.salvod_daemon(domains={"fb.test": {"max-msg-per-connection": "1"},
                                       "req.test": {"require-starttls": "yes"}},
                              default_domain={"retry-after": "1h"})
        d.start()
        rng = __import__("random").Random(6)
        m1 = Injected("f1", "s@senders.test", ["a@fb.test"], None)
        m1.data = make_body(rng, m1.mid, m1.sender, m1.rcpts, 500)
        m3 = Injected("f3", "s@senders.test", ["c@req.test"], None)
        m3.data = make_body(rng, m3.mid, m3.sender, m3.rcpts, 500)
        harness.inject([m1, m3], threads=1)
        wait_records(env, lambda r: find_records(r, recipient="a@fb.test", type="delivery")
                     and outs(r, "c@req.test"), 20, "the first deliveries")
        if len(bad.got) != 1 or bad.got[0][2] is not None:
            raise Fail("bad.rx.test: want one message in clear after its handshake failed, got %r"
                       % [g[:3] for g in bad.got])
        # the broken host goes away: the next message goes to good.rx.test, which does TLS fine
        bad.close()
        m2 = Injected("f2", "s@senders.test", ["b@fb.test"], None)
        m2.data = make_body(rng, m2.mid, m2.sender, m2.rcpts, 500)
        harness.inject([m2], threads=1)
        recs = wait_records(env, lambda r: find_records(r, recipient="b@fb.test", type="delivery"), 20,
                            "the delivery to the second MX host")
        if len(good.got) != 1 or good.got[0][2] is None:
            raise Fail("good.rx.test got %r: one host's failed handshake sent another host mail in clear"
                       % [g[:3] for g in good.got])
        if bad2.got:
            raise Fail("require-starttls: a failed handshake went on in clear: %r" % [g[:3] for g in bad2.got])
        tr = one(recs, recipient="c@req.test")
        if tr["type"] != "transient":
            raise Fail("require-starttls with a failing handshake: %r" % tr)
        log("a failed handshake: that host in clear, the next MX host with %s; under require-starttls "
            "deferred (%s)" % (good.got[0][2], tr["response"]["text"][:60]))
    finally:
        for r in (bad, good, bad2):
            r.close()


def test_size(env):
    env.dns(mx={"size.test": [(10, "mx.size.rx.test")], "senders.test": [(10, "mx.senders.test")]},
            a={"mx.size.rx.test": "127.0.0.31", "mx.senders.test": "127.0.0.2"}, check=[("size.test", "MX")])
    sink = env.salvo_sink("dsn-sink", "127.0.0.2:25")
    rx = Rx(("127.0.0.31", 25), size=100000, chunking=True)
    try:
        d = env.salvod_daemon(default_domain={"retry-after": "1h"})
        d.start()
        rng = __import__("random").Random(7)
        small = Injected("z1", "bounce@senders.test", ["small@size.test"], None)
        small.data = make_body(rng, small.mid, small.sender, small.rcpts, 3000)
        big = Injected("z2", "bounce@senders.test", ["big@size.test"], None)
        big.data = make_body(rng, big.mid, big.sender, big.rcpts, 250000)
        harness.inject([small], threads=1)
        wait_records(env, lambda r: outs(r, "small@size.test"), 15, "the small message")
        harness.inject([big], threads=1)
        recs = wait_records(env, lambda r: outs(r, "big@size.test"), 15, "the big message")
        if len(rx.mails) != 1:
            raise Fail("want exactly one MAIL (the small message), got %r" % rx.mails)
        size = [w for w in rx.mails[0].split() if w.upper().startswith("SIZE=")]
        if not size or not (len(small.data) <= int(size[0][5:]) <= len(small.data) + 2000):
            raise Fail("MAIL FROM without a fitting SIZE=: %r (message %d bytes)" % (rx.mails[0], len(small.data)))
        if rx.bodies_started != 1:
            raise Fail("the receiver saw %d bodies: the oversized one was sent" % rx.bodies_started)
        b = one(recs, recipient="big@size.test")
        if b["type"] != "bounce" or b["response"].get("enhanced") != "5.3.4" or b["response"].get("code") != 552:
            raise Fail("the oversized message: %r" % b)
        harness.wait_until(lambda: any("big@size.test" in a.data.decode("utf-8", "replace")
                                       for a in sink.arrivals()), 15, what="the DSN")
        log("SIZE=%s declared; a %d-byte message over the receiver's SIZE 100000 bounced %d %s without "
            "being sent" % (size[0][5:], len(big.data), b["response"]["code"], b["response"]["enhanced"]))
    finally:
        rx.close()


def test_reply_text(env):
    ru = "550 5.1.1 Пользователь не найден"
    replies = {"ru@utf.test": (ru + "\r\n").encode(),
               "last@utf.test": b"550-Mailbox unavailable\r\n550-see the policy page\r\n550 5.2.1 mailbox disabled\r\n",
               "x@ipr.test": b"550 5.1.1 no such user\r\n",
               # long: byte limits in the log and the queue's last_error fall inside a character
               "long@utf.test": ("550 5.1.1 x" + "ж" * 200 + "\r\n").encode()}
    env.dns(mx={"utf.test": [(10, "mx.utf.rx.test")], "senders.test": [(10, "mx.senders.test")]},
            a={"mx.utf.rx.test": "127.0.0.41", "mx.senders.test": "127.0.0.2"}, check=[("utf.test", "MX")])
    sink = env.salvo_sink("dsn-sink", "127.0.0.2:25")
    rx = Rx(("127.0.0.41", 25), replies=replies)
    try:
        d = env.salvod_daemon(domains={"ipr.test": {"route": "[127.0.0.41]:25"}},
                              default_domain={"retry-after": "1h"})
        d.start()
        rng = __import__("random").Random(8)
        msgs = []
        for i, r in enumerate(["ru@utf.test", "last@utf.test", "x@ipr.test", "long@utf.test"]):
            m = Injected("r%d" % i, "bounce@senders.test", [r], None)
            m.data = make_body(rng, m.mid, m.sender, m.rcpts, 500)
            msgs.append(m)
        harness.inject(msgs[:3], threads=1, per_conn=3)
        wait_records(env, lambda r: len(find_records(r, type="bounce")) >= 3, 15, "three bounces")
        harness.inject(msgs[3:], threads=1)   # last: its error is the queue's last_error
        recs = wait_records(env, lambda r: len(find_records(r, type="bounce")) >= 4, 15, "four bounces")
        b_ru, b_last = one(recs, recipient="ru@utf.test"), one(recs, recipient="last@utf.test")
        if "Пользователь не найден" not in b_ru["response"].get("text", ""):
            raise Fail("the log lost the UTF-8 reply text: %r" % b_ru["response"])
        if b_last["response"].get("enhanced") != "5.2.1":
            raise Fail("the code on the last line was not used: %r" % b_last["response"])
        dsns = {}

        def got_dsns():
            for a in sink.arrivals():
                for f in dsn_fields(a.data):
                    dsns[f["final-recipient"].split(";", 1)[1].strip()] = (f, a.data)
            return len(dsns) >= 3
        harness.wait_until(got_dsns, 15, what="three DSNs")
        f, raw = dsns["ru@utf.test"]
        if "Пользователь не найден" not in raw.decode("utf-8", "replace"):
            raise Fail("the DSN lost the UTF-8 reply text:\n%s" % raw.decode("utf-8", "replace")[:2000])
        if f.get("remote-mta") != "dns; mx.utf.rx.test":
            raise Fail("Remote-MTA for an MX route: %r" % f.get("remote-mta"))
        f, raw = dsns["last@utf.test"]
        if f.get("status") != "5.2.1":
            raise Fail("DSN status for a code on the last line: %r" % f)
        f, raw = dsns["x@ipr.test"]
        if f.get("remote-mta") != "dns; [127.0.0.41]":
            raise Fail("Remote-MTA for an IP route: %r (want the address in brackets, no port)" % f.get("remote-mta"))
        long_text = one(recs, recipient="long@utf.test")["response"].get("text", "")
        if not long_text.startswith("x" + "ж" * 100) or "\ufffd" in long_text:
            raise Fail("a long UTF-8 reply in the log: %r" % long_text[:80])
        # the queue's last error (API JSON): whole characters, whatever the byte limits cut
        last = {}

        def queue_error():
            c = http.client.HTTPConnection(*harness.SALVOD_HTTP, timeout=5)
            try:
                c.request("GET", "/api/v1/queues/utf.test")
                r = c.getresponse()
                body = r.read()
            finally:
                c.close()
            if r.status == 404:
                return False      # not in the published stats yet
            if r.status != 200:
                raise Fail("GET /api/v1/queues/utf.test: %d %r" % (r.status, body[:300]))
            last["q"] = json.loads(body)
            return "ж" in (last["q"].get("last_error") or "")
        harness.wait_until(queue_error, 10, what="the queue's last_error")
        log("UTF-8 reply text kept in the log, the DSN and the queue's last_error (%r...); status 5.2.1 "
            "from a last line; Remote-MTA 'dns; mx.utf.rx.test' and 'dns; [127.0.0.41]'"
            % last["q"]["last_error"][:24])
    finally:
        rx.close()


def test_hostile(env):
    long_ehlo = ["X-FILLER-%03d %s" % (i, "y" * 300) for i in range(240)]   # about 75 KB, 241 lines
    env.dns(mx={"drip.test": [(10, "mx.drip.rx.test")], "banner.test": [(10, "mx.banner.rx.test")],
                "long.test": [(10, "mx.long.rx.test")], "early.test": [(10, "mx.early.rx.test")],
                "stall.test": [(10, "mx.stall.rx.test")]},
            a={"mx.drip.rx.test": "127.0.0.51", "mx.banner.rx.test": "127.0.0.52", "mx.long.rx.test": "127.0.0.53",
               "mx.early.rx.test": "127.0.0.54", "mx.stall.rx.test": "127.0.0.55"},
            check=[("drip.test", "MX")])
    drip = Rx(("127.0.0.51", 25), drip="final")
    banner = Rx(("127.0.0.52", 25), drip="banner")
    longr = Rx(("127.0.0.53", 25), ehlo_lines=long_ehlo)
    early = Rx(("127.0.0.54", 25), drip="early")
    stall = Rx(("127.0.0.55", 25), drip="early-stall")
    try:
        d = env.salvod_daemon(domains={"drip.test": {"smtp-data-termination-timeout": "2s"},
                                       "banner.test": {"smtp-greeting-timeout": "2s"},
                                       "stall.test": {"data-send-timeout": "2s"}},
                              default_domain={"retry-after": "1h"})
        d.start()
        rng = __import__("random").Random(9)
        msgs = []
        for i, r in enumerate(["a@drip.test", "b@banner.test", "c@long.test", "d@early.test", "e@stall.test"]):
            m = Injected("h%d" % i, "s@senders.test", [r], None)
            m.data = make_body(rng, m.mid, m.sender, m.rcpts, 500 if i < 3 else 16 << 20)
            msgs.append(m)
        t0 = time.monotonic()
        harness.inject(msgs, threads=1, per_conn=3)
        recs = wait_records(env, lambda r: all(outs(r, m.rcpts[0]) for m in msgs), 20,
                            "the three hostile receivers to be given up")
        took = time.monotonic() - t0
        for rc in ("d@early.test", "e@stall.test"):
            r = one(recs, recipient=rc)
            if r["type"] != "bounce" or r["response"].get("code") != 552:
                raise Fail("%s: a 552 given during the message: %r (want a bounce with that reply)" % (rc, r))
        for m, want in ((msgs[0], "timeout after end of data"), (msgs[1], "timeout after banner"), (msgs[2], "reply longer than")):
            r = one(recs, recipient=m.rcpts[0])
            if r["type"] != "transient" or want not in r["response"].get("text", ""):
                raise Fail("%s: %r (want a deferral saying %r)" % (m.rcpts[0], r, want))
        if len(drip.got) != 1:
            raise Fail("the dripping receiver got %d messages" % len(drip.got))
        log("dripped final reply and banner ended at their 2 s deadlines, a 75 KB reply was a protocol "
            "error: all three deferred within %.1f s; an early 552, then a close or a stall until "
            "data-send-timeout, bounced the recipient" % took)
    finally:
        for r in (drip, banner, longr, early, stall):
            r.close()


def test_smtputf8(env):
    env.dns(mx={"u8.test": [(10, "mx.u8.rx.test")], "nou8.test": [(10, "mx.nou8.rx.test")]},
            a={"mx.u8.rx.test": "127.0.0.61", "mx.nou8.rx.test": "127.0.0.62"}, check=[("u8.test", "MX")])
    yes = Rx(("127.0.0.61", 25), smtputf8=True)
    no = Rx(("127.0.0.62", 25))
    try:
        d = env.salvod_daemon(default_domain={"retry-after": "1h"})
        d.start()
        body = ("From: Jörg <jörg@senders.test>\r\nTo: пользователь@u8.test\r\nSubject: Привет\r\n"
                "Message-ID: <u8.1@senders.test>\r\n\r\nГрüße\r\n").encode()
        rcpts = ["пользователь@u8.test", "jörg@nou8.test", "ascii@nou8.test"]
        with smtplib.SMTP("%s" % harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], timeout=10) as s:
            s.ehlo("itest")
            refused = s.sendmail("s@senders.test", rcpts, body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            if refused:
                raise Fail("salvod refused %r" % refused)
        recs = wait_records(env, lambda r: all(outs(r, x) for x in rcpts), 20,
                            "outcomes for the three recipients")
        r = one(recs, recipient="пользователь@u8.test")
        if r["type"] != "delivery":
            raise Fail("to the SMTPUTF8 receiver: %r" % r)
        if not yes.mails or not yes.mails[0].upper().endswith(" SMTPUTF8"):
            raise Fail("MAIL FROM without SMTPUTF8 to a receiver offering it: %r" % yes.mails)
        if not yes.got or yes.got[0][1] != ["пользователь@u8.test"] or "Привет".encode() not in yes.got[0][3]:
            raise Fail("the SMTPUTF8 receiver got %r" % [g[:3] for g in yes.got])
        r = one(recs, recipient="jörg@nou8.test")
        if r["type"] != "bounce" or r["response"].get("enhanced") != "5.6.7":
            raise Fail("a UTF-8 address to a receiver without SMTPUTF8: %r" % r)
        if any("jörg" in x for x in no.rcpt_lines):
            raise Fail("the UTF-8 address was sent to a receiver without SMTPUTF8: %r" % no.rcpt_lines)
        r = one(recs, recipient="ascii@nou8.test")
        if r["type"] != "delivery" or any("SMTPUTF8" in x.upper() for x in no.mails):
            raise Fail("the ASCII recipient at the receiver without SMTPUTF8: %r, MAIL %r" % (r, no.mails))
        log("SMTPUTF8 declared to the receiver offering it (%s); 5.6.7 for the UTF-8 address at one that "
            "does not; its ASCII recipient delivered" % yes.mails[0])
    finally:
        yes.close()
        no.close()


def s_client(args):
    """openssl s_client through salvod's STARTTLS; (handshake made, negotiated cipher)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % harness.SALVOD_SMTP, "-starttls", "smtp",
                        "-servername", "salvo.itest"] + args, input=b"QUIT\r\n", capture_output=True, timeout=20)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"Cipher is (\S+)", out)
    ok = p.returncode == 0 and m is not None and m.group(1) != "(NONE)"
    return ok, m.group(1) if m else None


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out


def test_big_memory(env):
    """20 recipients of one 20 MB message, one session each, at once: under TLS with BDAT
    (a Python receiver) and in clear with DATA (Postfix's smtp-sink)."""
    n, size = 20, 20 * 1024 * 1024
    # memory is measured on the plain build: a sanitizer's shadow and quarantine, or a
    # wrapper (valgrind), would be measured instead
    linked = subprocess.run(["ldd", env.salvod], capture_output=True, text=True).stdout
    if "libasan" in linked or "libtsan" in linked or harness.SALVOD_WRAPPER:
        raise harness.Skip("salvod is built with a sanitizer or wrapped: memory not measured")
    cert, key = make_cert(env)
    env.dns(mx={"bigtls.test": [(10, "mx.bigtls.rx.test")], "bigdata.test": [(10, "mx.bigdata.rx.test")]},
            a={"mx.bigtls.rx.test": "127.0.0.71", "mx.bigdata.rx.test": "127.0.0.72"},
            check=[("bigtls.test", "MX")])
    rx = Rx(("127.0.0.71", 25), cert, key, chunking=True, fast=True)
    env.postfix_sink("pfsink", "127.0.0.72:25")
    per = {"max-smtp-out": str(n), "max-rcpt-per-message": "1", "max-msg-per-connection": "1"}
    try:
        d = env.salvod_daemon(domains={"bigtls.test": per, "bigdata.test": per},
                              default_domain={"retry-after": "1h"}, extra="max-message-size 64M\n")
        d.start()
        pid = d.proc.pid
        results = []
        line = b"x" * 76 + b"\r\n"
        for dom in ("bigtls.test", "bigdata.test"):
            rcpts = ["u%d@%s" % (i, dom) for i in range(n)]
            m = Injected("big-" + dom, "s@senders.test", rcpts, None)
            m.data = (make_body(__import__("random").Random(10), m.mid, m.sender, rcpts, 400) +
                      line * (size // len(line)))
            base = proc_status(pid)
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")   # reset VmHWM: this round's peak only
            peak_anon = [0]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    try:
                        peak_anon[0] = max(peak_anon[0], proc_status(pid)["RssAnon"])
                    except (OSError, KeyError):
                        pass
                    time.sleep(0.02)
            th = threading.Thread(target=sample, daemon=True)
            th.start()
            t0 = time.monotonic()
            harness.inject([m], threads=1, timeout=120)
            try:
                wait_records(env, lambda r: len([x for x in find_records(r, type="delivery")
                                                 if x["recipient"].endswith("@" + dom)]) >= n, 180,
                             "%d deliveries of the 20 MB message to %s" % (n, dom))
            finally:
                stop.set()
                th.join()
            st = proc_status(pid)
            # the peak of anonymous memory: the highest sample, and (samples can miss a
            # short peak) the whole peak less the file pages mapped at the end (the
            # spool's LMDB map holding the message, the binary), whichever is higher
            anon = max(peak_anon[0], st["VmHWM"] - st["RssFile"])
            results.append((dom, base["RssAnon"], anon, st["VmHWM"], time.monotonic() - t0))
        for dom, base_anon, anon, hwm, took in results:
            log("%s: %d x %d MiB in %.1f s: RssAnon before %.1f MB, peak anon %.1f MB (%.1f MB per session); "
                "VmHWM %.1f MB, file pages included (%.1f MB per session)"
                % (dom, n, size >> 20, took, base_anon / 1e6, anon / 1e6, anon / n / 1e6, hwm / 1e6, hwm / n / 1e6))
            if anon / n > 25e6:
                raise Fail("%s: peak anonymous memory %.1f MB for %d sessions: over 25 MB per session"
                           % (dom, anon / 1e6, n))
        if len(rx.got) != n or any(g[2] is None for g in rx.got):
            raise Fail("the TLS receiver got %d messages (%r)" % (len(rx.got), [g[2] for g in rx.got][:3]))
    finally:
        rx.close()


if __name__ == "__main__":
    harness.main([test_sni, test_tls_fallback, test_size, test_reply_text, test_hostile, test_smtputf8,
                  test_big_memory], needs_sink=True, needs_postfix=True)
