#!/usr/bin/python3
"""test_tls_auth.py - inbound TLS and SMTP AUTH: never an open relay.

  relay      from a source that may not relay (require-auth), a foreign recipient is
             refused with 550 5.7.1; AUTH is not offered in clear and refused (538)
  starttls   after STARTTLS (a self-signed certificate made at test time) AUTH is
             offered; PLAIN with a plain password and LOGIN with a crypt(3) hash both
             work, and the authenticated client's message is relayed and delivered
  throttle   wrong passwords get 535; after five failures the client gets 454
  implicit   an smtps-listener speaks TLS from the first byte (port 465 style)
  garbage    random bytes where a TLS handshake should be: a clean close, salvod alive
  trace      the Received header says ESMTPS / ESMTPA / ESMTPSA (RFC 3848) and carries the
             TLS protocol and cipher as Postfix writes them
  suites     TLS 1.2 offers forward-secret AEAD suites only (no static RSA, no CBC/SHA-1),
             checked with openssl s_client; tls-ciphers changes that
"""

import os
import random
import re
import smtplib
import socket
import ssl
import subprocess
import time

import harness
from harness import Fail, log

SMTPS = ("127.0.0.1", 12465)
STRANGER = "127.0.0.50"


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def message(rcpt, tag):
    return ("From: <alice@senders.test>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@itest>\r\n\r\nhello %s\r\n"
            % (rcpt, tag, tag, tag)).encode()


def test_tls_auth(env):
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=salvo.itest", "-keyout", key, "-out", cert], check=True, capture_output=True)
    bob_hash = subprocess.run(["openssl", "passwd", "-6", "b0b-pass"], check=True, capture_output=True,
                              text=True).stdout.strip()
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    extra = "\n".join([
        "tls-certificate %s" % cert, "tls-private-key %s" % key, "smtps-listener %s:%d" % SMTPS,
        "<smtp-user alice>", "  password s3cret", "</smtp-user>",
        "<smtp-user bob>", "  password %s" % bob_hash, "</smtp-user>"])
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes"},
                                   "0/0": {"require-auth": "yes"}}, extra=extra)
    d.start()
    addr = harness.SALVOD_SMTP

    # -- a stranger in clear: no relay, no AUTH
    with smtplib.SMTP(*addr, timeout=10, source_address=(STRANGER, 0)) as s:
        s.ehlo("stranger.test")
        if not s.has_extn("starttls"):
            raise Fail("STARTTLS is not offered")
        if s.has_extn("auth"):
            raise Fail("AUTH is offered in clear")
        s.mail("x@stranger.test")
        code, text = s.rcpt("victim@far.test")
        if code != 550 or b"5.7.1" not in text:
            raise Fail("a stranger's foreign recipient got %d %s" % (code, text))
        s.rset()
        code, text = s.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
        if code != 538:
            raise Fail("AUTH in clear got %d %s" % (code, text))
    # -- STARTTLS, then AUTH PLAIN, then relay
    with smtplib.SMTP(*addr, timeout=10, source_address=(STRANGER, 0)) as s:
        s.ehlo("stranger.test")
        s.starttls(context=ctx())
        s.ehlo("stranger.test")
        if not s.has_extn("auth") or "PLAIN" not in s.esmtp_features.get("auth", "").upper():
            raise Fail("AUTH not offered after STARTTLS: %r" % s.esmtp_features)
        s.login("alice", "s3cret")
        refused = s.sendmail("alice@senders.test", ["one@far.test"], message("one@far.test", "tls1"))
        if refused:
            raise Fail("the authenticated relay was refused: %r" % refused)
    # -- LOGIN (user, then password, each after a 334) with the hashed password
    with smtplib.SMTP(*addr, timeout=10, source_address=(STRANGER, 0)) as s:
        s.ehlo("x")
        s.starttls(context=ctx())
        s.ehlo("x")
        s.user, s.password = "bob", "b0b-pass"
        code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        if code != 235:
            raise Fail("AUTH LOGIN for bob: %d %s" % (code, text))
        s.sendmail("bob@senders.test", ["two@far.test"], message("two@far.test", "tls2"))
    # -- implicit TLS
    with smtplib.SMTP_SSL(*SMTPS, timeout=10, context=ctx(), source_address=(STRANGER, 0)) as s:
        s.ehlo("x")
        s.login("alice", "s3cret")
        s.sendmail("alice@senders.test", ["three@far.test"], message("three@far.test", "tls3"))
    seen = harness.wait_for_recipients(env, {"one@far.test", "two@far.test", "three@far.test"}, 15, settle=0.2)
    log("relayed after STARTTLS+AUTH (PLAIN, LOGIN with a crypt hash) and over implicit TLS: %d arrived"
        % len(seen))
    # -- the trace header says how it came (RFC 3848) and the TLS in use, as Postfix writes it
    for r in ("one@far.test", "two@far.test", "three@far.test"):
        trace = seen[r][0].data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        first = trace.split("\r\n", 3)
        if not (first[0].startswith("Received: from ") and
                re.match(r"\t\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)$", first[1]) and
                re.match(r"\tby salvo\.itest \(Salvo\) with ESMTPSA;$", first[2])):
            raise Fail("%s: the Received header after TLS + AUTH: %r" % (r, first[:3]))
    log("Received: %s / %s" % (first[1].strip(), first[2].strip()))
    # -- throttle: five wrong passwords, then 454 even for the right one
    codes = []
    for i in range(6):
        with smtplib.SMTP(*addr, timeout=10, source_address=("127.0.0.51", 0)) as s:
            s.ehlo("x")
            s.starttls(context=ctx())
            s.ehlo("x")
            s.user, s.password = "alice", ("wrong%d" % i if i < 5 else "s3cret")
            try:
                codes.append(s.auth("PLAIN", s.auth_plain)[0])   # one mechanism, one attempt
            except smtplib.SMTPAuthenticationError as e:
                codes.append(e.smtp_code)
            except smtplib.SMTPServerDisconnected:
                codes.append(-1)
            except smtplib.SMTPResponseException as e:
                codes.append(e.smtp_code)
    if codes[:5] != [535] * 5 or codes[5] != 454:
        raise Fail("AUTH failures then the right password: %r (want 535 x5, then 454)" % codes)
    # -- TLS garbage after STARTTLS, and on the implicit-TLS port
    for target in ("starttls", "smtps"):
        sk = socket.create_connection(SMTPS if target == "smtps" else addr, timeout=5)
        if target == "starttls":
            sk.recv(200)
            sk.sendall(b"EHLO x\r\nSTARTTLS\r\n")
            time.sleep(0.2)
            sk.recv(1000)
        sk.sendall(bytes(random.Random(7).randrange(256) for _ in range(3000)))
        try:
            while sk.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        sk.close()
    d.check_alive()
    with smtplib.SMTP(*addr, timeout=10) as s:
        if s.noop()[0] != 250:
            raise Fail("salvod does not answer after TLS garbage")
    log("AUTH throttled after 5 failures; TLS garbage closed cleanly")


