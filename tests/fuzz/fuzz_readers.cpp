// Fuzzes every other reader of user input. The first byte picks the reader, the rest is the
// input: sweep formulas, architecture files, sweep specs, analysis scenarios, request traces (CSV, JSONL),
// einsim's kernel CSV, runtime files and the published measurement formats (LLMCompass, Vidur
// compute and network profiles, gpt-fast), read from a
// file as the tools read them. Anything but a UserError is a finding.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>

#include "arch/arch.h"
#include "common/toml_reader.h"
#include "sim/analyze/long_context.h"
#include "sim/analyze/power.h"
#include "sim/serve/trace.h"
#include "sim/sweep/evaluate.h"
#include "sim/sweep/formula.h"
#include "sim/sweep/spec.h"
#include "arch/runtime.h"
#include "validate/gpt_fast.h"
#include "validate/measurements.h"
#include "validate/validate.h"

using namespace einsim;

namespace {

// The input as a file the readers open by name (some choose their format by it).
std::string as_file(const std::string& text, const std::string& name) {
  static const std::string dir = "/tmp/einsim-fuzz-" + std::to_string(::getpid());
  static const bool made = [] { return ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST; }();
  (void)made;
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 14) {
      case 0: {  // a sweep formula over names a..z
        const auto resolve = [](const std::string& n) -> std::optional<int> {
          if (n.size() == 1 && n[0] >= 'a' && n[0] <= 'z') return n[0] - 'a';
          return std::nullopt;
        };
        const auto dims = [](int slot) -> std::optional<Dim> { return slot % 3 == 0 ? std::optional<Dim>(Dim::Time) : std::nullopt; };
        double slots[26];
        for (int i = 0; i < 26; ++i) slots[i] = i - 3;
        Formula::parse(text, SourceLoc{"fuzz", 1, 1}, resolve, dims).eval(slots);
        break;
      }
      case 1: {  // an architecture
        auto doc = ConfigDoc::parse(text, "fuzz.toml");
        read_arch(doc->root().get_table("arch"));
        doc->finish();
        break;
      }
      case 2: {  // a sweep spec, checked as `einsim check` does
        const SweepSpec s = load_sweep(as_file(text, "spec.toml"));
        check_sweep(s);
        break;
      }
      case 3:
        load_long_context(as_file(text, "lc.toml"), {});
        break;
      case 4:
        load_power(as_file(text, "power.toml"), {});
        break;
      case 5:
        read_azure_trace(as_file(text, "trace.csv"));
        break;
      case 6:
        read_kernel_csv(as_file(text, "kernels.csv"));
        break;
      case 7:
        load_kernel_samples(as_file(text, "matmul_A100.csv"));
        break;
      case 8:
        load_kernel_samples(as_file(text, (size % 2) ? "softmax_A100.csv" : "gelu_A100.csv"));
        break;
      case 10:  // Vidur's NCCL profiles, read and split for the collective fit
        load_kernel_samples(as_file(text, (size % 2) ? "all_reduce.csv" : "send_recv.csv"));
        break;
      case 11:
        read_gpt_fast(as_file(text, "gpt-fast.csv"));
        break;
      case 12:  // a runtime file
        load_runtime(as_file(text, "runtime.toml"));
        break;
      case 13:  // a JSONL request trace (Mooncake's shape), and what prefix sharing adds to it
      {
        Trace t = read_jsonl_trace(as_file(text, "trace.jsonl"), 1 + static_cast<int64_t>(size % 600));
        add_shared_prefix(t, 1 + static_cast<int64_t>(size % 3000), 0.5, t.hash_block > 0 ? t.hash_block : 16);
        break;
      }
      default:
        load_kernel_samples(as_file(text, "llama-2-7b_mlp.csv"));
        read_llmcompass_layer(as_file(text, "transformer_A100.csv"));
        break;
    }
  } catch (const UserError&) {
  }
  return 0;
}
