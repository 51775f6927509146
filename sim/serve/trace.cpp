#include "sim/serve/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/error.h"
#include "common/paths.h"

namespace einsim {

double Trace::mean_prompt() const {
  double s = 0;
  for (const Request& r : requests) s += static_cast<double>(r.prompt);
  return requests.empty() ? 0 : s / static_cast<double>(requests.size());
}

double Trace::mean_output() const {
  double s = 0;
  for (const Request& r : requests) s += static_cast<double>(r.output);
  return requests.empty() ? 0 : s / static_cast<double>(requests.size());
}

double Trace::rate() const { return duration() > 0 ? static_cast<double>(requests.size() - 1) / duration() : 0; }

namespace {

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool digits(std::string_view s, size_t at, size_t n, int64_t& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// "YYYY-MM-DD HH:MM:SS[.fffffff]" as seconds since 1970.
bool parse_timestamp(std::string_view s, double& out) {
  int64_t y, mo, d, h, mi, se;
  if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' || !digits(s, 8, 2, d) || s[10] != ' ' ||
      !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, se))
    return false;
  // A real calendar day (2023-02-29 is not one); a leap second is allowed.
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] + (mo == 2 && leap ? 1 : 0) || h > 23 || mi > 59 || se > 60) return false;
  double frac = 0;
  if (s.size() > 19) {
    if (s[19] != '.' || s.size() == 20) return false;
    double scale = 0.1;
    for (size_t i = 20; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      frac += (s[i] - '0') * scale;
      scale /= 10;
    }
  }
  out = static_cast<double>(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) + frac;
  return true;
}

// A line as an error may quote it: printable ASCII as is, other bytes as \xNN, at most 60
// characters (a binary file's bytes would otherwise reach the terminal raw).
std::string shown(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= 60) return out + "...";
    if (c >= 32 && c < 127) out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

}  // namespace

namespace {
// A trace file opened for reading, and the trace it will fill (named after the file).
std::ifstream open_trace(const std::string& path, Trace& t) {
  std::ifstream in(path);
  if (!in) throw UserError(SourceLoc{path}, "cannot open the trace");
  t.name = path.substr(path.find_last_of('/') + 1);
  t.file = path;
  return in;
}
}  // namespace

Trace read_azure_trace(const std::string& path) {
  Trace t;
  std::ifstream in = open_trace(path, t);
  std::string line;
  int line_no = 0;
  auto at = [&](size_t col) { return SourceLoc{path, line_no, static_cast<int>(col) + 1}; };
  if (!std::getline(in, line)) throw UserError(SourceLoc{path, 1, 1}, "empty trace: expected the header TIMESTAMP,ContextTokens,GeneratedTokens");
  ++line_no;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line != "TIMESTAMP,ContextTokens,GeneratedTokens")
    throw UserError(at(0), fmt::format("expected the header TIMESTAMP,ContextTokens,GeneratedTokens, found '{}'", shown(line)));
  double first = 0, last = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t c1 = line.find(','), c2 = c1 == std::string::npos ? c1 : line.find(',', c1 + 1);
    if (c2 == std::string::npos || line.find(',', c2 + 1) != std::string::npos)
      throw UserError(at(0), "expected three fields: TIMESTAMP,ContextTokens,GeneratedTokens");
    double ts = 0;
    if (!parse_timestamp(std::string_view(line).substr(0, c1), ts))
      throw UserError(at(0), fmt::format("'{}' is not a timestamp (YYYY-MM-DD HH:MM:SS.fffffff, a real date)", shown(line.substr(0, c1))));
    auto count = [&](size_t from, size_t to, const char* what) {
      int64_t v = 0;
      const char* b = line.data() + from;
      const char* e = line.data() + to;
      auto [p, ec] = std::from_chars(b, e, v);
      if (ec != std::errc() || p != e || b == e) throw UserError(at(from), fmt::format("{} '{}' is not an integer", what, shown(std::string_view(b, static_cast<size_t>(e - b)))));
      if (v < 1) throw UserError(at(from), fmt::format("{} must be at least 1, not {}", what, v));
      return v;
    };
    Request r;
    r.prompt = count(c1 + 1, c2, "ContextTokens");
    r.output = count(c2 + 1, line.size(), "GeneratedTokens");
    if (t.requests.empty()) first = ts;
    else if (ts < last) throw UserError(at(0), "timestamps must not decrease (the trace is sorted by arrival)");
    last = ts;
    r.id = static_cast<int64_t>(t.requests.size());
    r.arrival = ts - first;
    r.line = line_no;
    t.requests.push_back(r);
  }
  if (t.requests.empty()) throw UserError(SourceLoc{path, line_no, 1}, "the trace has a header but no requests");
  return t;
}

