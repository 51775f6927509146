// A program using the einsim library: builds a cascade of Einsums from text, then loads two
// presets and times a decode step with run_model; what a design-space study written in C++
// starts from. Build: see CMakeLists.txt beside this file.
#include <cstdio>

#include "arch/arch.h"
#include "common/error.h"
#include "common/toml_reader.h"
#include "sim/run/run.h"
#include "workloads/analysis.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"

namespace {

// The scores and the stable-softmax numerator of attention, in FuseMax's notation.
constexpr const char* kScores = R"toml(
version = 1
[cascade]
name = "scores"
inputs = ["Q", "K"]
einsums = [
  "QK[m,p] = Q[e,p] * K[e,m]",
  "GM[p]   = max[m] QK[m,p]",
  "SN[m,p] = exp(QK[m,p] - GM[p])",
]
[cascade.ranks]
M = "keys"
P = "queries"
E = "head_dim"
[cascade.params]
keys = 4096
queries = 64
head_dim = 128
)toml";

}  // namespace

int main() {
  try {
    auto doc = einsim::ConfigDoc::parse(kScores, "scores.toml");
    const einsim::Cascade scores = einsim::bind_cascade(einsim::read_cascade(doc->root().get_table("cascade")));
    doc->finish();
    const einsim::CascadeStats stats = einsim::analyze(scores);
    std::printf("cascade %s: %zu Einsums, %.4g FLOPs, %.4g bytes of compulsory traffic\n", scores.name.c_str(),
                scores.einsums.size(), stats.ops.flops(), stats.compulsory_bytes);

    const einsim::ArchSpec h100 = einsim::load_arch("h100");
    const einsim::ModelConfig llama = einsim::load_model("llama-3-8b");
    einsim::RunOptions opt;
    opt.phase.kind = einsim::PhaseKind::Decode;
    opt.phase.batch = 16;
    opt.phase.context = 8192;
    const einsim::RunReport r = einsim::run_model(llama, h100, opt);
    std::printf("%s on %s: decode step %.3f ms, %.0f tokens/s\n", r.model.c_str(), r.arch.c_str(), r.step_time * 1e3,
                r.tokens_per_s);
    return 0;
  } catch (const einsim::UserError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
