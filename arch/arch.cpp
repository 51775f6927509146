#include "arch/arch.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "common/paths.h"

namespace einsim {

namespace {
constexpr std::array<std::string_view, 7> kTierKinds = {"hbm", "ddr", "lpddr", "gddr", "cxl", "flash", "ssd"};
// Links are named by what they are: scale-up fabrics (NVLink, AMD's xGMI Infinity Fabric,
// Google's ICI), chip-to-chip (NVLink-C2C), host and device buses, and scale-out networks.
constexpr std::array<std::string_view, 11> kLinkKinds = {"pcie",     "nvlink",     "cxl",        "nvme", "ethernet", "infiniband",
                                                         "on-package", "nvlink-c2c", "xgmi",       "ici",  "roce"};
const std::vector<std::string> kEndpoints = {"host", "peer", "network"};

template <size_t N>
std::vector<std::string> names(const std::array<std::string_view, N>& a) {
  return std::vector<std::string>(a.begin(), a.end());
}
template <size_t N>
size_t index_of(const std::array<std::string_view, N>& a, std::string_view s) {
  return static_cast<size_t>(std::find(a.begin(), a.end(), s) - a.begin());
}

std::optional<OpClass> parse_op_class(std::string_view s) {
  for (int i = 0; i < kOpClasses; ++i)
    if (op_class_name(static_cast<OpClass>(i)) == s) return static_cast<OpClass>(i);
  return std::nullopt;
}

std::vector<std::string> op_class_names() {
  std::vector<std::string> v;
  v.reserve(kOpClasses);
  for (int i = 0; i < kOpClasses; ++i) v.emplace_back(op_class_name(static_cast<OpClass>(i)));
  return v;
}

// Tiers, levels, arrays and links share one namespace, so `parent = "l2"` is never ambiguous.
void unique_name(std::set<std::string>& taken, const std::string& name, const SourceLoc& loc) {
  if (!taken.insert(name).second) throw UserError(loc, fmt::format("'{}' names two parts of this architecture", name));
}

MemoryTier read_tier(const ConfigTable& t, const std::string& name) {
  MemoryTier m;
  m.name = name;
  m.loc = t.loc();
  m.kind = static_cast<TierKind>(index_of(kTierKinds, t.get_choice("kind", names(kTierKinds))));
  m.capacity = t.get_quantity("capacity", Dim::Bytes);
  m.read_bandwidth = t.get_quantity("read_bandwidth", Dim::Bandwidth);
  const bool storage = m.kind == TierKind::Flash || m.kind == TierKind::SSD;
  // A flash or SSD tier that only streams weights out may leave its writes unmodelled.
  m.write_bandwidth = storage ? t.opt_quantity("write_bandwidth", Dim::Bandwidth).value_or(0) : t.get_quantity("write_bandwidth", Dim::Bandwidth);
  m.latency = t.opt_quantity("latency", Dim::Time).value_or(0);
  m.energy = t.opt_quantity("energy", Dim::EnergyPerByte).value_or(0);
  m.shared_by = t.opt_int("shared_by", 1, 1 << 20).value_or(1);
  if (m.capacity <= 0 || m.read_bandwidth <= 0 || m.write_bandwidth < 0 || (!storage && m.write_bandwidth <= 0))
    throw UserError(t.loc(), fmt::format("tier '{}' needs a positive capacity and bandwidths", name));
  if (const toml::node* n = t.node("read_table")) {
    if (!storage) throw UserError(t.loc("read_table"), "'read_table' is for flash and ssd tiers only");
    const toml::array* arr = n->as_array();
    if (!arr || arr->empty()) throw UserError(t.loc("read_table"), "'read_table' must be a non-empty array of tables");
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::table* row = (*arr)[i].as_table();
      if (!row) throw UserError(loc_of((*arr)[i], t.loc("read_table")), "'read_table' rows are tables: { request = \"4 KiB\", queue_depth = 1, bandwidth = \"...\" }");
      // Rows are read through a document of their own so that their keys are checked too.
      for (const auto& [k, v] : *row)
        if (k != "request" && k != "queue_depth" && k != "bandwidth")
          throw UserError(loc_of(v, t.loc("read_table")), fmt::format("unknown key '{}' in a read_table row (request, queue_depth, bandwidth)", k.str()));
      auto q = [&](const char* key, Dim d) {
        const toml::node* v = row->get(key);
        const SourceLoc at = v ? loc_of(*v, t.loc("read_table")) : t.loc("read_table");
        if (!v || !v->is_string()) throw UserError(at, fmt::format("read_table row {} needs '{}' ({})", i + 1, key, dim_description(d)));
        std::string err;
        auto x = parse_quantity(*v->value<std::string>(), &err);
        if (!x || x->dim != d || x->value <= 0)
          throw UserError(at, fmt::format("read_table '{}' must be {}{}", key, dim_description(d), err.empty() ? "" : ": " + err));
        return x->value;
      };
      FlashPoint p;
      p.request = q("request", Dim::Bytes);
      p.bandwidth = q("bandwidth", Dim::Bandwidth);
      const toml::node* qd = row->get("queue_depth");
      if (!qd || !qd->value_exact<int64_t>() || *qd->value_exact<int64_t>() < 1)
        throw UserError(qd ? loc_of(*qd, t.loc("read_table")) : t.loc("read_table"),
                        fmt::format("read_table row {} needs 'queue_depth', an integer >= 1", i + 1));
      p.queue_depth = *qd->value_exact<int64_t>();
      m.read_table.push_back(p);
    }
    std::sort(m.read_table.begin(), m.read_table.end(), [](const FlashPoint& a, const FlashPoint& b) {
      return a.queue_depth != b.queue_depth ? a.queue_depth < b.queue_depth : a.request < b.request;
    });
  }
  return m;
}

StorageLevel read_level(const ConfigTable& t, const std::string& name) {
  StorageLevel l;
  l.name = name;
  l.loc = t.loc();
  l.parent = t.get_string("parent");
  l.capacity = t.get_quantity("capacity", Dim::Bytes);
  l.instances = t.opt_int("instances", 1, int64_t{1} << 32).value_or(1);
  l.bandwidth = t.get_quantity("bandwidth", Dim::Bandwidth);
  l.read_energy = t.opt_quantity("read_energy", Dim::EnergyPerByte).value_or(0);
  l.write_energy = t.opt_quantity("write_energy", Dim::EnergyPerByte).value_or(0);
  if (l.capacity <= 0 || l.bandwidth <= 0) throw UserError(t.loc(), fmt::format("level '{}' needs a positive capacity and bandwidth", name));
  return l;
}

ComputeArray read_array(const ConfigTable& t, const std::string& name) {
  ComputeArray a;
  a.name = name;
  a.loc = t.loc();
  const toml::node* shape = t.node("shape");
  if (!shape) throw UserError(t.loc(), fmt::format("missing required key 'arch.arrays.{}.shape' ([rows, cols] or [pes])", name));
  const toml::array* s = shape->as_array();
  if (!s || s->empty() || s->size() > 2) throw UserError(t.loc("shape"), "'shape' must be [rows, cols] (2D array) or [pes] (1D array)");
  for (const auto& e : *s) {
    auto v = e.value_exact<int64_t>();
    if (!v || *v < 1 || *v > (int64_t{1} << 20)) throw UserError(t.loc("shape"), "'shape' entries must be integers in [1, 2^20]");
    a.shape.push_back(*v);
  }
  a.instances = t.opt_int("instances", 1, int64_t{1} << 32).value_or(1);
  a.clock = t.get_quantity("clock", Dim::Frequency);
  if (a.clock <= 0) throw UserError(t.loc("clock"), "'clock' must be positive");
  a.level = t.get_string("level");
  const ConfigTable ops = t.get_table("ops_per_cycle");
  for (const std::string& cls : ops.keys()) {
    auto c = parse_op_class(cls);
    if (!c) throw UserError(ops.key_loc(cls), fmt::format("unknown operation class '{}' (known: {})", cls, fmt::join(op_class_names(), ", ")));
    const ConfigTable per = ops.get_table(cls);
    for (const std::string& dt : per.keys()) {
      auto d = parse_dtype(dt);
      if (!d) throw UserError(per.key_loc(dt), fmt::format("unknown element type '{}' (known: {})", dt, fmt::join(dtype_names(), ", ")));
      a.ops_per_cycle[*c][*d] = per.get_number(dt, 0, 1e9);
    }
  }
  if (a.ops_per_cycle.empty()) throw UserError(ops.loc(), fmt::format("array '{}' performs no operation", name));
  if (t.node("own_unit")) {
    for (const std::string& cls : t.get_string_array("own_unit")) {
      auto c = parse_op_class(cls);
      if (!c) throw UserError(t.loc("own_unit"), fmt::format("unknown operation class '{}' (known: {})", cls, fmt::join(op_class_names(), ", ")));
      if (!a.ops_per_cycle.count(*c)) throw UserError(t.loc("own_unit"), fmt::format("'own_unit' names '{}', which the array does not perform", cls));
      a.own_unit.insert(*c);
    }
  }
  if (auto e = t.opt_table("energy")) {
    for (const std::string& cls : e->keys()) {
      auto c = parse_op_class(cls);
      if (!c) throw UserError(e->key_loc(cls), fmt::format("unknown operation class '{}' (known: {})", cls, fmt::join(op_class_names(), ", ")));
      a.energy[*c] = e->get_quantity(cls, Dim::Energy);
    }
  }
  return a;
}

Link read_link(const ConfigTable& t, const std::string& name) {
  Link l;
  l.name = name;
  l.loc = t.loc();
  l.kind = static_cast<LinkKind>(index_of(kLinkKinds, t.get_choice("kind", names(kLinkKinds))));
  l.from = t.get_string("from");
  l.to = t.get_string("to");
  l.bandwidth = t.get_quantity("bandwidth", Dim::Bandwidth);
  l.latency = t.opt_quantity("latency", Dim::Time).value_or(0);
  l.energy = t.opt_quantity("energy", Dim::EnergyPerByte).value_or(0);
  if (l.bandwidth <= 0) throw UserError(t.loc("bandwidth"), "'bandwidth' must be positive");
  l.sharp = t.opt_bool("sharp").value_or(false);
  const std::optional<int64_t> domain = t.opt_int("domain", 1, 1 << 20);
  if (domain) {
    if (l.to != "peer") throw UserError(t.loc("domain"), "'domain' (devices per scale-up domain) is for links to = \"peer\"");
    l.domain = *domain;
  }
  if (auto o = t.opt_number("oversubscription", 1, 64)) {
    if (l.to != "network") throw UserError(t.loc("oversubscription"), "'oversubscription' (the scale-out fabric's) is for links to = \"network\"");
    l.oversubscription = *o;
  }
  if (const toml::node* tn = t.node("torus")) {
    if (l.to != "peer") throw UserError(t.loc("torus"), "'torus' (the scale-up domain's dimensions) is for links to = \"peer\"");
    const toml::array* dims = tn->as_array();
    if (!dims || dims->empty() || dims->size() > 4) throw UserError(t.loc("torus"), "'torus' must be a list of 1 to 4 dimensions ([16, 16])");
    int64_t product = 1;
    for (const auto& e : *dims) {
      auto v = e.value_exact<int64_t>();
      if (!v || *v < 1 || *v > (int64_t{1} << 16)) throw UserError(t.loc("torus"), "'torus' dimensions must be integers in [1, 65536]");
      l.torus.push_back(*v);
      product *= *v;
    }
    if (!domain) l.domain = product;
    if (product != l.domain)
      throw UserError(t.loc("torus"), fmt::format("the torus holds {} devices but 'domain' is {}: they must agree", product, l.domain));
  }
  if (auto c = t.opt_table("collective")) {
    std::vector<std::string> algos;
    for (size_t i = 0; i < kCollectiveAlgos; ++i) algos.emplace_back(collective_algo_name(static_cast<CollectiveAlgo>(i)));
    for (const std::string& k : c->keys()) {
      const auto it = std::find(algos.begin(), algos.end(), k);
      if (it == algos.end())
        throw UserError(c->key_loc(k), fmt::format("unknown collective algorithm '{}' (known: {})", k, fmt::join(algos, ", ")));
      const ConfigTable at = c->get_table(k);
      AlgoCost& ac = l.collective[static_cast<size_t>(it - algos.begin())];
      ac.configured = true;
      ac.base = at.opt_quantity("base", Dim::Time).value_or(0);
      ac.efficiency = at.opt_number("efficiency", 0, 1).value_or(1);
      if (ac.efficiency <= 0) throw UserError(at.loc("efficiency"), "'efficiency' must be above 0");
    }
  }
  return l;
}

}  // namespace

