#include "sim/engine/systemc_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "common/error.h"

namespace einsim {

namespace {

using sc_core::SC_SEC;
using sc_core::sc_time;

double seconds(const sc_time& t) { return t.to_seconds(); }
sc_time at(double s) { return sc_time(s, SC_SEC); }

/// What a transaction asks of a resource: bytes for memories and links, seconds for arrays.
struct Work : tlm::tlm_extension<Work> {
  double read_bytes = 0, write_bytes = 0, seconds = 0;
  double rate = 0;  ///< B/s cap below the resource's bandwidth (0: none)
  const std::string* label = nullptr;
  tlm_extension_base* clone() const override { return new Work(*this); }
  void copy_from(const tlm_extension_base& other) override { *this = static_cast<const Work&>(other); }
};

/// Per-system bookkeeping shared by its modules.
struct Recorder {
  bool trace = false;
  bool names = true;  ///< with trace: each transaction's name
  EngineResult* result = nullptr;
  /// With several executors: one lock per device's compute arrays. A kernel (block instance)
  /// holds its device's arrays from its launch to its last tile, as a GPU runs one large
  /// kernel at a time; memories and links stay shared, transaction by transaction.
  std::map<std::string, std::unique_ptr<sc_core::sc_mutex>> arrays;
  /// Layered schedules: each stage's ranks meet at every collective; each stage boundary
  /// passes every micro-batch on, rank to rank.
  struct Meeting {
    int arrived = 0;
    double latest = 0, release = 0;
    sc_core::sc_event done;
  };
  std::vector<std::unique_ptr<Meeting>> meetings;  ///< per stage
  struct Mail {
    bool ready = false;
    double at = 0;
    sc_core::sc_event posted;
  };
  std::map<std::tuple<int, int, int64_t>, std::unique_ptr<Mail>> mail;  ///< (boundary, rank, micro-batch)
  Mail& mailbox(int boundary, int rank, int64_t n) {
    auto& m = mail[{boundary, rank, n}];
    if (!m) m = std::make_unique<Mail>();
    return *m;
  }
};

/// A tier, level, link or array: serves transactions first come, first served.
class ResourceTarget : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<ResourceTarget> socket;

  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  ResourceTarget(sc_core::sc_module_name name, const Resource& r, int index, Recorder& rec)
      : sc_module(name), socket("socket"), r_(r), index_(index), rec_(rec) {
    socket.register_b_transport(this, &ResourceTarget::b_transport);
  }

 private:
  void b_transport(int /*id*/, tlm::tlm_generic_payload& p, sc_time& delay) {
    Work* w = nullptr;
    p.get_extension(w);
    if (!w) throw InternalError(fmt::format("transaction to '{}' without work", r_.name));
    double service = w->seconds;
    auto bw = [&](double b) { return w->rate > 0 ? std::min(b, w->rate) : b; };
    if (w->read_bytes > 0) service += w->read_bytes / bw(r_.read_bandwidth);
    if (w->write_bytes > 0) service += w->write_bytes / bw(r_.write_bandwidth);
    if (w->read_bytes + w->write_bytes > 0) service += r_.latency;
    const double arrive = seconds(sc_core::sc_time_stamp() + delay);
    const double start = std::max(arrive, next_free_);
    next_free_ = start + service;
    delay = at(next_free_) - sc_core::sc_time_stamp();
    rec_.result->busy[static_cast<size_t>(index_)] += service;
    ++rec_.result->transactions;
    if (rec_.trace && service > 0) rec_.result->events.push_back(TraceEvent{index_, w->label ? *w->label : std::string(), start, next_free_, w->read_bytes + w->write_bytes});
    p.set_response_status(tlm::TLM_OK_RESPONSE);
  }

