#include "sim/engine/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace einsim {

std::string_view resource_kind_name(ResourceKind k) {
  switch (k) {
    case ResourceKind::Tier: return "tier";
    case ResourceKind::Level: return "level";
    case ResourceKind::Link: return "link";
    case ResourceKind::Array: return "array";
    case ResourceKind::Dma: return "dma";
  }
  return "?";
}

int Schedule::resource(const std::string& short_name, const std::string& device) const {
  for (size_t i = 0; i < resources.size(); ++i)
    if (resources[i].short_name == short_name && (device.empty() || resources[i].device == device)) return static_cast<int>(i);
  return -1;
}

int Schedule::merge_resources(const Schedule& other) {
  const int offset = static_cast<int>(resources.size());
  for (const Resource& r : other.resources)
    for (const Resource& x : resources)
      if (x.device == r.device) throw InternalError(fmt::format("device '{}' appears in both schedules", r.device));
  resources.insert(resources.end(), other.resources.begin(), other.resources.end());
  return offset;
}

namespace {

std::string block_label(const RunReport& r, const BlockRun& b) {
  const std::string& first = r.einsums[static_cast<size_t>(b.einsums.front())].name;
  if (b.einsums.size() == 1) return first;
  return fmt::format("{}..{} ({})", first, r.einsums[static_cast<size_t>(b.einsums.back())].name, b.einsums.size());
}

}  // namespace

Schedule build_schedule(const RunReport& r, const ArchSpec& a, const ScheduleOptions& o) {
  if (o.tiles < 1) throw UserError(SourceLoc{"--tiles"}, "the engine needs at least one tile per block instance");
  Schedule s;
  const std::string prefix = fmt::format("system.{}.", o.device);
  const double mem_eff = a.gpu ? a.gpu->memory_efficiency : 1.0;
  auto add = [&](const std::string& name, ResourceKind k, double rb, double wb, double lat) {
    s.resources.push_back(Resource{prefix + name, name, o.device, k, rb, wb, lat});
  };
  // Tiers at the achievable bandwidth, as the cost model charges them.
  for (const MemoryTier& t : a.tiers) add(t.name, ResourceKind::Tier, t.read_bandwidth * mem_eff, t.write_bandwidth * mem_eff, t.latency);
  for (const StorageLevel& l : a.levels) add(l.name, ResourceKind::Level, l.bandwidth, l.bandwidth, 0);
  for (const Link& l : a.links) add(l.name, ResourceKind::Link, l.bandwidth, l.bandwidth, l.latency);
  for (const ComputeArray& arr : a.arrays) add(arr.name, ResourceKind::Array, 0, 0, 0);
  add("dma0", ResourceKind::Dma, 0, 0, 0);  // the executor's DMA engine: sets up each block instance

  for (const BlockRun& b : r.blocks) {
    ScheduleBlock sb;
    sb.name = block_label(r, b);
    sb.instances = std::max<int64_t>(1, std::llround(b.repeats));
    sb.tiles = o.tiles;
    sb.launch = b.launch;
    sb.fill = b.fill;
    sb.analytical = b.time;
    const double per = static_cast<double>(sb.instances * sb.tiles);
    for (const LevelTraffic& t : b.traffic) {
      if (t.read_bytes + t.write_bytes <= 0) continue;
      const int res = s.resource(t.name);
      if (res < 0) throw InternalError(fmt::format("block '{}' moves data through '{}', which '{}' does not have", sb.name, t.name, a.name));
      sb.loads.push_back(StageWork{res, t.read_bytes / per, t.write_bytes / per, 0});
    }
    std::map<std::string, double> busy;
    for (int i : b.einsums) {
      const EinsumRun& e = r.einsums[static_cast<size_t>(i)];
      busy[e.array] += e.compute;
    }
    for (const auto& [name, t] : busy) {
      if (t <= 0) continue;
      const int res = s.resource(name);
      if (res < 0) throw InternalError(fmt::format("block '{}' computes on '{}', which '{}' does not have", sb.name, name, a.name));
      sb.compute.push_back(StageWork{res, 0, 0, t / per});
    }
    s.blocks.push_back(std::move(sb));
  }
  if (r.allreduce_time > 0) {
    s.tail = r.allreduce_time;
    for (const Link& l : a.links)
      if (l.to == "peer") s.tail_resource = s.resource(l.name);
  }
  s.analytical = r.step_time;
  return s;
}

void apply_engine(RunReport& r, const ArchSpec& a, const Schedule& s, const EngineResult& e, const std::string& engine) {
  if (e.block_time.size() != r.blocks.size()) throw InternalError("the simulated schedule does not match the run's blocks");
  r.engine = engine;
  r.analytical_step = r.step_time;
  const double old_compute = r.compute_time;
  r.compute_time = 0;
  for (size_t i = 0; i < r.blocks.size(); ++i) {
    r.blocks[i].time = e.block_time[i];
    r.compute_time += e.block_time[i];
  }
  if (old_compute > 0) r.layer_time *= r.compute_time / old_compute;
  r.energy += static_cast<double>(r.tp) * a.power.active * (e.total - r.step_time);
  r.step_time = e.total;
  r.power = r.step_time > 0 ? a.power.active + (r.compute_energy + r.memory_energy) / r.step_time : a.power.idle;
  r.tokens_per_s = r.step_time > 0 ? r.tokens / r.step_time : 0;
  r.energy_per_token = r.tokens > 0 ? r.energy / r.tokens : 0;
  r.transactions = e.transactions;
  r.quantum = e.quantum;
  r.tiles = s.blocks.empty() ? 0 : s.blocks.front().tiles;
}

std::string chrome_trace(const Schedule& s, const EngineResult& r) {
  nlohmann::json ev = nlohmann::json::array();
  ev.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "einsim"}}}});
  for (size_t i = 0; i < s.resources.size(); ++i) {
    const Resource& x = s.resources[i];
    ev.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", i + 1}, {"args", {{"name", x.name}}}});
    ev.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", 1}, {"tid", i + 1}, {"args", {{"sort_index", i}}}});
  }
  for (const TraceEvent& e : r.events)
    ev.push_back({{"name", e.name},
                  {"cat", std::string(resource_kind_name(s.resources[static_cast<size_t>(e.resource)].kind))},
                  {"ph", "X"},
                  {"pid", 1},
                  {"tid", e.resource + 1},
                  {"ts", e.start * 1e6},
                  {"dur", (e.end - e.start) * 1e6}});
  nlohmann::json j = {{"traceEvents", ev}, {"displayTimeUnit", "ns"},
                      {"otherData", {{"engine", "systemc"}, {"step_s", r.total}, {"analytical_s", s.analytical}, {"transactions", r.transactions}}}};
  return j.dump() + "\n";
}

}  // namespace einsim
