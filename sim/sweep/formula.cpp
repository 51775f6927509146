#include "sim/sweep/formula.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "common/units.h"

namespace einsim {

class FormulaParser {
 public:
  FormulaParser(Formula& e, const std::string& text, const SourceLoc& loc, const Formula::Resolver& resolve, const Formula::DimOf& dim_of)
      : e_(e), s_(text), loc_(loc), resolve_(resolve), dim_of_(dim_of) {}

  void parse() {
    e_.root_ = comparison();
    skip();
    if (pos_ < s_.size()) fail(pos_, fmt::format("unexpected '{}'", s_[pos_]));
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& why) const {
    throw UserError(loc_.shifted(static_cast<int>(at)), fmt::format("in expression \"{}\": {}", s_, why));
  }
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(std::string_view tok) {
    skip();
    if (s_.compare(pos_, tok.size(), tok) != 0) return false;
    pos_ += tok.size();
    return true;
  }
  // Evaluation recurses as deep as the tree is high, and a chain (a + a + ...) is as high as
  // it is long: both are bounded, so deep or long input is a located error, not a crash.
  static constexpr int kMaxDepth = 256;
  int add(Formula::Node n, std::optional<Dim> dim = std::nullopt) {
    for (int k : {n.a, n.b})
      if (k >= 0) n.height = std::max(n.height, e_.nodes_[static_cast<size_t>(k)].height + 1);
    if (n.height > kMaxDepth) fail(pos_, fmt::format("nested too deeply or too long (at most {} levels of operators)", kMaxDepth));
    e_.nodes_.push_back(n);
    dims_.push_back(dim);
    return static_cast<int>(e_.nodes_.size()) - 1;
  }
  // The dimension of a result: sums and comparisons need the same dimension on both sides
  // (a plain number goes with anything); products and quotients by a count keep the other's.
  std::optional<Dim> combine(Formula::Node::Kind k, int a, int b, size_t at) {
    const std::optional<Dim> da = dims_[static_cast<size_t>(a)], db = dims_[static_cast<size_t>(b)];
    using K = Formula::Node::Kind;
    switch (k) {
      case K::Add: case K::Sub: case K::Lt: case K::Le: case K::Gt: case K::Ge: case K::Eq: case K::Ne: case K::Call:
        if (da && db && *da != *db)
          fail(at, fmt::format("{} a {} with a {}", k == K::Add || k == K::Sub ? "adds or subtracts" : k == K::Call ? "takes the min or max of" : "compares",
                               dim_name(*da), dim_name(*db)));
        if (k == K::Add || k == K::Sub || k == K::Call) return da ? da : db;
        return std::nullopt;
      case K::Mul:
        if (!da || *da == Dim::Count) return db;
        if (!db || *db == Dim::Count) return da;
        return std::nullopt;
      case K::Div:
        if (!db || *db == Dim::Count) return da;
        if (da && *da == *db) return Dim::Count;
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }
  // The parser's own recursion (parentheses, calls, unary signs, powers), bounded alike.
  struct Nest {
    FormulaParser& p;
    explicit Nest(FormulaParser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.fail(p.pos_, fmt::format("nested too deeply or too long (at most {} levels of operators)", kMaxDepth));
    }
    ~Nest() { --p.depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
  };
  int depth_ = 0;
  int binary(Formula::Node::Kind k, int a, int b, size_t at) {
    Formula::Node n;
    n.kind = k;
    n.a = a;
    n.b = b;
    return add(n, combine(k, a, b, at));
  }

  int comparison() {
    const Nest nest(*this);
    const int a = sum();
    static const std::pair<const char*, Formula::Node::Kind> ops[] = {{"<=", Formula::Node::Le}, {">=", Formula::Node::Ge}, {"==", Formula::Node::Eq},
                                                                  {"!=", Formula::Node::Ne}, {"<", Formula::Node::Lt},  {">", Formula::Node::Gt}};
    for (const auto& [tok, kind] : ops)
      if (const size_t at = op_at(); eat(tok)) return binary(kind, a, sum(), at);
    return a;
  }
  int sum() {
    int a = product();
    for (;;) {
      const size_t at = op_at();
      if (eat("+")) a = binary(Formula::Node::Add, a, product(), at);
      else if (eat("-")) a = binary(Formula::Node::Sub, a, product(), at);
      else return a;
    }
  }
  int product() {
    int a = unary();
    for (;;) {
      const size_t at = op_at();
      if (eat("*")) a = binary(Formula::Node::Mul, a, unary(), at);
      else if (eat("/")) a = binary(Formula::Node::Div, a, unary(), at);
      else return a;
    }
  }
  int unary() {
    const Nest nest(*this);
    if (eat("-")) {
      Formula::Node n;
      n.kind = Formula::Node::Neg;
      n.a = unary();
      return add(n, dims_[static_cast<size_t>(n.a)]);
    }
    if (eat("+")) return unary();
    const int base = primary();
    if (const size_t at = op_at(); eat("^")) return binary(Formula::Node::Pow, base, unary(), at);
    return base;
  }
  static bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

  int primary() {
    skip();
    if (pos_ >= s_.size()) fail(pos_, "expected a number, a name or '('");
    const size_t start = pos_;
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      const int inner = comparison();
      if (!eat(")")) fail(pos_, "expected ')'");
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return number(start);
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
      const std::string name = s_.substr(start, pos_ - start);
      skip();
      if (pos_ < s_.size() && s_[pos_] == '(') return call(name, start);
      const std::optional<int> slot = resolve_(name);
      if (!slot) fail(start, fmt::format("unknown name '{}' (a parameter, variable, derived value or output defined before it)", name));
      Formula::Node n;
      n.kind = Formula::Node::Slot;
      n.slot = *slot;
      if (std::find(e_.used_.begin(), e_.used_.end(), *slot) == e_.used_.end()) e_.used_.push_back(*slot);
      return add(n, dim_of_ ? dim_of_(*slot) : std::nullopt);
    }
    fail(start, fmt::format("unexpected '{}'", c));
  }

  // A number, with a unit when letters follow it ("16 MiB", "3.35 TB/s", "700 W").
  int number(size_t start) {
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.')) ++pos_;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t q = pos_ + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
        pos_ = q;
        while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      }
    }
    size_t end = pos_;
    size_t q = pos_;
    while (q < s_.size() && s_[q] == ' ') ++q;
    if (q < s_.size() && std::isalpha(static_cast<unsigned char>(s_[q]))) {
      end = q;
      while (end < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[end])) || s_[end] == '/')) ++end;
    }
    std::string why;
    const std::optional<Quantity> v = parse_quantity(s_.substr(start, end - start), &why);
    if (!v) fail(start, why);
    pos_ = end;
    Formula::Node n;
    n.value = v->value;
    return add(n, v->dim == Dim::Count ? std::nullopt : std::optional<Dim>(v->dim));
  }

  int call(const std::string& name, size_t at) {
    static const std::map<std::string, double (*)(double)> one = {
        {"abs", [](double x) { return std::fabs(x); }},   {"sqrt", [](double x) { return std::sqrt(x); }},
        {"log2", [](double x) { return std::log2(x); }},  {"log10", [](double x) { return std::log10(x); }},
        {"ln", [](double x) { return std::log(x); }},     {"exp", [](double x) { return std::exp(x); }},
        {"ceil", [](double x) { return std::ceil(x); }},  {"floor", [](double x) { return std::floor(x); }},
        {"round", [](double x) { return std::round(x); }}};
    static const std::map<std::string, double (*)(double, double)> two = {{"min", [](double x, double y) { return std::min(x, y); }},
                                                                          {"max", [](double x, double y) { return std::max(x, y); }}};
    ++pos_;  // '('
    std::vector<int> args{comparison()};
    while (eat(",")) args.push_back(comparison());
    if (!eat(")")) fail(pos_, "expected ')' or ','");
    Formula::Node n;
    n.kind = Formula::Node::Call;
    if (auto f = one.find(name); f != one.end()) {
      if (args.size() != 1) fail(at, fmt::format("{}() takes one argument", name));
      n.fn1 = f->second;
      n.a = args[0];
      const bool keeps = name == "abs" || name == "ceil" || name == "floor" || name == "round";
      return add(n, keeps ? dims_[static_cast<size_t>(args[0])] : std::nullopt);
    }
    if (auto f = two.find(name); f != two.end()) {
      if (args.size() < 2) fail(at, fmt::format("{}() takes two or more arguments", name));
      int acc = args[0];
      for (size_t i = 1; i < args.size(); ++i) {
        n.fn2 = f->second;
        n.a = acc;
        n.b = args[i];
        acc = add(n, combine(Formula::Node::Call, acc, args[i], at));
      }
      return acc;
    }
    fail(at, fmt::format("unknown function '{}' (min, max, abs, sqrt, log2, log10, ln, exp, ceil, floor, round)", name));
  }

  Formula& e_;
  const std::string& s_;
  SourceLoc loc_;
  const Formula::Resolver& resolve_;
  const Formula::DimOf& dim_of_;
  std::vector<std::optional<Dim>> dims_;  // per node, while parsing
  size_t pos_ = 0;
  // Where the next operator starts (for locating a dimension error at it).
  size_t op_at() {
    skip();
    return pos_;
  }
};

