#pragma once
// Request traces for the serving simulation: the Azure LLM inference traces (Splitwise,
// ISCA 2024; data/traces/azure-llm-inference-2023) and synthetic arrivals (Poisson, Gamma)
// with a fixed seed.
#include <cstdint>
#include <string>
#include <vector>

namespace einsim {

struct Request {
  int64_t id = 0;
  double arrival = 0;  ///< s after the trace's first request
  int64_t prompt = 0;  ///< tokens
  int64_t output = 0;  ///< tokens generated
  int priority = 0;    ///< serving class (0: high priority)
  int line = 0;        ///< its line in the trace file (0: synthetic), for located errors
};

struct Trace {
  std::string name;
  std::string file;  ///< the file it was read from ("" when synthetic)
  std::vector<Request> requests;  ///< by arrival
  double duration() const { return requests.empty() ? 0 : requests.back().arrival - requests.front().arrival; }
  double mean_prompt() const;
  double mean_output() const;
  double rate() const;  ///< requests per second
};

/// Reads an Azure trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens). Malformed rows,
/// decreasing timestamps and token counts below 1 are errors located at file:line:col.
Trace read_azure_trace(const std::string& path);

enum class Arrivals { Poisson, Gamma };

struct SyntheticTrace {
  Arrivals arrivals = Arrivals::Poisson;
  double rate = 1;        ///< requests per second
  double cv = 1;          ///< Gamma: coefficient of variation of the gaps (1: Poisson)
  int64_t count = 1000;   ///< requests
  /// s: stop at the first arrival after this time (0: none). Requests are drawn one by one,
  /// so a huge `count` with a short `until` costs only what arrives before it.
  double until = 0;
  uint64_t seed = 1;
  /// Token counts: drawn (with the same seed) from `sizes` when it has requests, else fixed.
  const Trace* sizes = nullptr;
  int64_t prompt = 1024, output = 128;
};

Trace synthetic_trace(const SyntheticTrace& s);

/// The same requests with their gaps scaled so the mean rate is `rate` requests/s.
Trace scale_to_rate(const Trace& t, double rate);

/// "conv" or "code" (the Azure 2023 traces shipped in data/traces/, found through data_path()), or a trace CSV file.
Trace load_trace(const std::string& name_or_file);

/// The trace at `rate` requests/s, repeated back to back (each copy starting one mean gap after
/// the last request of the one before) until `duration` s; requests arriving later are dropped.
Trace tile_to_duration(const Trace& t, double rate, double duration);

/// The traces' requests in arrival order, each with its trace's class (its index) as its
/// priority, numbered from 0.
Trace merge_classes(const std::vector<Trace>& classes);

}  // namespace einsim
