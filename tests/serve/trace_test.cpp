#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "common/paths.h"
#include "../workloads/helpers.h"
#include "sim/serve/trace.h"

using namespace einsim;
using einsim::test::error_of;

namespace {

const std::string kAzure = data_path("traces/azure-llm-inference-2023/");

std::string write(const std::string& name, const std::string& body) {
  const auto dir = std::filesystem::temp_directory_path() / "einsim-trace-test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << body;
  return path;
}

}  // namespace

TEST_CASE("trace: the Azure traces' statistics", "[serve]") {
  // Independently computed with Python's csv module (docs/SERVING.md): rows, mean prompt and
  // output tokens, span between the first and last arrival.
  const Trace conv = read_azure_trace(kAzure + "AzureLLMInferenceTrace_conv.csv");
  CHECK(conv.requests.size() == 19366);
  CHECK(conv.mean_prompt() == Approx(1154.6974078281523));
  CHECK(conv.mean_output() == Approx(211.12594237323142));
  CHECK(conv.duration() == Approx(3501.721937).epsilon(1e-9));
  const Trace code = read_azure_trace(kAzure + "AzureLLMInferenceTrace_code.csv");
  CHECK(code.requests.size() == 8819);
  CHECK(code.mean_prompt() == Approx(2047.848282118154));
  CHECK(code.mean_output() == Approx(27.88252636353328));
  CHECK(code.duration() == Approx(3435.948056).epsilon(1e-9));
  CHECK(code.requests.front().arrival == 0);
  CHECK(code.requests[1].arrival == Approx(0.052).margin(1e-6));  // 18:17:04.03196 - 18:17:03.97996
  for (size_t i = 1; i < conv.requests.size(); ++i) REQUIRE(conv.requests[i].arrival >= conv.requests[i - 1].arrival);
}

TEST_CASE("trace: malformed rows are located errors", "[serve][errors]") {
  const std::string head = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  const std::string ok = "2023-11-16 18:17:03.9799600,4808,10\n";
  CHECK(error_of([&] { read_azure_trace(write("a.csv", head + ok + "2023-11-16 18:17:04.1,12,x\n")); }) ==
        write("a.csv", head + ok + "2023-11-16 18:17:04.1,12,x\n") + ":3:26: error: GeneratedTokens 'x' is not an integer");
  const std::string b = write("b.csv", head + ok + "2023-11-16 18:17:04.1,0,5\n");
  CHECK(error_of([&] { read_azure_trace(b); }) == b + ":3:23: error: ContextTokens must be at least 1, not 0");
  const std::string c = write("c.csv", head + "2023-13-16 18:17:04,3,5\n");
  CHECK(error_of([&] { read_azure_trace(c); }) == c + ":2:1: error: '2023-13-16 18:17:04' is not a timestamp (YYYY-MM-DD HH:MM:SS.fffffff, a real date)");
  const std::string d = write("d.csv", head + ok + "2023-11-16 18:17:04.1,3\n");
  CHECK(error_of([&] { read_azure_trace(d); }) == d + ":3:1: error: expected three fields: TIMESTAMP,ContextTokens,GeneratedTokens");
  const std::string e = write("e.csv", head + ok + "2023-11-16 18:17:02,3,5\n");
  CHECK(error_of([&] { read_azure_trace(e); }) == e + ":3:1: error: timestamps must not decrease (the trace is sorted by arrival)");
  const std::string f = write("f.csv", "time,prompt,output\n" + ok);
  CHECK_THAT(error_of([&] { read_azure_trace(f); }), Catch::Contains(f + ":1:1: error: expected the header"));
  const std::string g = write("g.csv", head);
  CHECK(error_of([&] { read_azure_trace(g); }) == g + ":1:1: error: the trace has a header but no requests");
  CHECK_THAT(error_of([&] { read_azure_trace("/no/such/trace.csv"); }), Catch::Contains("/no/such/trace.csv: error: cannot open the trace"));
  // Calendar days: 2023-02-29 is not one, 2024-02-29 is.
  const std::string leap = write("l.csv", head + "2023-02-29 00:00:00,3,5\n");
  CHECK_THAT(error_of([&] { read_azure_trace(leap); }), Catch::Contains(leap + ":2:1: error: '2023-02-29 00:00:00' is not a timestamp"));
  CHECK(read_azure_trace(write("l2.csv", head + "2024-02-29 00:00:00,3,5\n")).requests.size() == 1);
  CHECK_THROWS(read_azure_trace(write("l3.csv", head + "2023-04-31 00:00:00,3,5\n")));
  // A binary file's bytes are quoted escaped and cut short, not echoed raw.
  const std::string bin = write("bin.csv", std::string("\x00\x01\x02" "binary\xff\xfe", 11) + std::string(200, 'z') + "\n");
  const std::string be = error_of([&] { read_azure_trace(bin); });
  CHECK_THAT(be, Catch::Contains("found '\\x00\\x01\\x02binary\\xff\\xfe") && Catch::Contains("..."));
  for (char ch : be) CHECK((ch == '\n' || (ch >= 32 && ch < 127)));
  // Requests keep their line, so errors about one point at it.
  CHECK(read_azure_trace(write("lines.csv", head + ok + "\n" + ok)).requests[1].line == 4);
  // Windows line ends and a missing final newline are fine.
  const Trace t = read_azure_trace(write("h.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:17:03,4,5\r\n2023-11-16 18:17:05,6,7"));
  REQUIRE(t.requests.size() == 2);
  CHECK(t.requests[1].arrival == 2);
  CHECK(t.requests[1].output == 7);
}