namespace {
// Block ids a trace may hold in all (128 MiB of them): a session's or a shared prefix's blocks
// are derived per request, and a hash block of 1 token over long prompts would otherwise ask
// for terabytes.
constexpr int64_t kMaxTraceHashes = int64_t{1} << 24;
}  // namespace

Trace read_jsonl_trace(const std::string& path, int64_t hash_block) {
  using nlohmann::json;
  if (hash_block < 1) throw UserError(SourceLoc{"--hash-block"}, fmt::format("the hash block must be at least 1 token, not {}", hash_block));
  Trace t;
  std::ifstream in = open_trace(path, t);
  std::string line;
  int line_no = 0;
  std::unordered_map<std::string, int64_t> sessions;
  bool any_hashes = false;
  int64_t derived = 0;  // session blocks so far
  double last = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    // A key's column: where it is written (the line's start when it is missing).
    auto at = [&](const char* key) {
      const size_t p = key ? line.find(fmt::format("\"{}\"", key)) : std::string::npos;
      return SourceLoc{path, line_no, p == std::string::npos ? 1 : static_cast<int>(p) + 1};
    };
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      std::string what = e.what();
      if (const size_t p = what.find("; last read"); p != std::string::npos) what = what.substr(0, p);
      if (const size_t p = what.find("syntax error "); p != std::string::npos) what = what.substr(p);
      throw UserError(SourceLoc{path, line_no, static_cast<int>(std::max<size_t>(1, e.byte))},
                      fmt::format("not a JSON object ({}): '{}'", what, shown(line)));
    } catch (const json::exception& e) {  // a number out of range (1e999)
      std::string what = e.what();
      if (const size_t p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      throw UserError(SourceLoc{path, line_no, 1}, fmt::format("not a JSON object ({}): '{}'", shown(what), shown(line)));
    }
    if (!j.is_object()) throw UserError(at(nullptr), fmt::format("expected a JSON object per line, found '{}'", shown(line)));
    for (const auto& [key, v] : j.items())
      if (key != "timestamp" && key != "input_length" && key != "output_length" && key != "hash_ids" && key != "session_id")
        throw UserError(at(key.c_str()), fmt::format("unknown key '{}' (a JSONL trace has timestamp, input_length, output_length, hash_ids, session_id)", shown(key)));
    auto need = [&](const char* key) -> const json& {
      if (!j.contains(key)) throw UserError(at(nullptr), fmt::format("missing '{}'", key));
      return j.at(key);
    };
    auto count = [&](const char* key) {
      const json& v = need(key);
      if (!v.is_number_integer()) throw UserError(at(key), fmt::format("{} must be an integer, not {}", key, shown(v.dump())));
      if ((v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t{1} << 40)) || v.get<int64_t>() < 1 || v.get<int64_t>() > (int64_t{1} << 40))
        throw UserError(at(key), fmt::format("{} must be between 1 and 2^40 tokens, not {}", key, shown(v.dump())));
      return v.get<int64_t>();
    };
    const json& ts = need("timestamp");
    if (!ts.is_number() || !std::isfinite(ts.get<double>()) || ts.get<double>() < 0)
      throw UserError(at("timestamp"), fmt::format("timestamp must be a number of milliseconds, at least 0, not {}", shown(ts.dump())));
    const double arrival = ts.get<double>() / 1000;
    if (!t.requests.empty() && arrival < last) throw UserError(at("timestamp"), "timestamps must not decrease (the trace is sorted by arrival)");
    last = arrival;
    Request r;
    r.id = static_cast<int64_t>(t.requests.size());
    r.arrival = arrival;
    r.prompt = count("input_length");
    r.output = count("output_length");
    r.line = line_no;
    if (j.contains("hash_ids")) {
      const json& h = j.at("hash_ids");
      if (!h.is_array()) throw UserError(at("hash_ids"), "hash_ids must be an array of block ids");
      const int64_t most = (r.prompt + hash_block - 1) / hash_block;
      if (static_cast<int64_t>(h.size()) > most)
        throw UserError(at("hash_ids"), fmt::format("{} hash ids for {} prompt tokens: at most {} blocks of {} tokens (--hash-block)", h.size(), r.prompt, most, hash_block));
      for (const json& id : h) {
        if (!id.is_number_integer() || (!id.is_number_unsigned() && id.get<int64_t>() < 0) || (id.is_number_unsigned() && id.get<uint64_t>() > (uint64_t{1} << 62)))
          throw UserError(at("hash_ids"), fmt::format("hash ids are integers from 0 to 2^62, not {}", shown(id.dump())));
        r.hashes.push_back(id.get<int64_t>());
      }
      any_hashes |= !r.hashes.empty();
    }
    if (j.contains("session_id")) {
      const json& s = j.at("session_id");
      if (!s.is_string() && !s.is_number_integer()) throw UserError(at("session_id"), fmt::format("session_id must be a string or an integer, not {}", shown(s.dump())));
      r.session = sessions.try_emplace(s.is_string() ? s.get<std::string>() : s.dump(), static_cast<int64_t>(sessions.size())).first->second;
      if (!j.contains("hash_ids")) {
        // Block k of every turn of the session holds the same tokens: ids of their own, below
        // the trace's (which are non-negative).
        derived += r.prompt / hash_block;
        if (derived > kMaxTraceHashes)
          throw UserError(at("session_id"), fmt::format("the sessions' prompts make more than {} blocks of {} tokens: give a larger --hash-block", kMaxTraceHashes, hash_block));
        for (int64_t k = 0; k < r.prompt / hash_block; ++k) r.hashes.push_back(-1 - (r.session << 24) - k);
        any_hashes |= !r.hashes.empty();
      }
    }
    t.requests.push_back(std::move(r));
  }
  if (t.requests.empty()) throw UserError(SourceLoc{path, std::max(1, line_no), 1}, "the trace has no requests");
  if (any_hashes) t.hash_block = hash_block;
  const double first = t.requests.front().arrival;
  for (Request& r : t.requests) r.arrival -= first;
  return t;
}

