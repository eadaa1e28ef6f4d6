#!/usr/bin/python3
"""test_vmta_directives.py - PowerMTA's per-virtual-MTA directives with their meanings
(issue 18, item 3), against real peers (salvo-sink, dnsmasq):

  dkim_per_vmta  `domain-key` inside `<virtual-mta>` signs only that vmta's mail: a vmta
                 without a key sends unsigned, top-level keys serve every vmta, and mail
                 of a pool whose vmtas have different keys is signed at each delivery with
                 the delivering vmta's key (python3-dkim verifies; the selector matches
                 the source address the sink saw).
  dkim_restart   such a pool's message, deferred once, survives kill -9 unsigned and marked
                 (the spool keeps the mark): after the restart it goes out signed once, by
                 the vmta that sends it.
  by_source_ip   `default-virtual-mta by-smtp-source-ip` in <source>: mail that came to
                 listener address A goes out through the vmta whose smtp-source-host is A
                 (two listener addresses, two vmtas); a listener address no vmta has goes
                 through the default pool; X-Virtual-MTA still wins where it is honoured.
  queue_actions  reply actions `defer-queue` and `bounce-queue` in <smtp-pattern-list>: the
                 sink answers one recipient with a matching text while the queue's other
                 recipients wait (the sink's banner is slow, one session per queue); with
                 defer-queue none of the others is sent, each gets a transient record with
                 that reply (a 5xx as its 4xx) and stays queued; with bounce-queue each of
                 them, one waiting for a retry among them, is bounced with it.
  cold_vmta      `cold-virtual-mta C` in <virtual-mta W> with max-cold-virtual-mta-msg 4/day
                 in W's <domain *> (the User's Guide's layout): of W's mail, exactly 4 messages
                 per queue leave through C (the sink sees C's address), the rest through W.
  reroute        `reroute-to-virtual-mta B` in a top-level <domain rr.test> and in a <domain
                 nest.test> nested in <virtual-mta A>: that mail of A leaves through B; other
                 domains' mail through A.
  log_tls        `log-tls yes` in <domain *> and in <source>: smtp-trace.log gets one line per
                 TLS session, outbound (to a STARTTLS receiver) and inbound (smtplib's
                 STARTTLS), with protocol and cipher, and nothing else of those sessions;
                 a session in clear writes nothing.
  listener_tls   `smtp-listener ADDR tls=no`: that listener neither offers nor accepts
                 STARTTLS (502), another listener of the same salvod does.
"""

import base64
import os
import random
import re
import smtplib
import ssl
import subprocess
import time

import dkim

import harness
from harness import Fail, Injected, find_records, log, make_body

SINK = "127.0.0.2"
V1, V2, V3 = "127.0.0.3", "127.0.0.4", "127.0.0.5"


def keypair(d, name):
    pem = os.path.join(d, name + ".pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", pem], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return pem, "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()


VMTAS = """
<virtual-mta v1>
    smtp-source-host %s v1.itest
    domain-key s1,vm.test,%%(k1)s
</virtual-mta>
<virtual-mta v2>
    smtp-source-host %s v2.itest
    domain-key s2,vm.test,%%(k2)s
</virtual-mta>
<virtual-mta v3>
    smtp-source-host %s v3.itest
</virtual-mta>
<virtual-mta-pool mix>
    virtual-mta v1
    virtual-mta v2
</virtual-mta-pool>
""" % (V1, V2, V3)


