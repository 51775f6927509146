#pragma once
// Request traces for the serving simulation: the Azure LLM inference traces (Splitwise,
// ISCA 2024; data/traces/azure-llm-inference-2023), JSONL traces in the shape Mooncake's
// public traces use (one object per request: timestamp in ms, input_length, output_length,
// optional hash_ids of the prompt's blocks and a session_id), and synthetic arrivals
// (Poisson, Gamma) with a fixed seed.
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
  /// Content ids of the prompt's blocks of Trace::hash_block tokens, in order: two requests
  /// whose first j ids agree share their first j blocks' tokens (and so their KV cache).
  /// Empty: nothing shared.
  std::vector<int64_t> hashes;
  int64_t session = -1;  ///< the conversation it is a turn of (-1: none)
};

struct Trace {
  std::string name;
  std::string file;  ///< the file it was read from ("" when synthetic)
  std::vector<Request> requests;  ///< by arrival
  int64_t hash_block = 0;  ///< tokens per entry of Request::hashes (0: no request has any)
  double duration() const { return requests.empty() ? 0 : requests.back().arrival - requests.front().arrival; }
  double mean_prompt() const;
  double mean_output() const;
  double rate() const;  ///< requests per second
};

/// Reads an Azure trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens). Malformed rows,
/// decreasing timestamps and token counts below 1 are errors located at file:line:col.
Trace read_azure_trace(const std::string& path);

/// The hash block of JSONL traces unless given: Mooncake's traces hash the prompt in blocks of
/// 512 tokens (their README; data/traces/README.md).
inline constexpr int64_t kMooncakeHashBlock = 512;

/// Reads a JSONL trace: one JSON object per line with `timestamp` (ms after the first request,
/// not decreasing), `input_length` and `output_length` (tokens, at least 1), and optionally
/// `hash_ids` (at most ceil(input_length / hash_block) non-negative ids) and `session_id` (a
/// string or an integer). A session's turns without hash ids share what a multi-turn chat
/// resends: each turn's prompt begins with the conversation so far, so block j of every turn
/// of a session holds the same tokens. Unknown keys, malformed lines and bad values are errors
/// located at file:line:col.
Trace read_jsonl_trace(const std::string& path, int64_t hash_block = kMooncakeHashBlock);

/// Gives a `share` of the requests (drawn with `seed`) a common prefix of `tokens` (a system
/// prompt; a request shorter than it shares all but its last token's block), in blocks of
/// `block` tokens; a request's own blocks get ids of their own. The trace's hash block must be
/// `block` or unset.
void add_shared_prefix(Trace& t, int64_t tokens, double share, int64_t block, uint64_t seed = 1);

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

/// The requests arriving in the first `seconds` (from the trace's first arrival; 0: all).
void keep_first(Trace& t, double seconds);

/// The same requests with their gaps scaled so the mean rate is `rate` requests/s.
Trace scale_to_rate(const Trace& t, double rate);

/// "conv" or "code" (the Azure 2023 traces shipped in data/traces/, found through data_path()),
/// a JSONL trace (a file whose first non-blank character is '{'), or an Azure trace CSV file.
Trace load_trace(const std::string& name_or_file, int64_t hash_block = kMooncakeHashBlock);

/// The trace at `rate` requests/s, repeated back to back (each copy starting one mean gap after
/// the last request of the one before) until `duration` s; requests arriving later are dropped.
Trace tile_to_duration(const Trace& t, double rate, double duration);

/// The traces' requests in arrival order, each with its trace's class (its index) as its
/// priority, numbered from 0.
Trace merge_classes(const std::vector<Trace>& classes);

}  // namespace einsim
