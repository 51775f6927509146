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
  int peer = -1;
  for (const Link& l : a.links)
    if (l.to == "peer") peer = s.resource(l.name);
  for (size_t i = 0; i < r.blocks.size(); ++i) {
    s.blocks[i].layer_group = r.blocks[i].layer_group;
    s.blocks[i].energy = r.blocks[i].energy / static_cast<double>(s.blocks[i].instances);
  }
  s.plan.host = r.host_time;
  s.plan.active_power = a.power.active;
  // Layer by layer, when the run says how its layers are ordered and every layer block's
  // instances divide evenly over its group's layers.
  bool layered = o.layered && !r.layer_order.empty() && r.group_sublayers.size() == r.group_layers.size();
  for (const ScheduleBlock& b : s.blocks)
    if (layered && b.layer_group >= 0)
      layered = static_cast<size_t>(b.layer_group) < r.group_layers.size() && b.instances % r.group_layers[static_cast<size_t>(b.layer_group)] == 0;
  if (!layered) {
    // The collectives after the blocks, on the peer link.
    if (r.allreduce_time + r.alltoall_time > 0) {
      s.tail = r.allreduce_time + r.alltoall_time;
      s.tail_resource = peer;
    }
    s.analytical = r.step_time;
    return s;
  }
  LayerPlan& p = s.plan;
  p.order = r.layer_order;
  p.group_layers = r.group_layers;
  // Each layer's collectives where the model runs them: an all-reduce after the attention's
  // output projection and one after the MLP (one in all after both when they read the same
  // input), the all-to-alls with the MLP; a group whose blocks say neither runs them after
  // its last block.
  auto has = [&](const BlockRun& b, const char* component) {
    return std::any_of(b.einsums.begin(), b.einsums.end(), [&](int e) { return r.einsums[static_cast<size_t>(e)].component == component; });
  };
  for (size_t g = 0; g < r.group_layers.size(); ++g) {
    int out = -1, mlp = -1, last = -1;
    for (size_t i = 0; i < r.blocks.size(); ++i) {
      if (r.blocks[i].layer_group != static_cast<int>(g)) continue;
      last = static_cast<int>(i);
      if (has(r.blocks[i], "out-proj")) out = static_cast<int>(i);
      if (has(r.blocks[i], "mlp")) mlp = static_cast<int>(i);
    }
    if (last < 0) continue;
    const double subs = r.group_sublayers[g];
    const int end = mlp >= 0 ? mlp : last;
    if (out >= 0 && mlp >= 0 && out != mlp && subs >= 2) {
      s.blocks[static_cast<size_t>(out)].allreduce_after = r.allreduce_each;
      s.blocks[static_cast<size_t>(mlp)].allreduce_after = r.allreduce_each * (subs - 1);
    } else {
      s.blocks[static_cast<size_t>(std::max(end, out))].allreduce_after = r.allreduce_each * subs;
    }
    if (g < r.group_moe.size() && r.group_moe[g]) s.blocks[static_cast<size_t>(end)].alltoall_after = r.alltoall_each;
  }
  p.collective_resource = peer;
  p.ranks = o.every_rank ? static_cast<int>(std::max(r.tp, r.ep)) : 1;
  p.stages = static_cast<int>(std::max<int64_t>(1, r.pp));
  p.microbatches = std::max<int64_t>(1, r.microbatches);
  if (r.stages.empty()) p.stage_layers = {static_cast<int64_t>(p.order.size())};
  for (const RunReport::Stage& st : r.stages) p.stage_layers.push_back(st.layers);
  p.hops = r.pipeline_hops;
  for (const std::string& l : r.pipeline_hop_links) p.hop_resource.push_back(s.resource(l));
  p.per_device = static_cast<int>(s.resources.size());
  // Every further device: a copy of the first's resources under its own name.
  for (int d = 1; d < p.devices(); ++d) {
    const std::string dev = fmt::format("gpu{}", d);
    for (int i = 0; i < p.per_device; ++i) {
      Resource x = s.resources[static_cast<size_t>(i)];
      x.device = dev;
      x.name = fmt::format("system.{}.{}", dev, x.short_name);
      s.resources.push_back(std::move(x));
    }
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
  // A pipeline's per-device compute is its slowest stage's, over the micro-batches.
  if (s.plan.stages > 1 && !e.stage_compute.empty()) r.compute_time = *std::max_element(e.stage_compute.begin(), e.stage_compute.end());
  if (old_compute > 0) r.layer_time *= r.compute_time / old_compute;
  if (s.plan.stages > 1) r.pipeline_time = e.total - r.host_time;
  r.energy += static_cast<double>(r.devices()) * a.power.active * (e.total - r.step_time);
  r.step_time = e.total;
  r.power = r.step_time > 0 ? a.power.active + (r.compute_energy + r.memory_energy) / r.step_time : a.power.idle;
  r.tokens_per_s = r.step_time > 0 ? r.tokens / r.step_time : 0;
  r.energy_per_token = r.tokens > 0 ? r.energy / r.tokens : 0;
  r.transactions = e.transactions;
  r.quantum = e.quantum;
  r.tiles = s.blocks.empty() ? 0 : s.blocks.front().tiles;
}

