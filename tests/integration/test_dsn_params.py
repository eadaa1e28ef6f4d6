#!/usr/bin/python3
"""test_dsn_params.py - RFC 3461 DSN parameters (NOTIFY, ORCPT, RET, ENVID) end to end.

  notify    smtplib injects with mail_options/rcpt_options to recipients at a salvo-sink
            that rejects gone*@ (550), defers slow@ once (451) and has no DSN extension;
            the sender's own domain is another salvo-sink that collects Salvo's DSNs:
              NOTIFY=NEVER          bounced, logged, suppressed, no DSN
              NOTIFY=FAILURE + RET=FULL + ORCPT  failure DSN with Original-Recipient
                                    (xtext-decoded) and the whole message (message/rfc822)
              NOTIFY=SUCCESS,DELAY  bounced without a DSN (no FAILURE)
              no NOTIFY             failure DSN as before, headers only
              NOTIFY=DELAY          a "delayed" DSN at the first deferral, then delivered
              NOTIFY=SUCCESS        delivered to a host without DSN: a "relayed" DSN
            a Postfix smtp-sink (it offers DSN) receives RET/ENVID on MAIL and NOTIFY/ORCPT
            on RCPT as given, and no relayed DSN is sent for it; the CSV acct-file's orcpt
            column and the JSON records' orcpt carry the ORCPT; a malformed ORCPT or
            NOTIFY=NEVER,SUCCESS is refused with 555 and queues nothing
            (EHLO offers DSN; a RCPT line of 1012 octets with a long ORCPT is taken whole)
  durable   NOTIFY=SUCCESS,DELAY and ORCPT survive a deferral and kill -9: the first
            deferral sends a "delayed" DSN, the delivery after the restart a "relayed" one,
            both with the Original-Recipient
  verp      with bounce-domain (VERP return paths) NOTIFY=SUCCESS to a host that offers
            DSN still gets Salvo's "relayed" DSN: the host's own would come back to Salvo
  old_spool a spool written by the previous salvod (SALVOD_OLD, else the main checkout's
            build; SKIP when there is none) is delivered after a restart with this one, and
            a recipient with DSN parameters spooled by this one is delivered by the older one
"""

import csv
import email
import email.policy
import io
import os
import smtplib
import urllib.error
import urllib.request

import harness
from harness import Fail, find_records, log, wait_until

SENDER = "owner@senders.test"


def body(mid, rcpt):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: dsn-params %s\r\nMessage-ID: <%s@senders.test>\r\n\r\n"
            "body line of %s\r\n" % (SENDER, rcpt, mid, mid, mid)).encode()


def send(mid, rcpt, mail_opts=(), rcpt_opts=()):
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=15) as s:
        s.ehlo("client.test")
        code, msg = s.mail(SENDER, list(mail_opts))
        if code != 250:
            raise Fail("MAIL %s: %d %r" % (mid, code, msg))
        code, msg = s.rcpt(rcpt, list(rcpt_opts))
        if code != 250:
            raise Fail("RCPT %s %r: %d %r" % (rcpt, rcpt_opts, code, msg))
        code, msg = s.data(body(mid, rcpt))
        if code != 250:
            raise Fail("DATA %s: %d %r" % (mid, code, msg))


def refused(rcpt_opts, want=555):
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=15) as s:
        s.ehlo("client.test")
        s.mail(SENDER)
        code, msg = s.rcpt("bad@c.test", list(rcpt_opts))
        if code != want:
            raise Fail("RCPT with %r answered %d %r, not %d" % (rcpt_opts, code, msg, want))


def dsn_parts(data):
    """(per-recipient status fields as dicts, content type of the third part, its text)."""
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    parts = m.get_payload()
    if not m.is_multipart() or len(parts) != 3:
        raise Fail("not a 3-part report:\n%s" % data.decode(errors="replace"))
    status = parts[1].get_payload()
    if isinstance(status, list):          # message/delivery-status: blocks as messages
        blocks = [dict(b.items()) for b in status]
    else:
        blocks = [dict(ln.split(": ", 1) for ln in blk.splitlines() if ": " in ln)
                  for blk in status.replace("\r\n", "\n").split("\n\n")]
    return blocks, parts[2].get_content_type(), parts[2].as_string()