  const Resource& r_;
  int index_;
  Recorder& rec_;
  double next_free_ = 0;
};

/// An initiator with one socket per resource of its system.
class Initiator : public sc_core::sc_module {
 public:
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  Initiator(sc_core::sc_module_name name, size_t resources) : sc_module(name) {
    for (size_t i = 0; i < resources; ++i)
      sockets_.push_back(std::make_unique<tlm_utils::simple_initiator_socket<Initiator>>(fmt::format("to_{}", i).c_str()));
    qk_.reset();
  }
  tlm_utils::simple_initiator_socket<Initiator>& socket(size_t i) { return *sockets_[i]; }

 protected:
  /// Issues `w` to resource `res` at absolute time `start` (s); returns its completion (s).
  double transport(int res, Work& w, double start) {
    tlm::tlm_generic_payload p;
    p.set_command(w.write_bytes > 0 && w.read_bytes == 0 ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    p.set_data_length(0);
    p.set_extension(&w);
    sc_time delay = at(std::max(start, seconds(sc_core::sc_time_stamp()))) - sc_core::sc_time_stamp();
    (*sockets_[static_cast<size_t>(res)])->b_transport(p, delay);
    p.clear_extension(&w);
    return seconds(sc_core::sc_time_stamp() + delay);
  }
  /// Moves this initiator's local time to `t` (s) and yields once a quantum has passed.
  void advance(double t) {
    if (t > now()) qk_.set(at(t) - sc_core::sc_time_stamp());
    if (qk_.need_sync()) qk_.sync();
  }
  double now() const { return seconds(qk_.get_current_time()); }
  /// Brings SystemC time up to this initiator's local time `t` (s), so that what follows
  /// (taking a lock) happens at `t` exactly.
  void sync_to(double t) {
    if (t > now()) qk_.set(at(t) - sc_core::sc_time_stamp());
    qk_.sync();
  }

 private:
  std::vector<std::unique_ptr<tlm_utils::simple_initiator_socket<Initiator>>> sockets_;
  tlm_utils::tlm_quantumkeeper qk_;
};

/// Runs block instances: launch, fill/drain, then the tiles double buffered.
class BlockRunner : public Initiator {
 public:
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  BlockRunner(sc_core::sc_module_name name, const Schedule& s, Recorder& rec) : Initiator(name, s.resources.size()), s_(s), rec_(rec) {}

 protected:
  /// One instance of `b` from `t` on the resources `offset` past the block's own (another
  /// device's copy); returns when its last tile is done. `tag` names it in the trace.
  double run_instance(const ScheduleBlock& b, double t, int dma, int offset, const std::string& tag) {
    const int64_t T = b.tiles;
    load_done_.assign(static_cast<size_t>(T), 0);
    comp_done_.assign(static_cast<size_t>(T), 0);
    // Launch and fill/drain: the DMA engine sets the block up before its first tile.
    const std::string head = rec_.trace && rec_.names ? fmt::format("{} {} launch+fill", b.name, tag) : std::string();
    if (b.launch + b.fill > 0) {
      Work w;
      w.seconds = b.launch + b.fill;
      w.label = &head;
      t = transport(dma + offset, w, t);
    }
    for (int64_t k = 0; k < T; ++k) {
      const std::string label = rec_.trace && rec_.names ? fmt::format("{} {} tile {}", b.name, tag, k) : std::string();
      // Double buffering: tile k's loads wait for tile k-1's loads and for the buffer
      // tile k-2 computed from.
      double ls = t;
      if (k >= 1) ls = std::max(ls, load_done_[static_cast<size_t>(k - 1)]);
      if (k >= 2) ls = std::max(ls, comp_done_[static_cast<size_t>(k - 2)]);
      double ld = ls;
      for (const StageWork& st : b.loads) {
        Work w;
        w.read_bytes = st.read_bytes;
        w.write_bytes = st.write_bytes;
        w.label = &label;
        ld = std::max(ld, transport(st.resource + offset, w, ls));
      }
      load_done_[static_cast<size_t>(k)] = ld;
      double cs = ld;
      if (k >= 1) cs = std::max(cs, comp_done_[static_cast<size_t>(k - 1)]);
      double cd = cs;
      for (const StageWork& st : b.compute) {
        Work w;
        w.seconds = st.seconds;
        w.label = &label;
        cd = std::max(cd, transport(st.resource + offset, w, cs));
      }
      comp_done_[static_cast<size_t>(k)] = cd;
      advance(std::min(ls, cs));  // the earliest time this tile still needs
    }
    return std::max(load_done_.back(), comp_done_.back());
  }

