#pragma once
// Reads the [cascade] table of a config document into a CascadeSpec.
#include "common/toml_reader.h"
#include "workloads/cascade.h"

namespace einsim {

/// Reads `[cascade]` (see docs/FORMATS.md). Does not call ConfigDoc::finish().
CascadeSpec read_cascade(const ConfigTable& cascade);

/// Loads a cascade file with overrides and binds it with its parameters.
Cascade load_cascade(const std::string& file, const std::vector<std::string>& overrides = {});

}  // namespace einsim
