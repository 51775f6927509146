#pragma once
// JSON Schemas of the config files, generated from the loaders themselves: every shipped
// preset of a kind is loaded while common/toml_reader records each key the loader asks for
// and what it accepts (ConfigKeyRecorder). Editors read them to complete and check keys
// (schemas/README.md). The outputs' schemas are inferred from outputs (scripts/gen-schemas.py).
#include <string>
#include <vector>

namespace einsim {

/// The config kinds with a schema: arch, model, runtime, cascade, sweep, contention and each
/// analysis scenario (flash, kv-compression, long-context, offload, power).
const std::vector<std::string>& config_schema_kinds();

/// The JSON Schema (draft 2020-12) of config kind `kind`, from its shipped presets. Throws
/// UserError (located at --kind) for an unknown kind.
std::string config_schema(const std::string& kind);

}  // namespace einsim
