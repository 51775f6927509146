#include "workloads/einsum.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace einsim {
namespace {

enum class Tok { End, Ident, Number, LBrack, RBrack, LParen, RParen, Comma, Eq, Plus, Minus, Star, Slash };

struct Token {
  Tok kind = Tok::End;
  std::string_view text;
  int pos = 0;
};

constexpr int kMaxDepth = 200;  // nesting limit: deep inputs get an error, not a stack overflow

struct FuncInfo {
  std::string_view name;
  Func func;
  int arity;
};
constexpr std::array<FuncInfo, 12> kFuncs = {{{"exp", Func::Exp, 1}, {"max", Func::Max, 2}, {"min", Func::Min, 2},
                                              {"silu", Func::Silu, 1}, {"gelu", Func::Gelu, 1}, {"relu", Func::Relu, 1},
                                              {"sigmoid", Func::Sigmoid, 1}, {"tanh", Func::Tanh, 1},
                                              {"rsqrt", Func::Rsqrt, 1}, {"sqrt", Func::Sqrt, 1}, {"log", Func::Log, 1},
                                              {"abs", Func::Abs, 1}}};

class Parser {
 public:
  Parser(std::string_view text, const SourceLoc& loc) : text_(text), loc_(loc) { lex(); }

  EinsumAst einsum() {
    EinsumAst e;
    e.text = std::string(text_);
    e.loc = loc_;
    if (peek().kind != Tok::Ident) fail(peek().pos, "an Einsum starts with the tensor it defines, e.g. 'Z[m,n] = ...'");
    e.lhs = ref(/*lhs=*/true);
    expect(Tok::Eq, "'=' after the left-hand side");
    if (peek().kind == Tok::Ident && (peek().text == "max" || peek().text == "min" || peek().text == "sum") &&
        peek(1).kind == Tok::LBrack) {
      const Token op = next();
      e.explicit_reduce = true;
      e.reduce = op.text == "max" ? Reduce::Max : op.text == "min" ? Reduce::Min : Reduce::Sum;
      e.reduce_pos = op.pos;
      next();  // '['
      for (;;) {
        const Token v = expect(Tok::Ident, "an index variable to reduce over");
        if (!is_var_name(v.text)) fail(v.pos, fmt::format("'{}' is not an index variable (lower case)", v.text));
        e.reduce_vars.emplace_back(v.text);
        if (peek().kind == Tok::Comma) { next(); continue; }
        expect(Tok::RBrack, "']' after the reduced index variables");
        break;
      }
    }
    e.rhs = expr(0);
    if (peek().kind != Tok::End) fail(peek().pos, fmt::format("unexpected '{}' after the expression", peek().text));
    return e;
  }

  ExtentExpr extent() {
    ExtentExpr x = extent_sum(0);
    if (peek().kind != Tok::End) fail(peek().pos, fmt::format("unexpected '{}' in extent expression", peek().text));
    return x;
  }

 private:
  [[noreturn]] void fail(int pos, const std::string& msg) const { throw UserError(loc_.shifted(pos), msg); }