TEST_CASE("trace: synthetic arrivals are reproducible and have the asked rate", "[serve]") {
  SyntheticTrace s;
  s.rate = 5;
  s.count = 20000;
  s.seed = 42;
  const Trace a = synthetic_trace(s), b = synthetic_trace(s);
  REQUIRE(a.requests.size() == 20000);
  for (size_t i = 0; i < a.requests.size(); ++i) REQUIRE(a.requests[i].arrival == b.requests[i].arrival);
  CHECK(a.rate() == Approx(5).epsilon(0.03));
  s.arrivals = Arrivals::Gamma;
  s.cv = 2;
  const Trace g = synthetic_trace(s);
  CHECK(g.rate() == Approx(5).epsilon(0.06));
  // Burstier: the gaps' coefficient of variation is about 2.
  double m = 0, v = 0;
  const size_t n = g.requests.size() - 1;
  for (size_t i = 1; i <= n; ++i) m += g.requests[i].arrival - g.requests[i - 1].arrival;
  m /= static_cast<double>(n);
  for (size_t i = 1; i <= n; ++i) v += std::pow(g.requests[i].arrival - g.requests[i - 1].arrival - m, 2);
  CHECK(std::sqrt(v / static_cast<double>(n)) / m == Approx(2).epsilon(0.1));
  // Token counts drawn from a trace.
  const Trace conv = read_azure_trace(kAzure + "AzureLLMInferenceTrace_conv.csv");
  s.sizes = &conv;
  CHECK(synthetic_trace(s).mean_prompt() == Approx(conv.mean_prompt()).epsilon(0.05));
  // Scaled to a rate: the same requests, gaps scaled.
  const Trace fast = scale_to_rate(conv, 2 * conv.rate());
  CHECK(fast.requests.size() == conv.requests.size());
  CHECK(fast.duration() == Approx(conv.duration() / 2));
  CHECK_THAT(error_of([&] { scale_to_rate(conv, 0); }), Catch::Contains("--rate: error:"));
  s.rate = -1;
  CHECK_THAT(error_of([&] { synthetic_trace(s); }), Catch::Contains("must be positive"));
}

TEST_CASE("trace: JSONL traces in Mooncake's shape", "[serve][jsonl]") {
  const std::string ok = write("m.jsonl",
                               "{\"timestamp\": 0, \"input_length\": 6755, \"output_length\": 500, \"hash_ids\": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]}\n"
                               "\n"
                               "{\"timestamp\": 0, \"input_length\": 7319, \"output_length\": 490, \"hash_ids\": [0, 14, 15]}\n"
                               "{\"timestamp\": 3052.5, \"input_length\": 700, \"output_length\": 31, \"session_id\": 7}\r\n");
  const Trace t = load_trace(ok);  // recognised by its first character
  REQUIRE(t.requests.size() == 3);
  CHECK(t.hash_block == 512);
  CHECK(t.requests[0].hashes.size() == 14);
  CHECK(t.requests[1].hashes[0] == 0);
  CHECK(t.requests[2].arrival == Approx(3.0525));
  CHECK(t.requests[2].line == 4);
  CHECK(t.requests[2].session == 0);
  CHECK(t.requests[2].hashes.size() == 1);  // 700 tokens: one whole block of the session
  CHECK(t.requests[2].hashes[0] < 0);
  // Timestamps count from the first request.
  CHECK(read_jsonl_trace(write("late.jsonl", "{\"timestamp\": 5000, \"input_length\": 5, \"output_length\": 5}\n")).requests[0].arrival == 0);
  // The hash block is the trace's: 14 ids of 512 tokens fit 6755 tokens, 14 of 1024 do not.
  CHECK(error_of([&] { read_jsonl_trace(ok, 1024); }) == ok + ":1:62: error: 14 hash ids for 6755 prompt tokens: at most 7 blocks of 1024 tokens (--hash-block)");
}

