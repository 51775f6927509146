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
  FormulaParser(Formula& e, const std::string& text, const SourceLoc& loc, const Formula::Resolver& resolve)
      : e_(e), s_(text), loc_(loc), resolve_(resolve) {}

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
  int add(Formula::Node n) {
    e_.nodes_.push_back(n);
    return static_cast<int>(e_.nodes_.size()) - 1;
  }
  int binary(Formula::Node::Kind k, int a, int b) {
    Formula::Node n;
    n.kind = k;
    n.a = a;
    n.b = b;
    return add(n);
  }

  int comparison() {
    const int a = sum();
    static const std::pair<const char*, Formula::Node::Kind> ops[] = {{"<=", Formula::Node::Le}, {">=", Formula::Node::Ge}, {"==", Formula::Node::Eq},
                                                                  {"!=", Formula::Node::Ne}, {"<", Formula::Node::Lt},  {">", Formula::Node::Gt}};
    for (const auto& [tok, kind] : ops)
      if (eat(tok)) return binary(kind, a, sum());
    return a;
  }
  int sum() {
    int a = product();
    for (;;) {
      if (eat("+")) a = binary(Formula::Node::Add, a, product());
      else if (eat("-")) a = binary(Formula::Node::Sub, a, product());
      else return a;
    }
  }
  int product() {
    int a = unary();
    for (;;) {
      if (eat("*")) a = binary(Formula::Node::Mul, a, unary());
      else if (eat("/")) a = binary(Formula::Node::Div, a, unary());
      else return a;
    }
  }
  int unary() {
    if (eat("-")) {
      Formula::Node n;
      n.kind = Formula::Node::Neg;
      n.a = unary();
      return add(n);
    }
    if (eat("+")) return unary();
    const int base = primary();
    if (eat("^")) return binary(Formula::Node::Pow, base, unary());
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
      return add(n);
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
    return add(n);
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
      return add(n);
    }
    if (auto f = two.find(name); f != two.end()) {
      if (args.size() < 2) fail(at, fmt::format("{}() takes two or more arguments", name));
      int acc = args[0];
      for (size_t i = 1; i < args.size(); ++i) {
        n.fn2 = f->second;
        n.a = acc;
        n.b = args[i];
        acc = add(n);
      }
      return acc;
    }
    fail(at, fmt::format("unknown function '{}' (min, max, abs, sqrt, log2, log10, ln, exp, ceil, floor, round)", name));
  }

  Formula& e_;
  const std::string& s_;
  SourceLoc loc_;
  const Formula::Resolver& resolve_;
  size_t pos_ = 0;
};

Formula Formula::parse(const std::string& text, const SourceLoc& loc, const Resolver& resolve) {
  Formula e;
  e.text_ = text;
  FormulaParser(e, text, loc, resolve).parse();
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
