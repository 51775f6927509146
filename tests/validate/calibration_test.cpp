// Prediction error of the calibrated A100 preset against published measurements, and a check
// that the preset carries the values the documented fit produces. Slow (maps ~1,100 GEMMs
// twice): its own executable, label "calibration".
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>

#include "common/paths.h"
#include "validate/calibration.h"

using namespace einsim;

namespace {
const std::string kData = data_path("published");

std::vector<GemmSample> samples() {
  auto s = llmcompass_gemms(kData + "/llmcompass-a100/matmul_A100.csv");
  auto v = vidur_gemms(kData + "/vidur-a100/llama-2-7b_mlp.csv", 1);
  s.insert(s.end(), v.begin(), v.end());
  return s;
}
}  // namespace

TEST_CASE("A100 GEMM predictions: MAPE within the targets", "[calibration]") {
  const ArchSpec a = load_arch("a100");
  const std::vector<Predicted> p = predict_gemms(a, samples(), DType::FP16);
  const double llmcompass = mape(p, "llmcompass"), vidur = mape(p, "vidur");
  fmt::print("A100 preset: MAPE LLMCompass matmul {:.2f}% ({} GEMMs), Vidur Llama-2-7B TP1 projections+MLP {:.2f}% ({} GEMMs)\n",
             100 * llmcompass, std::count_if(p.begin(), p.end(), [](auto& x) { return x.sample.set == "llmcompass"; }), 100 * vidur,
             std::count_if(p.begin(), p.end(), [](auto& x) { return x.sample.set == "vidur"; }));
  for (const Predicted& x : p)
    if (x.sample.set == "llmcompass")
      fmt::print("  {:<24} measured {:9.4f} ms predicted {:9.4f} ms {:+6.1f}%  {}\n", x.sample.label, x.sample.measured * 1e3,
                 x.predicted * 1e3, 100 * (x.predicted - x.sample.measured) / x.sample.measured, x.bottleneck);
  CHECK(llmcompass <= 0.10);
  CHECK(vidur <= 0.15);
}

TEST_CASE("the A100 preset carries the fitted efficiency values", "[calibration]") {
  const ArchSpec a = load_arch("a100");
  const GpuFit f = fit_gpu(a, samples(), DType::FP16);
  fmt::print("fit: MAC efficiency {:.2f}, memory efficiency {:.2f}, per-operator overhead {:.1f} us\n", f.mac_efficiency,
             f.memory_efficiency, f.launch_overhead * 1e6);
  CHECK(f.mac_efficiency == Approx(a.gpu->efficiency.at(OpClass::Mac)).margin(0.011));
  CHECK(f.memory_efficiency == Approx(a.gpu->memory_efficiency).margin(0.011));
  CHECK(f.launch_overhead == Approx(a.gpu->launch_overhead).margin(1e-6));
}

TEST_CASE("A100: a whole GPT-3 layer against LLMCompass's measurement, out of sample", "[calibration]") {
  // Nothing here was fitted: the A100 preset's values come from GEMMs alone. The bounds guard
  // today's figures (docs/CALIBRATION.md explains each difference); they are not a target.
  const ArchSpec a = load_arch("a100");
  const ModelConfig gpt3 = load_model(config_path("models/gpt-3-175b.toml"));
  for (const bool prefill : {true, false}) {
    const auto measured = read_llmcompass_layer(kData + (prefill ? "/llmcompass-a100/transformer_A100.csv" : "/llmcompass-a100/transformerAR_A100.csv"));
    // Decode: KV length 2048 + output tokens, about 3072 (data/README.md).
    const std::vector<LayerRow> rows = compare_llmcompass_layer(a, gpt3, measured, prefill, 3072);
    fmt::print("GPT-3-175B layer, TP 4, batch 8, {}:\n", prefill ? "prefill 2048" : "decode at 3072");
    for (const LayerRow& r : rows)
      fmt::print("  {:<30} measured {:9.4f} ms predicted {:9.4f} ms {:+7.1f}%\n", r.part, r.measured * 1e3, r.predicted * 1e3,
                 100 * (r.predicted - r.measured) / r.measured);
    const LayerRow& layer = rows.back();
    REQUIRE(layer.part == "layer");
    const double err = std::abs(layer.predicted - layer.measured) / layer.measured;
    CHECK(err <= (prefill ? 0.10 : 0.15));
  }
}

namespace {
const std::string kOwn = (data_dir() / "measured").string();

// The H100's bf16 GEMMs (validate/data/h100-2026-11-27: PyTorch on an H100 SXM, 2026-11-27),
// the calibration set of the H100 preset. Everything else measured there and on the H200 is
// held out (docs/VALIDATION.md).
std::vector<GemmSample> h100_bf16_gemms() {
  std::vector<GemmSample> out;
  for (const KernelMeasurement& k : read_kernel_csv(kOwn + "/h100-2026-11-27/torch_bench.csv"))
    if (k.kind == "gemm" && k.dtype == "bf16") out.push_back({"h100-bf16", fmt::format("matmul {}x{}x{}", k.m, k.n, k.k), k.m, k.n, k.k, k.seconds, k.loc});
  return out;
}
}  // namespace

TEST_CASE("the H100 preset carries the values fitted on its measured bf16 GEMMs", "[calibration]") {
  const ArchSpec a = load_arch("h100");
  const std::vector<GemmSample> s = h100_bf16_gemms();
  REQUIRE(s.size() == 53);
  const GpuFit f = fit_gpu(a, s, DType::BF16);
  fmt::print("H100 fit on {} bf16 GEMMs: MAC efficiency {:.2f}, memory efficiency {:.2f}, per-operator overhead {:.1f} us, MAPE {:.2f}%\n", s.size(),
             f.mac_efficiency, f.memory_efficiency, f.launch_overhead * 1e6, 100 * f.mape.front().second);
  CHECK(f.mac_efficiency == Approx(a.gpu->efficiency.at(OpClass::Mac)).margin(0.011));
  CHECK(f.memory_efficiency == Approx(a.gpu->memory_efficiency).margin(0.011));
  // PyTorch's per-call overhead on that host: docs/VALIDATION.md applies it to the torch_bench rows.
  CHECK(f.launch_overhead == Approx(23.5e-6).margin(0.1e-6));
}
