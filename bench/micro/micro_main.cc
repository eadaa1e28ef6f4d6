/*
 * salvo-micro: micro-benchmarks (Google Benchmark) of Salvo's hot C paths.
 *
 *   build/bench/micro/salvo-micro [--benchmark_filter=REGEX] [--benchmark_min_time=S]
 *
 * Each micro_*.cc registers the benchmarks of one area; this file holds
 * main() and the shared helpers. Results: bench/RESULTS.md.
 */
#include <benchmark/benchmark.h>

#include <ftw.h>
#include <stdexcept>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "micro.h"

namespace micro {

std::string make_temp_dir()
{
	char tmpl[] = "/tmp/salvo-micro.XXXXXX";

	if (!mkdtemp(tmpl))
		throw std::runtime_error("mkdtemp failed");
	return tmpl;
}

static int rm_entry(const char *path, const struct stat *, int, struct FTW *)
{
	return remove(path);
}

void remove_tree(const std::string &dir)
{
	if (!dir.empty())
		nftw(dir.c_str(), rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string text_message(size_t size, const char *from_domain)
{
	static const char *const words[] = {"delivery", "the", "spring", "offer", "your", "account", "and",
					     "update", "of", "newsletter", "with", "a", "week", "read", "more"};
	std::string m = std::string("From: \"Example News\" <news@") + from_domain + ">\r\n"
			"To: Some One <someone@example.net>\r\n"
			"Subject: This week's newsletter\r\n"
			"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
			"Message-ID: <20261122100000.1234@" + from_domain + ">\r\n"
			"MIME-Version: 1.0\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n\r\n";
	rng r;
	std::string line;

	while (m.size() < size) {
		const char *w = words[r.next() % (sizeof(words) / sizeof(words[0]))];

		if (line.size() + 1 + strlen(w) > 76) {
			m += line + "\r\n";
			line.clear();
		}
		line += line.empty() ? "" : " ";
		line += w;
	}
	m.resize(size - 2);
	if (m.back() == '\r')
		m.back() = '.';
	m += "\r\n";
	return m;
}

} // namespace micro

BENCHMARK_MAIN();
