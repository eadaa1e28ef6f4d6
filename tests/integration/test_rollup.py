#!/usr/bin/python3
"""test_rollup.py - mx-rollups route by each member's own MX; a DNS failure on a
route refresh does not stop a queue that has a working route.

  members    five domains m1..m5.test rolled up by `mx *.roll.test roll.q` (m1 also
             lists a preferred MX outside the rollup, which never gets a session);
             after a first round, m2.test goes NXDOMAIN, m5.test gets a null MX and m3.test's
             MX moves to mx.other.test (dnsmasq restarted with new records, TTL 1 s,
             which salvod clamps to 5 s): only m2's and m5's recipients bounce (5.1.2,
             5.1.10; one of m2's had been deferred inside the rollup queue before the
             change), only m3's mail goes to mx.other.test (including its recipient
             deferred inside the rollup), m1/m4 keep flowing to the rollup's hosts
             through the rollup queue
  servfail   once the routes are known, dnsmasq is replaced by a server answering
             SERVFAIL to every query; a trickle of messages to a plain domain and to
             two rollup members keeps being delivered for 20 s (routes follow the DNS
             TTL, 5 s at least, so that is several refreshes; the old code refreshed
             every 60 s and never asked), none deferred
  queue_to   domains whose `queue-to` names the rollup queue: the one whose MX matches
             goes out through the rollup, the other is deferred once (retry-after
             12 s), never sent back and forth
  many       300 member domains: all through roll.q, within its max-smtp-out
  flapping   m3's MX flips in and out of the rollup every 3 s while mail flows: each
             recipient delivered once, m1's only through the rollup
"""

import random
import socket
import threading
import time

import harness
from harness import Fail, Injected, find_records, log, make_body, wait_until

SENDER = "owner@senders.test"
ROLL_HOSTS = {"127.0.0.2", "127.0.0.3"}
OTHER = "127.0.0.4"
A = {"mx-a.roll.test": "127.0.0.2", "mx-b.roll.test": "127.0.0.3", "mx.other.test": OTHER,
     "mx.senders.test": "127.0.0.6", "mx.plain.test": "127.0.0.5", "mx.backup.test": "127.0.0.7"}
ROLLUP = "\n".join(["<mx-rollup-list>", "  mx *.roll.test  roll.q", "</mx-rollup-list>",
                    "<domain roll.q>", "  max-smtp-out 4", "  retry-after 12s", "</domain>"])


def _mx(nx=(), moved=(), null=()):
    mx = {"senders.test": [(10, "mx.senders.test")], "plain.test": [(10, "mx.plain.test")]}
    for i in range(1, 6):
        d = "m%d.test" % i
        if d in nx:
            continue
        if d in null:
            mx[d] = [(0, ".")]
        elif d in moved:
            mx[d] = [(10, "mx.other.test")]
        else:
            mx[d] = [(10, "mx-a.roll.test"), (20, "mx-b.roll.test")]
    # a member may also list a host outside the rollup (even preferred): the
    # rollup's sessions never go there
    if "m1.test" in mx:
        mx["m1.test"] = [(5, "mx.backup.test")] + mx["m1.test"]
    return mx


def _restart_dns(env, p, **kw):
    harness.stop_process(p, "dnsmasq")
    wait_until(lambda: not harness._udp_port_busy(harness.DNS_ADDR), 5, what="dnsmasq gone")
    return env.dns(**kw)


def _msgs(rng, prefix, rcpts):
    out = []
    for i, r in enumerate(rcpts):
        mid = "%s%d" % (prefix, i)
        out.append(Injected(mid, SENDER, [r], make_body(rng, mid, SENDER, [r], size=500)))
    return out




def _inject(msgs):
    harness.inject_all(msgs, threads=3, per_conn=10, timeout=60)


def _where(sinks):
    """{recipient: set of sink IPs it arrived at}"""
    out = {}
    for s in sinks:
        for a in s.arrivals():
            for r in a.rcpt_to:
                out.setdefault(r.lower(), set()).add(s.ip)
    return out


