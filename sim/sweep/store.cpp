#include "sim/sweep/store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

#include "common/error.h"
#include "sim/report/table.h"

namespace einsim {

namespace {

std::string quote_ident(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// A statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql, const std::string& path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK)
      throw UserError(SourceLoc{path}, fmt::format("database error: {}", sqlite3_errmsg(db)));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return st_; }

 private:
  sqlite3_stmt* st_ = nullptr;
};

void read_cell(sqlite3_stmt* st, int i, Cell& c) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: c.set_int(sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: c.set_real(sqlite3_column_double(st, i)); break;
    case SQLITE_TEXT: c.set_text(reinterpret_cast<const char*>(sqlite3_column_text(st, i))); break;
    default: c.set_null();
  }
}

}  // namespace

std::string cell_text(const Cell& c) {
  switch (c.type) {
    case Cell::Int: return fmt::format("{}", c.i);
    case Cell::Real: return fmt::format("{}", c.d);
    case Cell::Text: return c.s;
    default: return "";
  }
}

SweepDb::SweepDb(const std::string& path, bool create, bool read_only) : path_(path) {
  std::error_code ec;
  if (!create && !std::filesystem::is_regular_file(path, ec)) throw UserError(SourceLoc{path}, "no such database");
  if (read_only) {
    // A WAL database read by someone who may not write it or its folder: plain read-only
    // first, then immutable (no -shm needed; the file must not change while it is read).
    std::string escaped;  // a path inside a URI: %, ? and # escaped
    for (char c : path) escaped += c == '%' ? std::string("%25") : c == '?' ? std::string("%3f") : c == '#' ? std::string("%23") : std::string(1, c);
    for (const std::string& uri : {"file:" + escaped + "?mode=ro", "file:" + escaped + "?immutable=1"}) {
      if (sqlite3_open_v2(uri.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr) == SQLITE_OK &&
          sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) == SQLITE_OK)
        return;
      const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      if (uri.ends_with("immutable=1"))
        throw UserError(SourceLoc{path}, fmt::format("cannot read the database ({}): is it a sweep database, and readable by you?", why));
    }
  }
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw UserError(SourceLoc{path}, fmt::format("cannot open the database for writing ({}): check that you may write it and its folder", why));
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    // WAL: a commit is durable once written, readers do not block the writer, and a killed
    // writer leaves every committed transaction intact.
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    // Rows are appended in rowid order; the hash index takes random keys, and 64 MiB of page
    // cache holds it whole up to millions of points (1M points: about 30 MB of index).
    exec("PRAGMA cache_size=-65536");
    // Checkpoints (WAL pages copied into the database) every 64 MiB of WAL rather than 4 MiB:
    // fewer, larger copies while a sweep streams rows.
    exec("PRAGMA wal_autocheckpoint=16384");
    exec("SELECT count(*) FROM sqlite_master");
  } catch (const UserError&) {
    // Not a database (or not writable): the destructor does not run for a throwing constructor.
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SweepDb::~SweepDb() {
  if (in_tx_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_finalize(insert_);
  sqlite3_finalize(insert_many_);
  sqlite3_close(db_);
}

void SweepDb::fail(const std::string& what) { throw UserError(SourceLoc{path_}, fmt::format("database error: {}: {}", what, sqlite3_errmsg(db_))); }

void SweepDb::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    const std::string why = msg ? msg : "unknown";
    sqlite3_free(msg);
    throw UserError(SourceLoc{path_}, fmt::format("database error: {}", why));
  }
}

bool SweepDb::has_points_table() {
  Stmt st(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='points'", path_);
  return sqlite3_step(st.get()) == SQLITE_ROW && sqlite3_column_int(st.get(), 0) > 0;
}

std::vector<SweepColumn> SweepDb::columns() {
  std::vector<SweepColumn> cols;
  Stmt st(db_, "PRAGMA table_info(points)", path_);
  while (sqlite3_step(st.get()) == SQLITE_ROW) {
    const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1));
    const std::string type = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 2));
    cols.push_back({name, type == "INTEGER" ? "INTEGER" : type == "REAL" ? "REAL" : "TEXT"});
  }
  return cols;
}

std::map<std::string, std::string> SweepDb::meta() {
  std::map<std::string, std::string> m;
  Stmt probe(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'", path_);
  if (sqlite3_step(probe.get()) != SQLITE_ROW || sqlite3_column_int(probe.get(), 0) == 0) return m;
  Stmt st(db_, "SELECT key, value FROM meta", path_);
  while (sqlite3_step(st.get()) == SQLITE_ROW)
    m[reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0))] = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1));
  return m;
}