  void lex() {
    size_t i = 0;
    while (i < text_.size()) {
      const char c = text_[i];
      const int pos = static_cast<int>(i);
      if (c == ' ' || c == '\t') { ++i; continue; }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[j])) || text_[j] == '_')) ++j;
        toks_.push_back({Tok::Ident, text_.substr(i, j - i), pos});
        i = j;
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < text_.size() && std::isdigit(static_cast<unsigned char>(text_[i + 1])))) {
        size_t j = i;
        while (j < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[j])) || text_[j] == '.')) ++j;
        if (j < text_.size() && (text_[j] == 'e' || text_[j] == 'E')) {
          size_t k = j + 1;
          if (k < text_.size() && (text_[k] == '+' || text_[k] == '-')) ++k;
          if (k < text_.size() && std::isdigit(static_cast<unsigned char>(text_[k]))) {
            j = k;
            while (j < text_.size() && std::isdigit(static_cast<unsigned char>(text_[j]))) ++j;
          }
        }
        toks_.push_back({Tok::Number, text_.substr(i, j - i), pos});
        i = j;
        continue;
      }
      Tok k;
      switch (c) {
        case '[': k = Tok::LBrack; break;
        case ']': k = Tok::RBrack; break;
        case '(': k = Tok::LParen; break;
        case ')': k = Tok::RParen; break;
        case ',': k = Tok::Comma; break;
        case '=': k = Tok::Eq; break;
        case '+': k = Tok::Plus; break;
        case '-': k = Tok::Minus; break;
        case '*': k = Tok::Star; break;
        case '/': k = Tok::Slash; break;
        default:
          fail(pos, fmt::format("unexpected character '{}'", (c >= 32 && c < 127) ? std::string(1, c) : fmt::format("\\x{:02x}", static_cast<unsigned char>(c))));
      }
      toks_.push_back({k, text_.substr(i, 1), pos});
      ++i;
    }
    toks_.push_back({Tok::End, "end of expression", static_cast<int>(text_.size())});
  }

  const Token& peek(size_t ahead = 0) const { return toks_[std::min(cur_ + ahead, toks_.size() - 1)]; }
  Token next() {
    Token t = peek();
    if (cur_ + 1 < toks_.size()) ++cur_;
    return t;
  }
  Token expect(Tok k, std::string_view what) {
    if (peek().kind != k) fail(peek().pos, fmt::format("expected {}, found '{}'", what, peek().text));
    return next();
  }
  void enter(int pos) {
    if (++depth_ > kMaxDepth) fail(pos, fmt::format("expression nested too deeply or too long (at most {} levels of operators)", kMaxDepth));
  }

  int64_t integer(const Token& t) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
    if (ec != std::errc() || p != t.text.data() + t.text.size())
      fail(t.pos, fmt::format("'{}' is not an integer (index expressions use integers only)", t.text));
    return v;
  }

  TensorRef ref(bool lhs) {
    const Token name = next();
    TensorRef r;
    r.name = std::string(name.text);
    r.pos = name.pos;
    if (is_var_name(name.text) && peek().kind == Tok::LBrack)
      fail(name.pos, fmt::format("tensor names start with an upper-case letter or '_': '{}' is an index variable", name.text));
    if (peek().kind != Tok::LBrack) return r;  // scalar
    next();
    if (peek().kind == Tok::RBrack) { next(); return r; }
    for (;;) {
      if (lhs && peek().kind == Tok::Ident && peek(1).kind == Tok::Eq) {
        const Token v = next();
        if (!is_var_name(v.text)) fail(v.pos, fmt::format("'{}' is not an index variable (lower case)", v.text));
        next();  // '='
        const Token n = expect(Tok::Number, "an integer initial index");
        IndexExpr c;
        c.kind = IndexExpr::Kind::Int;
        c.value = integer(n);
        c.pos = n.pos;
        r.idx.push_back(c);
        r.init_var.emplace_back(v.text);
      } else {
        r.idx.push_back(index_sum());
        r.init_var.emplace_back();
      }
      if (peek().kind == Tok::Comma) { next(); continue; }
      expect(Tok::RBrack, "',' or ']' in the index list");
      break;
    }
    return r;
  }

  IndexExpr index_sum() {
    enter(peek().pos);
    IndexExpr l = index_product();
    int chain = 0;  // a left-deep chain is as deep as it is long
    while (peek().kind == Tok::Plus || peek().kind == Tok::Minus) {
      const Token op = next();
      enter(op.pos), ++chain;
      IndexExpr n;
      n.kind = op.kind == Tok::Plus ? IndexExpr::Kind::Add : IndexExpr::Kind::Sub;
      n.pos = op.pos;
      n.kids.push_back(std::move(l));
      n.kids.push_back(index_product());
      l = std::move(n);
    }
    depth_ -= chain + 1;
    return l;
  }

  IndexExpr index_product() {
    IndexExpr l = index_unary();
    int chain = 0;
    while (peek().kind == Tok::Star) {
      const Token op = next();
      enter(op.pos), ++chain;
      IndexExpr n;
      n.kind = IndexExpr::Kind::Mul;
      n.pos = op.pos;
      n.kids.push_back(std::move(l));
      n.kids.push_back(index_unary());
      l = std::move(n);
    }
    depth_ -= chain;
    if (peek().kind == Tok::Slash) fail(peek().pos, "division is not allowed in an index expression");
    return l;
  }

  IndexExpr index_unary() {
    const Token t = peek();
    IndexExpr n;
    n.pos = t.pos;
    switch (t.kind) {
      case Tok::Minus:
        next();
        enter(t.pos);
        n.kind = IndexExpr::Kind::Neg;
        n.kids.push_back(index_unary());
        --depth_;
        return n;
      case Tok::Number:
        next();
        n.kind = IndexExpr::Kind::Int;
        n.value = integer(t);
        return n;
      case Tok::LParen: {
        next();
        IndexExpr inner = index_sum();
        expect(Tok::RParen, "')'");
        return inner;
      }
      case Tok::Ident:
        if (peek(1).kind == Tok::LBrack) {
          enter(t.pos);
          TensorRef g = ref(false);
          --depth_;
          n.kind = IndexExpr::Kind::Gather;
          n.name = g.name;
          n.kids = std::move(g.idx);
          return n;
        }
        next();
        n.kind = is_var_name(t.text) ? IndexExpr::Kind::Var : IndexExpr::Kind::Extent;
        n.name = std::string(t.text);
        return n;
      default:
        fail(t.pos, fmt::format("expected an index (variable, extent or integer), found '{}'", t.text));
    }
  }

  Expr expr(int) {
    enter(peek().pos);
    Expr l = term();
    int chain = 0;  // a left-deep chain is as deep as it is long
    while (peek().kind == Tok::Plus || peek().kind == Tok::Minus) {
      const Token op = next();
      enter(op.pos), ++chain;
      Expr n;
      n.kind = op.kind == Tok::Plus ? Expr::Kind::Add : Expr::Kind::Sub;
      n.pos = op.pos;
      n.args.push_back(std::move(l));
      n.args.push_back(term());
      l = std::move(n);
    }
    depth_ -= chain + 1;
    return l;
  }

  Expr term() {
    Expr l = unary();
    int chain = 0;
    while (peek().kind == Tok::Star || peek().kind == Tok::Slash) {
      const Token op = next();
      enter(op.pos), ++chain;
      Expr n;
      n.kind = op.kind == Tok::Star ? Expr::Kind::Mul : Expr::Kind::Div;
      n.pos = op.pos;
      n.args.push_back(std::move(l));
      n.args.push_back(unary());
      l = std::move(n);
    }
    depth_ -= chain;
    return l;
  }

  Expr unary() {
    const Token t = peek();
    Expr n;
    n.pos = t.pos;
    if (t.kind == Tok::Minus) {
      next();
      enter(t.pos);
      n.kind = Expr::Kind::Neg;
      n.args.push_back(unary());
      --depth_;
      return n;
    }
    if (t.kind == Tok::Number) {
      next();
      double v = 0;
      auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
      if (ec != std::errc() || p != t.text.data() + t.text.size() || !std::isfinite(v))
        fail(t.pos, fmt::format("'{}' is not a number", t.text));
      n.kind = Expr::Kind::Number;
      n.number = v;
      return n;
    }
    if (t.kind == Tok::LParen) {
      next();
      Expr inner = expr(0);
      expect(Tok::RParen, "')'");
      return inner;
    }
    if (t.kind != Tok::Ident) fail(t.pos, fmt::format("expected a value (tensor, number or function), found '{}'", t.text));
    if (t.text == "inf" && peek(1).kind != Tok::LBrack) {
      next();
      n.kind = Expr::Kind::Number;
      n.number = std::numeric_limits<double>::infinity();
      return n;
    }
    if (peek(1).kind == Tok::LParen) {
      next();
      next();
      const FuncInfo* f = nullptr;
      for (const auto& fi : kFuncs)
        if (fi.name == t.text) f = &fi;
      if (!f) fail(t.pos, fmt::format("unknown function '{}' (known: exp, max, min, silu, gelu, relu, sigmoid, tanh, rsqrt, sqrt, log, abs)", t.text));
      n.kind = Expr::Kind::Call;
      n.func = f->func;
      enter(t.pos);
      for (;;) {
        n.args.push_back(expr(0));
        if (peek().kind == Tok::Comma) { next(); continue; }
        expect(Tok::RParen, "',' or ')' in the argument list");
        break;
      }
      --depth_;
      if (static_cast<int>(n.args.size()) != f->arity)
        fail(t.pos, fmt::format("'{}' takes {} argument{}, found {}", f->name, f->arity, f->arity == 1 ? "" : "s", n.args.size()));
      return n;
    }
    if (is_var_name(t.text) && peek(1).kind != Tok::LBrack)
      fail(t.pos, fmt::format("index variable '{}' cannot be used as a value; use its rank's extent ('{}') or a tensor",
                              t.text, std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>(t.text[0])))) + std::string(t.text.substr(1))));
    n.kind = Expr::Kind::Ref;
    n.ref = ref(false);
    return n;
  }

  ExtentExpr extent_sum(int depth) {
    if (depth > kMaxDepth) fail(peek().pos, "expression nested too deeply");
    ExtentExpr l = extent_product(depth);
    while (peek().kind == Tok::Plus || peek().kind == Tok::Minus) {
      const Token op = next();
      if (++depth > kMaxDepth) fail(op.pos, "expression nested too deeply");  // a left-deep chain is as deep as it is long
      ExtentExpr n;
      n.kind = op.kind == Tok::Plus ? ExtentExpr::Kind::Add : ExtentExpr::Kind::Sub;
      n.pos = op.pos;
      n.kids.push_back(std::move(l));
      n.kids.push_back(extent_product(depth));
      l = std::move(n);
    }
    return l;
  }
  ExtentExpr extent_product(int depth) {
    ExtentExpr l = extent_atom(depth);
    while (peek().kind == Tok::Star || peek().kind == Tok::Slash) {
      const Token op = next();
      if (++depth > kMaxDepth) fail(op.pos, "expression nested too deeply");
      ExtentExpr n;
      n.kind = op.kind == Tok::Star ? ExtentExpr::Kind::Mul : ExtentExpr::Kind::Div;
      n.pos = op.pos;
      n.kids.push_back(std::move(l));
      n.kids.push_back(extent_atom(depth));
      l = std::move(n);
    }
    return l;
  }
  ExtentExpr extent_atom(int depth) {
    const Token t = next();
    ExtentExpr n;
    n.pos = t.pos;
    if (t.kind == Tok::Number) {
      n.value = integer(t);
      return n;
    }
    if (t.kind == Tok::Ident) {
      n.kind = ExtentExpr::Kind::Name;
      n.name = std::string(t.text);
      return n;
    }
    if (t.kind == Tok::LParen) {
      ExtentExpr inner = extent_sum(depth + 1);
      expect(Tok::RParen, "')'");
      return inner;
    }
    fail(t.pos, fmt::format("expected an integer, a parameter or a rank, found '{}'", t.text));
  }

  std::string_view text_;
  SourceLoc loc_;
  std::vector<Token> toks_;
  size_t cur_ = 0;
  int depth_ = 0;
};

}  // namespace

EinsumAst parse_einsum(std::string_view text, const SourceLoc& loc) { return Parser(text, loc).einsum(); }

ExtentExpr parse_extent_expr(std::string_view text, const SourceLoc& loc) { return Parser(text, loc).extent(); }

std::string_view func_name(Func f) {
  for (const auto& fi : kFuncs)
    if (fi.func == f) return fi.name;
  return "?";
}

std::string_view reduce_name(Reduce r) {
  switch (r) {
    case Reduce::Sum: return "sum";
    case Reduce::Max: return "max";
    case Reduce::Min: return "min";
  }
  return "?";
}

bool is_var_name(std::string_view s) { return !s.empty() && std::islower(static_cast<unsigned char>(s[0])); }

}  // namespace einsim