TEST_CASE("trace: JSONL rows with errors are located", "[serve][jsonl][errors]") {
  auto err = [](const std::string& name, const std::string& body, int64_t block = 512) {
    const std::string path = write(name, body);
    return std::make_pair(path, error_of([&] { read_jsonl_trace(path, block); }));
  };
  const std::string good = "{\"timestamp\": 10, \"input_length\": 5, \"output_length\": 5}\n";
  auto [a, ea] = err("a.jsonl", good + "{\"timestamp\": 5, \"input_length\": 5, \"output_length\": 5}\n");
  CHECK(ea == a + ":2:2: error: timestamps must not decrease (the trace is sorted by arrival)");
  auto [b, eb] = err("b.jsonl", good + "{\"timestamp\": 20, \"input_length\": 0, \"output_length\": 5}\n");
  CHECK(eb == b + ":2:19: error: input_length must be between 1 and 2^40 tokens, not 0");
  auto [c, ec] = err("c.jsonl", good + "{\"timestamp\": 20, \"input_length\": 5.5, \"output_length\": 5}\n");
  CHECK(ec == c + ":2:19: error: input_length must be an integer, not 5.5");
  auto [d, ed] = err("d.jsonl", "{\"timestamp\": 20, \"input_length\": 5}\n");
  CHECK(ed == d + ":1:1: error: missing 'output_length'");
  auto [e, ee] = err("e.jsonl", "{\"timestamp\": 20, \"input_length\": 5, \"output_length\": 5, \"delay\": 3}\n");
  CHECK_THAT(ee, Catch::StartsWith(e + ":1:58: error: unknown key 'delay'"));
  auto [f, ef] = err("f.jsonl", "{\"timestamp\": 20, \"input_length\": 5, \"output_length\": 5\n");
  CHECK_THAT(ef, Catch::StartsWith(f + ":1:") && Catch::Contains("error: not a JSON object (syntax error"));
  // A number nlohmann cannot hold is an error at the line, not an exception (a fuzz finding).
  auto [big, ebig] = err("big.jsonl", "{\"timestamp\": 0.41321e929, \"input_length\": 5, \"output_length\": 5}\n");
  CHECK_THAT(ebig, Catch::StartsWith(big + ":1:1: error: not a JSON object (number overflow parsing '0.41321e929')"));
  auto [g, eg] = err("g.jsonl", "{\"timestamp\": -1, \"input_length\": 5, \"output_length\": 5}\n");
  CHECK(eg == g + ":1:2: error: timestamp must be a number of milliseconds, at least 0, not -1");
  auto [h, eh] = err("h.jsonl", "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [1, 2, 3]}\n");
  CHECK(eh == h + ":1:59: error: 3 hash ids for 600 prompt tokens: at most 2 blocks of 512 tokens (--hash-block)");
  auto [i, ei] = err("i.jsonl", "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [1, -2]}\n");
  CHECK(ei == i + ":1:59: error: hash ids are integers from 0 to 2^62, not -2");
  auto [j, ej] = err("j.jsonl", "{\"timestamp\": 0, \"input_length\": 6, \"output_length\": 5, \"session_id\": [1]}\n");
  CHECK(ej == j + ":1:57: error: session_id must be a string or an integer, not [1]");
  auto [k, ek] = err("k.jsonl", "[1, 2]\n");
  CHECK(ek == k + ":1:1: error: expected a JSON object per line, found '[1, 2]'");
  auto [l, el] = err("l.jsonl", "\n\n");
  CHECK(el == l + ":2:1: error: the trace has no requests");
  auto [m, em] = err("m.jsonl", good, 0);
  CHECK(em == "--hash-block: error: the hash block must be at least 1 token, not 0");
  // Shared prefixes: a share outside [0, 1] and a clash with the trace's block are errors.
  Trace t = read_jsonl_trace(write("n.jsonl", good));
  CHECK(error_of([&] { add_shared_prefix(t, 100, 1.5, 16); }) == "--prefix-share: error: the share of requests with the prefix is in [0, 1], not 1.5");
  Trace hashed = read_jsonl_trace(write("o.jsonl", "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [1]}\n"));
  CHECK(error_of([&] { add_shared_prefix(hashed, 100, 1, 16); }) == "--shared-prefix: error: the trace hashes blocks of 512 tokens; the shared prefix would use 16");
}

TEST_CASE("trace: derived block ids are bounded", "[serve][jsonl][errors]") {
  // A session of 2^30-token prompts in 1-token blocks would be a billion ids per request.
  const std::string p = write("huge.jsonl", "{\"timestamp\": 0, \"input_length\": 1073741824, \"output_length\": 5, \"session_id\": 1}\n");
  CHECK(error_of([&] { read_jsonl_trace(p, 1); }) == p + ":1:66: error: the sessions' prompts make more than 16777216 blocks of 1 tokens: give a larger --hash-block");
  Trace t = read_jsonl_trace(write("long.jsonl", "{\"timestamp\": 0, \"input_length\": 1073741824, \"output_length\": 5}\n"));
  CHECK(error_of([&] { add_shared_prefix(t, 100, 1, 16); }) == "--shared-prefix: error: the trace's prompts make more than 16777216 blocks of 16 tokens: give a larger --hash-block");
}
