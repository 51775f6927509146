#pragma once
// Structural checks of a Chrome-trace / Perfetto JSON timeline, as a trace viewer relies on
// them: slices on one track in time order and properly nested, counters in time order, every
// flow with both ends.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace einsim::test {

/// The first structural problem of trace `t`, or "".
inline std::string trace_problem(const nlohmann::json& t) {
  if (!t.contains("traceEvents") || !t["traceEvents"].is_array()) return "no traceEvents array";
  struct Open {
    double start, end;
    std::string name;
  };
  std::map<std::pair<int, int>, double> last_ts;        // per track: the latest slice start
  std::map<std::pair<int, int>, std::vector<Open>> stack;  // per track: the slices still open
  std::map<std::pair<int, std::string>, double> last_counter;
  std::map<int64_t, int> flow_ends;
  const double eps = 1e-6;  // us
  for (const auto& e : t["traceEvents"]) {
    const std::string ph = e.at("ph");
    if (ph == "M") continue;
    const int pid = e.at("pid");
    const double ts = e.at("ts");
    if (ts < 0) return fmt::format("negative ts on pid {}", pid);
    if (ph == "X") {
      const int tid = e.at("tid");
      const double dur = e.at("dur");
      if (dur < 0) return fmt::format("'{}' has a negative duration", e.at("name").get<std::string>());
      const auto track = std::make_pair(pid, tid);
      if (auto it = last_ts.find(track); it != last_ts.end() && ts < it->second - eps)
        return fmt::format("'{}' at {} us on pid {} tid {} starts before the slice before it ({} us)", e.at("name").get<std::string>(), ts, pid, tid, it->second);
      last_ts[track] = ts;
      auto& st = stack[track];
      while (!st.empty() && ts >= st.back().end - eps) st.pop_back();
      if (!st.empty() && ts + dur > st.back().end + eps)
        return fmt::format("'{}' [{}, {}] us overlaps its parent '{}' [{}, {}] without nesting", e.at("name").get<std::string>(), ts, ts + dur, st.back().name,
                           st.back().start, st.back().end);
      if (dur > 0) st.push_back(Open{ts, ts + dur, e.at("name")});
    } else if (ph == "C") {
      const auto key = std::make_pair(pid, e.at("name").get<std::string>());
      if (auto it = last_counter.find(key); it != last_counter.end() && ts < it->second) return fmt::format("counter '{}' goes back in time", key.second);
      last_counter[key] = ts;
    } else if (ph == "s" || ph == "f") {
      flow_ends[e.at("id").get<int64_t>()] += ph == "s" ? 1 : 2;
    }
  }
  for (const auto& [id, ends] : flow_ends)
    if (ends != 3) return fmt::format("flow {} lacks an end", id);
  return "";
}

}  // namespace einsim::test