std::vector<int64_t> Link::group_shape(int64_t n) const {
  if (torus.empty()) return {n};
  // Every way of writing n as a product of one factor per dimension within its size; the one
  // with the fewest ring steps (the smallest sum), the first found at a tie (smaller factors
  // first: 8 chips of [16, 16] are 2 x 4).
  std::vector<int64_t> best, shape(torus.size(), 1);
  int64_t best_sum = 0;
  auto place = [&](auto&& self, size_t dim, int64_t left, int64_t sum) -> void {
    if (dim + 1 == torus.size()) {
      if (left > torus[dim]) return;
      shape[dim] = left;
      if (best.empty() || sum + left < best_sum) best = shape, best_sum = sum + left;
      return;
    }
    for (int64_t f = 1; f <= std::min(left, torus[dim]); ++f)
      if (left % f == 0) shape[dim] = f, self(self, dim + 1, left / f, sum + f);
  };
  place(place, 0, n, 0);
  return best;
}

std::string_view collective_algo_name(CollectiveAlgo a) {
  static constexpr std::array<std::string_view, kCollectiveAlgos> n = {"ring", "tree", "sharp", "p2p"};
  return n[static_cast<size_t>(a)];
}

std::string_view tier_kind_name(TierKind k) { return kTierKinds[static_cast<size_t>(k)]; }
std::string_view link_kind_name(LinkKind k) { return kLinkKinds[static_cast<size_t>(k)]; }

