#pragma once
// A costed decode step for the engine tests: the run the schedule is built from.
#include <string>

#include "sim/run/run.h"
#include "workloads/model_config.h"

namespace einsim::test {

struct Deployment {
  int64_t tp = 1, ep = 1, pp = 1;
};

/// `model` decoding `batch` requests over `context` tokens, its first `layers` layers, on `a`.
inline RunReport decode_step(const ArchSpec& a, const std::string& model, int64_t batch, int64_t context, int64_t layers, Deployment d = {}) {
  RunOptions o;
  o.phase.kind = PhaseKind::Decode;
  o.phase.batch = batch;
  o.phase.context = context;
  o.phase.layers = layers;
  o.tp = d.tp;
  o.ep = d.ep;
  o.pp = d.pp;
  return run_model(load_model(model), a, o);
}

}  // namespace einsim::test