class ServFail:
    """A DNS server on DNS_ADDR that answers every query with SERVFAIL (rcode 2)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(harness.DNS_ADDR)
        self.sock.settimeout(0.2)
        self.done = threading.Event()
        self.count = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.done.is_set():
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            end = 12
            while end < len(q) and q[end] and q[end] < 64:
                end += 1 + q[end]
            end += 5   # the root label, QTYPE, QCLASS
            if end > len(q):
                continue
            # same id and question, QR=1, RD copied, RA=1, RCODE=2, no records
            flags = bytes([0x80 | (q[2] & 0x01), 0x80 | 2])
            self.sock.sendto(q[:2] + flags + q[4:6] + b"\0\0\0\0\0\0" + q[12:end], peer)
            self.count += 1

    def stop(self):
        if not self.done.is_set():
            self.done.set()
            self.t.join(2)
            self.sock.close()


# --------------------------------------------------------------------------
def test_members(env):
    rng = random.Random(14)
    dns = env.dns(mx=_mx(), a=A, extra_lines=["local-ttl=1"], check=[("m1.test", "MX")])
    late = ["late@m2.test", "late@m3.test", "late@m4.test"]
    defer = ["^%s$" % r.replace(".", "\\.") for r in late]
    ra = env.salvo_sink("rollA", "127.0.0.2:25", defer_first=defer)
    rb = env.salvo_sink("rollB", "127.0.0.3:25", defer_first=defer)
    other = env.salvo_sink("other", OTHER + ":25")
    backup = env.salvo_sink("backup", "127.0.0.7:25")
    env.salvo_sink("senders", "127.0.0.6:25", dump=False)
    sinks = [ra, rb, other, backup]
    d = env.salvod_daemon(extra=ROLLUP)
    d.start()

    # round 1: every member through the rollup; three recipients deferred inside it
    first = ["r1u%d@m%d.test" % (i, i % 5 + 1) for i in range(25)] + late
    _inject(_msgs(rng, "a", first))
    got = harness.wait_for_recipients(env, set(first) - set(late), 30, settle=0)
    if any(r not in got for r in first if r not in late):
        raise Fail("round 1: not everything arrived: %r" % sorted(set(first) - set(got)))
    recs = harness.wait_for_records(
        env, lambda rs: all(find_records(rs, type="transient", recipient=r) for r in late), 15,
        what="the deferrals inside the rollup")
    for r in late:
        if not find_records(recs, type="transient", recipient=r):
            raise Fail("round 1: %s was not deferred by the rollup's hosts; it arrived at %r"
                       % (r, _where(sinks).get(r)))
        q = find_records(recs, type="transient", recipient=r)[0].get("queue")
        if q != "roll.q":
            raise Fail("%s was deferred in queue %r, want roll.q" % (r, q))
    bad = {r: w for r, w in _where(sinks).items() if not w <= ROLL_HOSTS}
    if bad:
        raise Fail("round 1: rolled-up mail outside the rollup's hosts: %r" % bad)

    # the change: m2 disappears, m3 moves to a host outside the rollup
    dns = _restart_dns(env, dns, mx=_mx(nx=("m2.test",), moved=("m3.test",), null=("m5.test",)), a=A,
                       extra_lines=["local-ttl=1"], check=[("m1.test", "MX")])
    rc, ans = harness.dns_query("m2.test", "MX")
    if rc != 3:
        raise Fail("dnsmasq should answer NXDOMAIN for m2.test, got rcode %d %r" % (rc, ans))
    time.sleep(7)   # past salvod's 5 s floor on a route's TTL
    second = ["r2u%d@m%d.test" % (i, i % 5 + 1) for i in range(50)]
    _inject(_msgs(rng, "b", second))
    want = {r for r in second if "@m2." not in r and "@m5." not in r} | {"late@m3.test", "late@m4.test"}
    got = harness.wait_for_recipients(env, want, 40, settle=1)
    missing = sorted(want - set(got))
    if missing:
        raise Fail("round 2: %d recipients never arrived, e.g. %r" % (len(missing), missing[:5]))
    failing = {r for r in set(second) | set(late) if "@m2." in r or "@m5." in r}
    recs = harness.wait_for_records(
        env, lambda rs: {x["recipient"].lower() for x in find_records(rs, type="bounce")} >= failing,
        20, what="m2's and m5's bounces")

    where = _where(sinks)
    for r in sorted(set(second) | set(late)):
        dom = r.split("@")[1]
        w = where.get(r, set())
        if dom in ("m2.test", "m5.test"):
            if w and r != "late@m2.test":
                raise Fail("%s (NXDOMAIN / null MX) arrived at %r" % (r, w))
        elif dom == "m3.test":
            if w != {OTHER}:
                raise Fail("%s (MX moved to mx.other.test) arrived at %r, want only %s" % (r, w, OTHER))
        elif not w or not w <= ROLL_HOSTS:
            raise Fail("%s (still a member) arrived at %r, want the rollup's hosts" % (r, w))
    bounced = {x["recipient"].lower() for x in find_records(recs, type="bounce")}
    if bounced != failing:
        raise Fail("bounced: %r; want exactly m2's and m5's %d recipients" % (sorted(bounced), len(failing)))
    codes = {(x["recipient"].split("@")[1], x.get("response", {}).get("enhanced"))
             for x in find_records(recs, type="bounce")}
    if codes != {("m2.test", "5.1.2"), ("m5.test", "5.1.10")}:
        raise Fail("bounce codes (domain, enhanced): %r; want 5.1.2 for NXDOMAIN, 5.1.10 for null MX" % sorted(codes))
    for x in find_records(recs, type="delivery"):
        r = x["recipient"].lower()
        if not r.startswith("r2u") and r not in late:
            continue
        dom = r.split("@")[1]
        want_q = "m3.test" if dom == "m3.test" else "roll.q"
        if x.get("queue") != want_q:
            raise Fail("%s delivered from queue %r, want %s" % (r, x.get("queue"), want_q))
    conns = [e for e in backup.events() if e["ev"] == "conn"]
    if conns:
        raise Fail("%d sessions went to m1's preferred MX outside the rollup" % len(conns))
    log("round 2: m2 (NXDOMAIN) and m5 (null MX) bounced only their own %d, m3 went to mx.other.test, "
        "m1/m4 via roll.q" % len(bounced))


def test_servfail(env):
    rng = random.Random(15)
    dns = env.dns(mx=_mx(), a=A, extra_lines=["local-ttl=1"], check=[("m1.test", "MX")])
    ra = env.salvo_sink("rollA", "127.0.0.2:25")
    rb = env.salvo_sink("rollB", "127.0.0.3:25")
    plain = env.salvo_sink("plain", "127.0.0.5:25")
    d = env.salvod_daemon(extra=ROLLUP)
    d.start()
    doms = ["plain.test", "m1.test", "m4.test"]
    warm = ["w%d@%s" % (i, dm) for i, dm in enumerate(doms)]
    _inject(_msgs(rng, "w", warm))
    got = harness.wait_for_recipients(env, set(warm), 20, settle=0)
    if set(warm) - set(got):
        raise Fail("warm-up did not arrive: %r" % sorted(set(warm) - set(got)))

    # every query now gets SERVFAIL
    harness.stop_process(dns, "dnsmasq")
    wait_until(lambda: not harness._udp_port_busy(harness.DNS_ADDR), 5, what="dnsmasq gone")
    sf = ServFail()
    try:
        rc, _ = harness.dns_query("m1.test", "MX", timeout=3)
        if rc != 2:
            raise Fail("the SERVFAIL server answered rcode %d" % rc)
        _trickle(env, rng, d, ra, rb, plain, doms)
    finally:
        sf.stop()
    log("%d queries answered SERVFAIL" % sf.count)
    if sf.count < 2:
        raise Fail("salvod never asked DNS again in 20 s: the routes were not refreshed, the test shows nothing")


def _trickle(env, rng, d, ra, rb, plain, doms):
    sent = []
    t_end = time.monotonic() + 20
    i = 0
    while time.monotonic() < t_end:
        r = "t%d@%s" % (i, doms[i % 3])
        _inject(_msgs(rng, "t%d-" % i, [r]))
        sent.append(r)
        i += 1
        time.sleep(1)
    got = harness.wait_for_recipients(env, set(sent), 20, settle=0)
    missing = sorted(set(sent) - set(got))
    recs = d.acct()
    deferred = sorted({x["recipient"] for x in find_records(recs, type="transient")})
    if missing or deferred:
        raise Fail("with SERVFAIL on refresh: %d of %d not delivered (%r), deferred: %r" %
                   (len(missing), len(sent), missing[:5], deferred[:5]))
    bad = {r: w for r, w in _where([ra, rb, plain]).items() if ("@plain." in r) != (w == {"127.0.0.5"})}
    if bad:
        raise Fail("delivered to the wrong hosts: %r" % bad)
    log("%d messages delivered over 20 s of SERVFAIL, none deferred" % len(sent))


def test_queue_to(env):
    """`queue-to roll.q` puts a domain straight into the rollup queue: it goes out
    through the rollup when its MX matches, and is deferred (not bounced back and
    forth) when it does not."""
    rng = random.Random(16)
    mx = _mx()
    mx["q1.test"] = [(10, "mx-a.roll.test")]
    mx["q2.test"] = [(10, "mx.other.test")]
    env.dns(mx=mx, a=A, check=[("q1.test", "MX")])
    ra = env.salvo_sink("rollA", "127.0.0.2:25")
    other = env.salvo_sink("other", OTHER + ":25")
    d = env.salvod_daemon(extra=ROLLUP, domains={"q1.test": {"queue-to": "roll.q"},
                                                 "q2.test": {"queue-to": "roll.q"}})
    d.start()
    _inject(_msgs(rng, "q", ["a@q1.test", "b@q2.test"]))
    harness.wait_for_recipients(env, {"a@q1.test"}, 20, settle=0)
    recs = harness.wait_for_records(env, lambda rs: find_records(rs, type="transient", recipient="b@q2.test"),
                                    15, what="b@q2.test deferred")
    time.sleep(3)
    recs = d.acct()
    where = _where([ra, other])
    if where.get("a@q1.test") != {"127.0.0.2"}:
        raise Fail("a@q1.test arrived at %r, want the rollup's host" % where.get("a@q1.test"))
    if "b@q2.test" in where:
        raise Fail("b@q2.test (queue-to the rollup, MX outside it) arrived at %r" % where["b@q2.test"])
    tr = find_records(recs, type="transient", recipient="b@q2.test")
    if len(tr) != 1 or "do not match" not in tr[0]["response"].get("text", ""):
        raise Fail("b@q2.test: want one deferral saying its MX does not match, got %r" % tr)
    d.check_alive()
    log("queue-to the rollup: matching domain delivered through it, the other deferred once")


def test_many_members(env):
    """300 member domains (the member table grows and rehashes as they come), each
    with both rollup hosts: every recipient through roll.q, only to the rollup's hosts,
    never more sessions at once than the rollup's max-smtp-out."""
    rng = random.Random(17)
    n = 300
    mx = {"senders.test": [(10, "mx.senders.test")]}
    for i in range(n):
        mx["big%d.test" % i] = [(10, "mx-a.roll.test"), (10, "mx-b.roll.test")]
    env.dns(mx=mx, a=A, check=[("big0.test", "MX")])
    ra = env.salvo_sink("rollA", "127.0.0.2:25")
    rb = env.salvo_sink("rollB", "127.0.0.3:25")
    env.salvo_sink("senders", "127.0.0.6:25", dump=False)
    # sessions are never recycled here, so the sinks' conn/close events count them
    # without the race of a QUIT seen after the next connection
    d = env.salvod_daemon(extra=ROLLUP.replace("  max-smtp-out 4", "  max-smtp-out 4\n  max-msg-per-connection 1000"))
    d.start()
    rcpts = ["u%d@big%d.test" % (i, i) for i in range(n)]
    _inject(_msgs(rng, "m", rcpts))
    got = harness.wait_for_recipients(env, set(rcpts), 60, settle=1)
    missing = sorted(set(rcpts) - set(got))
    if missing:
        raise Fail("%d of %d never arrived, e.g. %r" % (len(missing), n, missing[:5]))
    dup = [r for r, a in got.items() if len(a) > 1]
    if dup:
        raise Fail("delivered more than once: %r" % dup[:5])
    queues = {x.get("queue") for x in find_records(d.acct(), type="delivery")}
    if queues != {"roll.q"}:
        raise Fail("delivered from queues %r, want only roll.q" % sorted(queues))
    evs = []
    for s in (ra, rb):
        for e in s.events():
            if e["ev"] in ("conn", "close"):
                evs.append((e["time"], 1 if e["ev"] == "conn" else -1))
    peak = cur = 0
    for _, dlt in sorted(evs, key=lambda x: (x[0], x[1])):
        cur += dlt
        peak = max(peak, cur)
    if peak > 4:
        raise Fail("%d sessions at once to the rollup's hosts; its max-smtp-out is 4" % peak)
    log("%d member domains through roll.q, peak %d sessions" % (n, peak))