double MemoryTier::read_bandwidth_at(double request, int64_t queue_depth) const {
  if (read_table.empty()) return read_bandwidth;
  // The deepest measured queue not above the one asked for (or the shallowest).
  int64_t qd = read_table.front().queue_depth;
  for (const FlashPoint& p : read_table)
    if (p.queue_depth <= queue_depth) qd = p.queue_depth;
  std::vector<const FlashPoint*> row;
  for (const FlashPoint& p : read_table)
    if (p.queue_depth == qd) row.push_back(&p);
  if (request <= row.front()->request) return row.front()->bandwidth * request / row.front()->request;
  if (request >= row.back()->request) return row.back()->bandwidth;
  for (size_t i = 1; i < row.size(); ++i) {
    if (request > row[i]->request) continue;
    const double f = std::log(request / row[i - 1]->request) / std::log(row[i]->request / row[i - 1]->request);
    return row[i - 1]->bandwidth + f * (row[i]->bandwidth - row[i - 1]->bandwidth);
  }
  return row.back()->bandwidth;
}

int64_t ComputeArray::pes() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

double ComputeArray::peak_ops(OpClass c, DType t) const {
  auto it = ops_per_cycle.find(c);
  if (it == ops_per_cycle.end()) return 0;
  auto jt = it->second.find(t);
  if (jt == it->second.end()) return 0;
  return jt->second * static_cast<double>(pes()) * static_cast<double>(instances) * clock;
}