  const Schedule& s_;
  Recorder& rec_;

 private:
  std::vector<double> load_done_, comp_done_;
};

/// Runs a sequence of blocks in order, all instances of one before the next.
class Executor : public BlockRunner {
 public:
  SC_HAS_PROCESS(Executor);
  /// `stream` < 0: the main blocks (`steps` times, then the tail); else that extra stream.
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  Executor(sc_core::sc_module_name name, const Schedule& s, int stream, Recorder& rec) : BlockRunner(name, s, rec), stream_(stream) { SC_THREAD(run); }

 private:
  void run() {
    EngineResult& out = *rec_.result;
    const bool main = stream_ < 0;
    const std::vector<ScheduleBlock>& blocks = main ? s_.blocks : s_.streams[static_cast<size_t>(stream_)].blocks;
    // Each executor sets its blocks up through a DMA queue of its own when the schedule has one.
    int dma = main ? -1 : s_.resource(fmt::format("dma{}", stream_ + 1));
    if (dma < 0) dma = s_.resource("dma0");
    double t = now();
    if (!main) {
      t = std::max(t, s_.streams[static_cast<size_t>(stream_)].start);
      advance(t);
    }
    for (int64_t step = 0; step < (main ? s_.steps : 1); ++step) {
      for (size_t bi = 0; bi < blocks.size(); ++bi) {
        const ScheduleBlock& b = blocks[bi];
        const double block_start = t;
        t = run_block(b, t, dma);
        if (main) out.block_time[bi] += t - block_start;
      }
      if (main) out.step_done.push_back(t);
    }
    if (!main) {
      out.stream_done[static_cast<size_t>(stream_)] = t;
      return;
    }
    if (s_.tail > 0 && s_.tail_resource >= 0) {
      static const std::string collectives = "collectives";
      Work w;
      w.seconds = s_.tail;
      w.label = &collectives;
      t = transport(s_.tail_resource, w, t);
    } else {
      t += s_.tail;
    }
    t += s_.plan.host;
    advance(t);
    out.total = t;
  }

  double run_block(const ScheduleBlock& b, double t, int dma) {
    sc_core::sc_mutex* lock = nullptr;
    if (!rec_.arrays.empty() && !b.compute.empty()) lock = rec_.arrays.at(s_.resources[static_cast<size_t>(b.compute.front().resource)].device).get();
    for (int64_t inst = 0; inst < b.instances; ++inst) {
      if (lock) {
        sync_to(t);
        lock->lock();
        t = std::max(t, seconds(sc_core::sc_time_stamp()));
      }
      t = run_instance(b, t, dma, 0, rec_.trace && rec_.names ? fmt::format("#{}", inst) : std::string());
      if (lock) {
        sync_to(t);
        lock->unlock();
      } else {
        advance(t);
      }
    }
    return t;
  }

  int stream_;
};

/// One device of a layered schedule (LayerPlan): its stage's layers for every micro-batch,
/// each layer's kernels and then its collectives (met by the stage's other ranks), the
/// activations received from the stage before and sent to the one after.
class DeviceRunner : public BlockRunner {
 public:
  SC_HAS_PROCESS(DeviceRunner);
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  DeviceRunner(sc_core::sc_module_name name, const Schedule& s, int device, Recorder& rec) : BlockRunner(name, s, rec), d_(device) { SC_THREAD(run); }

 private:
  void open(int depth, std::string name, std::string cat, double t) {
    if (!rec_.trace) return;
    rec_.result->spans.push_back(TraceSpan{d_, depth, std::move(name), std::move(cat), t, t, 0});
    open_.push_back(rec_.result->spans.size() - 1);
  }
  void close(double t) {
    if (!rec_.trace) return;
    rec_.result->spans[open_.back()].end = t;
    open_.pop_back();
  }