Formula Formula::parse(const std::string& text, const SourceLoc& loc, const Resolver& resolve, const DimOf& dim_of) {
  Formula e;
  e.text_ = text;
  FormulaParser(e, text, loc, resolve, dim_of).parse();
  return e;
}

bool Formula::is_comparison() const {
  const Node::Kind k = nodes_[static_cast<size_t>(root_)].kind;
  return k == Node::Lt || k == Node::Le || k == Node::Gt || k == Node::Ge || k == Node::Eq || k == Node::Ne;
}

double Formula::eval(const double* slots) const { return run(root_, slots); }

double Formula::run(int i, const double* slots) const {
  const Node& n = nodes_[static_cast<size_t>(i)];
  switch (n.kind) {
    case Node::Const: return n.value;
    case Node::Slot: return slots[n.slot];
    case Node::Neg: return -run(n.a, slots);
    case Node::Add: return run(n.a, slots) + run(n.b, slots);
    case Node::Sub: return run(n.a, slots) - run(n.b, slots);
    case Node::Mul: return run(n.a, slots) * run(n.b, slots);
    case Node::Div: return run(n.a, slots) / run(n.b, slots);
    case Node::Pow: return std::pow(run(n.a, slots), run(n.b, slots));
    case Node::Lt: return run(n.a, slots) < run(n.b, slots) ? 1.0 : 0.0;
    case Node::Le: return run(n.a, slots) <= run(n.b, slots) ? 1.0 : 0.0;
    case Node::Gt: return run(n.a, slots) > run(n.b, slots) ? 1.0 : 0.0;
    case Node::Ge: return run(n.a, slots) >= run(n.b, slots) ? 1.0 : 0.0;
    case Node::Eq: return run(n.a, slots) == run(n.b, slots) ? 1.0 : 0.0;
    case Node::Ne: return run(n.a, slots) != run(n.b, slots) ? 1.0 : 0.0;
    case Node::Call: return n.fn1 ? n.fn1(run(n.a, slots)) : n.fn2(run(n.a, slots), run(n.b, slots));
  }
  return 0;
}

}  // namespace einsim
