/* micro.h - helpers shared by the salvo-micro benchmarks (bench/micro/). */
#ifndef SALVO_MICRO_H
#define SALVO_MICRO_H

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

namespace micro {

/* Keep a result alive: benchmark::DoNotOptimize() through a const
 * reference, whose asm only reads the value. The non-const overload's
 * read-write "+m,r" operand let g++ 12 hand back a garbage value (seen as a
 * wrong return code in an -O1 ASan build), so it is not used here. */
template <class T> inline void keep(const T &v)
{
	benchmark::DoNotOptimize(v);
}

/* A fresh directory /tmp/salvo-micro.XXXXXX; throws on failure. */
std::string make_temp_dir();
/* rm -r dir (nftw, no shell). */
void remove_tree(const std::string &dir);

/* A plain RFC 5322 message of exactly `size` bytes (CRLF lines: a header
 * with From news@FROM_DOMAIN, To, Subject, Date, Message-ID, MIME-Version,
 * Content-Type; then text lines of up to 76 characters). */
std::string text_message(size_t size, const char *from_domain);

/* xorshift64: cheap, deterministic pseudo-random numbers for workloads. */
struct rng {
	uint64_t x = 88172645463325252ull;
	uint64_t next()
	{
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		return x;
	}
};

} // namespace micro

#endif
