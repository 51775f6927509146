#include "sim/engine/systemc_engine.h"

#include <fmt/format.h>

#include <algorithm>
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
  const std::string* label = nullptr;
  tlm_extension_base* clone() const override { return new Work(*this); }
  void copy_from(const tlm_extension_base& other) override { *this = static_cast<const Work&>(other); }
};

/// Per-system bookkeeping shared by its modules.
struct Recorder {
  bool trace = false;
  EngineResult* result = nullptr;
};

/// A tier, level, link or array: serves transactions first come, first served.
class ResourceTarget : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<ResourceTarget> socket;

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
    if (w->read_bytes > 0) service += w->read_bytes / r_.read_bandwidth;
    if (w->write_bytes > 0) service += w->write_bytes / r_.write_bandwidth;
    if (w->read_bytes + w->write_bytes > 0) service += r_.latency;
    const double arrive = seconds(sc_core::sc_time_stamp() + delay);
    const double start = std::max(arrive, next_free_);
    next_free_ = start + service;
    delay = at(next_free_) - sc_core::sc_time_stamp();
    rec_.result->busy[static_cast<size_t>(index_)] += service;
    ++rec_.result->transactions;
    if (rec_.trace && service > 0) rec_.result->events.push_back(TraceEvent{index_, w->label ? *w->label : std::string(), start, next_free_});
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

 private:
  std::vector<std::unique_ptr<tlm_utils::simple_initiator_socket<Initiator>>> sockets_;
  tlm_utils::tlm_quantumkeeper qk_;
};

/// Runs the blocks in order: launch, fill/drain, then the tiles double buffered.
class Executor : public Initiator {
 public:
  SC_HAS_PROCESS(Executor);
  Executor(sc_core::sc_module_name name, const Schedule& s, Recorder& rec) : Initiator(name, s.resources.size()), s_(s), rec_(rec) {
    SC_THREAD(run);
  }

 private:
  void run() {
    EngineResult& out = *rec_.result;
    const int dma = s_.resource("dma0");
    double t = now();
    std::vector<std::string> labels;
    for (size_t bi = 0; bi < s_.blocks.size(); ++bi) {
      const ScheduleBlock& b = s_.blocks[bi];
      const double block_start = t;
      const int64_t T = b.tiles;
      std::vector<double> load_done(static_cast<size_t>(T)), comp_done(static_cast<size_t>(T));
      for (int64_t inst = 0; inst < b.instances; ++inst) {
        // Launch and fill/drain: the DMA engine sets the block up before its first tile.
        const std::string head = fmt::format("{} #{} launch+fill", b.name, inst);
        if (b.launch + b.fill > 0) {
          Work w;
          w.seconds = b.launch + b.fill;
          w.label = &head;
          t = transport(dma, w, t);
        }
        for (int64_t k = 0; k < T; ++k) {
          const std::string label = rec_.trace ? fmt::format("{} #{} tile {}", b.name, inst, k) : std::string();
          // Double buffering: tile k's loads wait for tile k-1's loads and for the buffer
          // tile k-2 computed from.
          double ls = t;
          if (k >= 1) ls = std::max(ls, load_done[static_cast<size_t>(k - 1)]);
          if (k >= 2) ls = std::max(ls, comp_done[static_cast<size_t>(k - 2)]);
          double ld = ls;
          for (const StageWork& st : b.loads) {
            Work w;
            w.read_bytes = st.read_bytes;
            w.write_bytes = st.write_bytes;
            w.label = &label;
            ld = std::max(ld, transport(st.resource, w, ls));
          }
          load_done[static_cast<size_t>(k)] = ld;
          double cs = ld;
          if (k >= 1) cs = std::max(cs, comp_done[static_cast<size_t>(k - 1)]);
          double cd = cs;
          for (const StageWork& st : b.compute) {
            Work w;
            w.seconds = st.seconds;
            w.label = &label;
            cd = std::max(cd, transport(st.resource, w, cs));
          }
          comp_done[static_cast<size_t>(k)] = cd;
          advance(std::min(ls, cs));  // the earliest time this tile still needs
        }
        t = std::max(load_done.back(), comp_done.back());
        advance(t);
      }
      out.block_time[bi] = t - block_start;
    }
    if (s_.tail > 0 && s_.tail_resource >= 0) {
      static const std::string allreduce = "all-reduce";
      Work w;
      w.seconds = s_.tail;
      w.label = &allreduce;
      t = transport(s_.tail_resource, w, t);
    } else {
      t += s_.tail;
    }
    advance(t);
    out.total = t;
  }

