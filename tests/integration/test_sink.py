#!/usr/bin/python3
"""test_sink.py - salvo-sink's scripted faults, the ISP the other tests play against.

  percent    a 20% rule fires for 15-25% of 1,000 RCPTs; first=N fires exactly N times
  close      a close rule answers 421 and the connection ends
  delay      --reply-delay and delay= hold replies for (at least) their time
  cap        --max-conn-per-ip N: the N+1th session gets 421
  events     the --events log parses and its counts match --stats
"""

import json
import smtplib
import socket
import time

import harness
from harness import Fail, log, wait_until

ADDR = ("127.0.0.2", 25)


def test_sink(env):
    sink = env.salvo_sink("sink", "%s:%d" % ADDR, dump=False, extra_args=[
        "--fault", r"at=rcpt,match=^p[0-9]+@,percent=20,reply=451 4.7.1 sometimes",
        "--fault", r"at=rcpt,match=^f@,first=3,reply=452 4.2.2 three times",
        "--fault", r"at=rcpt,match=^bye@,close,reply=421 4.7.0 go away",
        "--fault", r"at=rcpt,match=^slow@,delay=400",
        "--max-conn-per-ip", "3"])
    s = smtplib.SMTP(*ADDR, timeout=10)
    s.ehlo("client.test")
    s.mail("a@b.test")
    codes = [s.rcpt("p%d@x.test" % i)[0] for i in range(1000)]
    share = codes.count(451) / 10.0
    log("percent=20: %.1f%% of 1000 RCPTs deferred" % share)
    if not 15 <= share <= 25 or set(codes) - {250, 451}:
        raise Fail("percent=20 gave %.1f%% (codes %r)" % (share, set(codes)))
    codes = [s.rcpt("f@x.test")[0] for _ in range(6)]
    if codes != [452, 452, 452, 250, 250, 250]:
        raise Fail("first=3 gave %r" % codes)
    t0 = time.monotonic()
    code = s.rcpt("slow@x.test")[0]
    took = time.monotonic() - t0
    if code != 250 or not 0.38 <= took <= 2.0:
        raise Fail("delay=400: %d after %.2f s" % (code, took))
    code, _ = s.rcpt("bye@x.test")
    if code != 421:
        raise Fail("close rule answered %d" % code)
    try:
        s.noop()
        raise Fail("the connection stayed open after the close rule")
    except (smtplib.SMTPServerDisconnected, ConnectionError, OSError):
        pass
    # the per-IP cap: three sessions, the fourth is told 421
    socks = [socket.create_connection(ADDR) for _ in range(4)]
    firsts = [x.recv(200)[:3] for x in socks]
    if sorted(firsts) != [b"220", b"220", b"220", b"421"]:
        raise Fail("--max-conn-per-ip 3 with four sessions: %r" % firsts)
    for x in socks:
        x.close()
    # events vs stats
    if not wait_until(lambda: (sink.stats() or {}).get("active") == 0, 5, what="sessions to end"):
        raise Fail("sessions did not end")
    time.sleep(0.5)
    evs = sink.events()
    st = sink.stats()
    conns = sum(e["ev"] == "conn" for e in evs)
    closes = sum(e["ev"] == "close" for e in evs)
    replies = [e for e in evs if e["ev"] == "reply"]
    if conns != st["connections"] or closes != conns:
        raise Fail("events: %d conn, %d close; stats: %d connections" % (conns, closes, st["connections"]))
    at_rcpt = sum(r["at"] == "rcpt" for r in replies)
    if at_rcpt != st["rcpt_deferred"] + st["rcpt_rejected"]:
        raise Fail("%d fault replies at RCPT in the events, stats say %d deferred + %d rejected"
                   % (at_rcpt, st["rcpt_deferred"], st["rcpt_rejected"]))
    if st["clients"]["127.0.0.1"]["peak_active"] < 3:
        raise Fail("peak_active %r" % st["clients"]["127.0.0.1"])
    log("faults, delays, the cap and the event log behave")


if __name__ == "__main__":
    harness.main([test_sink], needs_salvod=False)
