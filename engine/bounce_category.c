/*
 * bounce_category.c - what a bounce means (see bounce_report.h): the
 * category table shared by synchronous replies during delivery and by
 * asynchronous reports (the enhanced code first, phrase families second,
 * explicit reasons over generic codes); the stage rule both share ("user
 * unknown" without an X.1.x code is a bad mailbox only when it refused RCPT
 * TO, else a filter); and the per-recipient rules only a report can apply
 * (the remote's own code in the diagnostic, delays and expiries).
 */
#include "engine/bounce_report.h"

#include <ctype.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- categories ------------------------------------------------------------------------------ */

struct text_rule {
	const char *re;
	const char *category;
	bool strong; /* an explicit reason that beats the enhanced code's generic subject */
	regex_t compiled;
};

/* Phrase families of reply texts, most specific first: the first match wins. */
static struct text_rule text_rules[] = {
	{"virus|malware|infected", "virus-related", true, {0}},
	{"relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)|not permitted to relay|unable to relay|"
	 "we do not relay|relay not|not (a )?relay|open relay|relaying|email address is not verified",
	 "relaying-issues", false, {0}},
	/* sender authentication and rate limits, whatever the status code says */
	{"(^|[^a-z])(spf|dkim|dmarc)([^a-z]|$)|unauthenticated|authentication (checks? )?(failed|failure|required)|"
	 "not authenticated|not allowed to send from", "policy-related", true, {0}},
	{"too many (recipients|messages|connections|mails)|sent to too many|rate limit|sending rate|throttl|"
	 "security (issue|risk|polic)", "policy-related", true, {0}},
	{"multiple addresses in (the )?from", "protocol-errors", true, {0}},
	/* the sender refused: its address, or a list the sender may not post to */
	{"(sender|from)( address)? (was |is )?(rejected|refused|invalid|unknown|not verified)|sender verify failed|"
	 "(unroutable|invalid|bad|unknown) sender|not (a )?member of|not a member|permission to post|"
	 "not (allowed|permitted) to post", "invalid-sender", true, {0}},
	/* the sending host refused: its name, address or network */
	{"my name was rejected|(helo|ehlo) (command )?(rejected|refused|invalid)|invalid ip|dynamic (ip|address)|"
	 "dial-?up|residential|smtp server of your isp|(^|[^a-z])ube([^a-z]|$)", "spam-related", true, {0}},
	{"reverse (dns|lookup)|rdns|ptr (record|lookup)|no ptr|require[sd]? .*ptr|hostname (does not|doesn't) match|"
	 "not (have|resolve) .*reverse", "policy-related", false, {0}},
	{"not (rfc|compliant)|rfc ?(2822|5322|822|5321) |syntax error|improper|malformed (message|header|address)|"
	 "bare (lf|cr)|header (is )?missing|missing (required )?header", "protocol-errors", false, {0}},
	{"(mailbox|quota|disk|storage|inbox|mail ?box|mail ?folder)( is)? (full|exceeded|over)|over ?quota|"
	 "quota (exceeded|exceed)|insufficient (system )?storage|exceeds? (its |the )?(storage|quota)|"
	 "mailbox size limit|out of (disk )?space|limit set by (the )?recipient", "quota-issues", false, {0}},
	{"(mailbox|inbox|account)[^.,;]{0,40} (is|has been) (disabled|inactive|suspended|deactivated|expired|locked|frozen)|"
	 "(mailbox|inbox|account) (disabled|inactive|suspended|deactivated|expired|locked|frozen)|"
	 "account has been disabled|no longer (active|in use|available)|mailbox unavailable \\(disabled\\)",
	 "inactive-mailbox", false, {0}},
	{"null mx|domain [^ ]* ?(couldn't|could not|cannot|can't) be found|does(n't| not) (accept|receive) (e-?)?mail",
	 "bad-domain", true, {0}},
	/* transient DNS failures and loops: the route, not the domain */
	{"not found, try again|name server reply|dns (error|failure|timeout)|temporary (dns|lookup) failure|"
	 "routing loop|mail loop|loop detected|hop count|too many hops|no route to host|network is unreachable|"
	 "host unreachable", "routing-errors", true, {0}},
	{"host (not found|unknown)|domain (not found|does not exist|doesn't exist|name not found)|no such domain|"
	 "unrouteable|unroutable|name or service not known|no mx|host or domain name not found|domain (is )?invalid",
	 "bad-domain", false, {0}},
	{"(user|mailbox|recipient|address|account|addressee)( name)? (is )?(unknown|not found|does not exist|"
	 "doesn't exist|invalid|not exist|not valid|not recogni[sz]ed)|no such (user|mailbox|recipient|address|account)|"
	 "unknown (user|recipient|mailbox|local part|address)|invalid (recipient|mailbox|address)|does not exist|"
	 "not our customer|no mailbox|user doesn't have|no account by that name|recipient address rejected: access denied|"
	 "not a valid user|no valid recipients?", "bad-mailbox", false, {0}},
	{"retry time(out)? (exceeded|expired)|(been|too long) in (the )?queue|message (has )?expired|"
	 "delivery time expired|could not be delivered (within|for)|could not deliver for|"
	 "(cannot|can't|unable to) (send|deliver) (the )?(message|mail) for|failed [0-9]+ attempts|"
	 "(has been|was) delayed|will be retried|delivery (is )?delayed|warning message only|expired",
	 "message-expired", false, {0}},
	{"(spam|blacklist|blocklist|black list|block list|listed (at|in|on)|rbl|spamhaus|spamcop|reputation|junk|"
	 "access denied|blocked|bulk mail|unsolicited)", "spam-related", false, {0}},
	{"(message|mail) (size|too (big|large))|too large|exceeds (the )?(maximum|size)|message length",
	 "content-related", false, {0}},
	{"sender domain|domain of sender", "invalid-sender", false, {0}},
	{"policy|violation|not authori[sz]ed|not allowed|too many|try again later|refused|rejected|denied|filter",
	 "policy-related", false, {0}},
	{"connection (refused|reset|closed|dropped|lost)|socket error", "bad-connection", false, {0}},
	{"timed? ?out|timeout|did not accept our requests to connect|unreachable", "no-answer-from-host", false, {0}},
};

