// Sweep throughput and memory: runs one sweep spec into a fresh database and prints points
// per second and the process's peak resident memory. One sweep per process (the peak is the
// process's), so `make bench` runs it several times and takes the median.
// Usage: einsim_sweep_bench SPEC [JOBS]
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include "sim/sweep/sweep.h"
#include "workloads/model_config.h"

using namespace einsim;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: einsim_sweep_bench SPEC [JOBS]\n");
    return 1;
  }
  try {
    const SweepSpec s = load_sweep(resolve_model_path(argv[1]));
    SweepOptions o;
    o.jobs = argc > 2 ? std::stoi(argv[2]) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const std::filesystem::path db = std::filesystem::temp_directory_path() / ("einsim-sweep-bench-" + std::to_string(getpid()) + ".sqlite");
    o.db = db.string();
    std::ostringstream progress;
    const SweepOutcome r = run_sweep(s, o, progress);
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + ext);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("%-22s %-8s %9lld points  %8.2f s  %9.0f points/s  peak RSS %6.1f MiB  (%d jobs)\n", s.name.c_str(),
                s.mode == SweepMode::Roofline ? "roofline" : s.mode == SweepMode::Serve ? "serve" : "mapped", static_cast<long long>(r.evaluated), r.seconds,
                static_cast<double>(r.evaluated) / r.seconds, static_cast<double>(ru.ru_maxrss) / 1024.0, o.jobs);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
