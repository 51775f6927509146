#pragma once
// Least squares for the project's small fits (normal equations, Gauss-Jordan with pivoting).
#include <array>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "common/error.h"

namespace einsim {

/// The x minimising sum_i (x . a_i - b_i)^2 over N unknowns.
template <size_t N>
std::array<double, N> least_squares(const std::vector<std::array<double, N>>& a, const std::vector<double>& b) {
  std::array<std::array<double, N + 1>, N> m{};
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t i = 0; i < N; ++i) {
      for (size_t j = 0; j < N; ++j) m[i][j] += a[r][i] * a[r][j];
      m[i][N] += a[r][i] * b[r];
    }
  for (size_t i = 0; i < N; ++i) {
    size_t p = i;
    for (size_t k = i + 1; k < N; ++k)
      if (std::fabs(m[k][i]) > std::fabs(m[p][i])) p = k;
    std::swap(m[i], m[p]);
    if (m[i][i] == 0) throw UserError(SourceLoc{}, "a fit is singular (too few distinct rows)");
    for (size_t k = 0; k < N; ++k)
      if (k != i) {
        const double g = m[k][i] / m[i][i];
        for (size_t j = i; j <= N; ++j) m[k][j] -= g * m[i][j];
      }
  }
  std::array<double, N> x{};
  for (size_t i = 0; i < N; ++i) x[i] = m[i][N] / m[i][i];
  return x;
}

/// The x >= 0 minimising sum_i (x . a_i - b_i)^2: the best unconstrained solution over every
/// subset of free unknowns (the others held at 0) that keeps them non-negative. For N <= 4.
template <size_t N>
std::array<double, N> nonnegative_least_squares(const std::vector<std::array<double, N>>& a, const std::vector<double>& b) {
  static_assert(N <= 4);
  std::array<double, N> best{};
  double best_r = std::numeric_limits<double>::infinity();
  for (unsigned mask = 0; mask < (1u << N); ++mask) {
    std::vector<std::array<double, N>> am(a.size());
    for (size_t r = 0; r < a.size(); ++r)
      for (size_t i = 0; i < N; ++i) am[r][i] = (mask >> i) & 1u ? a[r][i] : 0.0;
    std::array<double, N> x{};
    if (mask != 0) {
      // Solve on the free unknowns: pin the others with a unit diagonal.
      std::array<std::array<double, N + 1>, N> m{};
      for (size_t r = 0; r < a.size(); ++r)
        for (size_t i = 0; i < N; ++i) {
          for (size_t j = 0; j < N; ++j) m[i][j] += am[r][i] * am[r][j];
          m[i][N] += am[r][i] * b[r];
        }
      bool singular = false;
      for (size_t i = 0; i < N; ++i)
        if (!((mask >> i) & 1u)) m[i][i] = 1, m[i][N] = 0;
      for (size_t i = 0; i < N && !singular; ++i) {
        size_t p = i;
        for (size_t k = i + 1; k < N; ++k)
          if (std::fabs(m[k][i]) > std::fabs(m[p][i])) p = k;
        std::swap(m[i], m[p]);
        if (m[i][i] == 0) singular = true;
        else
          for (size_t k = 0; k < N; ++k)
            if (k != i) {
              const double g = m[k][i] / m[i][i];
              for (size_t j = i; j <= N; ++j) m[k][j] -= g * m[i][j];
            }
      }
      if (singular) continue;
      for (size_t i = 0; i < N; ++i) x[i] = m[i][N] / m[i][i];
    }
    bool ok = true;
    for (double v : x) ok = ok && v >= 0;
    if (!ok) continue;
    double res = 0;
    for (size_t r = 0; r < a.size(); ++r) {
      double d = -b[r];
      for (size_t i = 0; i < N; ++i) d += a[r][i] * x[i];
      res += d * d;
    }
    if (res < best_r) best_r = res, best = x;
  }
  return best;
}

/// Relative error: the x minimising sum_i (x . f_i / t_i - 1)^2.
template <size_t N>
std::array<double, N> relative_least_squares(const std::vector<std::array<double, N>>& f, const std::vector<double>& t) {
  std::vector<std::array<double, N>> a(f.size());
  for (size_t r = 0; r < f.size(); ++r)
    for (size_t i = 0; i < N; ++i) a[r][i] = f[r][i] / t[r];
  return least_squares<N>(a, std::vector<double>(f.size(), 1.0));
}

}  // namespace einsim
