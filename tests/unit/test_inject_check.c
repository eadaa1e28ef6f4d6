/*
 * test_inject_check.c - HTTP injection request checks (engine/inject_check.c)
 * against header injection: a CR or LF in any field that becomes a header
 * line is refused naming the field (exact message and JSON path); values
 * that header placeholders would insert are checked, body-only ones are
 * not; template_dialect; an attachment's content_type syntax. And the MIME
 * builder's own guard: no field can start a header line of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_str.h"
#include "engine/inject_check.h"
#include "engine/mime_build.h"

#define WHY_CRLF "a field that becomes a header line must not contain CR or LF"

/* The request (JSON text, ' for ") checked: want_field NULL means it passes. */
static void check(const char *text, const char *want_why, const char *want_field)
{
	char *j = strdup(text);
	json_error_t jerr;
	json_t *root;
	const char *why = NULL, *field = NULL;
	int rc;

	for (char *c = j; *c; c++)
		if (*c == '\'')
			*c = '"';
	root = json_loads(j, 0, &jerr);
	if (!root)
		fail_msg("test JSON broken: %s: %s", jerr.text, j);
	rc = inject_check(root, 1 << 20, &why, &field);
	if (!want_why && rc != 0)
		fail_msg("refused: %s (%s): %s", why, field ? field : "-", j);
	if (want_why) {
		if (rc != -1)
			fail_msg("accepted: %s", j);
		if (strcmp(why, want_why) != 0)
			fail_msg("why: %s\nwant: %s\nfor %s", why, want_why, j);
		if (!want_field != !field || (field && strcmp(field, want_field) != 0))
			fail_msg("field: %s, want %s, for %s", field ? field : "NULL", want_field ? want_field : "NULL", j);
	}
	json_decref(root);
	free(j);
}

#define OBJ_HEAD "{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'content':{'from':{'email':'f@x.test'},'text_body':'t',"

