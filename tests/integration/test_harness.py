#!/usr/bin/python3
"""test_harness.py - the harness's own peers, without salvod: dnsmasq answers the
records the other tests rely on (MX preferences, A, null MX, NXDOMAIN), and both sinks
dump what smtplib sends them exactly as the other tests read it back."""

import random
import smtplib

import harness
from harness import Fail, Injected, check_trace_prefix, dns_query, make_body


def test_dnsmasq_records(env):
    env.dns(mx={"d1.test": [(10, "mx2.test"), (20, "mx3.test")], "nullmx.test": [(0, ".")]},
            a={"mx2.test": "127.0.0.2", "mx3.test": "127.0.0.3", "aonly.test": "127.0.0.4"},
            check=[("d1.test", "MX")])
    rc, ans = dns_query("d1.test", "MX")
    if rc != 0 or sorted(ans) != [(10, "mx2.test"), (20, "mx3.test")]:
        raise Fail("MX d1.test: rcode %d %r" % (rc, ans))
    rc, ans = dns_query("mx3.test", "A")
    if rc != 0 or ans != ["127.0.0.3"]:
        raise Fail("A mx3.test: rcode %d %r" % (rc, ans))
    rc, ans = dns_query("nullmx.test", "MX")
    if rc != 0 or ans != [(0, "")]:
        raise Fail("null MX nullmx.test: rcode %d %r (want one MX 0 '.')" % (rc, ans))
    rc, ans = dns_query("aonly.test", "MX")
    if rc != 0 or ans:
        raise Fail("MX aonly.test: rcode %d %r (want NOERROR, no answer)" % (rc, ans))
    rc, ans = dns_query("nosuch.test", "MX")
    if rc != 3:
        raise Fail("MX nosuch.test: rcode %d %r (want NXDOMAIN)" % (rc, ans))


def _sink_roundtrip(env, sink, addr):
    rng = random.Random(7)
    sent = []
    s = smtplib.SMTP(addr, 25, local_hostname="harness.client", timeout=10)
    for i in range(5):
        rcpts = ["h%d-%d@x%d.test" % (i, k, i) for k in range(1 + i % 3)]
        m = Injected("h%d" % i, "sender%d@s.test" % i if i else "", rcpts,
                     make_body(rng, "h%d" % i, "s@s.test", rcpts, size=[0, 3000, 70000, 200000, 10][i]))
        harness._send_one(s, m)
        if m.error:
            raise Fail("%s: %s" % (sink.name, m.error))
        sent.append(m)
    s.quit()
    want = {m.rcpts[0]: m for m in sent}

    def all_there():
        return len(sink.arrivals()) >= len(sent)
    harness.wait_until(all_there, 5.0)
    import time
    time.sleep(0.3)
    got = sink.arrivals()
    if len(got) != len(sent):
        raise Fail("%s: %d of %d messages dumped" % (sink.name, len(got), len(sent)))
    for a in got:
        m = want.get(a.rcpt_to[0])
        if m is None or a.rcpt_to != m.rcpts or a.mail_from != m.sender:
            raise Fail("%s: unexpected envelope %r" % (sink.name, a))
        if a.data != m.data:
            raise Fail("%s: %s body: %s" % (sink.name, a.file, check_trace_prefix(a.data, m.data)))
        if a.client_ip != "127.0.0.1":
            raise Fail("%s: client ip %r" % (sink.name, a.client_ip))
    # the trace check itself
    m = sent[1]
    trace = b"Received: from x ([127.0.0.1])\r\n\tby salvo.itest (Salvo) with ESMTP;\r\n\tSun, 1 Jan 2026\r\n"
    if check_trace_prefix(trace + m.data, m.data) is not None:
        raise Fail("check_trace_prefix rejects a good trace header")
    if check_trace_prefix(b"X-Bad: 1\r\n" + m.data, m.data) is None:
        raise Fail("check_trace_prefix accepts a non-Received header")
    if check_trace_prefix(trace + m.data[:-3] + b"x\r\n", m.data) is None:
        raise Fail("check_trace_prefix accepts a changed body")


def test_salvo_sink_dump(env):
    sink = env.salvo_sink("sinkA", "127.0.0.2:25")
    _sink_roundtrip(env, sink, "127.0.0.2")
    st = sink.stats()
    harness.wait_until(lambda: (sink.stats() or {}).get("messages") == 5, 2.0)
    st = sink.stats()
    if st is None or st.get("messages") != 5:
        raise Fail("sinkA stats: %r" % st)


def test_postfix_sink_dump(env):
    sink = env.postfix_sink("pfsink", "127.0.0.5:25")
    _sink_roundtrip(env, sink, "127.0.0.5")


if __name__ == "__main__":
    harness.main([test_dnsmasq_records, test_salvo_sink_dump, test_postfix_sink_dump],
                 needs_postfix=True, needs_salvod=False)
