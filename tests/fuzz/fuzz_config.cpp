// Fuzzes the strict TOML reader with cascade and model documents: loading, binding, analyses
// and the transformer builder. Anything but a UserError is a finding.
#include <cstdint>
#include <string>

#include "common/toml_reader.h"
#include "workloads/analysis.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

using namespace einsim;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;  // large inputs too: long names, long arrays, deep tables
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    if (!text.empty() && text[0] == '{') {
      const ModelConfig m = parse_hf_config_json(text, "fuzz.json");
      count_params(m);
      return 0;
    }
    // No overrides: an override layer would add a [cascade] table to every input and hide
    // the model branch.
    auto doc = ConfigDoc::parse(text, "fuzz.toml");
    const ConfigTable root = doc->root();
    if (root.contains("cascade")) {
      const CascadeSpec spec = read_cascade(root.get_table("cascade"));
      doc->finish();
      const Cascade c = bind_cascade(spec);
      analyze(c);
      for (const Rank& r : c.ranks) pass_analysis(c, r.name);
    } else if (root.contains("model")) {
      const ModelConfig m = read_model(root.get_table("model"), "fuzz");
      doc->finish();
      Phase ph;
      ph.prompt = 8;
      ph.layers = 2;
      analyze(bind_cascade(transformer_cascade(m, ph)));
      count_params(m);
    }
  } catch (const UserError&) {
  }
  return 0;
}