static void test_object_fields(void **state)
{
	(void)state;
	check(OBJ_HEAD "'subject':'hello'}}", NULL, NULL);
	check(OBJ_HEAD "'subject':'hi\\r\\nBcc: victim@x.test'}}", WHY_CRLF, "content.subject");
	check(OBJ_HEAD "'subject':'hi\\nX: y'}}", WHY_CRLF, "content.subject");
	check(OBJ_HEAD "'subject':'hi\\rX: y'}}", WHY_CRLF, "content.subject");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'content':{'from':{'email':'f@x.test',"
	      "'name':'Eve\\r\\nBcc: v@x.test'},'text_body':'t'}}", WHY_CRLF, "content.from.name");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'content':{'from':{'email':'f@x.test"
	      "\\r\\nBcc: v@x.test'},'text_body':'t'}}", WHY_CRLF, "content.from.email");
	check(OBJ_HEAD "'reply_to':{'email':'r@x.test','name':'R\\nX: y'}}}", WHY_CRLF, "content.reply_to.name");
	check(OBJ_HEAD "'reply_to':{'email':'r@x.test\\n'}}}", WHY_CRLF, "content.reply_to.email");
	check(OBJ_HEAD "'headers':{'X-Ok':'fine','X-Bad':'v\\r\\nBcc: v@x.test'}}}", WHY_CRLF, "content.headers.X-Bad");
	check(OBJ_HEAD "'headers':{'X-Bad\\r\\nBcc':'v'}}}", "a header needs a valid name and a string value",
	      "content.headers.X-Bad\r\nBcc");
	check(OBJ_HEAD "'attachments':[{'data':'x','content_type':'text/plain'},"
	      "{'data':'x','content_type':'text/plain\\r\\nBcc: v@x.test'}]}}", WHY_CRLF,
	      "content.attachments[1].content_type");
	check(OBJ_HEAD "'attachments':[{'data':'x','file_name':'a.txt\\r\\nBcc: v@x.test'}]}}", WHY_CRLF,
	      "content.attachments[0].file_name");
	check(OBJ_HEAD "'attachments':[{'data':'x','content_id':'logo\\n'}]}}", WHY_CRLF,
	      "content.attachments[0].content_id");
	/* content_type syntax beyond CR/LF */
	check(OBJ_HEAD "'attachments':[{'data':'x','content_type':'image/png; name=\\'a b.png\\''}]}}", NULL, NULL);
	check(OBJ_HEAD "'attachments':[{'data':'x','content_type':'png'}]}}",
	      "content_type must be a MIME type (type/subtype, optional parameters, printable ASCII)",
	      "content.attachments[0].content_type");
	check(OBJ_HEAD "'attachments':[{'data':'x','content_type':'text/plain\\u000bX'}]}}",
	      "content_type must be a MIME type (type/subtype, optional parameters, printable ASCII)",
	      "content.attachments[0].content_type");
	check(OBJ_HEAD "'attachments':[{'data':'x','content_type':'text/pl\\u00e4in'}]}}",
	      "content_type must be a MIME type (type/subtype, optional parameters, printable ASCII)",
	      "content.attachments[0].content_type");
	/* line breaks in the bodies are content, not headers */
	check(OBJ_HEAD "'html_body':'<p>a</p>\\r\\n<p>b</p>'}}", NULL, NULL);
}

static void test_envelope_and_recipients(void **state)
{
	(void)state;
	check("{'envelope_sender':'s@x.test\\r\\nRCPT TO:<v@x.test>','recipients':[{'email':'a@x.test'}],"
	      "'content':'Subject: x\\r\\n\\r\\nb'}", "envelope_sender must not contain CR or LF", "envelope_sender");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'},{'email':'b@x.test\\r\\nBcc: v@x.test'}],"
	      "'content':'Subject: x\\r\\n\\r\\nb'}", WHY_CRLF, "recipients[1].email");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test','name':'A\\nBcc: v@x.test'}],"
	      "'content':'Subject: x\\r\\n\\r\\nb'}", WHY_CRLF, "recipients[0].name");
	/* an invalid address without a line break stays that recipient's failure */
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'not an address'}],"
	      "'content':'Subject: x\\r\\n\\r\\nb'}", NULL, NULL);
}

static void test_substitutions(void **state)
{
	(void)state;
	/* raw content: placeholders before the empty line are header ones */
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'substitutions':{'s':'x\\r\\nBcc: v'},"
	      "'content':'Subject: {{ s }}\\r\\n\\r\\nbody'}", WHY_CRLF, "substitutions.s");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'substitutions':{'s':'x\\r\\nBcc: v'},"
	      "'content':'Subject: hi\\r\\n\\r\\nbody {{ s }}'}", NULL, NULL);
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'substitutions':{'s':'x\\r\\nBcc: v'},"
	      "'content':'Subject: hi\\n\\nbody {{s}}'}", NULL, NULL);
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'},"
	      "{'email':'b@x.test','substitutions':{'s':'ok','t':'x\\nBcc: v'}}],"
	      "'content':'Subject: {{s}}\\nX-T: {{t}}\\n\\nbody'}", WHY_CRLF, "recipients[1].substitutions.t");
	/* a header line without a line end at the end of the content */
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test','substitutions':{'s':'\\r'}}],"
	      "'content':'Subject: {{s}}'}", WHY_CRLF, "recipients[0].substitutions.s");
	/* numbers and objects render as JSON text: no line break possible */
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test','substitutions':{'s':{'k':'a\\nb'}}}],"
	      "'content':'Subject: {{s}}\\r\\n\\r\\nb'}", NULL, NULL);
	/* object form: subject, From name and header values are filled as headers */
	check(OBJ_HEAD "'subject':'Hi {{ first }}'},'substitutions':{'first':'A\\r\\nBcc: v'}}", WHY_CRLF,
	      "substitutions.first");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test','substitutions':{'n':'N\\n'}}],"
	      "'content':{'from':{'email':'f@x.test','name':'{{n}}'},'text_body':'t'}}", WHY_CRLF,
	      "recipients[0].substitutions.n");
	check(OBJ_HEAD "'headers':{'X-Id':'{{id}}'}},'recipients':[{'email':'a@x.test','substitutions':{'id':'1\\r\\n'}}]}",
	      WHY_CRLF, "recipients[0].substitutions.id");
	/* ... and the text body is not */
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test','substitutions':{'n':'line\\nline'}}],"
	      "'content':{'from':{'email':'f@x.test'},'subject':'{{ other }}','text_body':'{{n}}'}}", NULL, NULL);
}

