/*
 * micro_dkim.cc - DKIM signing (engine/dkim.c dkim_sign()) of a 4 KiB
 * message, relaxed/relaxed, with an RSA-2048 and an Ed25519 key generated
 * with OpenSSL when first needed, written as PEM to a mkdtemp() directory,
 * loaded through the config's `domain-key` lines (dkim_keys_load(), as
 * salvod loads them) and the directory removed again. Per iteration: one
 * signature header, then freed (engine_dkim_sign() splices it in front of
 * the body; that 4 KiB copy is not measured).
 */
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>

extern "C" {
#include "core/config.h"
#include "engine/dkim.h"
}

#include "micro.h"

namespace {

bool write_key(const std::string &path, EVP_PKEY *k)
{
	FILE *f = fopen(path.c_str(), "w");
	bool ok = f && k && PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;

	if (f)
		fclose(f);
	return ok;
}

/* Keys for rsa.example (RSA-2048) and ed.example (Ed25519), loaded once. */
struct keys {
	struct dkim_keys *ks = nullptr;
	std::string error;

	keys()
	{
		std::string dir = micro::make_temp_dir();
		EVP_PKEY *rsa = EVP_RSA_gen(2048);
		EVP_PKEY *ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
		struct config cfg;
		char err[CONFIG_ERR_MAX], kerr[256];

		if (!write_key(dir + "/rsa.pem", rsa) || !write_key(dir + "/ed.pem", ed)) {
			error = "key generation failed";
		} else {
			std::string conf = "domain-key s1,rsa.example," + dir + "/rsa.pem\n"
					   "domain-key e1,ed.example," + dir + "/ed.pem\n";

			if (config_load_string(&cfg, "micro.conf", conf.c_str(), err) != 0) {
				error = err;
			} else {
				if (dkim_keys_load(&cfg, &ks, kerr, sizeof(kerr)) != 0)
					error = kerr;
				config_free(&cfg);
			}
		}
		EVP_PKEY_free(rsa);
		EVP_PKEY_free(ed);
		micro::remove_tree(dir);
	}
	~keys() { dkim_keys_free(ks); }
};

const keys &the_keys()
{
	static const keys k;
	return k;
}

} // namespace

static void BM_DkimSign(benchmark::State &state, const char *from_domain)
{
	const keys &k = the_keys();
	const std::string msg = micro::text_message(4096, from_domain);
	const int64_t t = (int64_t)time(nullptr);
	char err[256];

	if (!k.ks) {
		state.SkipWithError(k.error.c_str());
		return;
	}
	for (auto _ : state) {
		char *hdr = nullptr;
		size_t hdr_len = 0;
		int rc = dkim_sign(k.ks, msg.data(), msg.size(), t, &hdr, &hdr_len, err, sizeof(err));

		micro::keep(rc);
		micro::keep(hdr);
		if (rc != 0) {
			state.SkipWithError(rc > 0 ? "no key for the From domain" : err);
			break;
		}
		free(hdr);
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)msg.size());
}
BENCHMARK_CAPTURE(BM_DkimSign, rsa2048, "rsa.example")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_DkimSign, ed25519, "ed.example")->Unit(benchmark::kMicrosecond);
