#!/usr/bin/python3
"""test_inject.py - HTTP injection (POST /api/inject/v1, KumoMTA's schema).

  template   1,000 recipients, per-recipient substitutions in the subject, the text and the
             HTML (one value needs HTML escaping, one is non-ASCII): every message at the
             sink carries exactly its own values, parses as MIME with Python's email
             package, has both a text/plain and a text/html part, a Date and a Message-ID
  raw        raw RFC 5322 content arrives byte for byte after the trace header
  bad        broken JSON, missing recipients / content, wrong types, a bad attachment, a
             too-large body: 4xx naming the field, and nothing queued; an invalid address
             among valid ones is listed in failed_recipients and the rest are accepted
  suppress   an address suppressed over the API is refused by the next injection
  headers    a CR or LF put into every field that becomes a header line (subject, From and
             Reply-To names and addresses, extra headers, attachment content_type, file_name
             and content_id, recipients' names and addresses, envelope_sender, substitution
             values that header placeholders insert, global and per recipient, raw and object
             form) is a 400 naming that field and nothing is queued; an unknown or unsupported
             template_dialect is a 400; the same values in a body are accepted and arrive
             without any injected header line
"""

import email
import email.policy
import json
import random
import urllib.error
import urllib.request

import harness
from harness import Fail, log


