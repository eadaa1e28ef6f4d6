#!/usr/bin/python3
"""test_delivery.py - a few hundred messages travel through salvod to real peers.

dnsmasq serves MX and A records for d0.test .. d23.test. Their MX hosts are three
salvo-sinks (127.0.0.2 and .3 offer CHUNKING, .4 runs with --no-chunking) and Postfix's
smtp-sink (127.0.0.5, no CHUNKING either), all on port 25;
some domains have two MX records (both working: the preferred one must get the mail).
300 messages with 1-3 recipients each (several in the same domain in one message) go
in through salvod's SMTP listener over 4 parallel connections, 10 messages each.
Bodies carry the hard cases: lines starting with '.' and '..', a line that is only '.',
~990-byte lines, 8-bit UTF-8, sizes up to ~200 KB.

It must show: every message acknowledged; every recipient arrives exactly once, at
its domain's preferred MX, with the bytes the client sent (after unstuffing) preceded
only by salvod's Received: trace header; recipients of one domain in one message
travel in one transaction; sinks that offer CHUNKING get every message by BDAT, the
one that does not by DATA; the accounting log has one reception per recipient (or per
message) and exactly one delivery record per recipient with the right id, queue and
mx_ip; salvod exits 0 on SIGTERM.
"""

import random
import re
import time

import harness
from harness import Fail, Injected, check_trace_prefix, find_records, log, make_body

N_DOMAINS = 24
N_MESSAGES = 300
HOSTS = {"mx-a.test": "127.0.0.2", "mx-b.test": "127.0.0.3", "mx-c.test": "127.0.0.4", "mx-pf.test": "127.0.0.5"}


def domain_mx(j):
    k = j % 4
    if k == 0:
        return [(10, "mx-a.test")]
    if k == 1:
        return [(20, "mx-c.test"), (10, "mx-b.test")]     # listed out of order on purpose
    if k == 2:
        return [(10, "mx-c.test"), (30, "mx-a.test")]
    return [(10, "mx-pf.test")]                           # Postfix smtp-sink group


def preferred_ip(dom):
    j = int(dom.split(".")[0][1:])
    return HOSTS[min(domain_mx(j))[1]]


def make_messages(rng, n):
    msgs = []
    for i in range(n):
        nr = rng.choice([1, 1, 2, 2, 3, 3])
        rcpts = []
        dom = "d%d.test" % rng.randrange(N_DOMAINS)
        for k in range(nr):
            if k and rng.random() < 0.5:
                dom = "d%d.test" % rng.randrange(N_DOMAINS)
            rcpts.append("m%03dr%d@%s" % (i, k, dom))
        r = rng.random()
        if r < 0.6:
            size = rng.randint(0, 4000)
        elif r < 0.9:
            size = rng.randint(4000, 60000)
        else:
            size = rng.randint(150000, 200000)
        sender = "sender%d@senders.example" % (i % 7)
        mid = "m%03d" % i
        msgs.append(Injected(mid, sender, rcpts, make_body(rng, mid, sender, rcpts, size=size)))
    return msgs


