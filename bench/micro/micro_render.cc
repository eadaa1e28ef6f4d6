/*
 * micro_render.cc - HTTP injection's per-recipient rendering
 * (engine/inject_render.c inject_render() through render_shim.c): a ~4 KiB raw
 * message with five {{ }} variables (three from the recipient's
 * substitutions, the predefined email, one global), rendered for one
 * recipient per iteration into a fresh buffer that is then freed, as
 * inj_next() renders and free_batch() frees. The recipients (1,000, each
 * with its own values) are cycled through.
 */
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "bench/micro/render_shim.h"
#include "micro.h"

static std::string inject_request(size_t n_rcpt)
{
	/* the 4 KiB content: JSON-escaped (\r\n), placeholders in the header and body */
	std::string text = micro::text_message(3900, "example.com");
	std::string body = text.substr(text.find("\r\n\r\n") + 4);
	std::string content =
		"From: \"Example News\" <news@example.com>\r\n"
		"To: {{ email }}\r\n"
		"Subject: {{first_name}}, your order is on its way\r\n"
		"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"
		"Order {{ order_id }} has shipped.\r\n\r\n" + body.substr(0, body.size() / 2) +
		"\r\nYour coupon for next time: {{coupon}}\r\n\r\n" + body.substr(body.size() / 2) +
		"\r\n-- \r\n{{ company }}, 1 Example Street\r\n";
	std::string esc;

	for (char c : content)
		esc += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : c == '"' ? std::string("\\\"") :
		       std::string(1, c);
	std::string j = "{\"envelope_sender\":\"bounces@example.com\",\"content\":\"" + esc +
			"\",\"substitutions\":{\"company\":\"Example Trading Ltd\"},\"recipients\":[";
	for (size_t i = 0; i < n_rcpt; i++) {
		std::string k = std::to_string(i);

		j += (i ? "," : "") + std::string("{\"email\":\"user") + k + "@example.net\",\"name\":\"User " + k +
		     "\",\"substitutions\":{\"first_name\":\"Name" + k + "\",\"order_id\":\"A-2026-" + k +
		     "\",\"coupon\":\"SPRING" + k + "\"}}";
	}
	return j + "]}";
}

static void BM_InjectRender(benchmark::State &state)
{
	const std::string req = inject_request(1000);
	struct micro_render *m = micro_render_new(req.data(), req.size());
	size_t i = 0, in_len = 0, out_bytes = 0;

	if (!m) {
		state.SkipWithError("the injection request did not parse");
		return;
	}
	for (auto _ : state) {
		char *body = nullptr;
		size_t len = 0;

		if (micro_render_one(m, i++, &body, &len)) {
			state.SkipWithError("render failed");
			break;
		}
		micro::keep(body);
		micro::keep(len);
		benchmark::ClobberMemory();
		out_bytes += len;
		in_len = len;
		free(body);
	}
	micro_render_free(m);
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed((int64_t)out_bytes);
	state.SetLabel(std::to_string(in_len) + " B rendered");
}
BENCHMARK(BM_InjectRender);