  const Schedule& s_;
  Recorder& rec_;
};

/// Streams one background transfer in chunks over its path.
class DmaEngine : public Initiator {
 public:
  SC_HAS_PROCESS(DmaEngine);
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
      for (int res : x_.path) {
        Work w;
        w.read_bytes = chunk;  // links and memories on the path each carry the chunk
        w.label = &x_.name;
        done = std::max(done, transport(res, w, t));
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

/// One device: its resources, its executor and its DMA engines.
class Device : public sc_core::sc_module {
 public:
  Device(sc_core::sc_module_name name, const Schedule& s, Recorder& rec) : sc_module(name) {
    for (size_t i = 0; i < s.resources.size(); ++i) {
      const Resource& r = s.resources[i];
      if (r.short_name == "dma0") continue;  // the executor itself
      targets_.push_back(std::make_unique<ResourceTarget>(r.short_name.c_str(), r, static_cast<int>(i), rec));
      index_of_.push_back(i);
    }
    executor_ = std::make_unique<Executor>("dma0", s, rec);
    for (size_t b = 0; b < s.background.size(); ++b) dmas_.push_back(std::make_unique<DmaEngine>(fmt::format("dma{}", b + 1).c_str(), s, b, rec));
    // Bind every initiator to every resource; the dma0 socket goes to a sink (the executor
    // times its own setup through a target of its own).
    sink_ = std::make_unique<ResourceTarget>("dma0_queue", s.resources[static_cast<size_t>(s.resource("dma0"))], s.resource("dma0"), rec);
    auto bind_all = [&](Initiator& ini) {
      for (size_t i = 0; i < s.resources.size(); ++i) {
        if (s.resources[i].short_name == "dma0") {
          ini.socket(i).bind(sink_->socket);
          continue;
        }
        const size_t t = static_cast<size_t>(std::find(index_of_.begin(), index_of_.end(), i) - index_of_.begin());
        ini.socket(i).bind(targets_[t]->socket);
      }
    };
    bind_all(*executor_);
    for (auto& d : dmas_) bind_all(*d);
  }

 private:
  std::vector<std::unique_ptr<ResourceTarget>> targets_;
  std::vector<size_t> index_of_;
  std::unique_ptr<ResourceTarget> sink_;
  std::unique_ptr<Executor> executor_;
  std::vector<std::unique_ptr<DmaEngine>> dmas_;
};

/// The top of one simulated system: system.gpu0.<part>, as the architecture names its parts.
class System : public sc_core::sc_module {
 public:
  System(sc_core::sc_module_name name, const Schedule& s, Recorder& rec) : sc_module(name) { device_ = std::make_unique<Device>("gpu0", s, rec); }

 private:
  std::unique_ptr<Device> device_;
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
    r.quantum = o.quantum;
    recs[i].trace = o.trace;
    recs[i].result = &r;
    systems.push_back(std::make_unique<System>(schedules.size() == 1 ? "system" : fmt::format("system_{}", i).c_str(), s, recs[i]));
  }
  sc_core::sc_start();
  return results;
}

}  // namespace einsim

// libsystemc's own main() calls sc_main; einsim has its own main, so this is never called. It
// is defined because the shared library refers to it.
int sc_main(int /*argc*/, char* /*argv*/[]) { return 1; }
