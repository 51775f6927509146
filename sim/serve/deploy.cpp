#include "sim/serve/deploy.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "common/error.h"
#include "common/units.h"

namespace einsim {

ModelConfig mtp_head(const ModelConfig& m) {
  ModelConfig h = m;
  h.name = m.name + " MTP head";
  h.num_hidden_layers = 1;
  if (!h.layer_kinds.empty()) h.layer_kinds = {m.layer_kinds.back()};
  h.notes.clear();
  return h;
}

ServeRig::ServeRig(const Deployment& d) : d_(d) {
  const ServeConfig& c = d_.config;
  timer_ = std::make_unique<StepTimer>(d_.model, d_.arch, c.tp, d_.runtime, d_.kv_dtype, c.ep, d_.emulate, c.pp);
  if (c.disagg.on()) {
    const int64_t ptp = d_.prefill_tp > 0 ? d_.prefill_tp : c.tp;
    try {
      prefill_ = std::make_unique<StepTimer>(d_.model, d_.prefill_arch ? *d_.prefill_arch : d_.arch, ptp, d_.runtime, d_.kv_dtype, 1, d_.emulate, 1);
    } catch (const UserError& e) {
      if (e.loc().file != "--tp") throw;
      std::string m = e.message();
      if (m.starts_with("--tp")) m = "--prefill-tp" + m.substr(4);
      throw UserError(SourceLoc{"--prefill-tp"}, m);
    }
  }
  if (c.spec.on()) {
    const bool head = !d_.draft;
    draft_ = std::make_unique<StepTimer>(head ? mtp_head(d_.model) : *d_.draft, d_.arch, c.tp, d_.runtime, d_.kv_dtype, 1, d_.emulate, 1);
    // An MTP head shares the target's embedding and LM head: its own weights are one layer's,
    // taken as the target's weights per layer (DeepSeek-V3's 14B-parameter MTP module against
    // 671B over 61 layers, 11B each). A separate draft model holds all its weights.
    draft_weights_ = head ? timer_->weight_bytes() / static_cast<double>(std::max<int64_t>(1, d_.model.num_hidden_layers)) : draft_->weight_bytes();
  }
}

ServeResult ServeRig::run(const Trace& t, const ServeConfig& c) const {
  if (c.tp != d_.config.tp || c.ep != d_.config.ep || c.pp != d_.config.pp || c.disagg.on() != d_.config.disagg.on() || c.spec.on() != d_.config.spec.on())
    throw InternalError("a serving rig run under another parallelism");
  ServePools p;
  p.prefill = prefill_.get();
  p.prefill_arch = d_.prefill_arch ? &*d_.prefill_arch : nullptr;
  p.draft = draft_.get();
  p.draft_weights = draft_weights_;
  return simulate_serving(t, c, *timer_, d_.arch, p);
}

int64_t ServeRig::step_runs() const { return timer_->runs() + (prefill_ ? prefill_->runs() : 0) + (draft_ ? draft_->runs() : 0); }

int64_t ServeRig::devices(const ServeConfig& c) const {
  if (c.disagg.on()) return c.disagg.prefill * prefill_->devices() + c.disagg.decode * timer_->devices();
  return c.servers * c.instances_per_server * c.devices();
}

double ServeRig::rate(const ServeConfig& c) const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (c.disagg.on()) {
    const ArchSpec& pa = d_.prefill_arch ? *d_.prefill_arch : d_.arch;
    if (!pa.cost.rate || !d_.arch.cost.rate) return nan;
    return *pa.cost.rate * static_cast<double>(c.disagg.prefill * prefill_->devices()) + *d_.arch.cost.rate * static_cast<double>(c.disagg.decode * timer_->devices());
  }
  return d_.arch.cost.rate ? *d_.arch.cost.rate * static_cast<double>(devices(c)) : nan;
}

std::vector<std::string> ServeRig::emulated() const {
  std::vector<std::string> e = timer_->emulated();
  for (const StepTimer* t : {prefill_.get(), draft_.get()})
    if (t)
      for (const std::string& s : t->emulated())
        if (std::find(e.begin(), e.end(), s) == e.end()) e.push_back(s);
  return e;
}

namespace {
const Link* find_link(const ArchSpec& a, const char* to) {
  for (const Link& l : a.links)
    if (l.to == to) return &l;
  return nullptr;
}
}  // namespace

namespace {
// The bandwidth a link name gives by itself (0 for network and peer: the archs' links).
double named_bandwidth(const std::string& which, const char* flag) {
  if (which == "inf") return std::numeric_limits<double>::infinity();
  if (which == "network" || which == "peer") return 0;
  std::string why;
  const auto q = parse_quantity(which, &why);
  if (!q || q->dim != Dim::Bandwidth || !(q->value > 0))
    throw UserError(SourceLoc{flag}, fmt::format("'{}' is not a link: network, peer, inf, or a bandwidth such as \"50 GB/s\"", which));
  return q->value;
}
}  // namespace

void check_kv_link(const std::string& which, const char* flag) { named_bandwidth(which, flag); }

double kv_link_bandwidth(const ArchSpec& prefill, const ArchSpec& decode, const std::string& which, const char* flag) {
  if (const double bw = named_bandwidth(which, flag); bw > 0) return bw;
  if (which == "network" || which == "peer") {
    const Link* p = find_link(prefill, which.c_str());
    const Link* d = find_link(decode, which.c_str());
    if (!p || !d)
      throw UserError(SourceLoc{flag}, fmt::format("'{}' has no {} link to send KV caches over; give a bandwidth (\"50 GB/s\") or another link",
                                                  (!p ? prefill : decode).name, which));
    if (which == "peer" && prefill.name != decode.name)
      throw UserError(SourceLoc{flag}, fmt::format("'{}' and '{}' share no scale-up domain: their pools meet over the network", prefill.name, decode.name));
    return std::min(p->bandwidth, d->bandwidth);
  }
  throw InternalError(fmt::format("link name '{}'", which));
}

double kv_link_latency(const ArchSpec& prefill, const std::string& which) {
  if (which == "network" || which == "peer") {
    const Link* l = find_link(prefill, which.c_str());
    return l ? l->latency : 0;
  }
  return 0;
}

}  // namespace einsim