def test_dkim_per_vmta(env):
    rng = random.Random(18)
    env.dns(mx={"rcpt.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": SINK}, check=[("rcpt.test", "MX")])
    env.salvo_sink("sink", SINK + ":25")
    k1, t1 = keypair(env.dir, "k1")
    k2, t2 = keypair(env.dir, "k2")
    kg, tg = keypair(env.dir, "kg")
    dns = {"s1._domainkey.vm.test": t1, "s2._domainkey.vm.test": t2, "g._domainkey.other.test": tg}
    extra = "domain-key g,other.test,%s\n" % kg + VMTAS % {"k1": k1, "k2": k2}
    # one message per connection, one connection per vmta: the pool's mail must use both
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-virtual-mta": "yes"}},
                          default_domain={"max-msg-per-connection": "1", "max-smtp-out": "1"}, extra=extra)
    d.start()
    plan = [("v1", "news@vm.test"), ("v3", "news@vm.test"), ("v3", "news@other.test"),
            ("v1", "news@other.test")] * 2 + [("mix", "news@vm.test")] * 16
    msgs = []
    for i, (pool, frm) in enumerate(plan):
        r = "d%d@rcpt.test" % i
        body = make_body(rng, "d%d" % i, "x@rcpt.test", [r], 800)
        body = body.replace(b"From: Itest Sender <x@rcpt.test>", ("From: %s\r\nX-Virtual-MTA: %s" % (frm, pool)).encode())
        msgs.append((pool, frm, Injected("d%d" % i, "bounce@senders.test", [r], body)))
    harness.inject([m for _, _, m in msgs], threads=2, per_conn=6)
    seen = harness.wait_for_recipients(env, {m.rcpts[0] for _, _, m in msgs}, 30, settle=0.3)

    def verify(data):
        return dkim.verify(data, dnsfunc=lambda name, timeout=5: dns.get(
            (name.decode() if isinstance(name, bytes) else name).rstrip("."), "").encode())

    by_ip = {V1: "s1", V2: "s2"}
    mix_ips = set()
    for pool, frm, m in msgs:
        if m.rcpts[0] not in seen:
            raise Fail("%s (pool %s) never arrived" % (m.mid, pool))
        a = seen[m.rcpts[0]][0]
        sigs = re.findall(rb"^DKIM-Signature:.*?\bs=([\w.-]+)", a.data.split(b"\r\n\r\n")[0], re.M | re.S)
        if pool == "v3" and frm.endswith("vm.test"):
            if sigs:
                raise Fail("v3 has no key for vm.test, yet %s went out signed (%r)" % (m.mid, sigs))
            continue
        want = "g" if frm.endswith("other.test") else by_ip.get(a.client_ip)
        if len(sigs) != 1 or sigs[0].decode() != want:
            raise Fail("%s via %s from %s (source %s): signatures %r, want one with s=%s:\n%s" % (
                m.mid, pool, frm, a.client_ip, sigs, want, a.data[:600].decode("utf-8", "replace")))
        if not verify(a.data):
            raise Fail("%s via %s (s=%s) does not verify" % (m.mid, pool, want))
        if pool == "mix":
            mix_ips.add(a.client_ip)
    if mix_ips != {V1, V2}:
        raise Fail("the pool's mail went out only through %r: both vmtas must carry it" % mix_ips)
    log("per-vmta domain-key: v1 signs with s1, v3 unsigned, top-level key in every vmta; "
        "pool mix signed at delivery by v1 (s1) and v2 (s2), all verify")


