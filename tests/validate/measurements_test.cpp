#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common/paths.h"
#include "../workloads/helpers.h"
#include "validate/measurements.h"

using namespace einsim;
using einsim::test::error_of;

namespace {
const std::string kData = data_path("published");

std::string temp_file(const std::string& text) {
  static int n = 0;
  const auto p = std::filesystem::temp_directory_path() / ("einsim-meas-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".csv");
  std::ofstream(p) << text;
  return p.string();
}
}  // namespace

TEST_CASE("the LLMCompass A100 matmul sweep reads", "[validate]") {
  const auto rows = read_llmcompass_matmul(kData + "/llmcompass-a100/matmul_A100.csv");
  REQUIRE(rows.size() == 20);  // 10 values of M, then 10 of N = K (64 to 32768)
  CHECK(rows[0].m == 64);
  CHECK(rows[0].n == 12288);
  CHECK(rows[0].seconds == Approx(0.19e-3));
  CHECK(rows[0].flops_per_s == Approx(101.7124e12));
  // The reported throughput is 2MNK / latency.
  for (const auto& r : rows)
    CHECK(2.0 * static_cast<double>(r.m * r.n * r.k) / r.seconds == Approx(r.flops_per_s).epsilon(0.01));
}

TEST_CASE("the LLMCompass row-wise kernels read", "[validate]") {
  CHECK(read_llmcompass_elementwise(kData + "/llmcompass-a100/softmax_A100.csv").front().n == 32);
  const auto gelu = read_llmcompass_elementwise(kData + "/llmcompass-a100/gelu_A100.csv");
  CHECK(gelu.front().n == 1);
  CHECK(gelu.front().elements_per_s == Approx(0.021262214336633663e9));
}

TEST_CASE("the Vidur A100 Llama-2 profiles read", "[validate]") {
  const auto rows = read_vidur_mlp(kData + "/vidur-a100/llama-2-7b_mlp.csv");
  REQUIRE(rows.size() == 1044);
  const VidurRow& r = rows.front();
  CHECK(r.n_embd == 4096);
  CHECK(r.n_expanded_embd == 11008);
  CHECK(r.gated_mlp);
  CHECK(r.median_seconds.count("attn_pre_proj"));
  CHECK(r.median_seconds.count("mlp_down_proj"));
  CHECK(read_vidur_mlp(kData + "/vidur-a100/llama-2-70b_mlp.csv").front().n_kv_head == 8);
}

TEST_CASE("malformed measurement files are located errors", "[validate][errors]") {
  const std::string bad = temp_file("64, 12288, 12288, 0.19ms, 101Tflops\n64, 12288, x, 0.19ms, 1Tflops\n");
  CHECK(error_of([&] { read_llmcompass_matmul(bad); }) == bad + ":2:12: error: expected a positive integer, found 'x'");
  const std::string unit = temp_file("64, 1, 1, 0.19s, 1Tflops\n");
  CHECK(error_of([&] { read_llmcompass_matmul(unit); }) == unit + ":1:11: error: expected a number in ms, found '0.19s'");
  const std::string few = temp_file("64, 1, 1\n");
  CHECK(error_of([&] { read_llmcompass_matmul(few); }) == few + ":1:1: error: expected 5 fields (M, N, K, latency ms, Tflops), found 3");
  CHECK(error_of([&] { read_llmcompass_matmul(temp_file("")); }).ends_with("error: no measurements"));
  CHECK(error_of([&] { read_llmcompass_matmul("/nonexistent.csv"); }) == "/nonexistent.csv: error: cannot open file");
  // Sizes past 2^30 (or past int64) are refused where read, so no product of them overflows.
  const std::string huge = temp_file("4096, 8261284900032768, 1\n");
  CHECK(error_of([&] { read_llmcompass_elementwise(huge); }) == huge + ":1:7: error: '8261284900032768' is larger than 1073741824, the most a measurement field may hold");
  const std::string wider = temp_file("4096, 99999999999999999999999, 1\n");
  CHECK(error_of([&] { read_llmcompass_elementwise(wider); }).ends_with(":1:7: error: '99999999999999999999999' is larger than 1073741824, the most a measurement field may hold"));
  const std::string ew = temp_file("4096, 32, -1\n");
  CHECK(error_of([&] { read_llmcompass_elementwise(ew); }) == ew + ":1:11: error: expected a finite non-negative number, found '-1'");
  const std::string v = temp_file("time_stats.emb.median,n_head\n0.1,32\n");
  CHECK(error_of([&] { read_vidur_mlp(v); }) == v + ":1:1: error: missing column 'n_kv_head'");
  const std::string v2 = temp_file("time_stats.emb.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,"
                                   "num_tokens,num_tensor_parallel_workers\n0.1,32,32,4096,11008,32000,Maybe,1,1\n");
  CHECK(error_of([&] { read_vidur_mlp(v2); }) == v2 + ":2:28: error: expected True or False, found 'Maybe'");
}
