#pragma once
// The sweep database: one SQLite file (WAL mode) with a `points` table, one row per design
// point (the point hash is unique, so a point is stored at most once however often it is
// evaluated or merged), and a `meta` table (the spec, its columns, objectives).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sim/sweep/evaluate.h"

struct sqlite3;
struct sqlite3_stmt;

namespace einsim {

class SweepDb {
 public:
  /// Opens (creating when `create`) the database at `path`. Throws UserError.
  /// `create`: made when missing. `read_only`: opened for reading only (export, pareto), which
  /// works on a file or folder the user cannot write, falling back to SQLite's immutable mode.
  SweepDb(const std::string& path, bool create, bool read_only = false);
  ~SweepDb();
  SweepDb(const SweepDb&) = delete;
  SweepDb& operator=(const SweepDb&) = delete;

  /// Creates the points table with `cols` and stores `meta`, or checks that the existing
  /// table has exactly these columns (the same sweep) and keeps its meta.
  void prepare(const std::vector<SweepColumn>& cols, const std::map<std::string, std::string>& meta);
  bool has_points_table();
  std::vector<SweepColumn> columns();
  std::map<std::string, std::string> meta();
  /// Every stored point hash, sorted.
  std::vector<uint64_t> hashes();
  int64_t count(const std::string& where = "");

  void begin();
  /// INSERT OR IGNORE: returns whether the row was new.
  bool insert(const std::vector<Cell>& row);
  /// The same for many rows; returns how many were new.
  int64_t insert(const std::vector<std::vector<Cell>>& rows);
  void commit();

  /// Calls `f` with every row (in idx order) whose status matches `status` ("" for all).
  void scan(const std::string& status, const std::function<void(const std::vector<Cell>&)>& f);
  /// Runs SQL that returns nothing.
  void exec(const std::string& sql);
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what);
  void bind(sqlite3_stmt* st, int first, const std::vector<Cell>& row);
  static constexpr int kRowsPerInsert = 32;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* insert_many_ = nullptr;
  std::string path_;
  size_t ncols_ = 0;
  bool in_tx_ = false;
};

/// Writes every stored point as CSV or JSON (an array of objects) to `out`.
void export_db(const std::string& path, const std::string& format, const std::string& status, std::ostream& out);

/// Merges the points of `inputs` into `output` (created from the first input's columns and
/// meta when absent). Inputs must come from the same sweep (the same columns). Idempotent.
/// Returns the number of rows added.
int64_t merge_dbs(const std::vector<std::string>& inputs, const std::string& output);

/// A cell as CSV/JSON text ("" for NULL).
std::string cell_text(const Cell& c);

}  // namespace einsim