  void run() {
    const LayerPlan& p = s_.plan;
    EngineResult& out = *rec_.result;
    const int stage = d_ / p.ranks, rank = d_ % p.ranks, last = p.stages - 1;
    const int off = d_ * p.per_device;
    const int dma = s_.resource("dma0");
    int64_t first = 0;
    for (int st = 0; st < stage; ++st) first += p.stage_layers[static_cast<size_t>(st)];
    const int64_t n = p.stage_layers[static_cast<size_t>(stage)];
    // The blocks outside the layers: those before the first layer block open the model (on the
    // first stage), the others close it (on the last).
    std::vector<size_t> pre, post;
    bool seen_layer = false;
    for (size_t bi = 0; bi < s_.blocks.size(); ++bi) {
      if (s_.blocks[bi].layer_group >= 0) seen_layer = true;
      else (seen_layer ? post : pre).push_back(bi);
    }
    const bool lead = rank == 0;
    const double M = static_cast<double>(p.microbatches);
    double t = 0, busy = 0;
    int64_t collective = 0;
    auto kernels = [&](size_t bi, int64_t count, const std::string& tag) {
      const ScheduleBlock& b = s_.blocks[bi];
      const double start = t;
      for (int64_t i = 0; i < count; ++i) {
        open(3, b.name, "kernel", t);
        const double k0 = t;
        t = run_instance(b, t, dma, off, rec_.trace && rec_.names && count > 1 ? fmt::format("{} #{}", tag, i) : tag);
        advance(t);
        if (rec_.trace) out.spans[open_.back()].power = p.active_power + (t > k0 ? b.energy / (t - k0) : 0);
        close(t);
      }
      busy += t - start;
      if (lead) out.block_time[bi] += (t - start) / M;
    };
    static const std::string kAllReduce = "all-reduce", kAllToAll = "all-to-all";
    auto collective_op = [&](const std::string& name, double secs) {
      if (!(secs > 0)) return;
      if (p.ranks > 1) {
        // Every rank of the stage arrives before the collective starts.
        sync_to(t);
        Recorder::Meeting& m = *rec_.meetings[static_cast<size_t>(stage)];
        m.latest = std::max(m.latest, t);
        if (++m.arrived == p.ranks) {
          m.release = m.latest;
          m.arrived = 0;
          m.latest = 0;
          m.done.notify(sc_core::SC_ZERO_TIME);
        } else {
          sc_core::wait(m.done);
        }
        t = std::max(t, m.release);
      }
      Work w;
      w.seconds = secs;
      w.label = &name;
      const double start = t;
      open(3, name, "collective", t);
      t = p.collective_resource >= 0 ? transport(p.collective_resource + off, w, t) : t + secs;
      close(t);
      if (rec_.trace && p.ranks > 1) {
        // The ring: each rank passes to the next.
        const int next = stage * p.ranks + (rank + 1) % p.ranks;
        out.flows.push_back(TraceFlow{fmt::format("{} {}", name, collective), d_, next, start + secs / 3, start + 2 * secs / 3});
      }
      ++collective;
      advance(t);
    };
    for (int64_t step = 0; step < s_.steps; ++step) {
      open(0, "step", "step", t);
      for (int64_t mb = 0; mb < p.microbatches; ++mb) {
        const int64_t key = step * p.microbatches + mb;
        if (stage > 0) {
          sync_to(t);
          Recorder::Mail& box = rec_.mailbox(stage - 1, rank, key);
          if (!box.ready) sc_core::wait(box.posted);
          t = std::max(t, box.at);
        }
        if (rec_.trace) open(1, p.microbatches > 1 ? fmt::format("micro-batch {}", mb) : std::string("forward"), "micro-batch", t);
        if (stage == 0)
          for (size_t bi : pre) kernels(bi, s_.blocks[bi].instances, "");
        for (int64_t l = first; l < first + n; ++l) {
          const int g = p.order[static_cast<size_t>(l)];
          if (rec_.trace) open(2, fmt::format("layer {}", l), "layer", t);
          for (size_t bi = 0; bi < s_.blocks.size(); ++bi)
            if (s_.blocks[bi].layer_group == g) {
              kernels(bi, s_.blocks[bi].instances / p.group_layers[static_cast<size_t>(g)], rec_.trace && rec_.names ? fmt::format("L{}", l) : std::string());
              collective_op(kAllReduce, s_.blocks[bi].allreduce_after);
              collective_op(kAllToAll, s_.blocks[bi].alltoall_after);
            }
          close(t);
        }
        if (stage == last)
          for (size_t bi : post) kernels(bi, s_.blocks[bi].instances, "");
        close(t);
        if (stage < last) {
          // The micro-batch's activations to the same rank of the next stage.
          static const std::string label = "activations";
          Work w;
          w.seconds = p.hops[static_cast<size_t>(stage)];
          w.label = &label;
          const double start = t;
          if (rec_.trace) open(1, fmt::format("send micro-batch {}", mb), "send", t);
          const int hop = p.hop_resource[static_cast<size_t>(stage)];
          t = hop >= 0 ? transport(hop + off, w, t) : t + w.seconds;
          close(t);
          Recorder::Mail& box = rec_.mailbox(stage, rank, key);
          box.ready = true;
          box.at = t;
          box.posted.notify(sc_core::SC_ZERO_TIME);
          if (rec_.trace) out.flows.push_back(TraceFlow{fmt::format("micro-batch {}", mb), d_, d_ + p.ranks, (start + t) / 2, t});
          advance(t);
        }
      }
      t += p.host;
      close(t);
      if (lead && stage == last) out.step_done.push_back(t);
    }
    advance(t);
    if (lead) out.stage_compute[static_cast<size_t>(stage)] = busy;
    sync_to(t);
    out.total = std::max(out.total, t);
  }