/* "User unknown" and its kin: what a server says of a mailbox that does
 * not exist, and also what many filters say to refuse a message they will
 * not take (a carrier's domain filter after DATA, a gateway's content
 * filter). Alone it does not tell the two apart. */
static struct text_rule user_unknown = {
	"user (is )?unknown|unknown (user|recipient)|no such (user|recipient)|(user|recipient) (is )?not found|"
	"user (does )?not exist", "bad-mailbox", false, {0}};

/* What tells them apart, in a report that does not say which command the
 * reply answered: the program that delivers to the mailbox itself said so
 * (sendmail's mail.local, procmail, maildrop); or, weaker, the reply
 * names the recipient the way an MTA answers RCPT TO ("<a@b>... User
 * unknown", Sendmail's form). */
static struct text_rule local_agent = {
	"(^|[^a-z])(mail\\.local|procmail|maildrop):|local delivery (agent|failed)", NULL, false, {0}};
static struct text_rule rcpt_echo = {"@[a-z0-9.-]+>?\\.\\.\\. ", NULL, false, {0}};

static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

static void compile_one(struct text_rule *r)
{
	if (regcomp(&r->compiled, r->re, REG_EXTENDED | REG_ICASE | REG_NOSUB))
		r->re = NULL;
}

static void compile_rules(void)
{
	for (size_t i = 0; i < sizeof(text_rules) / sizeof(text_rules[0]); i++)
		compile_one(&text_rules[i]);
	compile_one(&user_unknown);
	compile_one(&local_agent);
	compile_one(&rcpt_echo);
}

static bool matches(struct text_rule *r, const char *text)
{
	pthread_once(&rules_once, compile_rules);
	return text && r->re && regexec(&r->compiled, text, 0, NULL, 0) == 0;
}

static const struct text_rule *by_text(const char *text)
{
	for (size_t i = 0; i < sizeof(text_rules) / sizeof(text_rules[0]); i++)
		if (matches(&text_rules[i], text))
			return &text_rules[i];
	return NULL;
}

static bool is(const char *t, const char *category)
{
	return t && !strcmp(t, category);
}

/* The categories the enhanced code's detail names outright (RFC 3463); NULL
 * when the detail is generic and the subject (or the text) decides. */
static const char *by_detail(int subj, int det, const char *t)
{
	switch (subj * 100 + det) {
	case 101: case 100: case 103: case 106: return is(t, "spam-related") ? t : "bad-mailbox";
	case 102: case 110: return "bad-domain";
	case 404: return is(t, "routing-errors") ? t : "bad-domain";
	case 107: case 108: return "invalid-sender";
	case 201: return t ? t : "inactive-mailbox"; /* often misused for "no such user" */
	case 202: return "quota-issues";
	case 203: return is(t, "quota-issues") ? t : "content-related";
	case 302: case 304: return "content-related";
	case 407: return "message-expired";
	case 701: return is(t, "spam-related") || is(t, "bad-mailbox") || is(t, "invalid-sender") ? t : "policy-related";
	default: return NULL;
	}
}

