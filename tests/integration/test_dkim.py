#!/usr/bin/python3
"""test_dkim.py - delivered mail carries DKIM signatures that an independent verifier
(python3-dkim) accepts: rsa-sha256 and ed25519-sha256 keys, chosen by the From domain,
for mail injected over SMTP and over HTTP (per-recipient content signed per recipient),
and for bodies holding a bare CR (it goes out as a line end: the signature covers that);
mail from a domain without a key goes unsigned; a signature broken in transit (a body
changed at the sink) does not verify.
"""

import base64
import json
import os
import random
import subprocess
import urllib.request

import dkim

import harness
from harness import Fail, Injected, log, make_body


def keypair(d, name, algorithm):
    pem = os.path.join(d, name + ".pem")
    args = ["openssl", "genpkey", "-algorithm", algorithm, "-out", pem]
    if algorithm == "RSA":
        args[4:4] = ["-pkeyopt", "rsa_keygen_bits:2048"]
    subprocess.run(args, check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    if algorithm == "ED25519":
        txt = "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    else:
        txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return pem, txt


def test_dkim(env):
    rng = random.Random(61)
    env.dns(mx={"rcpt.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("rcpt.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    rsa_pem, rsa_txt = keypair(env.dir, "rsa", "RSA")
    ed_pem, ed_txt = keypair(env.dir, "ed", "ED25519")
    dns = {"s1._domainkey.rsa.test": rsa_txt, "e1._domainkey.ed.test": ed_txt}
    # bare-newline normalize: the SMTP client below sends bare CRs, which salvod refuses by
    # default (SMTP smuggling); normalised, they are stored and signed as CRLF
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "bare-newline": "normalize"}},
                          extra="domain-key s1,rsa.test,%s\ndomain-key e1,ed.test,%s\n" % (rsa_pem, ed_pem))
    d.start()
    msgs = []
    for i, frm in enumerate(["news@rsa.test", "News Team <news@ED.test>", "plain@nokey.test"] * 3):
        r = "u%d@rcpt.test" % i
        body = make_body(rng, "k%d" % i, "x@rcpt.test", [r], 2000)
        body = body.replace(b"From: Itest Sender <x@rcpt.test>", ("From: %s" % frm).encode())
        msgs.append((frm, Injected("k%d" % i, "bounce@senders.test", [r], body)))
    # a bare CR in the body: salvod sends it as CRLF, so it must sign it as that
    for i, frm in enumerate(["news@rsa.test", "news@ed.test"]):
        r = "cr%d@rcpt.test" % i
        body = make_body(rng, "cr%d" % i, "x@rcpt.test", [r], 600)
        body = body.replace(b"From: Itest Sender <x@rcpt.test>", ("From: %s" % frm).encode())
        body += b"a bare\rcarriage return, and \r\r\n two\r\n"
        msgs.append((frm, Injected("cr%d" % i, "bounce@senders.test", [r], body)))
    harness.inject([m for _, m in msgs], threads=2, per_conn=5)
    # and one over HTTP with per-recipient content
    req = {"envelope_sender": "bounce@senders.test",
           "content": "From: news@rsa.test\r\nTo: {{email}}\r\nSubject: hi {{name}}\r\n\r\nDear {{name}}\r\n",
           "recipients": [{"email": "h1@rcpt.test", "name": "Ann"}, {"email": "h2@rcpt.test", "name": "Bob"}]}
    r = urllib.request.urlopen(urllib.request.Request("http://%s:%d/api/inject/v1" % harness.SALVOD_HTTP,
                                                      data=json.dumps(req).encode()), timeout=10)
    if json.loads(r.read())["success_count"] != 2:
        raise Fail("HTTP injection failed")
    # raw HTTP content keeps a bare CR as given: it goes out as a line end, and the
    # signature must cover the bytes that go out
    req = {"envelope_sender": "bounce@senders.test",
           "content": "From: news@rsa.test\r\nTo: h3@rcpt.test\r\nSubject: cr\r\n\r\na bare\rcarriage return\r\n",
           "recipients": [{"email": "h3@rcpt.test"}]}
    r = urllib.request.urlopen(urllib.request.Request("http://%s:%d/api/inject/v1" % harness.SALVOD_HTTP,
                                                      data=json.dumps(req).encode()), timeout=10)
    if json.loads(r.read())["success_count"] != 1:
        raise Fail("HTTP injection with a bare CR failed")
    want = {m.rcpts[0] for _, m in msgs} | {"h1@rcpt.test", "h2@rcpt.test", "h3@rcpt.test"}
    seen = harness.wait_for_recipients(env, want, 20, settle=0.3)

    def verify(data):
        return dkim.verify(data, dnsfunc=lambda name, timeout=5: dns.get(
            (name.decode() if isinstance(name, bytes) else name).rstrip("."), "").encode())

    counts = {"rsa": 0, "ed": 0, "none": 0}
    for frm, m in msgs:
        data = seen[m.rcpts[0]][0].data
        signed = b"DKIM-Signature:" in data
        if "nokey" in frm:
            if signed:
                raise Fail("mail from a domain without a key was signed")
            counts["none"] += 1
            continue
        if not signed or not verify(data):
            raise Fail("%s (From %s) does not verify:\n%s" % (m.mid, frm, data[:700].decode("utf-8", "replace")))
        counts["ed" if "ed25519" in data.split(b"\r\n\r\n")[0].decode() else "rsa"] += 1
        # broken in transit: must not verify
        if verify(data.replace(b"two leading dots", b"two leading dotz").replace(b"a bare", b"a bore")):
            raise Fail("a changed body still verifies: the check is not checking")
    for h in ("h1@rcpt.test", "h2@rcpt.test", "h3@rcpt.test"):
        data = seen[h][0].data
        if not verify(data):
            raise Fail("the HTTP-injected message for %s does not verify" % h)
    if b"a bare\r\ncarriage" not in seen["h3@rcpt.test"][0].data:
        raise Fail("the bare CR of the HTTP message did not go out as a line end")
    if counts != {"rsa": 4, "ed": 4, "none": 3}:
        raise Fail("signatures: %r" % counts)
    log("DKIM: %d rsa-sha256 and %d ed25519-sha256 signatures verify; unsigned without a key; "
        "HTTP per-recipient messages verify" % (counts["rsa"], counts["ed"]))


if __name__ == "__main__":
    harness.main([test_dkim])