def test_dkim_restart(env):
    rng = random.Random(24)
    env.dns(mx={"rcpt.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": SINK}, check=[("rcpt.test", "MX")])
    sink = env.salvo_sink("sink", SINK + ":25", defer_first=["^late@"])
    k1, t1 = keypair(env.dir, "k1")
    k2, t2 = keypair(env.dir, "k2")
    kg, tg = keypair(env.dir, "kg")
    dns = {"s1._domainkey.vm.test": t1, "s2._domainkey.vm.test": t2}
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-virtual-mta": "yes"}},
                          default_domain={"retry-after": "1s"},
                          extra="domain-key g,other.test,%s\n" % kg + VMTAS % {"k1": k1, "k2": k2})
    d.start()
    r = "late@rcpt.test"
    body = make_body(rng, "late", "x@rcpt.test", [r], 500)
    body = body.replace(b"From: Itest Sender <x@rcpt.test>", b"From: news@vm.test\r\nX-Virtual-MTA: mix")
    harness.inject_all([Injected("late", "bounce@senders.test", [r], body)], threads=1)
    if not harness.wait_until(lambda: find_records(harness.read_acct(d.spool), type="transient", recipient=r), 10,
                              what="the first (deferred) attempt"):
        raise Fail("no transient record for %s" % r)
    d.kill9()
    d.start()
    seen = harness.wait_for_recipients(env, {r}, 15, settle=0.2)
    if r not in seen:
        raise Fail("%s was not delivered after the restart" % r)
    a = seen[r][0]
    sigs = re.findall(rb"^DKIM-Signature:.*?\bs=([\w.-]+)", a.data.split(b"\r\n\r\n")[0], re.M | re.S)
    want = {V1: b"s1", V2: b"s2"}.get(a.client_ip)
    if sigs != [want]:
        raise Fail("after kill -9: signatures %r from %s, want [%r]" % (sigs, a.client_ip, want))
    if not dkim.verify(a.data, dnsfunc=lambda name, timeout=5: dns.get(
            (name.decode() if isinstance(name, bytes) else name).rstrip("."), "").encode()):
        raise Fail("the message signed at delivery after the restart does not verify")
    log("per-vmta signing survives kill -9: signed once at delivery (s=%s), verifies" % want.decode())


def test_by_source_ip(env):
    rng = random.Random(19)
    env.dns(mx={"rcpt.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": SINK}, check=[("rcpt.test", "MX")])
    env.salvo_sink("sink", SINK + ":25")
    la, lb = ("127.0.0.6", 12525), ("127.0.0.7", 12525)
    extra = ("smtp-listener %s:%d\nsmtp-listener %s:%d\n" % (la + lb) +
             "<virtual-mta a>\n    smtp-source-host %s a.itest\n</virtual-mta>\n" % la[0] +
             "<virtual-mta b>\n    smtp-source-host %s b.itest\n</virtual-mta>\n" % lb[0])
    d = env.salvod_daemon(sources={"127.0.0.0/8": {"always-allow-relaying": "yes", "process-x-virtual-mta": "yes",
                                                   "default-virtual-mta": "by-smtp-source-ip"}},
                          default_domain={"connection-idle-timeout": "300ms"}, extra=extra)
    d.start()
    plan = [(la, None, la[0]), (lb, None, lb[0]), (harness.SALVOD_SMTP, None, "127.0.0.1"),
            (la, "b", lb[0])] * 3
    msgs = []
    for i, (addr, hdr, want) in enumerate(plan):
        r = "s%d@rcpt.test" % i
        body = make_body(rng, "s%d" % i, "x@rcpt.test", [r], 300)
        if hdr:
            body = body.replace(b"\r\nSubject:", ("\r\nX-Virtual-MTA: %s\r\nSubject:" % hdr).encode(), 1)
        m = Injected("s%d" % i, "bounce@senders.test", [r], body)
        harness.inject_all([m], threads=1, addr=addr)
        msgs.append((addr, want, m))
    seen = harness.wait_for_recipients(env, {m.rcpts[0] for _, _, m in msgs}, 20, settle=0.2)
    for addr, want, m in msgs:
        got = seen.get(m.rcpts[0])
        if not got:
            raise Fail("%s (to listener %s) never arrived" % (m.mid, addr[0]))
        if got[0].client_ip != want:
            raise Fail("%s came in on %s:%d and went out from %s, want %s" % (m.mid, addr[0], addr[1],
                                                                        got[0].client_ip, want))
    log("by-smtp-source-ip: mail to listener %s left from %s, to %s from %s, to 127.0.0.1 from the default "
        "pool; X-Virtual-MTA overrides" % (la[0], la[0], lb[0], lb[0]))