void add_shared_prefix(Trace& t, int64_t tokens, double share, int64_t block, uint64_t seed) {
  if (tokens < 1) throw UserError(SourceLoc{"--shared-prefix"}, fmt::format("the shared prefix must be at least 1 token, not {}", tokens));
  if (!(share >= 0 && share <= 1)) throw UserError(SourceLoc{"--prefix-share"}, fmt::format("the share of requests with the prefix is in [0, 1], not {}", share));
  if (block < 1) throw UserError(SourceLoc{"--hash-block"}, fmt::format("the hash block must be at least 1 token, not {}", block));
  if (t.hash_block > 0 && t.hash_block != block)
    throw UserError(SourceLoc{"--shared-prefix"}, fmt::format("the trace hashes blocks of {} tokens; the shared prefix would use {}", t.hash_block, block));
  // Ids: the prefix's blocks from 2^62 down, each request's own blocks below them (the
  // trace's ids are non-negative and below 2^62; sessions' are negative).
  int64_t fresh = (int64_t{1} << 62) - (tokens / block + 1);
  int64_t total = 0;
  for (const Request& r : t.requests) total += r.prompt / block;
  if (total > kMaxTraceHashes)
    throw UserError(SourceLoc{"--shared-prefix"}, fmt::format("the trace's prompts make more than {} blocks of {} tokens: give a larger --hash-block", kMaxTraceHashes, block));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (Request& r : t.requests) {
    if (!(u(rng) < share)) continue;
    const int64_t full = std::min(tokens, r.prompt) / block;  // whole blocks of the prefix in this prompt
    std::vector<int64_t> h;
    for (int64_t k = 0; k < full; ++k) h.push_back((int64_t{1} << 62) - 1 - k);
    for (int64_t k = full; k < r.prompt / block; ++k) h.push_back(--fresh);
    r.hashes = std::move(h);
  }
  t.hash_block = block;
}