def test_delivery(env):
    mx = {"d%d.test" % j: domain_mx(j) for j in range(N_DOMAINS)}
    env.dns(mx=mx, a=HOSTS, check=[("d1.test", "MX"), ("mx-pf.test", "A")])
    sinks = [env.salvo_sink("sinkA", "127.0.0.2:25"), env.salvo_sink("sinkB", "127.0.0.3:25"),
             env.salvo_sink("sinkC", "127.0.0.4:25", extra_args=["--no-chunking"]),
             env.postfix_sink("postfix", "127.0.0.5:25")]
    d = env.salvod_daemon(default_domain={"retry-after": "2s", "max-smtp-out": "4",
                                          "max-msg-per-connection": "50"})
    d.start()

    rng = random.Random(20261122)
    msgs = make_messages(rng, N_MESSAGES)
    total_bytes = sum(len(m.data) for m in msgs)
    expected = {}
    for m in msgs:
        for r in m.rcpts:
            expected[r.lower()] = m
    log("injecting %d messages, %d recipients, %.1f MB" % (len(msgs), len(expected), total_bytes / 1e6))
    t0 = time.monotonic()
    acked = harness.inject(msgs, threads=4, per_conn=10, timeout=40)
    t_inj = time.monotonic() - t0
    bad = [m for m in msgs if m.error]
    if bad:
        raise Fail("%d of %d messages not acknowledged; first: %s: %s"
                   % (len(bad), len(msgs), bad[0].mid, bad[0].error))
    log("injected in %.2fs (%.0f msg/s)" % (t_inj, len(acked) / t_inj))

    seen = harness.wait_for_recipients(env, set(expected), timeout=60, settle=2.0)
    t_all = (env.all_arrived_at or time.monotonic()) - t0
    problems = []
    missing = sorted(r for r in expected if r not in seen)
    if missing:
        problems.append("%d of %d recipients never arrived, e.g. %s" % (len(missing), len(expected), missing[:8]))
    else:
        log("all %d recipients arrived %.2fs after the first injection (%.0f msg/s end to end)"
            % (len(expected), t_all, len(msgs) / t_all))
    unexpected = sorted(r for r in seen if r not in expected)
    if unexpected:
        problems.append("unexpected recipients arrived: %s" % unexpected[:8])
    dups = {r: a for r, a in seen.items() if r in expected and len(a) > 1}
    if dups:
        r, a = sorted(dups.items())[0]
        problems.append("%d recipients arrived more than once, e.g. %s: %r" % (len(dups), r, a))

    sink_ip = {s.name: s.ip for s in sinks}
    body_bad = []
    for r, arrs in sorted(seen.items()):
        m = expected.get(r)
        if m is None:
            continue
        for a in arrs:
            why = check_trace_prefix(a.data, m.data)
            if why:
                body_bad.append("%s (%s, %s): %s" % (r, a.sink, a.file, why))
            if (a.mail_from or "") != m.sender:
                problems.append("%s: envelope sender %r, sent %r" % (r, a.mail_from, m.sender))
            dom = r.split("@")[1]
            if sink_ip[a.sink] != preferred_ip(dom):
                problems.append("%s arrived at %s (%s), not at the preferred MX %s"
                                % (r, a.sink, sink_ip[a.sink], preferred_ip(dom)))
    if body_bad:
        problems.append("%d recipients got a changed message; first ones:\n    %s"
                        % (len(body_bad), "\n    ".join(body_bad[:5])))

    # Recipients of one domain in one message travel together (one transaction).
    split = []
    for m in msgs:
        by_dom = {}
        for r in m.rcpts:
            by_dom.setdefault(r.split("@")[1], []).append(r.lower())
        for dom, rs in by_dom.items():
            if len(rs) > 1 and all(r in seen for r in rs):
                files = {seen[r][0].file for r in rs}
                if len(files) > 1:
                    split.append("%s %s" % (m.mid, rs))
    if split:
        problems.append("%d same-domain recipient groups were split across transactions, e.g. %s"
                        % (len(split), split[:3]))

    # BDAT where the sink offers CHUNKING, DATA where it does not.
    for sk, want in ((sinks[0], "bdat"), (sinks[1], "bdat"), (sinks[2], "data")):
        vias = sk.vias()
        if set(vias) != {want}:
            problems.append("%s: messages came by %r, want all by %s" % (sk.name, vias, want))

    # Postfix group really went through smtp-sink.
    pf = [a for a in sinks[3].arrivals()]
    if not pf:
        problems.append("nothing arrived at Postfix smtp-sink")

    # Accounting log.
    n_rcpt = len(expected)
    recs = harness.wait_for_records(env, lambda rs: len(find_records(rs, type="delivery")) >= n_rcpt,
                                    timeout=10, what="delivery records")
    problems += check_acct(recs, msgs, expected)

    st = d.stop()
    if st != 0:
        problems.append("salvod exit status %s after SIGTERM (want 0)" % st)
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))
    log("summary: %d messages, %d recipients, sinks %s"
        % (len(msgs), n_rcpt, {s.name: len(s.arrivals()) for s in sinks}))


ID_RE = re.compile(r"^[0-9a-f]{16}$")