def test_queue_actions(env):
    rng = random.Random(20)
    env.dns(mx={"dq.test": [(10, "mx.sink.test")], "bq.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": SINK},
            check=[("dq.test", "MX"), ("bq.test", "MX")])
    # the banner waits, so the queue fills before the first transaction; then one at a time
    env.salvo_sink("sink", SINK + ":25", defer_first=["^slow@"],
                   extra_args=["--greeting-delay", "1200",
                               "--fault", "at=rcpt,match=^dtrigger@,reply=550 5.7.1 QSTOP deferred by policy",
                               "--fault", "at=rcpt,match=^btrigger@,reply=550 5.7.1 QBLOCK blocked"])
    extra = ("<smtp-pattern-list qp>\n    reply /QSTOP/ defer-queue\n    reply /QBLOCK/ bounce-queue\n"
             "</smtp-pattern-list>\n")
    d = env.salvod_daemon(default_domain={"retry-after": "1h", "bounce-after": "2h", "max-smtp-out": "1",
                                          "smtp-pattern-list": "qp"}, extra=extra)
    d.start()
    dq = ["dtrigger@dq.test"] + ["d%d@dq.test" % i for i in range(6)]
    bq = ["slow@bq.test", "btrigger@bq.test"] + ["b%d@bq.test" % i for i in range(6)]
    msgs = []
    for i, r in enumerate(dq + bq):
        msgs.append(Injected("q%d" % i, "bounce@senders.test", [r], make_body(rng, "q%d" % i, "x@rcpt.test", [r], 300)))
    harness.inject_all(msgs, threads=1, per_conn=len(msgs))

    def settled():
        recs = harness.read_acct(d.spool)
        return (len({r["recipient"] for r in recs if r["type"] in ("transient", "bounce", "delivery")
                     and r["recipient"].endswith("@dq.test")}) == len(dq) and
                len({r["recipient"] for r in recs if r["type"] == "bounce"
                     and r["recipient"].endswith("@bq.test")}) == len(bq))
    harness.wait_until(settled, 20.0, what="an outcome for every recipient")
    recs = harness.read_acct(d.spool)
    got = {a for x in env.arrivals() for a in x.rcpt_to}
    if got & set(dq + bq):
        raise Fail("mail of a deferred/bounced queue was delivered: %r" % sorted(got & set(dq + bq)))
    for r in dq:
        t = find_records(recs, type="transient", recipient=r)
        if len(t) != 1 or "QSTOP" not in t[0]["response"]["text"] or t[0]["response"]["code"] != 450:
            raise Fail("defer-queue: %s: transient records %r (want one, 450 ... QSTOP)" % (r, t))
        if find_records(recs, type="bounce", recipient=r):
            raise Fail("defer-queue bounced %s" % r)
    for r in bq[1:]:
        b = find_records(recs, type="bounce", recipient=r)
        if len(b) != 1 or "QBLOCK" not in b[0]["response"]["text"]:
            raise Fail("bounce-queue: %s: bounce records %r (want one with QBLOCK)" % (r, b))
    # slow@ got its 451 first and was waiting for its retry (1h): bounce-queue took it too
    slow = find_records(recs, type="transient", recipient="slow@bq.test")
    b = find_records(recs, type="bounce", recipient="slow@bq.test")
    if len(slow) != 1 or len(b) != 1 or "QBLOCK" not in b[0]["response"]["text"]:
        raise Fail("bounce-queue: the waiting recipient: transient %r, bounce %r" % (slow, b))
    log("defer-queue: %d recipients deferred with the matching reply, none sent; bounce-queue: %d bounced, "
        "the one waiting for a retry too" % (len(dq), len(bq)))