def post(path, body, raw=False):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def get(path):
    with urllib.request.urlopen("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), timeout=10) as r:
        return json.loads(r.read())


def test_inject(env):
    rng = random.Random(81)
    env.dns(mx={"in.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("in.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(extra="http-max-body-size 1M\n", default_domain={"max-smtp-out": "8"})
    d.start()
    harness.wait_until(lambda: get("/api/v1/status") is not None, 5, what="the API")

    # -- bad input first: nothing may be queued by these
    base = {"envelope_sender": "news@senders.test", "content": "Subject: x\r\n\r\nbody\r\n",
            "recipients": [{"email": "a@in.test"}]}
    cases = [
        (b"{broken", None, 400),
        ({k: v for k, v in base.items() if k != "recipients"}, "recipients", 400),
        ({k: v for k, v in base.items() if k != "content"}, "content", 400),
        (dict(base, recipients="a@in.test"), "recipients", 400),
        (dict(base, recipients=[{"email": 7}]), "recipients[0].email", 400),
        (dict(base, envelope_sender=["x"]), "envelope_sender", 400),
        (dict(base, content={"from": {"email": "x@senders.test"}, "text_body": "t",
                             "attachments": [{"data": "not base64!", "base64": True}]}),
         "content.attachments[0].data", 400),
        (dict(base, content={"text_body": "t"}), "content.from", 400),
        (dict(base, deliver_after="tomorrow"), "deliver_after", 400),
        (dict(base, content="x" * (1 << 21)), None, 413),
    ]
    for body, field, want in cases:
        st, r = post("/api/inject/v1", body, raw=isinstance(body, bytes))
        if st != want or "error" not in r or (field and r.get("field") != field):
            raise Fail("bad request %r...: got %s %r, want %d naming %r" % (str(body)[:80], st, r, want, field))
    if get("/api/v1/status")["totals"]["received"] != 0:
        raise Fail("a rejected request queued something")
    log("%d malformed requests refused, naming the field; nothing queued" % len(cases))

    # -- an invalid address among valid ones
    st, r = post("/api/inject/v1", dict(base, recipients=[{"email": "ok1@in.test"}, {"email": "not-an-address"},
                                                          {"email": "ok2@in.test"}]))
    if st != 200 or r["success_count"] != 2 or r["failed_recipients"] != ["not-an-address"]:
        raise Fail("partial request: %s %r" % (st, r))

    # -- raw content, byte for byte
    raw = ("From: news@senders.test\r\nTo: raw@in.test\r\nSubject: raw\r\nMessage-ID: <raw1@t>\r\n\r\n"
           ".leading dot\r\nline two  with trailing spaces  \r\n\r\n\r\n").encode()
    st, r = post("/api/inject/v1", {"envelope_sender": "news@senders.test", "content": raw.decode(),
                                    "recipients": [{"email": "raw@in.test"}]})
    if st != 200 or r["success_count"] != 1:
        raise Fail("raw injection: %s %r" % (st, r))

    # -- the template blast: 1,000 recipients
    n = 1000
    rcpts = []
    for i in range(n):
        rcpts.append({"email": "u%04d@in.test" % i, "name": "User %d" % i,
                      "substitutions": {"code": "C%04d-%d" % (i, rng.randrange(10 ** 6)),
                                        "city": rng.choice(["Köln", "Zürich", "Αθήνα", "Paris & <Co>"])}})
    req = {"envelope_sender": "news@senders.test", "campaign": "spring",
           "content": {"from": {"email": "news@senders.test", "name": "News Désk"},
                       "subject": "Hello {{name}}, your code {{code}}",
                       "text_body": "Dear {{ name }},\nyour code is {{code}} in {{city}}.\n{{greeting}}\n",
                       "html_body": "<p>Dear {{name}}, code <b>{{code}}</b> in {{city}}</p><p>{{greeting}}</p>"},
           "substitutions": {"greeting": "Regards"}, "recipients": rcpts}
    st, r = post("/api/inject/v1", req)
    if st != 200 or r["success_count"] != n:
        raise Fail("template blast: %s %r" % (st, {k: r.get(k) for k in ("success_count", "fail_count", "error")}))
    want = {x["email"] for x in rcpts} | {"raw@in.test", "ok1@in.test", "ok2@in.test"}
    seen = harness.wait_for_recipients(env, want, 60, settle=0.5)
    missing = want - set(seen)
    if missing:
        raise Fail("%d recipients never arrived, e.g. %r" % (len(missing), sorted(missing)[:3]))
    arrived = seen["raw@in.test"][0]
    why = harness.check_trace_prefix(arrived.data, raw)
    if why:
        raise Fail("raw content changed: %s" % why)
    for x in rcpts:
        a = seen[x["email"]]
        if len(a) != 1:
            raise Fail("%s arrived %d times" % (x["email"], len(a)))
        m = email.message_from_bytes(a[0].data, policy=email.policy.default)
        subs = x["substitutions"]
        if m["subject"] != "Hello %s, your code %s" % (x["name"], subs["code"]):
            raise Fail("%s: subject %r" % (x["email"], m["subject"]))
        if m["to"].addresses[0].addr_spec != x["email"] or not m["date"] or not m["message-id"]:
            raise Fail("%s: To %r, Date %r, Message-ID %r" % (x["email"], m["to"], m["date"], m["message-id"]))
        text = m.get_body(("plain",))
        html = m.get_body(("html",))
        if text is None or html is None or m.get_content_type() != "multipart/alternative":
            raise Fail("%s: structure %s, text %s, html %s" % (x["email"], m.get_content_type(), text, html))
        t = text.get_content()
        h = html.get_content()
        esc = subs["city"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if "Dear %s," % x["name"] not in t or subs["code"] not in t or subs["city"] not in t or "Regards" not in t:
            raise Fail("%s: text part %r" % (x["email"], t))
        if "<b>%s</b>" % subs["code"] not in h or esc not in h or ("<Co>" in h):
            raise Fail("%s: html part %r (city should read %r)" % (x["email"], h, esc))
    log("%d per-recipient messages: own values in subject, text and HTML; valid MIME with both parts" % n)

    # -- suppression over the API, then the next injection
    st, _ = post("/api/v1/suppressions", {"address": "u0007@in.test", "reason": "asked"})
    st, r = post("/api/inject/v1", dict(base, recipients=[{"email": "u0007@in.test"}, {"email": "new@in.test"}]))
    if r.get("failed_recipients") != ["u0007@in.test"] or r.get("success_count") != 1:
        raise Fail("after suppressing u0007: %r" % r)
    log("a suppressed address is refused by the next injection")


def test_headers(env):
    env.dns(mx={"in.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("in.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon()
    d.start()
    harness.wait_until(lambda: get("/api/v1/status") is not None, 5, what="the API")
    inj = "x\r\nBcc: victim@in.test"

    def obj(**kw):
        c = {"from": {"email": "news@senders.test", "name": "News"}, "subject": "s", "text_body": "t"}
        c.update(kw)
        return {"envelope_sender": "news@senders.test", "content": c, "recipients": [{"email": "a@in.test"}]}

    def raw(content, **kw):
        r = {"envelope_sender": "news@senders.test", "content": content, "recipients": [{"email": "a@in.test"}]}
        r.update(kw)
        return r
    att = {"data": "aGVsbG8=", "base64": True, "content_type": "text/plain", "file_name": "a.txt"}
    cases = [
        (obj(subject=inj), "content.subject"),
        (obj(subject="bare LF\nBcc: victim@in.test"), "content.subject"),
        (obj(subject="bare CR\rBcc: victim@in.test"), "content.subject"),
        (obj(**{"from": {"email": "news@senders.test", "name": inj}}), "content.from.name"),
        (obj(**{"from": {"email": "news@senders.test" + inj}}), "content.from.email"),
        (obj(reply_to={"email": "r@senders.test", "name": inj}), "content.reply_to.name"),
        (obj(reply_to={"email": "r@senders.test" + inj}), "content.reply_to.email"),
        (obj(headers={"X-Campaign": inj}), "content.headers.X-Campaign"),
        (obj(attachments=[dict(att, content_type="text/plain" + inj)]), "content.attachments[0].content_type"),
        (obj(attachments=[att, dict(att, file_name="a.txt" + inj)]), "content.attachments[1].file_name"),
        (obj(attachments=[dict(att, content_id="logo" + inj)]), "content.attachments[0].content_id"),
        (dict(obj(), recipients=[{"email": "a@in.test", "name": inj}]), "recipients[0].name"),
        (dict(obj(), recipients=[{"email": "a@in.test"}, {"email": "b@in.test" + inj}]), "recipients[1].email"),
        (dict(obj(), envelope_sender="news@senders.test" + inj), "envelope_sender"),
        (dict(obj(subject="Hi {{ first }}"), substitutions={"first": inj}), "substitutions.first"),
        (dict(obj(headers={"X-Id": "{{id}}"}), recipients=[{"email": "a@in.test", "substitutions": {"id": inj}}]),
         "recipients[0].substitutions.id"),
        (dict(obj(**{"from": {"email": "news@senders.test", "name": "{{n}}"}}),
              recipients=[{"email": "a@in.test", "substitutions": {"n": inj}}]), "recipients[0].substitutions.n"),
        (raw("Subject: {{ s }}\r\n\r\nbody\r\n", substitutions={"s": inj}), "substitutions.s"),
        (raw("From: a@senders.test\nX-T: {{t}}\n\nbody\n",
             recipients=[{"email": "a@in.test"}, {"email": "b@in.test", "substitutions": {"t": inj}}]),
         "recipients[1].substitutions.t"),
        (obj(attachments=[dict(att, content_type="not-a-type")]), "content.attachments[0].content_type"),
        (dict(obj(), template_dialect="Mustache"), "template_dialect"),
        (dict(obj(), template_dialect="Handlebars"), "template_dialect"),
        (dict(obj(), template_dialect="jinja"), "template_dialect"),
    ]
    for body, field in cases:
        st, r = post("/api/inject/v1", body)
        if st != 400 or r.get("field") != field or "error" not in r:
            raise Fail("injection through %s: got %s %r, want 400 naming it" % (field, st, r))
    s = get("/api/v1/status")
    if s["totals"]["received"] != 0 or s["queued"]["messages"] != 0:
        raise Fail("a refused request queued something: %r" % s)
    if harness.find_records(d.acct(), type="reception"):
        raise Fail("a refused request left a reception record")
    log("%d header-injection attempts: each a 400 naming its field, nothing queued" % len(cases))

    # the same line breaks where they are content, not headers: accepted, and no injected header arrives
    ok = [dict(obj(text_body="t {{v}}", html_body="<p>{{v}}</p>", subject="Hi {{ok}}"),
               template_dialect="Jinja", recipients=[{"email": "ok1@in.test", "substitutions": {"v": inj, "ok": "A"}}]),
          raw("Subject: plain\r\n\r\nbody {{v}}\r\n", substitutions={"v": inj},
              recipients=[{"email": "ok2@in.test"}])]
    for body in ok:
        st, r = post("/api/inject/v1", body)
        if st != 200 or r.get("success_count") != 1:
            raise Fail("a line break in a body value: %s %r" % (st, r))
    seen = harness.wait_for_recipients(env, {"ok1@in.test", "ok2@in.test"}, 20, settle=0.3)
    for rcpt in ("ok1@in.test", "ok2@in.test"):
        a = seen.get(rcpt)
        if not a:
            raise Fail("%s never arrived" % rcpt)
        m = email.message_from_bytes(a[0].data, policy=email.policy.default)
        if m["bcc"] is not None or any(k.lower() == "bcc" for k in m.keys()):
            raise Fail("%s arrived with a Bcc header: %r" % (rcpt, a[0].data[:600]))
        head = a[0].data.split(b"\r\n\r\n", 1)[0]
        if b"\nBcc:" in head:
            raise Fail("%s: an injected line in the header section: %r" % (rcpt, head))
    log("line breaks in body values accepted; the messages arrive with no injected header")


if __name__ == "__main__":
    harness.main([test_inject, test_headers])
