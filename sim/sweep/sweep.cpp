#include "sim/sweep/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

#include "common/version.h"
#include "sim/sweep/store.h"

#ifdef EINSIM_HAVE_MPI
#include <mpi.h>

#include <cstring>
#include <functional>
#endif

namespace einsim {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string duration_words(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const auto t = static_cast<int64_t>(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Counts a stored row's status.
void tally(SweepOutcome& o, const std::vector<Cell>& row) {
  const std::string& s = row[kStatusColumn].s;
  if (s == "ok") ++o.ok;
  else if (s == "pruned") ++o.pruned;
  else if (s == "infeasible") ++o.infeasible;
  else ++o.errors;
}

// Writes rows, committing at most every `interval` seconds, and draws the progress line.
class Writer {
 public:
  Writer(SweepDb& db, SweepOutcome& out, const SweepOptions& o, std::ostream& progress, int64_t todo)
      : db_(db), out_(out), o_(o), progress_(progress), todo_(todo) {
    db_.begin();
  }
  void add(const std::vector<std::vector<Cell>>& rows) {
    db_.insert(rows);
    for (const auto& row : rows) tally(out_, row);
    out_.evaluated += static_cast<int64_t>(rows.size());
    if (since(last_commit_) > 0.2) flush();
  }
  void flush() {
    db_.commit();
    db_.begin();
    last_commit_ = Clock::now();
    draw(false);
  }
  void finish() {
    db_.commit();
    draw(true);
  }

 private:
  void draw(bool last) {
    if (!o_.progress) return;
    const double t = since(start_);
    if (!last && since(last_draw_) < 0.2) return;
    last_draw_ = Clock::now();
    const double rate = t > 0 ? static_cast<double>(out_.evaluated) / t : 0;
    const int64_t left = std::max<int64_t>(0, todo_ - out_.evaluated);
    progress_ << fmt::format("\r{} / {} points ({:.1f}%)  {:.0f} points/s  ETA {}   ", out_.evaluated, todo_,
                             todo_ ? 100.0 * static_cast<double>(out_.evaluated) / static_cast<double>(todo_) : 100.0, rate,
                             rate > 0 ? duration_words(static_cast<double>(left) / rate) : "?")
              << (last ? "\n" : "") << std::flush;
  }
  SweepDb& db_;
  SweepOutcome& out_;
  const SweepOptions& o_;
  std::ostream& progress_;
  int64_t todo_;
  Clock::time_point start_ = Clock::now(), last_commit_ = Clock::now(), last_draw_ = Clock::now() - std::chrono::seconds(1);
};

}  // namespace

std::pair<int64_t, int64_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  int64_t i = -1, n = -1;
  try {
    size_t a = 0, b = 0;
    if (slash != std::string::npos) {
      i = std::stoll(text.substr(0, slash), &a);
      n = std::stoll(text.substr(slash + 1), &b);
      if (a != slash || b != text.size() - slash - 1) n = -1;
    }
  } catch (const std::exception&) {
    n = -1;
  }
  if (n < 1 || i < 0 || i >= n) throw UserError(SourceLoc{"--shard"}, fmt::format("'{}' is not a shard i/N with 0 <= i < N (e.g. 0/4)", text));
  return {i, n};
}

std::map<std::string, std::string> sweep_meta(const SweepSpec& s) {
  std::map<std::string, std::string> m;
  m["name"] = s.name;
  m["description"] = s.description;
  m["mode"] = s.mode == SweepMode::Roofline ? "roofline" : s.mode == SweepMode::Serve ? "serve" : "mapped";
  m["points"] = std::to_string(s.total);
  std::string obj;
  for (const std::string& o : s.objectives) obj += (obj.empty() ? "" : ",") + o;
  m["objectives"] = obj;
  std::ifstream f(s.file);
  std::stringstream text;
  text << f.rdbuf();
  m["spec"] = text.str();
  m["spec_file"] = s.file;
  std::string inputs;
  for (const SweepParam& p : s.params) inputs += (inputs.empty() ? "" : ",") + p.key;
  for (const SweepExpr& d : s.derived) inputs += (inputs.empty() ? "" : ",") + d.name;
  m["inputs"] = inputs;
  m["einsim"] = std::string("einsim ") + version();
  m["runtime"] = runtime_key(s.runtime ? *s.runtime : default_runtime());
  return m;
}

SweepOutcome run_sweep(const SweepSpec& s, const SweepOptions& o, std::ostream& progress) {
  const auto start = Clock::now();
  SweepOutcome out;
  SweepDb db(o.db, true);
  db.prepare(sweep_columns(s), sweep_meta(s));
  const std::vector<uint64_t> done = db.hashes();
  out.points = s.total / o.shards + (s.total % o.shards > o.shard ? 1 : 0);

  // Points this run evaluates: the shard's, not yet stored, at most `limit`. Counted up
  // front from the hashes (cheap) so progress has a total.
  const int jobs = std::max(1, o.jobs);
  std::atomic<int64_t> cursor{o.shard};
  std::atomic<int64_t> claimed{0};
  std::atomic<int64_t> already{0};
  std::mutex mu;
  std::condition_variable ready, room;
  std::deque<std::vector<std::vector<Cell>>> queue;
  int running = jobs;
  std::exception_ptr failure;
  const int64_t chunk = s.mode == SweepMode::Roofline ? 512 : 16;
  const int64_t todo_estimate = o.limit > 0 ? std::min<int64_t>(o.limit, out.points) : std::max<int64_t>(0, out.points - static_cast<int64_t>(done.size()));
  std::atomic<bool> writer_failed{false};  // the database failed: the workers stop too
  auto stopped = [&] { return (o.stop && o.stop->load()) || writer_failed.load(); };

  auto worker = [&] {
    try {
      PointEvaluator ev(s);
      std::vector<std::vector<Cell>> batch;
      std::vector<Cell> row;
      for (;;) {
        if (stopped()) break;
        const int64_t first = cursor.fetch_add(chunk * o.shards);
        if (first >= s.total) break;
        for (int64_t i = first; i < s.total && i < first + chunk * o.shards; i += o.shards) {
          const uint64_t h = ev.prepare(i);
          if (std::binary_search(done.begin(), done.end(), h)) {
            ++already;
            continue;
          }
          if (o.limit > 0 && claimed.fetch_add(1) >= o.limit) break;
          ev.evaluate(row);
          batch.push_back(row);
        }
        if (!batch.empty()) {
          std::unique_lock lk(mu);
          room.wait(lk, [&] { return queue.size() < 4 * static_cast<size_t>(jobs) || stopped(); });
          queue.push_back(std::move(batch));
          batch.clear();
          ready.notify_one();
        }
        if (o.limit > 0 && claimed.load() >= o.limit) break;
      }
      std::lock_guard lk(mu);
      out.mappings += ev.mappings();
    } catch (...) {
      std::lock_guard lk(mu);
      if (!failure) failure = std::current_exception();
    }
    std::lock_guard lk(mu);
    --running;
    ready.notify_one();
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(jobs));
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
  try {
    Writer w(db, out, o, progress, todo_estimate);
    for (;;) {
      std::vector<std::vector<Cell>> batch;
      {
        std::unique_lock lk(mu);
        ready.wait_for(lk, std::chrono::milliseconds(100), [&] { return !queue.empty() || running == 0; });
        if (queue.empty()) {
          if (running == 0) break;
          lk.unlock();
          w.flush();
          continue;
        }
        batch = std::move(queue.front());
        queue.pop_front();
        room.notify_all();
      }
      w.add(batch);
    }
    w.finish();
  } catch (...) {
    // A database error (disk full, the file taken away): stop and join the workers, then
    // report it; what was committed stays.
    {
      std::lock_guard lk(mu);
      writer_failed.store(true);
      queue.clear();
    }
    room.notify_all();
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  out.rows = db.count();
  out.stored = already.load();
  out.interrupted = o.stop && o.stop->load();
  out.seconds = since(start);
  return out;
}

std::string format_outcome(const SweepSpec& s, const SweepOptions& o, const SweepOutcome& r) {
  const double rate = r.seconds > 0 ? static_cast<double>(r.evaluated) / r.seconds : 0;
  std::string shard = o.shards > 1 ? fmt::format(" (shard {}/{})", o.shard, o.shards) : "";
  std::string s1 = fmt::format("sweep '{}'{}: {} points, {} already stored, {} evaluated in {:.2f} s ({:.0f} points/s, {} mode)\n", s.name, shard,
                               r.points, r.stored, r.evaluated, r.seconds, rate, s.mode == SweepMode::Roofline ? "roofline" : s.mode == SweepMode::Serve ? "serve" : "mapped");
  s1 += fmt::format("  ok {}, pruned {}, infeasible {}, error {}; {} mappings searched; {} holds {} points\n", r.ok, r.pruned, r.infeasible,
                    r.errors, r.mappings, o.db, r.rows);
  if (r.interrupted) s1 += "  interrupted: every committed point is kept; run the same command again to continue\n";
  return s1;
}

#ifdef EINSIM_HAVE_MPI
namespace {

constexpr int kTagResults = 1, kTagWork = 2;

void put(std::string& b, const void* p, size_t n) { b.append(static_cast<const char*>(p), n); }
template <typename T>
T take(const std::string& b, size_t& at) {
  T v;
  if (at + sizeof(T) > b.size()) throw InternalError("MPI: truncated result message");
  std::memcpy(&v, b.data() + at, sizeof(T));
  at += sizeof(T);
  return v;
}

// Rows as bytes: per row a cell count, per cell a type byte and its value.
void encode(const std::vector<Cell>& row, std::string& b) {
  const auto n = static_cast<uint32_t>(row.size());
  put(b, &n, sizeof n);
  for (const Cell& c : row) {
    put(b, &c.type, 1);
    if (c.type == Cell::Int) put(b, &c.i, sizeof c.i);
    else if (c.type == Cell::Real) put(b, &c.d, sizeof c.d);
    else if (c.type == Cell::Text) {
      const auto len = static_cast<uint32_t>(c.s.size());
      put(b, &len, sizeof len);
      put(b, c.s.data(), len);
    }
  }
}
void decode(const std::string& b, const std::function<void(const std::vector<Cell>&)>& f) {
  size_t at = 0;
  std::vector<Cell> row;
  while (at < b.size()) {
    row.resize(take<uint32_t>(b, at));
    for (Cell& c : row) {
      const auto t = take<uint8_t>(b, at);
      if (t == Cell::Int) c.set_int(take<int64_t>(b, at));
      else if (t == Cell::Real) c.set_real(take<double>(b, at));
      else if (t == Cell::Text) {
        const auto len = take<uint32_t>(b, at);
        if (at + len > b.size()) throw InternalError("MPI: truncated result message");
        c.set_text(std::string_view(b.data() + at, len));
        at += len;
      } else c.set_null();
    }
    f(row);
  }
}

}  // namespace

SweepOutcome run_sweep_mpi(const SweepSpec& s, const SweepOptions& o, std::ostream& progress, int* rank_out) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  *rank_out = rank;
  SweepOutcome out;
  if (size == 1) {
    // One rank: the threaded sweep.
    try {
      out = run_sweep(s, o, progress);
    } catch (...) {
      MPI_Finalize();
      throw;
    }
    MPI_Finalize();
    return out;
  }
  const auto start = Clock::now();
  const int64_t chunk = s.mode == SweepMode::Roofline ? 1024 : 8;
  if (rank != 0) {
    // A worker: ask for work with the results of the last chunk, until an empty chunk.
    PointEvaluator ev(s);
    std::string results;
    std::vector<int64_t> work(static_cast<size_t>(chunk));
    std::vector<Cell> row;
    for (;;) {
      MPI_Send(results.data(), static_cast<int>(results.size()), MPI_BYTE, 0, kTagResults, MPI_COMM_WORLD);
      results.clear();
      MPI_Status st;
      MPI_Recv(work.data(), static_cast<int>(chunk), MPI_INT64_T, 0, kTagWork, MPI_COMM_WORLD, &st);
      int n = 0;
      MPI_Get_count(&st, MPI_INT64_T, &n);
      if (n == 0) break;
      for (int k = 0; k < n; ++k) {
        ev.run(work[static_cast<size_t>(k)], row);
        encode(row, results);
      }
    }
    out.mappings = ev.mappings();
    int64_t total = 0;
    MPI_Reduce(&out.mappings, &total, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return out;
  }
  // Rank 0: hands out the shard's unstored points in chunks, writes what comes back.
  try {
    SweepDb db(o.db, true);
    db.prepare(sweep_columns(s), sweep_meta(s));
    const std::vector<uint64_t> done = db.hashes();
    out.points = s.total / o.shards + (s.total % o.shards > o.shard ? 1 : 0);
    PointEvaluator hasher(s);
    int64_t cursor = o.shard, handed = 0;
    const int64_t todo = o.limit > 0 ? std::min<int64_t>(o.limit, out.points) : std::max<int64_t>(0, out.points - static_cast<int64_t>(done.size()));
    Writer w(db, out, o, progress, todo);
    int active = size - 1;
    std::string buf;
    std::vector<int64_t> work;
    while (active > 0) {
      MPI_Status st;
      MPI_Probe(MPI_ANY_SOURCE, kTagResults, MPI_COMM_WORLD, &st);
      int bytes = 0;
      MPI_Get_count(&st, MPI_BYTE, &bytes);
      buf.resize(static_cast<size_t>(bytes));
      MPI_Recv(buf.data(), bytes, MPI_BYTE, st.MPI_SOURCE, kTagResults, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      std::vector<std::vector<Cell>> rows;
      decode(buf, [&](const std::vector<Cell>& row) { rows.push_back(row); });
      w.add(rows);
      work.clear();
      const bool stop = o.stop && o.stop->load();
      while (!stop && cursor < s.total && static_cast<int64_t>(work.size()) < chunk && (o.limit == 0 || handed < o.limit)) {
        const int64_t i = cursor;
        cursor += o.shards;
        if (std::binary_search(done.begin(), done.end(), hasher.prepare(i))) {
          ++out.stored;
          continue;
        }
        work.push_back(i);
        ++handed;
      }
      MPI_Send(work.data(), static_cast<int>(work.size()), MPI_INT64_T, st.MPI_SOURCE, kTagWork, MPI_COMM_WORLD);
      if (work.empty()) --active;
    }
    w.finish();
    out.rows = db.count();
    out.interrupted = o.stop && o.stop->load();
  } catch (const std::exception& e) {
    progress << e.what() << "\n";
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int64_t mine = 0;
  MPI_Reduce(&mine, &out.mappings, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
  out.seconds = since(start);
  MPI_Finalize();
  return out;
}
#else
SweepOutcome run_sweep_mpi(const SweepSpec&, const SweepOptions&, std::ostream&, int*) {
  throw UserError(SourceLoc{"--mpi"}, "this einsim was built without MPI (install libopenmpi-dev and rebuild)");
}
#endif

}  // namespace einsim