def test_cold_vmta(env):
    rng = random.Random(21)
    env.dns(mx={"rcpt.test": [(10, "mx.sink.test")], "other.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": SINK}, check=[("rcpt.test", "MX"), ("other.test", "MX")])
    env.salvo_sink("sink", SINK + ":25")
    warm, cold = "127.0.0.3", "127.0.0.4"
    # as in the User's Guide: the cap sits in the warm vmta's <domain *>
    extra = ("<virtual-mta w>\n    smtp-source-host %s w.itest\n    cold-virtual-mta c\n    <domain *>\n"
             "        max-cold-virtual-mta-msg 4/day\n    </domain>\n</virtual-mta>\n" % warm +
             "<virtual-mta c>\n    smtp-source-host %s c.itest\n</virtual-mta>\n" % cold)
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "w"}},
                          default_domain={"connection-idle-timeout": "300ms", "max-smtp-out": "1"}, extra=extra)
    d.start()
    rcpts = ["c%d@rcpt.test" % i for i in range(12)] + ["o%d@other.test" % i for i in range(6)]
    msgs = [Injected("c%d" % i, "bounce@senders.test", [r], make_body(rng, "c%d" % i, "x@rcpt.test", [r], 300))
            for i, r in enumerate(rcpts)]
    harness.inject_all(msgs, threads=1, per_conn=len(msgs))
    seen = harness.wait_for_recipients(env, set(rcpts), 20, settle=0.3)
    by = {}
    for r in rcpts:
        if r not in seen:
            raise Fail("%s never arrived" % r)
        dom = r.split("@")[1]
        by.setdefault((dom, seen[r][0].client_ip), []).append(r)
    counts = {k: len(v) for k, v in by.items()}
    want = {("rcpt.test", cold): 4, ("rcpt.test", warm): 8, ("other.test", cold): 4, ("other.test", warm): 2}
    if counts != want:
        raise Fail("messages per (queue, source): %r, want %r" % (counts, want))
    recs = harness.read_acct(d.spool)
    if len(find_records(recs, type="delivery", vmta="c")) != 8:
        raise Fail("the accounting log does not name the cold vmta for its 8 deliveries")
    log("cold-virtual-mta: 4 per queue through the cold vmta (max-cold-virtual-mta-msg 4/day), the rest warm")


def test_reroute(env):
    rng = random.Random(22)
    doms = ("rr.test", "nest.test", "rcpt.test")
    env.dns(mx={dm: [(10, "mx.sink.test")] for dm in doms}, a={"mx.sink.test": SINK},
            check=[(dm, "MX") for dm in doms])
    env.salvo_sink("sink", SINK + ":25")
    a, b = "127.0.0.3", "127.0.0.4"
    extra = ("<virtual-mta a>\n    smtp-source-host %s a.itest\n    <domain nest.test>\n"
             "        reroute-to-virtual-mta b\n    </domain>\n</virtual-mta>\n" % a +
             "<virtual-mta b>\n    smtp-source-host %s b.itest\n</virtual-mta>\n" % b +
             "<domain rr.test>\n    reroute-to-virtual-mta b\n</domain>\n")
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "a"}},
                          extra=extra)
    d.start()
    rcpts = ["r%d@%s" % (i, dm) for dm in doms for i in range(4)]
    msgs = [Injected("r%d" % i, "bounce@senders.test", [r], make_body(rng, "r%d" % i, "x@rcpt.test", [r], 300))
            for i, r in enumerate(rcpts)]
    harness.inject_all(msgs, threads=1, per_conn=len(msgs))
    seen = harness.wait_for_recipients(env, set(rcpts), 20, settle=0.2)
    for r in rcpts:
        want = a if r.endswith("@rcpt.test") else b
        if r not in seen:
            raise Fail("%s never arrived" % r)
        if seen[r][0].client_ip != want:
            raise Fail("%s left from %s, want %s" % (r, seen[r][0].client_ip, want))
    log("reroute-to-virtual-mta: rr.test (top level) and nest.test (in vmta a) leave through b, rcpt.test through a")