def setup(env, extra=""):
    env.dns(mx={"c.test": [(10, "mx.c.test")], "p.test": [(10, "mx.p.test")],
                "senders.test": [(10, "mx.senders.test")]},
            a={"mx.c.test": "127.0.0.2", "mx.senders.test": "127.0.0.3", "mx.p.test": "127.0.0.4"},
            check=[("c.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", extra_args=[
        "--fault", r"at=rcpt,match=^gone,reply=550 5.1.1 no such user",
        "--fault", r"at=rcpt,match=^slow@,first=1,reply=451 4.7.1 slow down"])
    back = env.salvo_sink("back", "127.0.0.3:25")
    return sink, back


def test_notify(env):
    sink, back = setup(env)
    pfx = env.postfix_sink("psink", "127.0.0.4:25")
    acct = os.path.join(env.dir, "acct.csv")
    d = env.salvod_daemon(default_domain={"retry-after": "1s"},
                          extra="<acct-file %s>\n  records d,b\n</acct-file>" % acct)
    d.start()
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=15) as s:
        s.ehlo("client.test")
        if not s.has_extn("dsn"):
            raise Fail("EHLO does not offer DSN: %r" % s.esmtp_features)
    long_orcpt = "rfc822;" + "L" * 440 + "@orig.test"
    refused(["ORCPT=rfc822;" + "L" * 1000 + "@orig.test"], want=500)   # past 512 + 500
    refused(["ORCPT=rfc822;a+4"])
    refused(["ORCPT=rfc822;a+0D+0Ab"])
    refused(["NOTIFY=NEVER,SUCCESS"])
    send("m1", "gone1@c.test", ["RET=HDRS", "ENVID=env+2B1"], ["NOTIFY=NEVER", "ORCPT=rfc822;never@orig.test"])
    send("m2", "gone2@c.test", ["RET=FULL"], ["NOTIFY=FAILURE", "ORCPT=rfc822;Fail+2Bone@orig.test"])
    send("m3", "gone3@c.test", [], ["NOTIFY=SUCCESS,DELAY"])
    send("m4", "gone4@c.test")
    send("m5", "slow@c.test", [], ["NOTIFY=DELAY", "ORCPT=rfc822;slow@orig.test"])
    send("m6", "ok@c.test", [], ["NOTIFY=SUCCESS", "ORCPT=rfc822;ok@orig.test"])
    send("m7", "dsn@p.test", ["RET=HDRS", "ENVID=QQ+2B7"],
         ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;p+2Bone@orig.test"])
    send("m8", "long@c.test", [], ["NOTIFY=FAILURE", "ORCPT=" + long_orcpt])
    harness.wait_for_records(env, lambda r: len(find_records(r, type="bounce", sender=SENDER)) >= 4 and
                             len(find_records(r, type="delivery", sender=SENDER)) >= 4, 30,
                             what="four bounces and four deliveries")
    # Salvo's DSNs: four (m2 failed, m4 failed, m5 delayed, m6 relayed), to the sender
    def dsns():
        return [a for a in back.arrivals() if a.rcpt_to == [SENDER]]
    wait_until(lambda: len(dsns()) >= 4, 20, what="four DSNs at the sender's host")
    harness.wait_for_records(env, lambda r: len(find_records(r, type="delivery", sender="")) >= 4, 10,
                             what="the DSNs' deliveries")
    # nothing more follows (a DSN made with the bounces above would be out by now)
    if wait_until(lambda: len(dsns()) > 4, 1.5, what="a fifth DSN"):
        raise Fail("more than four DSNs: %r" % [a.data[:400] for a in dsns()])
    got = {}
    for a in dsns():
        if a.mail_from != "":
            raise Fail("a DSN with a return path: %r" % a.mail_from)
        blocks, ctype, third = dsn_parts(a.data)
        for b in blocks:
            if "Final-Recipient" in b:
                got.setdefault(b["Final-Recipient"].split(";", 1)[1].strip(), []).append((b, ctype, third, a))
    log("DSNs for:", sorted(got))
    if sorted(got) != ["gone2@c.test", "gone4@c.test", "ok@c.test", "slow@c.test"]:
        raise Fail("DSNs for %r; want gone2, gone4 (failed), slow (delayed), ok (relayed)" % sorted(got))
    if any(len(v) != 1 for v in got.values()):
        raise Fail("more than one DSN for a recipient: %r" % {k: len(v) for k, v in got.items()})
    b, ctype, third, _ = got["gone2@c.test"][0]
    if b.get("Action") != "failed" or b.get("Original-Recipient") != "rfc822;Fail+one@orig.test" \
            or ctype != "message/rfc822" or "body line of m2" not in third:
        raise Fail("gone2's DSN (NOTIFY=FAILURE, RET=FULL, ORCPT): %r %s\n%s" % (b, ctype, third))
    b, ctype, third, _ = got["gone4@c.test"][0]
    if b.get("Action") != "failed" or "Original-Recipient" in b or ctype != "text/rfc822-headers" \
            or "body line of m4" in third or "dsn-params m4" not in third:
        raise Fail("gone4's DSN (no parameters): %r %s\n%s" % (b, ctype, third))
    b, ctype, _, _ = got["slow@c.test"][0]
    if b.get("Action") != "delayed" or b.get("Original-Recipient") != "rfc822;slow@orig.test" \
            or not b.get("Status", "").startswith("4."):
        raise Fail("slow's DSN (NOTIFY=DELAY): %r" % b)
    b, ctype, _, a = got["ok@c.test"][0]
    if b.get("Action") != "relayed" or b.get("Original-Recipient") != "rfc822;ok@orig.test" \
            or not b.get("Status", "").startswith("2.") or b"Successful Mail Delivery Report" not in a.data:
        raise Fail("ok's DSN (NOTIFY=SUCCESS to a host without DSN): %r" % b)
    # the host that offers DSN got the parameters as given
    raw = b"".join(open(p, "rb").read() for p in sorted(
        os.path.join(pfx.dump, f) for f in os.listdir(pfx.dump)))
    if b"RET=HDRS" not in raw or b"ENVID=QQ+2B7" not in raw:
        raise Fail("smtp-sink's MAIL had no RET/ENVID:\n%s" % raw[:600].decode(errors="replace"))
    if b"NOTIFY=SUCCESS,FAILURE" not in raw or b"ORCPT=rfc822;p+2Bone@orig.test" not in raw:
        raise Fail("smtp-sink's RCPT had no NOTIFY/ORCPT:\n%s" % raw[:600].decode(errors="replace"))
    recs = d.acct()
    b1 = find_records(recs, type="bounce", recipient="gone1@c.test")
    if not b1 or b1[0].get("orcpt") != "rfc822;never@orig.test" or b1[0].get("dsn_id") \
            or b1[0].get("envid") != "env+1":
        raise Fail("gone1's bounce record (NOTIFY=NEVER): %r" % b1)
    try:
        with urllib.request.urlopen("http://%s:%d/api/v1/suppressions/gone1@c.test" % harness.SALVOD_HTTP,
                                    timeout=10) as r:
            st = r.status
    except urllib.error.HTTPError as e:
        st = e.code
    if st != 200:
        raise Fail("gone1 (NOTIFY=NEVER, 550 5.1.1) is not suppressed: HTTP %d" % st)
    b3 = find_records(recs, type="bounce", recipient="gone3@c.test")
    if not b3 or b3[0].get("dsn_id") or "orcpt" in b3[0]:
        raise Fail("gone3's bounce record: %r" % b3)
    if not harness.wait_until(lambda: os.path.exists(acct) and "gone2@c.test" in open(acct).read(), 10,
                              what="the CSV rows"):
        raise Fail("no acct.csv rows")
    rows = list(csv.DictReader(io.StringIO(open(acct, newline="").read())))
    by = {(r["type"], r["rcpt"]): r for r in rows}
    want = {("b", "gone2@c.test"): "rfc822;Fail+one@orig.test", ("b", "gone4@c.test"): "",
            ("d", "ok@c.test"): "rfc822;ok@orig.test", ("d", "dsn@p.test"): "rfc822;p+one@orig.test",
            ("d", "long@c.test"): long_orcpt}
    for k, v in want.items():
        if k not in by or by[k]["orcpt"] != v:
            raise Fail("CSV %r: orcpt %r, want %r (rows %r)" % (k, by.get(k, {}).get("orcpt"), v, sorted(by)))
    if not find_records(recs, type="reception", recipient="ok@c.test")[0].get("orcpt"):
        raise Fail("no orcpt in ok's reception record")


def test_durable(env):
    sink, back = setup(env)
    d = env.salvod_daemon(domains={"c.test": {"route": "[127.0.0.9]:25"}},
                          default_domain={"retry-after": "1s"})
    d.start()
    send("k1", "later@c.test", ["RET=FULL"], ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Later+2Bme@orig.test"])
    harness.wait_for_records(env, lambda r: len(find_records(r, type="transient", recipient="later@c.test")) >= 2,
                             20, what="two deferrals (nobody listens on 127.0.0.9)")

    def dsns():
        out = []
        for a in back.arrivals():
            if a.rcpt_to == [SENDER]:
                out += [b for b in dsn_parts(a.data)[0] if "Final-Recipient" in b]
        return out
    if not wait_until(lambda: dsns(), 20, what="the delayed DSN"):
        raise Fail("no delayed DSN")
    d.kill9()
    with open(d.config) as f:
        text = f.read().replace("[127.0.0.9]:25", "[127.0.0.2]:25")
    with open(d.config, "w") as f:
        f.write(text)
    d.start()
    harness.wait_for_recipients(env, {"later@c.test"}, 30)
    wait_until(lambda: len(dsns()) >= 2, 20, what="the relayed DSN")
    got = sorted((b.get("Action"), b.get("Original-Recipient")) for b in dsns())
    want = [("delayed", "rfc822;Later+me@orig.test"), ("relayed", "rfc822;Later+me@orig.test")]
    if got != want:
        raise Fail("DSNs after a deferral and kill -9: %r, want %r" % (got, want))


def test_verp(env):
    """With bounce-domain the return path is VERP: the next hop's own DSNs come back to
    Salvo, not to the sender, so NOTIFY=SUCCESS gets Salvo's "relayed" DSN even from a
    host that offers DSN (NOTIFY still goes on to it)."""
    sink, back = setup(env)
    pfx = env.postfix_sink("psink", "127.0.0.4:25")
    d = env.salvod_daemon(extra="bounce-domain bounces.salvo.test")
    d.start()
    send("v1", "v@p.test", [], ["NOTIFY=SUCCESS", "ORCPT=rfc822;v+2Bw@orig.test"])
    harness.wait_for_records(env, lambda r: find_records(r, type="delivery", recipient="v@p.test"), 20,
                             what="the delivery")

    def dsns():
        return [a for a in back.arrivals() if a.rcpt_to == [SENDER]]
    if not wait_until(dsns, 20, what="the relayed DSN"):
        raise Fail("no relayed DSN with a VERP return path")
    b = [b for b in dsn_parts(dsns()[0].data)[0] if "Final-Recipient" in b]
    if [(x.get("Action"), x.get("Original-Recipient")) for x in b] != [("relayed", "rfc822;v+w@orig.test")]:
        raise Fail("the relayed DSN: %r" % b)
    a = pfx.arrivals()
    raw = open(a[0].file, "rb").read() if a else b""
    if not a or not a[0].mail_from.endswith("@bounces.salvo.test") or b"NOTIFY=SUCCESS" not in raw:
        raise Fail("smtp-sink's transaction (VERP, NOTIFY): %r" % raw[:400])


def test_old_spool(env):
    old = os.environ.get("SALVOD_OLD") or os.path.join(os.path.dirname(harness.SRC_ROOT), "main", "build",
                                                         "engine", "salvod")
    if not os.access(old, os.X_OK) or os.path.realpath(old) == os.path.realpath(env.salvod):
        raise harness.Skip("no older salvod at %s (set SALVOD_OLD)" % old)
    sink, back = setup(env)
    d = env.salvod_daemon(domains={"c.test": {"route": "[127.0.0.9]:25"}},
                          default_domain={"retry-after": "1s"})
    new = env.salvod
    env.salvod = old
    try:
        d.start()
        for i in range(3):
            send("o%d" % i, "ok%d@c.test" % i)
        harness.wait_for_records(env, lambda r: len(find_records(r, type="transient")) >= 3, 20,
                                 what="the old salvod's deferrals")
        d.stop()
    finally:
        env.salvod = new
    # the same spool, this salvod, and the route now reaches the sink
    with open(d.config) as f:
        text = f.read().replace("route                    [127.0.0.9]:25", "route                    [127.0.0.2]:25")
    with open(d.config, "w") as f:
        f.write(text)
    d.start()
    harness.wait_for_recipients(env, {"ok0@c.test", "ok1@c.test", "ok2@c.test"}, 30)
    # and back: records with NOTIFY/ORCPT/RET, deferred by this salvod, go out with the
    # older one (it skips what it does not know)
    d.stop()
    with open(d.config, "w") as f:
        f.write(text.replace("[127.0.0.2]:25", "[127.0.0.9]:25"))
    d.start()
    send("n0", "new0@c.test", ["RET=FULL", "ENVID=e0"], ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;n+2B0@orig.test"])
    harness.wait_for_records(env, lambda r: find_records(r, type="transient", recipient="new0@c.test"), 20,
                             what="this salvod's deferral")
    d.stop()
    with open(d.config, "w") as f:
        f.write(text)
    env.salvod = old
    try:
        d.start()
        harness.wait_for_recipients(env, {"new0@c.test"}, 30)
        d.stop()
    finally:
        env.salvod = new


if __name__ == "__main__":
    raise SystemExit(harness.run_tests([test_notify, test_durable, test_verp, test_old_spool], needs_postfix=True))