template <typename T>
static const T* find_named(const std::vector<T>& v, std::string_view name) {
  for (const T& x : v)
    if (x.name == name) return &x;
  return nullptr;
}

const MemoryTier* ArchSpec::tier(std::string_view n) const { return find_named(tiers, n); }
const StorageLevel* ArchSpec::level(std::string_view n) const { return find_named(levels, n); }
const ComputeArray* ArchSpec::array(std::string_view n) const { return find_named(arrays, n); }
const Link* ArchSpec::link(std::string_view n) const { return find_named(links, n); }

double ArchSpec::peak_flops(DType t) const {
  double f = 0;
  for (const ComputeArray& a : arrays) f += a.peak_flops(t);
  return f;
}

ArchSpec read_arch(const ConfigTable& t) {
  ArchSpec a;
  a.loc = t.loc();
  a.name = t.opt_name("name").value_or("");
  if (a.name.empty()) throw UserError(t.loc(), "missing required key 'arch.name' (a string)");
  const std::string kind = t.get_choice("kind", {"gpu", "accelerator", "host"});
  a.kind = kind == "gpu" ? ArchKind::GPU : kind == "accelerator" ? ArchKind::Accelerator : ArchKind::Host;
  std::set<std::string> taken;
  const ConfigTable tiers = t.get_table("tiers");
  for (const std::string& k : tiers.keys()) {
    unique_name(taken, k, tiers.loc(k));
    a.tiers.push_back(read_tier(tiers.get_table(k), k));
  }
  if (a.tiers.empty()) throw UserError(tiers.loc(), "an architecture needs at least one memory tier");
  if (auto levels = t.opt_table("levels"))
    for (const std::string& k : levels->keys()) {
      unique_name(taken, k, levels->loc(k));
      a.levels.push_back(read_level(levels->get_table(k), k));
    }
  if (auto arrays = t.opt_table("arrays"))
    for (const std::string& k : arrays->keys()) {
      unique_name(taken, k, arrays->loc(k));
      a.arrays.push_back(read_array(arrays->get_table(k), k));
    }
  if (a.kind != ArchKind::Host && a.arrays.empty()) throw UserError(t.loc(), "a GPU or accelerator needs at least one compute array");
  if (auto links = t.opt_table("links"))
    for (const std::string& k : links->keys()) {
      unique_name(taken, k, links->loc(k));
      a.links.push_back(read_link(links->get_table(k), k));
    }

  // References between parts.
  auto writable = [&](const std::string& tier, const std::string& what, const SourceLoc& loc) {
    const MemoryTier* m = a.tier(tier);
    if (m && m->write_bandwidth <= 0)
      throw UserError(loc, fmt::format("{} is fed by tier '{}', which then needs 'write_bandwidth' (results are written back to it)", what, tier));
  };
  for (const StorageLevel& l : a.levels) {
    if (!a.tier(l.parent) && !a.level(l.parent))
      throw UserError(l.loc, fmt::format("level '{}' has parent '{}', which is neither a tier nor a level", l.name, l.parent));
    writable(l.parent, fmt::format("level '{}'", l.name), l.loc);
    // Walking up must reach a tier.
    std::string p = l.parent;
    for (size_t steps = 0; !a.tier(p); ++steps) {
      if (steps > a.levels.size()) throw UserError(l.loc, fmt::format("levels above '{}' form a cycle", l.name));
      p = a.level(p)->parent;
    }
  }
  for (const ComputeArray& arr : a.arrays) {
    if (!a.level(arr.level) && !a.tier(arr.level))
      throw UserError(arr.loc, fmt::format("array '{}' is fed by '{}', which is neither a level nor a tier", arr.name, arr.level));
    writable(arr.level, fmt::format("array '{}'", arr.name), arr.loc);
  }
  for (const Link& l : a.links)
    for (const std::string& end : {l.from, l.to})
      if (!a.tier(end) && std::find(kEndpoints.begin(), kEndpoints.end(), end) == kEndpoints.end())
        throw UserError(l.loc, fmt::format("link '{}' joins '{}', which is neither a tier nor one of host, peer, network", l.name, end));

  if (auto p = t.opt_table("power")) {
    a.power.idle = p->get_quantity("idle", Dim::Power);
    a.power.tdp = p->get_quantity("tdp", Dim::Power);
    if (a.power.idle > a.power.tdp) throw UserError(p->loc("idle"), "idle power exceeds TDP");
    a.power.active = p->opt_quantity("active", Dim::Power).value_or(a.power.idle);
    if (a.power.active < a.power.idle || a.power.active > a.power.tdp)
      throw UserError(p->loc("active"), "active power lies between idle power and TDP");
    if (p->contains("dvfs"))
      for (const std::string& c : p->get_string_array("dvfs")) {
        std::string err;
        auto q = parse_quantity(c, &err);
        if (!q || q->dim != Dim::Frequency || q->value <= 0)
          throw UserError(p->loc("dvfs"), fmt::format("'dvfs' lists clocks such as \"1.98 GHz\"; '{}' is not one", c));
        a.power.dvfs.push_back({q->value, 0});
      }
    std::sort(a.power.dvfs.begin(), a.power.dvfs.end(), [](auto& x, auto& y) { return x.clock > y.clock; });
    a.power.energy_exponent = p->opt_number("energy_exponent", 0, 3).value_or(2);
  }
  if (auto c = t.opt_table("cost")) {
    a.cost.price = c->opt_quantity("price", Dim::Money);
    a.cost.rate = c->opt_quantity("rate", Dim::MoneyRate);
  }
  if (auto g = t.opt_table("gpu")) {
    if (a.kind != ArchKind::GPU) throw UserError(g->loc(), "[arch.gpu] is for kind = \"gpu\"");
    GpuRealism r;
    if (g->node("launch_overhead"))
      throw UserError(g->loc("launch_overhead"),
                      "'launch_overhead' is the software's, not the GPU's: it is a runtime's 'kernel_launch' now (configs/runtimes; "
                      "--runtime NAME, --set runtime.kernel_launch=...)");
    r.wave_quantization = g->get_bool("wave_quantization");
    r.memory_efficiency = g->get_number("memory_efficiency", 0.01, 1);
    const ConfigTable e = g->get_table("efficiency");
    for (const std::string& cls : e.keys()) {
      auto oc = parse_op_class(cls);
      if (!oc) throw UserError(e.key_loc(cls), fmt::format("unknown operation class '{}' (known: {})", cls, fmt::join(op_class_names(), ", ")));
      r.efficiency[*oc] = e.get_number(cls, 0.01, 1);
    }
    a.gpu = r;
  } else if (a.kind == ArchKind::GPU) {
    throw UserError(t.loc(), "a GPU needs [arch.gpu] (wave_quantization, efficiency, memory_efficiency)");
  }
  return a;
}