  int d_;
  std::vector<size_t> open_;
};

/// Streams one background transfer in chunks over its path.
class DmaEngine : public Initiator {
 public:
  SC_HAS_PROCESS(DmaEngine);
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  DmaEngine(sc_core::sc_module_name name, const Schedule& s, size_t index, Recorder& rec)
      : Initiator(name, s.resources.size()), x_(s.background[index]), index_(index), rec_(rec) {
    SC_THREAD(run);
  }

 private:
  void run() {
    double t = x_.start;
    advance(t);
    double left = x_.bytes;
    while (left > 0) {
      const double chunk = std::min(left, x_.chunk);
      double done = t;
      for (size_t i = 0; i < x_.path.size(); ++i) {
        Work w;  // links and memories on the path each carry the chunk
        (i < x_.writes.size() && x_.writes[i] ? w.write_bytes : w.read_bytes) = chunk;
        if (i == 0) w.rate = x_.rate;
        w.label = &x_.name;
        done = std::max(done, transport(x_.path[i], w, t));
      }
      left -= chunk;
      t = done;
      advance(t);
    }
    rec_.result->background_done[index_] = t;
  }

  const BackgroundTransfer& x_;
  size_t index_;
  Recorder& rec_;
};

/// One device of a system: the resources the architecture names under it.
class Device : public sc_core::sc_module {
 public:
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  Device(sc_core::sc_module_name name, const Schedule& s, const std::string& device, Recorder& rec,
         std::vector<ResourceTarget*>& by_index)
      : sc_module(name) {
    for (size_t i = 0; i < s.resources.size(); ++i) {
      const Resource& r = s.resources[i];
      if (r.device != device) continue;
      targets_.push_back(std::make_unique<ResourceTarget>(r.short_name.c_str(), r, static_cast<int>(i), rec));
      by_index[i] = targets_.back().get();
    }
  }

