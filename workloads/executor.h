#pragma once
// Reference executor: evaluates a bound cascade numerically (double precision) on small
// extents, following its schedule, so that different cascades of one computation can be
// checked against each other.
#include <Eigen/Core>

#include <cstdint>
#include <map>
#include <string>

#include "workloads/cascade.h"

namespace einsim {

/// Values of tensors by name, flattened row-major (last index fastest).
using TensorValues = std::map<std::string, Eigen::VectorXd>;

/// Random values in [-1, 1] for every input tensor (index tensors get valid indices).
/// Refuses inputs of more than `max_values` values in all.
TensorValues random_inputs(const Cascade& c, uint64_t seed, int64_t max_values = int64_t{1} << 26);

/// Evaluates every Einsum; returns all tensors (inputs included). Throws UserError when an
/// input is missing or has the wrong size, or a gather index is out of range.
/// Refuses cascades above `max_points` total iteration points or tensor values (it is a
/// reference, not a simulator).
TensorValues execute(const Cascade& c, const TensorValues& inputs, int64_t max_points = int64_t{1} << 26);

}  // namespace einsim