def make_cert(env):
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=salvo.itest", "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def received_of(data):
    """The first Received header of a stored message, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    out = []
    for ln in lines:
        if out and ln[:1] in (" ", "\t"):
            out[-1] += " " + ln.strip()
        else:
            out.append(ln)
    return next(h for h in out if h.lower().startswith("received:"))


def test_trace(env):
    cert, key = make_cert(env)
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    extra = "\n".join(["tls-certificate %s" % cert, "tls-private-key %s" % key,
                       "<smtp-user alice>", "  password s3cret", "</smtp-user>"])
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes"},
                                   "127.0.0.40/29": {"require-auth": "yes", "allow-unencrypted-plain-auth": "yes"},
                                   "0/0": {"require-auth": "yes"}}, extra=extra)
    d.start()
    addr = harness.SALVOD_SMTP
    with smtplib.SMTP(*addr, timeout=10) as s:                     # clear, trusted
        s.sendmail("a@senders.test", ["plain@far.test"], message("plain@far.test", "t0"))
    with smtplib.SMTP(*addr, timeout=10) as s:                     # TLS, trusted
        s.starttls(context=ctx())
        s.sendmail("a@senders.test", ["tls@far.test"], message("tls@far.test", "t1"))
    with smtplib.SMTP(*addr, timeout=10, source_address=("127.0.0.41", 0)) as s:   # AUTH in clear
        s.login("alice", "s3cret")
        s.sendmail("a@senders.test", ["auth@far.test"], message("auth@far.test", "t2"))
    with smtplib.SMTP(*addr, timeout=10, source_address=("127.0.0.50", 0)) as s:   # TLS + AUTH
        s.starttls(context=ctx())
        s.login("alice", "s3cret")
        s.sendmail("a@senders.test", ["both@far.test"], message("both@far.test", "t3"))
    want = {"plain@far.test": "ESMTP", "tls@far.test": "ESMTPS", "auth@far.test": "ESMTPA", "both@far.test": "ESMTPSA"}
    seen = harness.wait_for_recipients(env, set(want), 15, settle=0.2)
    using = re.compile(r"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+ \(\d+/\d+ bits\)\)")
    for rcpt, proto in want.items():
        if rcpt not in seen:
            raise Fail("%s never arrived" % rcpt)
        rec = received_of(seen[rcpt][0].data)
        m = re.search(r" with ([A-Z0-9]+);", rec)
        if not m or m.group(1) != proto:
            raise Fail("%s: want 'with %s' in %r" % (rcpt, proto, rec))
        if bool(using.search(rec)) != ("S" in proto[5:]):
            raise Fail("%s: the TLS comment is %s: %r" % (rcpt, "missing" if "S" in proto[5:] else "there", rec))
    log("Received: %s" % received_of(seen["both@far.test"][0].data))


def s_client(args):
    """A STARTTLS handshake with openssl s_client; True when it completed."""
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", "%s:%d" % harness.SALVOD_SMTP]
                       + args, input=b"QUIT\r\n", capture_output=True, timeout=20)
    out = p.stdout.decode("utf-8", "replace")
    return "Cipher is (NONE)" not in out and re.search(r"Cipher( is|\s+:) [A-Z0-9]", out) is not None


def test_suites(env):
    cert, key = make_cert(env)
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    d = env.salvod_daemon(extra="tls-certificate %s\ntls-private-key %s\n" % (cert, key))
    d.start()
    good = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"]
    bad = ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "DES-CBC3-SHA"]
    for c in good:
        if not s_client(["-tls1_2", "-cipher", c]):
            raise Fail("TLS 1.2 with %s was refused" % c)
    for c in bad:
        if s_client(["-tls1_2", "-cipher", c]):
            raise Fail("TLS 1.2 with %s (static RSA or CBC/SHA-1) was accepted" % c)
    if not s_client(["-tls1_3"]):
        raise Fail("TLS 1.3 was refused")
    if s_client(["-tls1_1"]):
        raise Fail("TLS 1.1 was accepted")
    d.stop()
    # settable: an operator who must talk to an old client opens one CBC suite
    d = env.salvod_daemon(extra="tls-certificate %s\ntls-private-key %s\ntls-ciphers ECDHE-RSA-AES128-SHA\n"
                          % (cert, key))
    d.start()
    if not s_client(["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"]) or s_client(["-tls1_2", "-cipher", good[0]]):
        raise Fail("tls-ciphers ECDHE-RSA-AES128-SHA did not set the TLS 1.2 list")
    d.stop()
    d = env.salvod_daemon(extra="tls-certificate %s\ntls-private-key %s\ntls-ciphers NOSUCHCIPHER\n" % (cert, key))
    try:
        d.start(timeout=5)
        raise Fail("salvod started with tls-ciphers NOSUCHCIPHER")
    except Fail as e:
        if "NOSUCHCIPHER" in str(e) or "cipher" not in str(e):
            if "started with" in str(e):
                raise
    log("TLS 1.2: %d AEAD/ECDHE suites accepted, %d static-RSA/CBC suites refused; TLS 1.3 yes, 1.1 no; "
        "tls-ciphers settable" % (len(good), len(bad)))


def test_source_service(env):
    """PowerMTA's smtp-service no (554 at connect, nothing else) and allow-starttls no
    (no STARTTLS offered or taken) per <source>; a source without them is unchanged."""
    cert, key = make_cert(env)
    env.dns()
    d = env.salvod_daemon(extra="tls-certificate %s\ntls-private-key %s\n"
                                "<source 127.0.0.5>\n smtp-service no\n</source>\n"
                                "<source 127.0.0.6>\n allow-starttls no\n</source>\n" % (cert, key))
    d.start()
    try:
        smtplib.SMTP(*harness.SALVOD_SMTP, source_address=("127.0.0.5", 0), timeout=10)
        raise Fail("smtp-service no: the session was served")
    except smtplib.SMTPConnectError as e:
        if e.smtp_code != 554:
            raise Fail("smtp-service no: %d %r, want 554" % (e.smtp_code, e.smtp_error))
    c = smtplib.SMTP(*harness.SALVOD_SMTP, source_address=("127.0.0.6", 0), timeout=10)
    c.ehlo("client.test")
    if c.has_extn("starttls"):
        raise Fail("allow-starttls no: STARTTLS offered")
    code, _ = c.docmd("STARTTLS")
    if code < 500:
        raise Fail("allow-starttls no: STARTTLS answered %d" % code)
    c.quit()
    c = smtplib.SMTP(*harness.SALVOD_SMTP, source_address=("127.0.0.1", 0), timeout=10)
    c.ehlo("client.test")
    if not c.has_extn("starttls"):
        raise Fail("a source without allow-starttls no: STARTTLS not offered")
    c.starttls(context=ctx())
    c.ehlo("client.test")
    c.quit()
    d.check_alive()
    log("smtp-service no: 554 at connect; allow-starttls no: no STARTTLS; other sources unchanged")


if __name__ == "__main__":
    harness.main([test_tls_auth, test_trace, test_suites, test_source_service])
