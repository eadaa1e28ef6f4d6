#!/usr/bin/python3
"""test_tls_out.py - outbound STARTTLS.

A small receiver written here (Python's ssl module; salvo-sink has no TLS) plays three
MX hosts:
  tls.test       offers STARTTLS: salvod uses it; the receiver records the protocol and
                 cipher, and the delivery record carries them in `tls`. It also offers
                 CHUNKING without PIPELINING: the message comes by BDAT, inside TLS, with
                 its bytes intact
  plain.test     no STARTTLS, the domain has require-starttls: deferred, never sent in clear
  broken.test    offers STARTTLS but answers the handshake with garbage: salvod retries in
                 clear once, says so on stderr, and delivers
"""

import random
import socket
import ssl
import subprocess
import threading
import os

import harness
from harness import Fail, Injected, find_records, log, make_body


class Receiver:
    """SMTP on addr with optional STARTTLS and CHUNKING; records (rcpts, tls version,
    "data" or "bdat", body) per message."""

    def __init__(self, addr, cert=None, key=None, broken_tls=False, chunking=False):
        self.got, self.addr, self.broken, self.chunking = [], addr, broken_tls, chunking
        self.mail_lines = []
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(16)
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        tls = None

        def send(line):
            c.sendall(line.encode() + b"\r\n")
        try:
            send("220 rx.test ESMTP")
            rcpts = []
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").strip()
                up = cmd.upper()
                if up.startswith("EHLO"):
                    send("250-rx.test")
                    if self.ctx and tls is None:
                        send("250-STARTTLS")
                    if self.chunking:
                        send("250-8BITMIME")
                        send("250 CHUNKING")   # and no PIPELINING: one command at a time
                    else:
                        send("250 PIPELINING")
                elif up == "STARTTLS":
                    send("220 2.0.0 go ahead")
                    if self.broken:
                        c.recv(4096)
                        c.sendall(b"\x15\x03\x03\x00\x02\x02\x28garbage")  # not a handshake
                        c.close()
                        return
                    c = self.ctx.wrap_socket(c, server_side=True)
                    f = c.makefile("rb")
                    tls = "%s %s" % (c.version(), c.cipher()[0])
                elif up.startswith("MAIL"):
                    rcpts = []
                    self.mail_lines.append(cmd)
                    send("250 ok")
                elif up.startswith("RCPT"):
                    rcpts.append(cmd.split("<", 1)[1].split(">", 1)[0])
                    send("250 ok")
                elif up == "DATA":
                    send("354 go")
                    body = b""
                    while True:
                        ln = f.readline()
                        if not ln or ln == b".\r\n":
                            break
                        body += ln[1:] if ln.startswith(b".") else ln
                    self.got.append((rcpts, tls, "data", body))
                    send("250 ok queued")
                elif up.startswith("BDAT") and self.chunking:
                    words = up.split()
                    body = f.read(int(words[1]))
                    if len(words) == 3 and words[2] == "LAST":
                        self.got.append((rcpts, tls, "bdat", body))
                        send("250 ok queued")
                    else:
                        send("250 %d octets" % len(body))
                elif up == "QUIT":
                    send("221 bye")
                    return
                else:
                    send("250 ok")
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.sock.close()


def test_tls_out(env):
    rng = random.Random(71)
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=rx.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
    env.dns(mx={"tls.test": [(10, "mx1.rx.test")], "plain.test": [(10, "mx2.rx.test")],
                "broken.test": [(10, "mx3.rx.test")]},
            a={"mx1.rx.test": "127.0.0.2", "mx2.rx.test": "127.0.0.3", "mx3.rx.test": "127.0.0.4"},
            check=[("tls.test", "MX")])
    rx_tls = Receiver(("127.0.0.2", 25), cert, key, chunking=True)
    rx_plain = Receiver(("127.0.0.3", 25))
    rx_broken = Receiver(("127.0.0.4", 25), cert, key, broken_tls=True)
    try:
        d = env.salvod_daemon(domains={"plain.test": {"require-starttls": "yes"}},
                              default_domain={"retry-after": "1h"})
        d.start()
        msgs = [Injected("t%d" % i, "s@senders.test", [r], None)
                for i, r in enumerate(["a@tls.test", "b@plain.test", "c@broken.test"])]
        for m in msgs:
            m.data = make_body(rng, m.mid, m.sender, m.rcpts, 800)
        # lines a BDAT sender must not stuff, and a would-be DATA terminator
        # and 8-bit text, which the receiver's 8BITMIME lets salvod declare
        msgs[0].data += ".leading dot\r\n..two\r\n.\r\nafter the dot line, d\u00e9j\u00e0\r\n".encode()
        harness.inject(msgs, threads=1, per_conn=3)
        recs = harness.wait_for_records(env, lambda r: find_records(r, type="delivery", recipient="a@tls.test")
                                        and find_records(r, type="transient", recipient="b@plain.test")
                                        and find_records(r, type="delivery", recipient="c@broken.test"), 20,
                                        what="the three outcomes")
        if [g for g in rx_tls.got if g[1]] != rx_tls.got or not rx_tls.got:
            raise Fail("tls.test received %r: want everything over TLS" % [g[:3] for g in rx_tls.got])
        if [g[2] for g in rx_tls.got] != ["bdat"]:
            raise Fail("tls.test offers CHUNKING: want one message by BDAT, got %r" % [g[:3] for g in rx_tls.got])
        if not rx_tls.mail_lines or not rx_tls.mail_lines[-1].upper().endswith(" BODY=8BITMIME"):
            raise Fail("an 8-bit message to an 8BITMIME receiver went without BODY=8BITMIME: %r"
                       % rx_tls.mail_lines)
        why = harness.check_trace_prefix(rx_tls.got[0][3], msgs[0].data)
        if why:
            raise Fail("the BDAT message changed on the way: %s" % why)
        dl = find_records(recs, type="delivery", recipient="a@tls.test")[0]
        if not dl.get("tls", "").startswith("TLSv1."):
            raise Fail("the delivery record has tls=%r" % dl.get("tls"))
        if rx_plain.got:
            raise Fail("require-starttls: plain.test got mail in clear: %r" % rx_plain.got)
        tr = find_records(recs, type="transient", recipient="b@plain.test")[0]
        if "STARTTLS" not in tr["response"]["text"]:
            raise Fail("the deferral does not say why: %r" % tr["response"])
        if not rx_broken.got or rx_broken.got[0][1] is not None or rx_broken.got[0][2] != "data":
            raise Fail("broken.test: %r (want one delivery in clear, by DATA)" % [g[:3] for g in rx_broken.got])
        err = open(d.stderr_paths[-1]).read()
        if "STARTTLS with 127.0.0.4 failed" not in err:
            raise Fail("salvod did not report the fallback to clear:\n" + err[-1500:])
        log("TLS used when offered (%s); require-starttls deferred; a broken handshake fell back to clear"
            % dl["tls"])
    finally:
        for r in (rx_tls, rx_plain, rx_broken):
            r.close()


if __name__ == "__main__":
    harness.main([test_tls_out], needs_sink=False)
