#include "sim/cli/schema.h"

#include <fmt/format.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "arch/arch.h"
#include "arch/runtime.h"
#include "common/error.h"
#include "common/paths.h"
#include "common/toml_reader.h"
#include "sim/analyze/flash.h"
#include "sim/analyze/kv_compression.h"
#include "sim/analyze/long_context.h"
#include "sim/analyze/offload.h"
#include "sim/analyze/power.h"
#include "sim/engine/contention.h"
#include "sim/sweep/spec.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"

namespace einsim {

namespace {

struct Kind {
  std::string name, folder, title;
  std::function<void(const std::string&)> load;
  std::string only;  ///< the one preset of the folder this kind reads ("": all)
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {"arch", "arch", "an einsim architecture (GPU, accelerator or host)", [](const std::string& f) { load_arch(f); }, ""},
      {"model", "models", "an einsim model", [](const std::string& f) { load_model(f); }, ""},
      {"runtime", "runtimes", "an einsim software runtime", [](const std::string& f) { load_runtime(f); }, ""},
      {"cascade", "workloads", "an einsim Einsum cascade", [](const std::string& f) { load_cascade(f); }, ""},
      {"sweep", "sweeps", "an einsim design-space sweep", [](const std::string& f) { load_sweep(f); }, ""},
      {"contention", "scenarios", "an einsim contention scenario (einsim simulate)", [](const std::string& f) { load_contention(f); }, ""},
      {"flash", "analyses", "an einsim flash-offload scenario (einsim analyze flash)", [](const std::string& f) { load_flash(f); }, "flash"},
      {"kv-compression", "analyses", "an einsim KV-compression scenario (einsim analyze kv-compression)", [](const std::string& f) { load_kv_compression(f); },
       "kv-compression"},
      {"long-context", "analyses", "an einsim long-context scenario (einsim analyze long-context)", [](const std::string& f) { load_long_context(f); },
       "long-context"},
      {"offload", "analyses", "an einsim attention-offload scenario (einsim analyze offload)", [](const std::string& f) { load_offload(f); }, "offload"},
      {"power", "analyses", "an einsim power-oversubscription scenario (einsim analyze power)", [](const std::string& f) { load_power(f); }, "power"},
  };
  return k;
}

nlohmann::json one(const KeyShape& k) {
  nlohmann::json j = nlohmann::json::object();
  if (k.type == "integer" || k.type == "number") {
    j["type"] = k.type;
    if (k.min) j["minimum"] = *k.min;
    if (k.max) j["maximum"] = *k.max;
  } else if (k.type == "string") {
    j["type"] = "string";
  } else if (k.type == "choice") {
    j["enum"] = k.choices;
  } else if (k.type == "boolean") {
    j["type"] = "boolean";
  } else if (k.type == "quantity") {
    j["type"] = "string";
    j["description"] = fmt::format("a quantity with its unit: {}", k.dim);
  } else if (k.type == "strings") {
    j["type"] = "array";
    j["items"] = {{"type", "string"}};
  } else if (k.type == "table") {
    j["type"] = "object";
  }
  return j;  // any: no constraint
}

nlohmann::json table(const ConfigKeyRecorder& r, const std::string& path);

nlohmann::json key(const ConfigKeyRecorder& r, const std::string& path, const std::string& name) {
  const std::vector<KeyShape>& shapes = r.keys.at(path).at(name);
  std::vector<nlohmann::json> out;
  const std::string full = path.empty() ? name : path + "." + name;
  // The loader reads the raw node: it may take several types, so no constraint here.
  if (std::any_of(shapes.begin(), shapes.end(), [](const KeyShape& k) { return k.type == "any"; })) return nlohmann::json::object();
  for (const KeyShape& k : shapes) {
    if (k.type == "present" && shapes.size() > 1) continue;  // asked whether it is there, read typed elsewhere
    nlohmann::json j = k.type == "table" ? table(r, full) : one(k);
    if (std::find(out.begin(), out.end(), j) == out.end()) out.push_back(std::move(j));
  }
  if (out.size() == 1) return out.front();
  return {{"anyOf", out}};
}

nlohmann::json table(const ConfigKeyRecorder& r, const std::string& path) {
  nlohmann::json j = {{"type", "object"}};
  const auto it = r.keys.find(path);
  if (it == r.keys.end()) return j;
  nlohmann::json props = nlohmann::json::object();
  for (const auto& [name, shapes] : it->second) {
    if (name == "*") j["additionalProperties"] = key(r, path, name);
    else props[name] = key(r, path, name);
  }
  if (!props.empty()) j["properties"] = props;
  return j;
}

}  // namespace

const std::vector<std::string>& config_schema_kinds() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Kind& k : kinds()) n.push_back(k.name);
    return n;
  }();
  return names;
}

std::string config_schema(const std::string& kind) {
  const auto k = std::find_if(kinds().begin(), kinds().end(), [&](const Kind& x) { return x.name == kind; });
  if (k == kinds().end())
    throw UserError(SourceLoc{"schema"}, fmt::format("no config kind '{}' (kinds: {})", kind, fmt::join(config_schema_kinds(), ", ")));
  ConfigKeyRecorder rec;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(config_path(k->folder)))
    if (e.path().extension() == ".toml" && (k->only.empty() || e.path().stem() == k->only)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  {
    RecordKeys on(rec);
    for (const std::string& f : files) {
      rec.arm();
      k->load(f);
    }
  }
  nlohmann::json j = table(rec, "");
  j["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  j["$id"] = fmt::format("https://einsim.dev/schemas/config-{}.schema.json", kind);
  j["title"] = k->title;
  j["description"] = fmt::format(
      "Generated by `einsim schema config {}` from the keys its loader reads in the shipped presets ({} files); a key no preset uses may be "
      "missing, so other keys are allowed here (einsim itself rejects unknown keys, located).",
      kind, files.size());
  nlohmann::json& props = j["properties"];
  props["version"] = {{"const", 1}, {"description", "every einsim config file starts with version = 1"}};
  props["inherits"] = {{"type", "string"}, {"description", "a preset name or a file this one overrides"}};
  j["required"] = {"version"};
  return j.dump(2) + "\n";
}

}  // namespace einsim