def check_acct(recs, msgs, expected):
    problems = []
    summary = harness.acct_summary(recs)
    log("accounting log: %s" % summary)
    for t in ("bounce", "expiration"):
        if summary.get(t):
            problems.append("%d %s records in a run where everything must be delivered: %s"
                            % (summary[t], t, [r for r in recs if r.get("type") == t][:2]))
    if summary.get("transient"):
        log("note: %d transient records (first: %s)" % (summary["transient"],
                                                        [r for r in recs if r.get("type") == "transient"][:1]))
    deliv = {}
    for r in find_records(recs, type="delivery"):
        deliv.setdefault((r.get("recipient") or "").lower(), []).append(r)
    missing = [r for r in expected if r not in deliv]
    if missing:
        problems.append("%d recipients have no delivery record, e.g. %s" % (len(missing), sorted(missing)[:5]))
    extra = [r for r in deliv if r not in expected]
    if extra:
        problems.append("delivery records for unknown recipients: %s" % extra[:5])
    dup = {r: v for r, v in deliv.items() if len(v) > 1}
    if dup:
        problems.append("%d recipients have more than one delivery record, e.g. %s" % (len(dup), list(dup.items())[:1]))
    field_bad = []
    for rcpt, rs in deliv.items():
        m = expected.get(rcpt)
        if m is None:
            continue
        r = rs[0]
        dom = rcpt.split("@")[1]
        resp = r.get("response") or {}
        errs = []
        if not ID_RE.match(str(r.get("id", ""))):
            errs.append("id %r" % r.get("id"))
        if r.get("sender") != m.sender:
            errs.append("sender %r" % r.get("sender"))
        if r.get("queue") != dom:
            errs.append("queue %r" % r.get("queue"))
        if r.get("mx_ip") != preferred_ip(dom):
            errs.append("mx_ip %r (want %s)" % (r.get("mx_ip"), preferred_ip(dom)))
        if not r.get("mx_host"):
            errs.append("no mx_host")
        if resp.get("code") != 250:
            errs.append("response %r" % resp)
        if not isinstance(r.get("attempt"), int) or r.get("attempt") < 1:
            errs.append("attempt %r" % r.get("attempt"))
        if not r.get("time"):
            errs.append("no time")
        if errs:
            field_bad.append("%s: %s in %s" % (rcpt, ", ".join(errs), r))
    if field_bad:
        problems.append("%d delivery records with wrong fields, e.g.\n    %s" % (len(field_bad), "\n    ".join(field_bad[:3])))

    # One message id per message: all its recipients' records share it, and no two
    # messages share one.
    ids = {}
    for m in msgs:
        mids = {deliv[r.lower()][0].get("id") for r in m.rcpts if r.lower() in deliv}
        if len(mids) > 1:
            problems.append("message %s has recipients logged under several ids %s" % (m.mid, mids))
        for i in mids:
            if i in ids and ids[i] != m.mid:
                problems.append("id %s is used by messages %s and %s" % (i, ids[i], m.mid))
            ids[i] = m.mid

    # Receptions: one per recipient (salvod logs them so) or one per message.
    recv = {}
    for r in find_records(recs, type="reception"):
        recv.setdefault(r.get("id"), []).append(r)
    for i, mid in ids.items():
        m = next(x for x in msgs if x.mid == mid)
        rs = recv.get(i, [])
        if not rs:
            problems.append("no reception record for %s (message %s)" % (i, mid))
            continue
        if any("recipient" in x for x in rs):
            got = sorted((x.get("recipient") or "").lower() for x in rs)
            if got != sorted(r.lower() for r in m.rcpts):
                problems.append("reception records of %s name %s, the message had %s" % (i, got, m.rcpts))
        elif len(rs) != 1:
            problems.append("%d reception records for message %s" % (len(rs), i))
        if any(x.get("sender") != m.sender for x in rs):
            problems.append("reception record sender %r for %s" % (rs[0].get("sender"), m.mid))
    stray = [i for i in recv if i not in ids]
    if stray:
        problems.append("reception records for ids that delivered nothing: %s" % stray[:5])
    return problems


if __name__ == "__main__":
    harness.main([test_delivery], needs_postfix=True)