namespace {

// Trace times in whole nanoseconds, written in microseconds: a child that ends where its parent
// ends rounds to the same instant.
int64_t ns(double s) { return std::llround(s * 1e9); }
double us(int64_t n) { return static_cast<double>(n) / 1e3; }

}  // namespace

std::string chrome_trace(const Schedule& s, const EngineResult& r, const TraceOptions& o) {
  nlohmann::json ev = nlohmann::json::array();
  // A process per device, in the order the schedule names them.
  std::vector<std::string> devices;
  std::vector<int> pid_of(s.resources.size()), tid_of(s.resources.size());
  std::vector<int> per_device;
  for (size_t i = 0; i < s.resources.size(); ++i) {
    const auto it = std::find(devices.begin(), devices.end(), s.resources[i].device);
    const auto d = static_cast<size_t>(it - devices.begin());
    if (it == devices.end()) devices.push_back(s.resources[i].device), per_device.push_back(0);
    pid_of[i] = static_cast<int>(d) + 1;
    tid_of[i] = 2 + per_device[d]++;  // tid 1: the device's program
  }
  const LayerPlan& p = s.plan;
  for (size_t d = 0; d < devices.size(); ++d) {
    std::string name = devices[d];
    if (!p.order.empty() && static_cast<int>(d) < p.devices()) {
      const int stage = static_cast<int>(d) / p.ranks, rank = static_cast<int>(d) % p.ranks;
      name += p.stages > 1 ? fmt::format(" (stage {}, rank {})", stage, rank) : fmt::format(" (rank {})", rank);
    }
    const int pid = static_cast<int>(d) + 1;
    ev.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}});
    ev.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", pid}, {"args", {{"sort_index", d}}}});
    ev.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", 1}, {"args", {{"name", "program"}}}});
    ev.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", pid}, {"tid", 1}, {"args", {{"sort_index", 0}}}});
  }
  for (size_t i = 0; i < s.resources.size(); ++i) {
    const Resource& x = s.resources[i];
    ev.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid_of[i]}, {"tid", tid_of[i]}, {"args", {{"name", x.name}}}});
    ev.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", pid_of[i]}, {"tid", tid_of[i]}, {"args", {{"sort_index", tid_of[i]}}}});
  }
  // The programs' spans, nested: by start, outer first.
  std::vector<const TraceSpan*> spans;
  for (const TraceSpan& x : r.spans) spans.push_back(&x);
  std::stable_sort(spans.begin(), spans.end(), [](const TraceSpan* a, const TraceSpan* b) {
    if (a->device != b->device) return a->device < b->device;
    if (ns(a->start) != ns(b->start)) return ns(a->start) < ns(b->start);
    return a->depth < b->depth;
  });
  for (const TraceSpan* x : spans) {
    nlohmann::json e = {{"name", x->name}, {"cat", x->cat}, {"ph", "X"}, {"pid", x->device + 1}, {"tid", 1}, {"ts", us(ns(x->start))},
                        {"dur", us(ns(x->end) - ns(x->start))}};
    if (x->power > 0) e["args"] = {{"power_w", x->power}};
    ev.push_back(std::move(e));
  }
  // Each resource's transactions (in the order it served them: first come, first served).
  if (o.tiles)
    for (const TraceEvent& e : r.events) {
      const auto i = static_cast<size_t>(e.resource);
      ev.push_back({{"name", e.name}, {"cat", std::string(resource_kind_name(s.resources[i].kind))}, {"ph", "X"}, {"pid", pid_of[i]}, {"tid", tid_of[i]},
                    {"ts", us(ns(e.start))}, {"dur", us(ns(e.end) - ns(e.start))}});
    }
  // Bandwidth counters: each memory's and link's bytes spread over the transactions that moved
  // them, averaged over `counter_bins` windows of the step.
  const double total = r.total > 0 ? r.total : 1e-9;
  const int bins = std::max(1, o.counter_bins);
  const double width = total / bins;
  std::vector<std::vector<double>> moved(s.resources.size());
  for (const TraceEvent& e : r.events) {
    if (e.bytes <= 0 || e.end <= e.start) continue;
    auto& m = moved[static_cast<size_t>(e.resource)];
    if (m.empty()) m.assign(static_cast<size_t>(bins), 0);
    const double rate = e.bytes / (e.end - e.start);
    for (int b = std::max(0, static_cast<int>(e.start / width)); b < bins && b * width < e.end; ++b) {
      const double lo = std::max(e.start, b * width), hi = std::min(e.end, (b + 1) * width);
      if (hi > lo) m[static_cast<size_t>(b)] += rate * (hi - lo);
    }
  }
  for (size_t i = 0; i < s.resources.size(); ++i) {
    if (moved[i].empty()) continue;
    const std::string name = fmt::format("{} GB/s", s.resources[i].short_name);
    for (int b = 0; b < bins; ++b)
      ev.push_back({{"name", name}, {"ph", "C"}, {"pid", pid_of[i]}, {"ts", us(ns(b * width))}, {"args", {{"GB/s", moved[i][static_cast<size_t>(b)] / width / 1e9}}}});
    ev.push_back({{"name", name}, {"ph", "C"}, {"pid", pid_of[i]}, {"ts", us(ns(total))}, {"args", {{"GB/s", 0}}}});
  }
  // Power: each kernel's draw (the device's active power and its operations' energy over its
  // time), the active power between kernels and during collectives (their link energy is not
  // attributed in time), nothing after the step.
  if (!spans.empty()) {
    std::map<int, std::vector<std::pair<int64_t, double>>> steps;
    for (const TraceSpan* x : spans) {
      auto& v = steps[x->device];
      if (x->depth == 0) {
        v.emplace_back(ns(x->start), p.active_power);
        v.emplace_back(ns(x->end), 0.0);
      } else if (x->power > 0) {
        v.emplace_back(ns(x->start), x->power);
        v.emplace_back(ns(x->end), p.active_power);
      }
    }
    for (auto& [device, v] : steps) {
      std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t k = 0; k < v.size(); ++k) {
        if (k + 1 < v.size() && v[k + 1].first == v[k].first) continue;  // the last change at an instant holds
        ev.push_back({{"name", "power W"}, {"ph", "C"}, {"pid", device + 1}, {"ts", us(v[k].first)}, {"args", {{"W", v[k].second}}}});
      }
    }
  }
  // Flows between devices' programs.
  int64_t id = 0;
  for (const TraceFlow& f : r.flows) {
    ++id;
    ev.push_back({{"name", f.name}, {"cat", "flow"}, {"ph", "s"}, {"id", id}, {"pid", f.from_device + 1}, {"tid", 1}, {"ts", us(ns(f.from))}});
    ev.push_back({{"name", f.name}, {"cat", "flow"}, {"ph", "f"}, {"bp", "e"}, {"id", id}, {"pid", f.to_device + 1}, {"tid", 1}, {"ts", us(ns(f.to))}});
  }
  nlohmann::json j = {{"traceEvents", ev},
                      {"displayTimeUnit", "ns"},
                      {"otherData",
                       {{"engine", "systemc"}, {"step_s", r.total}, {"analytical_s", s.analytical}, {"transactions", r.transactions}, {"devices", devices.size()}}}};
  return j.dump() + "\n";
}

}  // namespace einsim