void SweepDb::prepare(const std::vector<SweepColumn>& cols, const std::map<std::string, std::string>& meta) {
  if (has_points_table()) {
    const std::vector<SweepColumn> have = columns();
    bool same = have.size() == cols.size();
    for (size_t i = 0; same && i < cols.size(); ++i) same = have[i].name == cols[i].name;
    if (!same) {
      std::string a, b;
      for (const auto& c : have) a += (a.empty() ? "" : ", ") + c.name;
      for (const auto& c : cols) b += (b.empty() ? "" : ", ") + c.name;
      throw UserError(SourceLoc{path_}, fmt::format("the database holds another sweep (columns {}), not this one ({}): use another --db", a, b));
    }
    // Points evaluated under another runtime would mix with these.
    if (auto want = meta.find("runtime"); want != meta.end()) {
      const auto have_meta = this->meta();
      if (auto h = have_meta.find("runtime"); h != have_meta.end() && h->second != want->second)
        throw UserError(SourceLoc{path_}, fmt::format("the database's points ran under runtime {}, not {}: use another --db, or the same runtime",
                                                      h->second, want->second));
    }
  } else {
    std::string sql = "CREATE TABLE points (";
    for (size_t i = 0; i < cols.size(); ++i)
      sql += fmt::format("{}{} {}{}", i ? ", " : "", quote_ident(cols[i].name), cols[i].type, i == 0 ? " NOT NULL UNIQUE" : "");
    exec("BEGIN");
    exec(sql + ")");
    exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)");
    Stmt st(db_, "INSERT OR REPLACE INTO meta VALUES (?, ?)", path_);
    for (const auto& [k, v] : meta) {
      sqlite3_reset(st.get());
      sqlite3_bind_text(st.get(), 1, k.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st.get(), 2, v.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st.get()) != SQLITE_DONE) fail("writing meta");
    }
    exec("COMMIT");
  }
  ncols_ = cols.size();
  std::string one = "(";
  for (size_t i = 0; i < ncols_; ++i) one += i ? ",?" : "?";
  one += ")";
  std::string many = "INSERT OR IGNORE INTO points VALUES " + one;
  for (int r = 1; r < kRowsPerInsert; ++r) many += "," + one;
  sqlite3_finalize(insert_);
  sqlite3_finalize(insert_many_);
  insert_ = insert_many_ = nullptr;
  if (sqlite3_prepare_v2(db_, ("INSERT OR IGNORE INTO points VALUES " + one).c_str(), -1, &insert_, nullptr) != SQLITE_OK) fail("preparing the insert");
  if (sqlite3_prepare_v2(db_, many.c_str(), -1, &insert_many_, nullptr) != SQLITE_OK) fail("preparing the insert");
}

void SweepDb::bind(sqlite3_stmt* st, int first, const std::vector<Cell>& row) {
  if (row.size() != ncols_) throw InternalError("SweepDb: a row does not match the table");
  for (size_t i = 0; i < row.size(); ++i) {
    const Cell& c = row[i];
    const int k = first + static_cast<int>(i);
    switch (c.type) {
      case Cell::Int: sqlite3_bind_int64(st, k, c.i); break;
      case Cell::Real: sqlite3_bind_double(st, k, c.d); break;
      case Cell::Text: sqlite3_bind_text(st, k, c.s.data(), static_cast<int>(c.s.size()), SQLITE_STATIC); break;
      default: sqlite3_bind_null(st, k);
    }
  }
}

int64_t SweepDb::insert(const std::vector<std::vector<Cell>>& rows) {
  if (!insert_) throw InternalError("SweepDb::insert before prepare");
  int64_t added = 0;
  size_t r = 0;
  // Many rows per statement: SQLite's per-statement work is paid once per kRowsPerInsert.
  for (; r + kRowsPerInsert <= rows.size(); r += kRowsPerInsert) {
    sqlite3_reset(insert_many_);
    for (int k = 0; k < kRowsPerInsert; ++k) bind(insert_many_, 1 + k * static_cast<int>(ncols_), rows[r + static_cast<size_t>(k)]);
    if (sqlite3_step(insert_many_) != SQLITE_DONE) fail("inserting points");
    added += sqlite3_changes(db_);
  }
  for (; r < rows.size(); ++r) added += insert(rows[r]) ? 1 : 0;
  return added;
}

std::vector<uint64_t> SweepDb::hashes() {
  std::vector<uint64_t> h;
  if (!has_points_table()) return h;
  Stmt st(db_, "SELECT hash FROM points ORDER BY hash", path_);
  while (sqlite3_step(st.get()) == SQLITE_ROW) h.push_back(static_cast<uint64_t>(sqlite3_column_int64(st.get(), 0)));
  std::sort(h.begin(), h.end());
  return h;
}

int64_t SweepDb::count(const std::string& where) {
  Stmt st(db_, "SELECT count(*) FROM points" + (where.empty() ? "" : " WHERE " + where), path_);
  return sqlite3_step(st.get()) == SQLITE_ROW ? sqlite3_column_int64(st.get(), 0) : 0;
}

