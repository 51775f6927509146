// The CUDA-graph runtime against gpt-fast's A100 decode table (data/published/gpt-fast): the
// preset carries what the fit gives, and the in-sample error stays within its target.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "../workloads/helpers.h"

#include "common/paths.h"
#include "validate/gpt_fast.h"

using namespace einsim;

TEST_CASE("gpt-fast decode: the cuda-graphs runtime's fit", "[runtime]") {
  const auto rows = read_gpt_fast(data_path("published") + "/gpt-fast/gpt-fast-a100.csv");
  const ArchSpec a = load_arch("a100");
  const Runtime eager = load_runtime("pytorch-eager");
  const GraphRuntimeFit fit = fit_graph_runtime(a, eager, rows);
  fmt::print("cuda-graphs fit: node {:.4g} us, iteration {:.3g} us, collective base x{:.3f}; {} rows, MAPE {:.1f}%\n", fit.graph_node * 1e6,
             fit.iteration * 1e6, fit.collective_base, fit.rows, 100 * fit.mape);
  const Runtime graphs = load_runtime("cuda-graphs");
  // The preset carries the fit (to two significant figures; a base scale of 0 stays 0).
  CHECK(graphs.graph_node == Approx(fit.graph_node).epsilon(0.01));
  CHECK(graphs.iteration == Approx(fit.iteration).margin(0.05e-6));
  CHECK(graphs.collective_base == Approx(fit.collective_base).margin(0.005));
  CHECK(graphs.graphs == GraphMode::All);
  MapCache cache;
  double mape = 0, tp_many = 0;
  int n = 0, many = 0;
  for (const auto& r : rows) {
    if (r.weights != "bf16") continue;
    const DecodePrediction p = predict_gpt_fast(a, graphs, r, &cache);
    fmt::print("  {:<14} {} tp{} measured {:7.2f} tok/s predicted {:7.2f} ({:+.1f}%)\n", r.model, r.weights, r.tp, r.tokens_per_s, p.tokens_per_s,
               100 * p.error());
    mape += std::fabs(p.error()), ++n;
    if (r.tp > 1) tp_many += std::fabs(p.error()), ++many;
  }
  mape /= n;
  tp_many /= many;
  fmt::print("  in-sample MAPE {:.1f}% ({} rows), TP 2-8 {:.1f}% ({} rows)\n", 100 * mape, n, 100 * tp_many, many);
  // The target: 10% in-sample, TP 2-8 included.
  CHECK(mape <= 0.10);
  CHECK(tp_many <= 0.10);
  // The eager runtime on the same table: the harness mismatch the runtimes separate.
  const DecodePrediction eager_7b = predict_gpt_fast(a, eager, rows.front(), &cache);
  CHECK(eager_7b.tokens_per_s < 0.75 * rows.front().tokens_per_s);
}

TEST_CASE("gpt-fast decode: weight-only int8 and int4, fitted on one row each, the rest held out", "[runtime][quant]") {
  const auto rows = read_gpt_fast(data_path("published") + "/gpt-fast/gpt-fast-a100.csv");
  const ArchSpec a = load_arch("a100");
  const Runtime graphs = load_runtime("cuda-graphs");
  MapCache cache;
  for (const char* weights : {"int8", "int4"}) {
    CAPTURE(weights);
    Runtime base = graphs;
    const KernelKind kind = std::string(weights) == "int4" ? KernelKind::GemmW4A16 : KernelKind::GemmW8A16;
    base.efficiency[static_cast<size_t>(kind)] = 1;
    const QuantizedFit fit = fit_quantized_runtime(a, base, rows, weights);
    fmt::print("{} weight-only GEMM quality: {:.2f} (fitted on {} row, error {:.1f}%)\n", weights, fit.efficiency, fit.rows, 100 * fit.mape);
    // The preset carries the fit.
    CHECK(graphs.kernel_efficiency(kind) == Approx(fit.efficiency));
    double mape = 0;
    int n = 0;
    for (const auto& r : rows) {
      if (r.weights != weights || gpt_fast_fit_row(r)) continue;
      const DecodePrediction p = predict_gpt_fast(a, graphs, r, &cache);
      fmt::print("  {:<14} {} tp{} measured {:7.2f} tok/s predicted {:7.2f} ({:+.1f}%)\n", r.model, r.weights, r.tp, r.tokens_per_s, p.tokens_per_s,
                 100 * p.error());
      mape += std::fabs(p.error()), ++n;
    }
    mape /= n;
    fmt::print("  held-out MAPE {:.1f}% ({} rows)\n", 100 * mape, n);
    CHECK(n >= 2);
    // Held out (2026-12-03): int8 6.3% over 9 rows, int4 4.8% over 2; bounds just above.
    CHECK(mape <= (std::string(weights) == "int4" ? 0.055 : 0.07));
  }
}

TEST_CASE("gpt-fast table: malformed files are located errors", "[runtime][errors]") {
  static int n = 0;
  auto file = [&](const std::string& body) {
    const auto p = std::filesystem::temp_directory_path() / fmt::format("einsim-gptfast-{}-{}.csv", ::getpid(), n++);
    std::ofstream(p) << body;
    return p.string();
  };
  const std::string head = "model,weights,kv_cache,tp,tokens_per_s,gpu,power_limit_w,prompt_tokens,new_tokens,table\n";
  auto error = [&](const std::string& body) { return einsim::test::error_of([&] { read_gpt_fast(file(body)); }); };
  CHECK_THAT(error(""), Catch::Contains("empty file"));
  CHECK_THAT(error("model,weights\n"), Catch::Contains(":1:1: error: missing column 'kv_cache'"));
  CHECK_THAT(error(head), Catch::Contains("no measurements"));
  CHECK_THAT(error(head + "llama-2-7b,bf16,bf16,1\n"), Catch::Contains(":2:1: error: expected 10 fields, found 4"));
  CHECK_THAT(error(head + "llama-2-7b,int3,bf16,1,10,A100,330,5,200,t\n"), Catch::Contains(":2:12: error: unknown weights 'int3'"));
  CHECK_THAT(error(head + "llama-2-7b,bf16,bf16,0,10,A100,330,5,200,t\n"), Catch::Contains(":2:22: error: expected a positive integer, found '0'"));
  CHECK_THAT(error(head + "llama-2-7b,bf16,bf16,1,0,A100,330,5,200,t\n"), Catch::Contains(":2:24: error: 'tokens_per_s' must be a positive number"));
  CHECK_THAT(error(head + "llama-2-7b,bf16,bf16,1,x,A100,330,5,200,t\n"), Catch::Contains(":2:24: error: expected a finite non-negative number"));
  CHECK_THAT(error(head + "llama-2-7b,bf16,bf16,1,10,A100,330,5.5,200,t\n"), Catch::Contains(":2:36: error: expected a positive integer, found '5.5'"));
}
