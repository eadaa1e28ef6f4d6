#!/usr/bin/python3
"""test_faults.py - the outcomes of delivery, one domain per fault, all in one salvod:

  defer.test     sink answers 451 to the first RCPT per address, 250 after: a
                 transient record (451), then delivery on retry (attempt 2)
  reject.test    sink answers 550 5.1.1: a bounce record (550), and a DSN
                 (multipart/report, message/delivery-status: the recipient, Action
                 failed, Status 5.1.1) to the envelope sender at senders.test
  reject.test    the same from the null sender <>: bounced, and no DSN at all
  twomx.test     MX 10 -> 127.0.0.9 (nothing listens), MX 20 -> a sink: delivered via
                 the second host (delivery record mx_ip 127.0.0.3)
  dead.test      its only MX does not listen: transient records, never a bounce
  nullmx.test    null MX (RFC 7505, "MX 0 ."): bounced at once with a 5.x.x status,
                 and a DSN to the sender
  nxdomain.test  no records at all (NXDOMAIN): bounced (5.1.2 or similar)
  aonly.test     no MX, an A record (implicit MX, RFC 5321 5.1): delivered there
  datadefer.test sink answers 451 at the end of DATA the first time: retried, delivered
sinkDefer (defer.test, datadefer.test) runs with --no-chunking, so those go by DATA;
the other sinks offer CHUNKING and get everything by BDAT (both checked). Two more
faults hit the BDAT chunk itself:
  chunkreject.test  554 5.7.1 to the chunk: a bounce record with 554, not the sink's
                    earlier 250s
  chunkdrop.test    421 to the chunk and the connection closes the first time:
                    transient 421, delivered on the retry (attempt 2), exactly once
"""

import email
import email.policy
import random
import time

import harness
from harness import Fail, Injected, find_records, log, make_body

SENDER = "owner@senders.test"


def _deliv_status_blocks(part):
    """The header blocks of a message/delivery-status part (per-message first)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [dict((k.lower(), v.strip()) for k, v in p.items()) for p in payload]
    text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    blocks = []
    for chunk in text.replace("\r\n", "\n").split("\n\n"):
        m = email.message_from_string(chunk)
        if len(m):
            blocks.append(dict((k.lower(), v.strip()) for k, v in m.items()))
    return blocks


def check_dsn(arrival, rcpt, status_prefix):
    """The DSN's problems, as a list of strings."""
    p = []
    if arrival.mail_from not in ("", None):
        p.append("DSN envelope sender is %r, must be <>" % arrival.mail_from)
    data = arrival.data
    # skip salvod's own trace header(s): parse the whole thing, email handles it
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    ct = msg.get_content_type()
    if ct != "multipart/report":
        return p + ["DSN Content-Type is %r, want multipart/report" % msg.get("Content-Type")]
    if (msg.get_param("report-type") or "").lower() != "delivery-status":
        p.append("report-type is %r" % msg.get_param("report-type"))
    parts = msg.get_payload()
    if not isinstance(parts, list) or len(parts) < 2:
        return p + ["multipart/report with %r parts" % (len(parts) if isinstance(parts, list) else parts)]
    if parts[0].get_content_maintype() != "text":
        p.append("first part is %s, want a human-readable text part" % parts[0].get_content_type())
    ds = [x for x in parts if x.get_content_type() == "message/delivery-status"]
    if not ds:
        return p + ["no message/delivery-status part (parts: %s)" % [x.get_content_type() for x in parts]]
    blocks = _deliv_status_blocks(ds[0])
    per_rcpt = [b for b in blocks if "final-recipient" in b or "original-recipient" in b]
    if not per_rcpt:
        return p + ["no per-recipient block in the delivery-status: %r" % blocks]
    mine = [b for b in per_rcpt if rcpt.lower() in (b.get("final-recipient", "") + b.get("original-recipient", "")).lower()]
    if not mine:
        return p + ["no per-recipient block names %s: %r" % (rcpt, per_rcpt)]
    b = mine[0]
    if b.get("action", "").lower() != "failed":
        p.append("Action %r, want failed" % b.get("action"))
    if not b.get("status", "").startswith(status_prefix):
        p.append("Status %r, want %s" % (b.get("status"), status_prefix))
    if not b.get("final-recipient", "").lower().startswith("rfc822;"):
        p.append("Final-Recipient %r lacks the rfc822; address type" % b.get("final-recipient"))
    if "reporting-mta" not in blocks[0]:
        p.append("per-message block has no Reporting-MTA: %r" % blocks[0])
    return p