void SweepDb::begin() {
  if (in_tx_) return;
  exec("BEGIN");
  in_tx_ = true;
}

void SweepDb::commit() {
  if (!in_tx_) return;
  exec("COMMIT");
  in_tx_ = false;
}

bool SweepDb::insert(const std::vector<Cell>& row) {
  if (!insert_) throw InternalError("SweepDb::insert before prepare");
  sqlite3_reset(insert_);
  bind(insert_, 1, row);
  if (sqlite3_step(insert_) != SQLITE_DONE) fail("inserting a point");
  return sqlite3_changes(db_) > 0;
}

void SweepDb::scan(const std::string& status, const std::function<void(const std::vector<Cell>&)>& f) {
  if (!has_points_table()) throw UserError(SourceLoc{path_}, "not a sweep database (no points table)");
  Stmt st(db_, std::string("SELECT * FROM points") + (status.empty() ? "" : " WHERE status = ?") + " ORDER BY idx, hash", path_);
  if (!status.empty()) sqlite3_bind_text(st.get(), 1, status.c_str(), -1, SQLITE_TRANSIENT);
  const int n = sqlite3_column_count(st.get());
  std::vector<Cell> row(static_cast<size_t>(n));
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    for (int i = 0; i < n; ++i) read_cell(st.get(), i, row[static_cast<size_t>(i)]);
    f(row);
  }
  if (rc != SQLITE_DONE) fail("reading points");
}

void export_db(const std::string& path, const std::string& format, const std::string& status, std::ostream& out) {
  SweepDb db(path, false, true);
  const std::vector<SweepColumn> cols = db.columns();
  if (cols.empty()) throw UserError(SourceLoc{path}, "not a sweep database (no points table)");
  if (format == "csv") {
    for (size_t i = 0; i < cols.size(); ++i) out << (i ? "," : "") << csv_field(cols[i].name);
    out << "\n";
    db.scan(status, [&](const std::vector<Cell>& row) {
      for (size_t i = 0; i < row.size(); ++i) {
        if (i) out << ',';
        // The hash as 16 hex digits: the same text in every export.
        if (i == static_cast<size_t>(kHashColumn) && row[i].type == Cell::Int) out << fmt::format("{:016x}", static_cast<uint64_t>(row[i].i));
        else out << csv_field(cell_text(row[i]));
      }
      out << "\n";
    });
    return;
  }
  out << "[";
  bool first = true;
  db.scan(status, [&](const std::vector<Cell>& row) {
    out << (first ? "\n  {" : ",\n  {");
    first = false;
    for (size_t i = 0; i < row.size(); ++i) {
      out << (i ? ", " : "") << nlohmann::json(cols[i].name).dump() << ": ";
      const Cell& c = row[i];
      if (i == static_cast<size_t>(kHashColumn) && c.type == Cell::Int) out << '"' << fmt::format("{:016x}", static_cast<uint64_t>(c.i)) << '"';
      else if (c.type == Cell::Int) out << c.i;
      else if (c.type == Cell::Real) out << fmt::format("{}", c.d);
      else if (c.type == Cell::Text) out << nlohmann::json(c.s).dump();
      else out << "null";
    }
    out << "}";
  });
  out << (first ? "]\n" : "\n]\n");
}

int64_t merge_dbs(const std::vector<std::string>& inputs, const std::string& output) {
  if (inputs.empty()) throw UserError(SourceLoc{"merge"}, "no databases to merge");
  std::vector<SweepColumn> cols;
  std::map<std::string, std::string> meta;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (std::filesystem::equivalent(in, output, ec)) throw UserError(SourceLoc{in}, "an input is the output");
    SweepDb db(in, false, true);
    if (!db.has_points_table()) throw UserError(SourceLoc{in}, "not a sweep database (no points table)");
    const auto c = db.columns();
    if (cols.empty()) {
      cols = c;
      meta = db.meta();
      meta.erase("shard");
    } else {
      bool same = c.size() == cols.size();
      for (size_t i = 0; same && i < c.size(); ++i) same = c[i].name == cols[i].name;
      if (!same) throw UserError(SourceLoc{in}, fmt::format("holds another sweep than {} (its columns differ)", inputs.front()));
    }
  }
  SweepDb out(output, true);
  out.prepare(cols, meta);
  const int64_t before = out.count();
  for (const std::string& in : inputs) {
    out.exec(fmt::format("ATTACH DATABASE '{}' AS src", [&] {
      std::string q;
      for (char c : in) q += c == '\'' ? std::string("''") : std::string(1, c);
      return q;
    }()));
    out.exec("BEGIN");
    out.exec("INSERT OR IGNORE INTO main.points SELECT * FROM src.points");
    out.exec("COMMIT");
    out.exec("DETACH DATABASE src");
  }
  return out.count() - before;
}

}  // namespace einsim
