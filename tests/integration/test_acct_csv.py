#!/usr/bin/python3
"""test_acct_csv.py - PowerMTA's CSV accounting files (<acct-file>) from the outside.

  records   one salvod with three <acct-file>s: all.csv (records d,b,t,f,rb,rs; default
            fields), db.csv (records d,b; record-fields d with `*,!orcpt` and b with a
            short list) and a pipe `<acct-file |cat >> FILE>` (records d). A delivery, a
            550 bounce, a 451 deferral then delivery, and an ARF complaint to the bounce
            domain give d, b, t, d and f records with PowerMTA's field names and values
            (RFC 4180: one header line, CRLF, the type first); the db file has the union of
            its columns and leaves a type's unconfigured fields empty; the pipe gets the header
            and the d records. srcType (smtp, or api for a message from POST
            /api/inject/v1), dlvEsmtpAvailable (the sink's EHLO extensions), and in db.csv
            header_Subject and header_X-Campaign-Id (a folded header) from the message; a DSN
            with Action: delayed for a delivered message is an rs record (remote status)
  rotate    move-interval 2s with move-to: a record after the interval moves the file to
            NAME-YYYY-MM-DD-HHMM[.n].csv in move-to (the start of the aligned period), and the new
            file starts with the header
"""

import csv
import glob
import io
import json
import os
import random
import smtplib
import time
import urllib.request

import harness
from harness import Fail, Injected, find_records, log, make_body, wait_until

SENDER = "owner@senders.test"
from test_suppression import ARF, DSN  # noqa: E402  (reports quoting the VERP Return-Path)


def read_csv(path):
    raw = open(path, "rb").read()
    if raw and not raw.endswith(b"\r\n"):
        raise Fail("%s does not end in CRLF: %r" % (path, raw[-40:]))
    if raw.replace(b"\r\n", b"").count(b"\n"):
        raise Fail("%s has a bare LF" % path)
    rows = list(csv.reader(io.StringIO(raw.decode())))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def one(rng, mid, rcpt, job=None):
    m = Injected(mid, SENDER, [rcpt], make_body(rng, mid, SENDER, [rcpt], 300))
    if job:
        m.data = b"X-Job: " + job.encode() + b"\r\n" + m.data
    return m