static void test_dialect(void **state)
{
	(void)state;
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'template_dialect':'Jinja',"
	      "'content':'Subject: x\\r\\n\\r\\nb'}", NULL, NULL);
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'template_dialect':null,"
	      "'content':'Subject: x\\r\\n\\r\\nb'}", NULL, NULL);
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'template_dialect':'Mustache',"
	      "'content':'Subject: x\\r\\n\\r\\nb'}",
	      "unknown template_dialect (KumoMTA's are \"Jinja\", \"Static\" and \"Handlebars\"; Salvo supports "
	      "\"Jinja\")", "template_dialect");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'template_dialect':'jinja',"
	      "'content':'Subject: x\\r\\n\\r\\nb'}",
	      "unknown template_dialect (KumoMTA's are \"Jinja\", \"Static\" and \"Handlebars\"; Salvo supports "
	      "\"Jinja\")", "template_dialect");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'template_dialect':3,"
	      "'content':'Subject: x\\r\\n\\r\\nb'}",
	      "unknown template_dialect (KumoMTA's are \"Jinja\", \"Static\" and \"Handlebars\"; Salvo supports "
	      "\"Jinja\")", "template_dialect");
	check("{'envelope_sender':'s@x.test','recipients':[{'email':'a@x.test'}],'template_dialect':'Static',"
	      "'content':'Subject: x\\r\\n\\r\\nb'}",
	      "template_dialect is not supported here: Salvo fills {{ name }} placeholders as \"Jinja\" (the default)",
	      "template_dialect");
}

/* The builder given hostile fields directly: every line of its header
 * sections is a header field or a continuation, never an injected one. */
static void test_mime_build_guard(void **state)
{
	struct mime_attachment att = {.data = "abc", .len = 3, .content_type = "text/plain\r\nBcc: v@x.test",
				      .file_name = "a\r\nBcc: v@x.test", .content_id = "c\r\nBcc: v@x.test"};
	struct mime_attachment att2 = {.data = "abc", .len = 3, .content_type = "text/plain\nBcc: v@x.test"};
	struct mime_attachment both[] = {att, att2};
	struct mime_header h = {"X-H", "v\r\nBcc: v@x.test"};
	struct mime_message m = {
		.from_email = "f@x.test\r\nBcc: v@x.test", .from_name = "F\r\nBcc: v@x.test",
		.to_email = "t@x.test", .to_name = "T\nBcc: v@x.test",
		.subject = "S\r\nBcc: v@x.test", .headers = &h, .n_headers = 1,
		.text = "t", .text_len = 1, .att = both, .n_att = 2, .host_name = "x.test",
	};
	struct json_buf b = {0};
	(void)state;

	assert_int_equal(mime_build(&m, &b), 0);
	assert_non_null(b.data);
	/* "Bcc:" never starts a line, and every line break is CRLF */
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] == '\n') {
			assert_true(i > 0 && b.data[i - 1] == '\r');
			assert_false(b.len - i > 4 && !strncmp(b.data + i + 1, "Bcc:", 4));
		}
		if (b.data[i] == '\r')
			assert_true(i + 1 < b.len && b.data[i + 1] == '\n');
	}
	assert_false(!strncmp(b.data, "Bcc:", 4));
	json_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_object_fields),
		cmocka_unit_test(test_envelope_and_recipients),
		cmocka_unit_test(test_substitutions),
		cmocka_unit_test(test_dialect),
		cmocka_unit_test(test_mime_build_guard),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