std::optional<TierPath> tier_path(const ArchSpec& a, const std::string& name, const std::string& device, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<TierPath> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  const MemoryTier* t = a.tier(name);
  if (!t) {
    std::vector<std::string> others;
    for (const MemoryTier& m : a.tiers)
      if (m.name != device) others.push_back(m.name);
    return fail(fmt::format("'{}' has no tier '{}' ({}; --attach adds a host's)", a.name, name,
                            others.empty() ? "it has none besides '" + device + "'" : fmt::format("its others: {}", fmt::join(others, ", "))));
  }
  if (name == device) return fail(fmt::format("'{}' is the tier that feeds the arrays, where everything not placed elsewhere lives", name));
  const double share = static_cast<double>(t->shared_by);
  TierPath p;
  p.capacity = t->capacity / share;
  p.read_bandwidth = t->read_bandwidth / share;
  p.write_bandwidth = t->write_bandwidth / share;
  p.energy = t->energy;
  auto cross = [&](const Link& l, double divide) {
    p.read_bandwidth = std::min(p.read_bandwidth, l.bandwidth / divide);
    p.write_bandwidth = std::min(p.write_bandwidth, l.bandwidth / divide);
    p.energy += l.energy;
    p.links.push_back(l.name);
  };
  for (const Link& l : a.links)
    if ((l.from == name && l.to == device) || (l.from == device && l.to == name)) {
      cross(l, 1);
      return p;
    }
  for (const Link& l : a.links)
    if ((l.from == name || l.to == name) && (l.from == "host" || l.to == "host")) cross(l, share);
  const Link* host = nullptr;
  for (const Link& l : a.links)
    if (l.from == device && l.to == "host") host = &l;
  if (!host) return fail(fmt::format("'{}' has no link from '{}' to the host (to = \"host\") to reach tier '{}' over", a.name, device, name));
  cross(*host, 1);
  return p;
}