def test_faults(env):
    mx = {
        "defer.test": [(10, "mx-defer.test")],
        "datadefer.test": [(10, "mx-defer.test")],
        "reject.test": [(10, "mx-reject.test")],
        "twomx.test": [(10, "mx-dead.test"), (20, "mx-good.test")],
        "dead.test": [(10, "mx-dead2.test")],
        "senders.test": [(10, "mx-senders.test")],
        "nullmx.test": [(0, ".")],
        "chunkreject.test": [(10, "mx-reject.test")],
        "chunkdrop.test": [(10, "mx-reject.test")],
    }
    a = {
        "mx-defer.test": "127.0.0.2",
        "mx-good.test": "127.0.0.3",
        "mx-reject.test": "127.0.0.4",
        "mx-senders.test": "127.0.0.6",
        "mx-dead.test": "127.0.0.9",
        "mx-dead2.test": "127.0.0.10",
        "aonly.test": "127.0.0.3",
    }
    env.dns(mx=mx, a=a, check=[("twomx.test", "MX"), ("nullmx.test", "MX"), ("aonly.test", "A")])
    rc, ans = harness.dns_query("nullmx.test", "MX")
    if ans != [(0, "")]:
        raise Fail("dnsmasq does not serve the null MX: %r" % ans)
    s_defer = env.salvo_sink("sinkDefer", "127.0.0.2:25", defer_first=[r"@defer\.test$"],
                             defer_data_first=[r"@datadefer\.test$"], extra_args=["--no-chunking"])
    s_good = env.salvo_sink("sinkGood", "127.0.0.3:25")
    s_reject = env.salvo_sink("sinkReject", "127.0.0.4:25", reject=[r"@reject\.test$"], extra_args=[
        "--fault", r"at=data,match=@chunkreject\.test$,reply=554 5.7.1 content refused",
        "--fault", r"at=data,match=@chunkdrop\.test$,first=1,close,reply=421 4.4.2 closing mid-message"])
    s_senders = env.salvo_sink("sinkSenders", "127.0.0.6:25")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    d.start()

    rng = random.Random(5)

    def msg(mid, sender, rcpts):
        return Injected(mid, sender, rcpts, make_body(rng, mid, sender or "x@y", rcpts, size=2000))
    msgs = {
        "defer": msg("defer", SENDER, ["u1@defer.test", "u2@defer.test"]),
        "datadefer": msg("datadefer", SENDER, ["v1@datadefer.test"]),
        "reject": msg("reject", SENDER, ["gone@reject.test"]),
        "reject_null": msg("rejectnull", "", ["gone2@reject.test"]),
        "twomx": msg("twomx", SENDER, ["w1@twomx.test"]),
        "dead": msg("dead", SENDER, ["z1@dead.test"]),
        "nullmx": msg("nullmx", SENDER, ["n1@nullmx.test"]),
        "nxdomain": msg("nxdomain", SENDER, ["x1@nxdomain.test"]),
        "aonly": msg("aonly", SENDER, ["a1@aonly.test"]),
        "chunkreject": msg("chunkreject", SENDER, ["c1@chunkreject.test"]),
        "chunkdrop": msg("chunkdrop", SENDER, ["c2@chunkdrop.test"]),
    }
    harness.inject(list(msgs.values()), threads=2, per_conn=5, timeout=20)
    bad = {k: m.error for k, m in msgs.items() if m.error}
    if bad:
        raise Fail("not acknowledged: %r" % bad)

    def settled(rs):
        dl = {(r.get("recipient") or "").lower() for r in find_records(rs, type="delivery")}
        bo = {(r.get("recipient") or "").lower() for r in find_records(rs, type="bounce")}
        tr = {(r.get("recipient") or "").lower() for r in find_records(rs, type="transient")}
        return ({"u1@defer.test", "u2@defer.test", "v1@datadefer.test", "w1@twomx.test", "a1@aonly.test",
                 "c2@chunkdrop.test"} <= dl
                and {"gone@reject.test", "gone2@reject.test", "n1@nullmx.test", "x1@nxdomain.test",
                     "c1@chunkreject.test"} <= bo
                and "z1@dead.test" in tr)
    recs = harness.wait_for_records(env, settled, timeout=25, what="all fault outcomes")
    # DSNs: one each for reject (sender), nullmx, nxdomain and chunkreject; wait for them
    harness.wait_until(lambda: len(s_senders.arrivals()) >= 4, 10, what="DSNs")
    time.sleep(2.5)      # time for a wrong extra DSN or a bounce of dead.test to show up
    recs = d.acct()
    problems = []

    def recs_for(rcpt, t=None):
        return [r for r in recs if (r.get("recipient") or "").lower() == rcpt and (t is None or r.get("type") == t)]

    def code(r):
        return (r.get("response") or {}).get("code")

    def enh(r):
        return str((r.get("response") or {}).get("enhanced") or "")

    # (a) 451 then 250
    for rc_ in ("u1@defer.test", "u2@defer.test"):
        tr = recs_for(rc_, "transient")
        dl = recs_for(rc_, "delivery")
        if not tr or code(tr[0]) != 451:
            problems.append("(a) %s: want a transient record with code 451, got %s" % (rc_, tr))
        if len(dl) != 1 or dl[0].get("attempt") != 2:
            problems.append("(a) %s: want one delivery record with attempt 2, got %s" % (rc_, dl))
        if recs_for(rc_, "bounce"):
            problems.append("(a) %s bounced: %s" % (rc_, recs_for(rc_, "bounce")))
    got = [x for x in s_defer.arrivals() if "u1@defer.test" in x.rcpt_to or "u2@defer.test" in x.rcpt_to]
    if sum(len([r for r in x.rcpt_to if r.endswith("@defer.test")]) for x in got) != 2:
        problems.append("(a) sinkDefer arrivals for defer.test: %r" % got)
    # 451 at end of DATA, then 250
    tr = recs_for("v1@datadefer.test", "transient")
    dl = recs_for("v1@datadefer.test", "delivery")
    if not tr or code(tr[0]) != 451:
        problems.append("(a') v1@datadefer.test: want a transient 451 at DATA, got %s" % tr)
    if len(dl) != 1:
        problems.append("(a') v1@datadefer.test: want one delivery record, got %s" % dl)
    if len([x for x in s_defer.arrivals() if "v1@datadefer.test" in x.rcpt_to]) != 1:
        problems.append("(a') v1@datadefer.test did not arrive exactly once at sinkDefer")

    # (b) 550 -> bounce + DSN to the sender; null sender -> no DSN
    bo = recs_for("gone@reject.test", "bounce")
    if len(bo) != 1 or code(bo[0]) != 550:
        problems.append("(b) gone@reject.test: want one bounce record with code 550, got %s" % bo)
    if recs_for("gone@reject.test", "delivery"):
        problems.append("(b) gone@reject.test has a delivery record")
    bo = recs_for("gone2@reject.test", "bounce")
    if len(bo) != 1 or code(bo[0]) != 550:
        problems.append("(b) gone2@reject.test (null sender): want one bounce record with code 550, got %s" % bo)
    dsns = s_senders.arrivals()
    for x in dsns:
        if x.rcpt_to != [SENDER]:
            problems.append("(b) unexpected recipient(s) at senders.test: %r" % x.rcpt_to)
    def dsn_for(rcpt):
        return [x for x in dsns if rcpt.encode() in x.data]
    for rcpt, st, tag in (("gone@reject.test", "5.1.1", "(b)"), ("n1@nullmx.test", "5.", "(e)"),
                          ("x1@nxdomain.test", "5.", "(e')")):
        ds = dsn_for(rcpt)
        if len(ds) != 1:
            problems.append("%s want exactly one DSN naming %s at %s, got %d (all DSNs: %r)"
                            % (tag, rcpt, SENDER, len(ds), dsns))
            continue
        for p_ in check_dsn(ds[0], rcpt, st):
            problems.append("%s DSN for %s: %s" % (tag, rcpt, p_))
    if dsn_for("gone2@reject.test"):
        problems.append("(b) a DSN was sent for the null-sender message: %r" % dsn_for("gone2@reject.test"))
    if len(dsns) != 4:
        problems.append("want exactly 4 DSNs at senders.test (reject, nullmx, nxdomain, chunkreject), got %d: %r"
                        % (len(dsns), dsns))
    # nothing was sent anywhere to <> (a DSN of a DSN, or of the null-sender message)
    for x in env.arrivals():
        if not x.rcpt_to or any(r in ("", "<>") for r in x.rcpt_to):
            problems.append("a message went to the null address: %r" % x)

    # (c) second MX
    dl = recs_for("w1@twomx.test", "delivery")
    if len(dl) != 1 or dl[0].get("mx_ip") != "127.0.0.3":
        problems.append("(c) w1@twomx.test: want one delivery with mx_ip 127.0.0.3, got %s" % dl)
    if len([x for x in s_good.arrivals() if "w1@twomx.test" in x.rcpt_to]) != 1:
        problems.append("(c) w1@twomx.test did not arrive exactly once at sinkGood (127.0.0.3)")
    if recs_for("w1@twomx.test", "bounce"):
        problems.append("(c) w1@twomx.test bounced: %s" % recs_for("w1@twomx.test", "bounce"))

    # (d) only MX down: transient, not bounced
    tr = recs_for("z1@dead.test", "transient")
    if not tr:
        problems.append("(d) z1@dead.test: no transient record")
    elif tr[0].get("mx_ip") not in (None, "127.0.0.10"):
        problems.append("(d) z1@dead.test transient mx_ip %r" % tr[0].get("mx_ip"))
    if recs_for("z1@dead.test", "bounce") or recs_for("z1@dead.test", "delivery"):
        problems.append("(d) z1@dead.test must stay deferred: %s" % recs_for("z1@dead.test"))
    if len(tr) > 1:
        log("(d) z1@dead.test: %d transient records (retried every 1s), attempts %s"
            % (len(tr), [r.get("attempt") for r in tr]))

    # (e) null MX: bounced at once, 5.x.x, first attempt
    bo = recs_for("n1@nullmx.test", "bounce")
    if len(bo) != 1 or not (500 <= (code(bo[0]) or 0) < 600 or enh(bo[0]).startswith("5.")):
        problems.append("(e) n1@nullmx.test: want one bounce with a 5xx status, got %s" % bo)
    elif not enh(bo[0]).startswith("5."):
        problems.append("(e) n1@nullmx.test: bounce without a 5.x.x enhanced status: %s" % bo)
    if recs_for("n1@nullmx.test", "transient"):
        problems.append("(e) n1@nullmx.test was deferred before bouncing: %s" % recs_for("n1@nullmx.test", "transient"))
    # NXDOMAIN: bounced, 5.1.2 or similar
    bo = recs_for("x1@nxdomain.test", "bounce")
    if len(bo) != 1 or not enh(bo[0]).startswith("5."):
        problems.append("(e') x1@nxdomain.test: want one bounce with a 5.x.x status (5.1.2), got %s" % bo)
    elif enh(bo[0]) != "5.1.2":
        log("(e') note: NXDOMAIN bounce has status %s (5.1.2 expected by convention)" % enh(bo[0]))

    # (f) implicit MX
    dl = recs_for("a1@aonly.test", "delivery")
    if len(dl) != 1 or dl[0].get("mx_ip") != "127.0.0.3":
        problems.append("(f) a1@aonly.test (A record, no MX): want one delivery to 127.0.0.3, got %s" % dl)

    # (g) faults at the BDAT chunk
    bo = recs_for("c1@chunkreject.test", "bounce")
    if len(bo) != 1 or code(bo[0]) != 554 or enh(bo[0]) != "5.7.1":
        problems.append("(g) c1@chunkreject.test: want one bounce with 554 5.7.1 (the chunk's reply), got %s" % bo)
    tr = recs_for("c2@chunkdrop.test", "transient")
    dl = recs_for("c2@chunkdrop.test", "delivery")
    if not tr or code(tr[0]) != 421:
        problems.append("(g) c2@chunkdrop.test: want a transient 421 from the dropped chunk, got %s" % tr)
    if len(dl) != 1 or dl[0].get("attempt") != 2:
        problems.append("(g) c2@chunkdrop.test: want one delivery record with attempt 2, got %s" % dl)
    if len([x for x in s_reject.arrivals() if "c2@chunkdrop.test" in x.rcpt_to]) != 1:
        problems.append("(g) c2@chunkdrop.test did not arrive exactly once")
    # DATA where the sink has no CHUNKING, BDAT where it offers it
    for sk, want in ((s_defer, "data"), (s_good, "bdat"), (s_reject, "bdat"), (s_senders, "bdat")):
        vias = sk.vias()
        if set(vias) != {want}:
            problems.append("%s: messages came by %r, want %s only" % (sk.name, vias, want))

    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))
    log("faults: %s" % harness.acct_summary(recs))


if __name__ == "__main__":
    harness.main([test_faults])
