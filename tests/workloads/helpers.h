#pragma once
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "common/paths.h"
#include "common/toml_reader.h"
#include "workloads/cascade.h"
#include "workloads/cascade_loader.h"
#include "workloads/model_config.h"

namespace einsim::test {

/// Parses and binds a cascade written as a TOML document in memory (named "c.toml").
inline Cascade cascade_from(const std::string& toml, const std::map<std::string, int64_t>& params = {}) {
  auto doc = ConfigDoc::parse(toml, "c.toml");
  CascadeSpec spec = read_cascade(doc->root().get_table("cascade"));
  doc->finish();
  return bind_cascade(spec, params);
}

/// Reads a [model] table written in memory ("version = 1\n[model]\n" + body, named "m.toml").
inline ModelConfig model_toml(const std::string& body) {
  auto d = ConfigDoc::parse("version = 1\n[model]\n" + body, "m.toml");
  ModelConfig m = read_model(d->root().get_table("model"), "m");
  d->finish();
  return m;
}

/// The message of the UserError `f` throws.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("expected a UserError");
  return {};
}

/// Reads "version = 1\n[scenario]\n<head><body>" (named "s.toml") with `read`, as an analysis
/// reads its scenario table; `head` holds the kind and any keys every test of the file shares.
template <typename Read>
auto scenario_from(const std::string& head, const std::string& body, Read read) {
  auto doc = ConfigDoc::parse("version = 1\n[scenario]\n" + head + body, "s.toml");
  const ConfigTable t = doc->root().get_table("scenario");
  t.get_string("kind");
  auto s = read(t);
  doc->finish();
  return s;
}

inline std::string shipped(const std::string& rel) { return config_path(rel); }

}  // namespace einsim::test