def test_records(env):
    rng = random.Random(11)
    env.dns(mx={"c.test": [(10, "mx.c.test")]}, a={"mx.c.test": "127.0.0.2"}, check=[("c.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", extra_args=[
        "--fault", r"at=rcpt,match=^gone@c\.test$,reply=550 5.1.1 <gone@c.test>: no such user, sorry",
        "--fault", r"at=rcpt,match=^slow@c\.test$,first=1,reply=451 4.7.1 slow down, please"])
    all_csv = os.path.join(env.dir, "all.csv")
    db_csv = os.path.join(env.dir, "db.csv")
    piped = os.path.join(env.dir, "piped.csv")
    extra = "\n".join([
        "bounce-domain bounces.salvo.test",
        "<acct-file %s>" % all_csv, "  records d,b,t,f,rb,rs", "</acct-file>",
        "<acct-file %s>" % db_csv, "  records d,b", "  record-fields d *,!orcpt,header_Subject,header_X-Campaign-Id",
        "  record-fields bounce timeLogged,orig,rcpt,bounceCat", "</acct-file>",
        "<acct-file |cat >> %s>" % piped, "  records d", "</acct-file>"])
    d = env.salvod_daemon(extra=extra, default_domain={"retry-after": "1s"},
                          sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-job": "yes"}})
    d.start()
    ok_msg = one(rng, "ok", "ok@c.test", "spring")
    ok_msg.data = b"X-Campaign-Id: autumn\r\n  2026\r\n" + ok_msg.data
    harness.inject([ok_msg, one(rng, "gone", "gone@c.test"),
                    one(rng, "slow", "slow@c.test"), one(rng, "angry", "angry@c.test", "spring")],
                   threads=1, per_conn=4)
    req = urllib.request.Request("http://%s:%d/api/inject/v1" % harness.SALVOD_HTTP, method="POST", data=json.dumps({
        "envelope_sender": SENDER, "content": "From: %s\r\nSubject: by api\r\n\r\nHi\r\n" % SENDER,
        "recipients": [{"email": "api@c.test"}]}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        if json.loads(r.read()).get("success_count") != 1:
            raise Fail("the API injection failed")
    harness.wait_for_records(env, lambda r: len(find_records(r, type="delivery")) >= 4 and
                             find_records(r, type="bounce", recipient="gone@c.test"), 20,
                             what="three deliveries and the bounce")
    seen = harness.wait_for_recipients(env, {"angry@c.test", "ok@c.test"}, 10)
    verp = seen["angry@c.test"][0].mail_from
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10, source_address=("127.0.0.50", 0)) as s:
        s.ehlo("mx.isp.test")
        s.sendmail("", ["fbl@bounces.salvo.test"], ARF.format(verp=verp, rcpt="angry@c.test").encode())
        # a DSN that is not a failure (the next hop is slow): a remote status, rs
        ok_verp = seen["ok@c.test"][0].mail_from
        delayed = DSN.format(verp=ok_verp, rcpt="ok@c.test").replace("Action: failed", "Action: delayed") \
            .replace("Status: 5.1.1", "Status: 4.4.7").replace("550 5.1.1", "451 4.4.7")
        s.sendmail("", [ok_verp], delayed.encode())
    harness.wait_for_records(env, lambda r: find_records(r, type="feedback", recipient="angry@c.test") and
                             find_records(r, type="remote_status", recipient="ok@c.test"), 10,
                             what="the feedback and remote_status records")

    def csv_has_f():
        return os.path.exists(all_csv) and {"f", "rs"} <= {r["type"] for r in read_csv(all_csv)[1]}
    if not wait_until(csv_has_f, 10, what="the f record in all.csv"):
        raise Fail("no f record in all.csv:\n" + open(all_csv).read())
    head, rows = read_csv(all_csv)
    std = ["type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction", "dsnStatus", "dsnDiag",
           "dsnMta", "bounceCat", "srcType", "srcMta", "dlvType", "dlvSourceIp", "dlvDestinationIp",
           "dlvEsmtpAvailable", "dlvSize", "vmta", "jobId", "envId", "queue", "vmtaPool"]
    if head != std:
        raise Fail("all.csv header: %r" % head)
    by = {}
    for r in rows:
        by.setdefault((r["type"], r["rcpt"]), []).append(r)
    ok = by.get(("d", "ok@c.test"), [None])[0]
    if not ok or ok["orig"] != SENDER or ok["dsnAction"] != "relayed" or not ok["dsnStatus"].startswith("2.") \
            or ok["dlvDestinationIp"] != "127.0.0.2" or ok["jobId"] != "spring" or ok["queue"] != "c.test" \
            or not ok["dsnDiag"].startswith("smtp;250") or int(ok["dlvSize"]) < 300 \
            or abs(int(ok["timeLogged"]) - time.time()) > 120 or int(ok["timeQueued"]) > int(ok["timeLogged"]):
        raise Fail("d record: %r" % ok)
    b = by.get(("b", "gone@c.test"), [None])[0]
    if not b or b["dsnAction"] != "failed" or b["dsnStatus"] != "5.1.1" or b["bounceCat"] != "bad-mailbox" \
            or "no such user, sorry" not in b["dsnDiag"] or not b["dsnDiag"].startswith("smtp;550 5.1.1"):
        raise Fail("b record: %r" % b)
    t = by.get(("t", "slow@c.test"), [None])[0]
    if not t or t["dsnAction"] != "delayed" or t["dsnStatus"] != "4.7.1" or "slow down, please" not in t["dsnDiag"]:
        raise Fail("t record: %r" % t)
    if ok["srcType"] != "smtp" or "PIPELINING" not in ok["dlvEsmtpAvailable"].split(",") or ok["vmtaPool"]:
        raise Fail("d record's srcType, dlvEsmtpAvailable, vmtaPool: %r" % ok)
    api = by.get(("d", "api@c.test"), [None])[0]
    if not api or api["srcType"] != "api":
        raise Fail("the API-injected message's d record: %r" % api)
    if not by.get(("d", "slow@c.test")):
        raise Fail("the deferred message's delivery is missing: %r" % sorted(by))
    f = by.get(("f", "angry@c.test"), [None])[0]
    if not f or f["jobId"] != "spring":
        raise Fail("f record: %r" % f)
    rs = by.get(("rs", "ok@c.test"), [None])[0]
    if not rs or rs["dsnAction"] != "delayed" or rs["dsnStatus"] != "4.4.7" or rs["jobId"] != "spring" \
            or by.get(("rb", "ok@c.test")):
        raise Fail("rs record (a delayed DSN, not a bounce): %r" % rs)
    # db.csv: d has every field but orcpt, b only its four; one header with the union
    head, rows = read_csv(db_csv)
    if head != [c for c in std if c != "orcpt"] + ["header_Subject", "header_X-Campaign-Id"]:
        raise Fail("db.csv header: %r" % head)
    types = sorted({r["type"] for r in rows})
    if types != ["b", "d"]:
        raise Fail("db.csv carries %r, want b and d only" % types)
    b = [r for r in rows if r["type"] == "b"][0]
    if b["bounceCat"] != "bad-mailbox" or b["orig"] != SENDER or b["dsnStatus"] or b["dsnDiag"] or b["queue"]:
        raise Fail("db.csv b record (only timeLogged,orig,rcpt,bounceCat set): %r" % b)
    dd = [r for r in rows if r["type"] == "d" and r["rcpt"] == "ok@c.test"][0]
    if dd["jobId"] != "spring" or not dd["dsnDiag"] or not dd["header_Subject"].startswith("itest ok") or \
            dd["header_X-Campaign-Id"] != "autumn 2026":
        raise Fail("db.csv d record: %r" % dd)
    da = [r for r in rows if r["type"] == "d" and r["rcpt"] == "api@c.test"][0]
    if da["header_Subject"] != "by api" or da["header_X-Campaign-Id"]:
        raise Fail("db.csv d record of the API message: %r" % da)
    # the pipe
    d.stop()
    head, rows = read_csv(piped)
    if head != std or sorted(r["rcpt"] for r in rows) != ["angry@c.test", "api@c.test", "ok@c.test", "slow@c.test"] or \
            {r["type"] for r in rows} != {"d"}:
        raise Fail("piped.csv: %r %r" % (head, rows))
    log("all.csv: %d records (d b t f); db.csv: union header, unconfigured fields empty; pipe: %d d records"
        % (len(read_csv(all_csv)[1]), len(rows)))


def test_rotate(env):
    rng = random.Random(12)
    env.dns(mx={"r.test": [(10, "mx.r.test")]}, a={"mx.r.test": "127.0.0.2"}, check=[("r.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    path = os.path.join(env.dir, "acct.csv")
    archive = os.path.join(env.dir, "archive")
    os.mkdir(archive)
    extra = "\n".join(["<acct-file %s>" % path, "  move-interval 2s", "  move-to %s" % archive,
                       "  delete-after 1d", "</acct-file>"])
    d = env.salvod_daemon(extra=extra)
    d.start()
    harness.inject([one(rng, "a", "first@r.test")], threads=1)
    wait_until(lambda: os.path.exists(path) and "first@r.test" in open(path).read(), 10, what="the first record")
    if glob.glob(os.path.join(archive, "*")):
        raise Fail("moved before move-interval")
    time.sleep(2.3)
    harness.inject([one(rng, "b", "second@r.test")], threads=1)
    # the file is gone between its move and the next record
    wait_until(lambda: os.path.exists(path) and "second@r.test" in open(path).read(), 10, what="the second record")
    moved = glob.glob(os.path.join(archive, "acct-*.csv"))
    if len(moved) != 1:
        raise Fail("archive holds %r" % moved)
    import re
    if not re.search(r"/acct-\d{4}-\d\d-\d\d-\d{4}(\.\d+)?\.csv$", moved[0]):
        raise Fail("archive name %s" % moved[0])
    h1, r1 = read_csv(moved[0])
    h2, r2 = read_csv(path)
    if [r["rcpt"] for r in r1] != ["first@r.test"] or [r["rcpt"] for r in r2] != ["second@r.test"] or h1 != h2:
        raise Fail("rotation split: %r / %r" % (r1, r2))
    log("move-interval 2s moved the file with the first record to %s; the new one starts with the header"
        % os.path.basename(moved[0]))


if __name__ == "__main__":
    harness.main([test_records, test_rotate])