static const char *by_subject(int subj)
{
	switch (subj) {
	case 1: return "bad-mailbox";
	case 2: return "quota-issues";
	case 3: return "bad-configuration";
	case 4: return "routing-errors";
	case 5: return "protocol-errors";
	case 6: return "content-related";
	case 7: return "policy-related";
	default: return "other";
	}
}

const char *bounce_category(int code, const char *e, const char *text)
{
	const struct text_rule *rule = by_text(text);
	const char *t = rule ? rule->category : NULL, *d;
	int cls = 0, subj = -1, det = -1;

	if (e && sscanf(e, "%d.%d.%d", &cls, &subj, &det) != 3)
		cls = 0;
	if (!cls)
		return t ? t : "other";
	/* an explicit reason (sender authentication, a rate limit, a refused
	 * sender or host) beats what the code says, but for a full mailbox or
	 * an expired message */
	if ((d = by_detail(subj, det, t)))
		return rule && rule->strong && !is(d, "message-expired") && !is(d, "quota-issues") ? t : d;
	return t ? t : by_subject(subj);
}

/* An enhanced code "c.s.d" whose subject is s (any class). */
static bool subject_is(const char *e, char s)
{
	return e && e[0] && e[1] == '.' && e[2] == s && e[3] == '.';
}

/* A code that says nothing about the reason: none, or X.0.0. */
static bool generic_code(const char *e)
{
	return !e || !e[0] || (e[1] == '.' && !strcmp(e + 2, "0.0"));
}

const char *bounce_reply_category(int code, const char *e, const char *text, enum bounce_phase phase)
{
	const char *c = bounce_category(code, e, text);

	if (!is(c, "bad-mailbox") || !matches(&user_unknown, text) || subject_is(e, '1'))
		return c;
	/* "user unknown" with no X.1.x code to confirm it: a bad mailbox when
	 * the reply refused the recipient at RCPT TO, or when the delivery
	 * program said so; in answer to DATA (the recipient was accepted
	 * first), or with nothing to say which, a filter at the recipient's
	 * end. A code that says something else (X.2.1 "mailbox disabled",
	 * X.3.0 "system") takes the stated stage; a generic one (none, X.0.0)
	 * is also confirmed by a RCPT-style reply. */
	if (phase == BOUNCE_PHASE_RCPT)
		return c;
	if (phase == BOUNCE_PHASE_UNKNOWN &&
	    (matches(&local_agent, text) || (generic_code(e) && matches(&rcpt_echo, text))))
		return c;
	return "policy-related";
}

bool bounce_category_hard(const char *c)
{
	return c && (!strcmp(c, "bad-mailbox") || !strcmp(c, "bad-domain") || !strcmp(c, "inactive-mailbox") ||
		     !strcmp(c, "complaint"));
}

/* ---- one recipient of a report ---------------------------------------------------------------- */

/* The first enhanced status code in a reply text, into out (cap >= 16). */
static bool enhanced_in(const char *text, char *out, size_t cap)
{
	for (const char *p = text; *p; p++) {
		int a, b, k = 0;

		if ((p[0] != '4' && p[0] != '5') || p[1] != '.' || (p > text && isalnum((unsigned char)p[-1])))
			continue;
		if (sscanf(p + 2, "%3d.%3d%n", &a, &b, &k) == 2 && k > 0 && a < 10 && !isalnum((unsigned char)p[2 + k]))
			return snprintf(out, cap, "%c.%d.%d", p[0], a, b) > 0;
	}
	return false;
}

const char *bounce_rcpt_category(const struct bounce_rcpt *x)
{
	char own[16];
	const char *e = x->status, *c;
	bool delay = !strcasecmp(x->action, "delayed") || !strcasecmp(x->action, "expired");

	/* the remote server's own code is more specific than the reporting
	 * MTA's Status, unless that says the message expired */
	if (enhanced_in(x->diag, own, sizeof(own)) && (!e[0] || (own[0] == e[0] && strcmp(e + 1, ".4.7"))))
		e = own;
	c = bounce_reply_category(x->code, e, x->diag, x->phase);
	/* a delay warning, a final bounce for a temporary failure, or one for
	 * a host that could not be reached (no MTA bounces that at once: it
	 * retries until the message's queue life ends): an expiry */
	if ((delay || ((e[0] == '4' || (!e[0] && x->code / 100 == 4)) && bounce_rcpt_failed(x)) ||
	     is(c, "no-answer-from-host") || is(c, "bad-connection")) &&
	    (is(c, "other") || is(c, "no-answer-from-host") || is(c, "bad-connection")))
		return "message-expired";
	return c;
}

bool bounce_rcpt_failed(const struct bounce_rcpt *x)
{
	return !strcasecmp(x->action, "failed") || x->status[0] == '5' || (!x->action[0] && x->code >= 500);
}
