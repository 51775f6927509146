#pragma once
// `einsim sweep`: evaluates a sweep's points on worker threads (or MPI ranks) and streams
// them into the database. Resumable: points already stored (by hash) are skipped, and a
// point is stored once it is committed (a transaction at most every 0.2 s), so a kill at any
// moment loses at most the uncommitted last fraction of a second and duplicates nothing.
#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

#include "sim/sweep/spec.h"

namespace einsim {

struct SweepOptions {
  std::string db;
  int jobs = 1;                 ///< worker threads
  int64_t shard = 0, shards = 1;  ///< evaluate the points with idx % shards == shard
  int64_t limit = 0;            ///< evaluate at most this many new points (0: all)
  bool progress = false;        ///< a progress line with rate and ETA (on a terminal)
  const std::atomic<bool>* stop = nullptr;  ///< set by a signal: commit and return
};

struct SweepOutcome {
  int64_t points = 0;      ///< points of this shard
  int64_t stored = 0;      ///< found in the database before this run
  int64_t evaluated = 0;   ///< evaluated by this run
  int64_t ok = 0, pruned = 0, infeasible = 0, errors = 0;
  int64_t mappings = 0;    ///< mappings the mapper evaluated
  int64_t rows = 0;        ///< points in the database afterwards
  double seconds = 0;
  bool interrupted = false;
};

/// The meta rows a sweep's database records (name, spec text, objectives, mode, ...).
std::map<std::string, std::string> sweep_meta(const SweepSpec& s);

SweepOutcome run_sweep(const SweepSpec& s, const SweepOptions& o, std::ostream& progress);

/// The same over MPI ranks (rank 0 hands out chunks of points on request and writes the
/// database; the others evaluate). Throws UserError when einsim was built without MPI.
SweepOutcome run_sweep_mpi(const SweepSpec& s, const SweepOptions& o, std::ostream& progress, int* rank);

/// The summary line `einsim sweep` prints.
std::string format_outcome(const SweepSpec& s, const SweepOptions& o, const SweepOutcome& r);

/// "i/N" -> (i, N), 0 <= i < N.
std::pair<int64_t, int64_t> parse_shard(const std::string& text);

}  // namespace einsim