ArchSpec attach(ArchSpec a, const ArchSpec& host, const SourceLoc& at) {
  if (host.kind != ArchKind::Host) throw UserError(at, fmt::format("'{}' is not a host (kind = \"host\"): only a host's tiers attach", host.name));
  auto taken = [&](const std::string& n) { return a.tier(n) || a.level(n) || a.array(n) || a.link(n); };
  for (const MemoryTier& t : host.tiers) {
    if (taken(t.name)) throw UserError(at, fmt::format("'{}' and '{}' both name a part '{}'", a.name, host.name, t.name));
    a.tiers.push_back(t);
  }
  // The host's links into itself (a CXL or NVMe link) carry over; its links to devices
  // (to = "peer") are the device's own host link, already in `a`.
  for (const Link& l : host.links) {
    if (l.to != "host" && l.from != "host") continue;
    if (taken(l.name)) throw UserError(at, fmt::format("'{}' and '{}' both name a part '{}'", a.name, host.name, l.name));
    a.links.push_back(l);
  }
  a.name += " + " + host.name;
  return a;
}

ArchSpec load_arch(const std::string& file_or_preset, const std::vector<std::string>& overrides) {
  const std::string file = preset_file(file_or_preset, "arch", "architecture");
  auto doc = ConfigDoc::load(file, overrides, config_path("arch"));
  ArchSpec a = read_arch(doc->root().get_table("arch"));
  doc->finish();
  return a;
}

}  // namespace einsim