 private:
  std::vector<std::unique_ptr<ResourceTarget>> targets_;
};

/// The top of one simulated system: system.<device>.<part>, as the architectures name their
/// parts; the executors and DMA engines under the first device.
class System : public sc_core::sc_module {
 public:
  // NOLINTNEXTLINE(performance-unnecessary-value-param): SystemC takes module names by value (their lifetime scopes the hierarchy)
  System(sc_core::sc_module_name name, const Schedule& s, Recorder& rec) : sc_module(name) {
    std::vector<ResourceTarget*> by_index(s.resources.size(), nullptr);
    std::vector<std::string> devices;
    for (const Resource& r : s.resources)
      if (std::find(devices.begin(), devices.end(), r.device) == devices.end()) devices.push_back(r.device);
    for (const std::string& d : devices) devices_.push_back(std::make_unique<Device>(d.c_str(), s, d, rec, by_index));
    if (!s.streams.empty())
      for (const std::string& d : devices) rec.arrays[d] = std::make_unique<sc_core::sc_mutex>(fmt::format("{}_arrays", d).c_str());
    if (s.plan.order.empty()) {
      executor_ = std::make_unique<Executor>("executor", s, -1, rec);
    } else {
      for (int st = 0; st < s.plan.stages; ++st) rec.meetings.push_back(std::make_unique<Recorder::Meeting>());
      for (int d = 0; d < s.plan.devices(); ++d) runners_.push_back(std::make_unique<DeviceRunner>(fmt::format("runner{}", d).c_str(), s, d, rec));
    }
    for (size_t i = 0; i < s.streams.size(); ++i)
      streams_.push_back(std::make_unique<Executor>(fmt::format("executor{}", i + 1).c_str(), s, static_cast<int>(i), rec));
    for (size_t b = 0; b < s.background.size(); ++b) dmas_.push_back(std::make_unique<DmaEngine>(fmt::format("dma_engine{}", b + 1).c_str(), s, b, rec));
    auto bind_all = [&](Initiator& ini) {
      for (size_t i = 0; i < s.resources.size(); ++i) ini.socket(i).bind(by_index[i]->socket);
    };
    if (executor_) bind_all(*executor_);
    for (auto& x : runners_) bind_all(*x);
    for (auto& x : streams_) bind_all(*x);
    for (auto& d : dmas_) bind_all(*d);
  }

 private:
  std::vector<std::unique_ptr<Device>> devices_;
  std::unique_ptr<Executor> executor_;
  std::vector<std::unique_ptr<DeviceRunner>> runners_;
  std::vector<std::unique_ptr<Executor>> streams_;
  std::vector<std::unique_ptr<DmaEngine>> dmas_;
};

bool g_elaborated = false;

}  // namespace

std::vector<EngineResult> simulate_systemc(const std::vector<Schedule>& schedules, const EngineOptions& o) {
  if (g_elaborated) throw InternalError("SystemC elaborates once per process: simulate_systemc() was already called");
  g_elaborated = true;
  if (!(o.quantum > 0)) throw UserError(SourceLoc{"--quantum"}, "the temporal-decoupling quantum must be positive");
  sc_core::sc_report_handler::set_actions("/IEEE_Std_1666/deprecated", sc_core::SC_DO_NOTHING);
  tlm::tlm_global_quantum::instance().set(at(o.quantum));
  std::vector<EngineResult> results(schedules.size());
  std::vector<Recorder> recs(schedules.size());
  std::vector<std::unique_ptr<System>> systems;
  for (size_t i = 0; i < schedules.size(); ++i) {
    const Schedule& s = schedules[i];
    EngineResult& r = results[i];
    r.block_time.assign(s.blocks.size(), 0);
    r.busy.assign(s.resources.size(), 0);
    r.background_done.assign(s.background.size(), 0);
    r.stream_done.assign(s.streams.size(), 0);
    r.stage_compute.assign(static_cast<size_t>(s.plan.stages), 0);
    r.quantum = o.quantum;
    recs[i].trace = o.trace;
    recs[i].names = o.tile_names;
    recs[i].result = &r;
    systems.push_back(std::make_unique<System>(schedules.size() == 1 ? "system" : fmt::format("system_{}", i).c_str(), s, recs[i]));
  }
  sc_core::sc_start();
  return results;
}

}  // namespace einsim