Trace synthetic_trace(const SyntheticTrace& s) {
  if (!(s.rate > 0) || !std::isfinite(s.rate) || s.count < 1)
    throw UserError(SourceLoc{"--rate"}, "the request rate must be positive and finite, and the count at least 1");
  // Gamma gaps have shape 1/cv^2: beyond cv 100 the shape underflows the sampler (every gap
  // zero or NaN), and no measured arrival process is that bursty.
  if (!(s.cv > 0) || s.cv > 100) throw UserError(SourceLoc{"--cv"}, fmt::format("the coefficient of variation must be in (0, 100], not {}", s.cv));
  std::mt19937_64 rng(s.seed);
  Trace t;
  t.name = fmt::format("{}({}/s{})", s.arrivals == Arrivals::Poisson ? "poisson" : "gamma", s.rate,
                       s.arrivals == Arrivals::Gamma ? fmt::format(", cv {}", s.cv) : "");
  // Gaps: exponential (Poisson), or Gamma with shape 1/cv^2 and the same mean.
  std::exponential_distribution<double> expo(s.rate);
  const double shape = 1 / (s.cv * s.cv);
  std::gamma_distribution<double> gam(shape, 1 / (s.rate * shape));
  const bool sized = s.sizes && !s.sizes->requests.empty();
  std::uniform_int_distribution<size_t> pick(0, sized ? s.sizes->requests.size() - 1 : 0);
  double now = 0;
  for (int64_t i = 0; i < s.count; ++i) {
    Request r;
    r.id = i;
    if (i > 0) now += s.arrivals == Arrivals::Poisson ? expo(rng) : gam(rng);
    if (s.until > 0 && now > s.until) break;
    r.arrival = now;
    if (sized) {
      const Request& x = s.sizes->requests[pick(rng)];
      r.prompt = x.prompt;
      r.output = x.output;
      r.hashes = x.hashes;  // the drawn request's shared blocks come with it
    } else {
      r.prompt = s.prompt;
      r.output = s.output;
    }
    t.requests.push_back(r);
  }
  if (sized) t.hash_block = s.sizes->hash_block;
  return t;
}

void keep_first(Trace& t, double seconds) {
  if (seconds <= 0 || t.requests.empty()) return;
  const double end = t.requests.front().arrival + seconds;
  auto& rs = t.requests;
  rs.erase(std::find_if(rs.begin(), rs.end(), [&](const Request& r) { return r.arrival > end; }), rs.end());
}

Trace scale_to_rate(const Trace& t, double rate) {
  if (!(rate > 0)) throw UserError(SourceLoc{"--rate"}, "the request rate must be positive");
  Trace out = t;
  const double k = t.rate() > 0 ? t.rate() / rate : 1;
  for (Request& r : out.requests) r.arrival *= k;
  out.name = fmt::format("{} at {:.4g}/s", t.name, rate);
  return out;
}

Trace load_trace(const std::string& name_or_file, int64_t hash_block) {
  if (name_or_file == "conv" || name_or_file == "code")
    return read_azure_trace(data_path("traces/azure-llm-inference-2023/AzureLLMInferenceTrace_" + name_or_file + ".csv"));
  std::ifstream in(name_or_file);
  char ch = 0;
  while (in.get(ch) && std::isspace(static_cast<unsigned char>(ch))) {
  }
  if (in && ch == '{') return read_jsonl_trace(name_or_file, hash_block);
  return read_azure_trace(name_or_file);
}

Trace tile_to_duration(const Trace& t, double rate, double duration) {
  const Trace one = scale_to_rate(t, rate);
  Trace out;
  out.name = fmt::format("{} for {:.4g} s", one.name, duration);
  out.file = one.file;
  out.hash_block = one.hash_block;
  if (one.requests.empty()) return out;
  const double period = one.duration() + 1 / rate;
  int64_t id = 0;
  for (int64_t copy = 0; static_cast<double>(copy) * period <= duration; ++copy)
    for (Request r : one.requests) {
      const double offset = static_cast<double>(copy) * period;
      r.arrival += offset - one.requests.front().arrival;
      if (r.arrival > duration) break;
      r.id = id++;
      out.requests.push_back(r);
    }
  return out;
}

Trace merge_classes(const std::vector<Trace>& classes) {
  Trace out;
  for (size_t c = 0; c < classes.size(); ++c) {
    if (classes[c].hash_block > 0 && out.hash_block > 0 && classes[c].hash_block != out.hash_block)
      throw UserError(SourceLoc{classes[c].file.empty() ? classes[c].name : classes[c].file}, "the classes' traces hash blocks of different sizes");
    if (classes[c].hash_block > 0) out.hash_block = classes[c].hash_block;
    out.name += (c ? " + " : "") + classes[c].name;
    for (Request r : classes[c].requests) {
      r.priority = static_cast<int>(c);
      out.requests.push_back(r);
    }
  }
  std::stable_sort(out.requests.begin(), out.requests.end(), [](const Request& a, const Request& b) { return a.arrival < b.arrival; });
  for (size_t i = 0; i < out.requests.size(); ++i) out.requests[i].id = static_cast<int64_t>(i);
  return out;
}

}  // namespace einsim