def test_log_tls(env):
    from test_tls_out import Receiver  # a STARTTLS receiver (salvo-sink has no TLS)
    rng = random.Random(23)
    env.dns(mx={"tls.test": [(10, "mx.rx.test")], "plain.test": [(10, "mx.sink.test")]},
            a={"mx.rx.test": "127.0.0.3", "mx.sink.test": SINK}, check=[("tls.test", "MX")])
    sink = env.salvo_sink("sink", SINK + ":25")
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=rx.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
    rx = Receiver(("127.0.0.3", 25), cert, key)
    try:
        d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "log-tls": "yes"}},
                              default_domain={"log-tls": "yes"},
                              extra="tls-certificate %s\ntls-private-key %s\n" % (cert, key))
        d.start()
        msgs = [Injected("t%d" % i, "bounce@senders.test", [r], make_body(rng, "t%d" % i, "x@rcpt.test", [r], 200))
                for i, r in enumerate(["a@tls.test", "b@plain.test"])]
        harness.inject_all(msgs[1:], threads=1)          # in clear: no line
        with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10) as s:
            s.ehlo("tls-client.test")
            c = ssl.create_default_context()
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE
            s.starttls(context=c)
            s.ehlo("tls-client.test")
            s.sendmail(msgs[0].sender, msgs[0].rcpts, msgs[0].data)
        path = os.path.join(d.spool, "log", "smtp-trace.log")

        def text():
            try:
                with open(path, errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                return ""
        if not harness.wait_until(lambda: rx.got and (sink.stats() or {}).get("messages", 0) >= 1 and
                                  re.search(r" out \S+ \S+ tls ", text()), 20, what="TLS delivery and its line"):
            raise Fail("no outbound tls line (receiver got %d):\n%s" % (len(rx.got), text()))
        time.sleep(0.5)
        lines = text().splitlines()
        ins = [l for l in lines if re.match(r"\S+Z s\d+ in ", l)]
        outs = [l for l in lines if re.match(r"\S+Z s\d+ out ", l)]
        if len(lines) != 2 or len(ins) != 1 or len(outs) != 1:
            raise Fail("want exactly one inbound and one outbound tls line:\n%s" % "\n".join(lines))
        for l in lines:
            if not re.search(r" tls TLSv1\.[23] \S+", l):
                raise Fail("not a tls line with protocol and cipher: %r" % l)
        if " 127.0.0.3:25 " not in outs[0] and "127.0.0.3" not in outs[0]:
            raise Fail("the outbound tls line does not name the receiver: %r" % outs[0])
    finally:
        rx.close()
    log("log-tls: one line per TLS session (%s | %s)" % (ins[0].split(" tls ", 1)[1], outs[0].split(" tls ", 1)[1]))


def test_listener_tls(env):
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=salvo.itest", "-keyout", key, "-out", cert], check=True, capture_output=True)
    plain = ("127.0.0.6", 12525)
    # the harness's own listener (127.0.0.1) offers STARTTLS; a second one says tls=no
    d = env.salvod_daemon(extra="tls-certificate %s\ntls-private-key %s\n"
                                "smtp-listener %s:%d tls=no\n" % ((cert, key) + plain))
    d.start()
    for addr, offered in ((harness.SALVOD_SMTP, True), (plain, False)):
        with smtplib.SMTP(*addr, timeout=10) as s:
            s.ehlo("client.test")
            if s.has_extn("starttls") != offered:
                raise Fail("%s:%d: STARTTLS %s, want %s" % (addr + ("offered" if not offered else "not offered",
                                                                    "the opposite")))
            if offered:
                c = ssl.create_default_context()
                c.check_hostname = False
                c.verify_mode = ssl.CERT_NONE
                s.starttls(context=c)
            else:
                code, text = s.docmd("STARTTLS")
                if code != 502:
                    raise Fail("STARTTLS on the tls=no listener: %d %s, want 502" % (code, text))
    log("smtp-listener tls=no: no STARTTLS there (502), offered on the other listener")


if __name__ == "__main__":
    harness.main([test_dkim_per_vmta, test_dkim_restart, test_by_source_ip, test_queue_actions, test_cold_vmta, test_reroute, test_log_tls, test_listener_tls])