def test_flapping(env):
    """m3.test's MX flips between the rollup and mx.other.test every 3 s for 12 s (TTL
    1 s) while mail for m1 and m3 keeps coming: every recipient is delivered exactly
    once, m1's only through the rollup, m3's to whichever its MX was, salvod stays up."""
    rng = random.Random(18)
    dns = env.dns(mx=_mx(), a=A, extra_lines=["local-ttl=1"], check=[("m3.test", "MX")])
    ra = env.salvo_sink("rollA", "127.0.0.2:25")
    rb = env.salvo_sink("rollB", "127.0.0.3:25")
    other = env.salvo_sink("other", OTHER + ":25")
    env.salvo_sink("senders", "127.0.0.6:25", dump=False)
    d = env.salvod_daemon(extra=ROLLUP)
    d.start()
    sent = []
    moved = False
    t_end = time.monotonic() + 12
    flip_at = time.monotonic() + 3
    i = 0
    while time.monotonic() < t_end:
        batch = ["f%d@m1.test" % i, "f%d@m3.test" % i, "g%d@m3.test" % i]
        _inject(_msgs(rng, "f%d-" % i, batch))
        sent += batch
        i += 1
        time.sleep(0.3)
        if time.monotonic() >= flip_at:
            moved = not moved
            dns = _restart_dns(env, dns, mx=_mx(moved=("m3.test",) if moved else ()), a=A,
                               extra_lines=["local-ttl=1"], check=[("m3.test", "MX")])
            flip_at = time.monotonic() + 3
    got = harness.wait_for_recipients(env, set(sent), 60, settle=2)
    missing = sorted(set(sent) - set(got))
    if missing:
        raise Fail("%d of %d never arrived, e.g. %r" % (len(missing), len(sent), missing[:5]))
    dup = [r for r, a in got.items() if len(a) > 1]
    if dup:
        raise Fail("delivered more than once: %r" % dup[:5])
    where = _where([ra, rb, other])
    bad = {r: w for r, w in where.items() if "@m1." in r and not w <= ROLL_HOSTS}
    if bad:
        raise Fail("m1 (always a member) delivered outside the rollup: %r" % bad)
    at_other = len([r for r, w in where.items() if "@m3." in r and w == {OTHER}])
    d.check_alive()
    log("%d recipients over 12 s of flips, each once; %d of m3's went to mx.other.test" %
        (len(sent), at_other))


if __name__ == "__main__":
    harness.main([test_members, test_servfail, test_queue_to, test_many_members, test_flapping])
