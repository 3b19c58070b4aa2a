// Lexing and parsing of the Jinja subset (see jinja.h).
#include <cctype>
#include <cstdlib>

#include "models/tokenizer/jinja.h"
#include "models/tokenizer/jinja_ast.h"

namespace atrium::jinja {

namespace {

Status Error(int line, const std::string& what) {
  return InvalidArgument(StrFormat("chat template: %s at line %d", what.c_str(), line));
}
Status Unsupported(int line, const std::string& construct) {
  return Error(line, "unsupported Jinja construct '" + construct + "'");
}

// ---- Template text -> text / {{ }} / {% %} segments, whitespace control applied.

struct Segment {
  enum class Kind { kText, kExpr, kStmt } kind;
  std::string text;  // literal text, or the code between the delimiters
  int line;
};

int CountLines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

StatusOr<std::vector<Segment>> Lex(std::string_view src) {
  // Strip requests of one tag on the text before / after it.
  struct Strip {
    bool left_all = false, left_block = false, right_all = false, right_newline = false;
  };
  std::vector<Strip> strips;
  std::vector<Segment> out;
  std::vector<std::string> texts;  // texts[k] lies before tags[k]
  std::vector<Segment> tags;

  // Jinja2 drops one trailing newline of the template (keep_trailing_newline off).
  if (!src.empty() && src.back() == '\n') {
    src.remove_suffix(1);
    if (!src.empty() && src.back() == '\r') src.remove_suffix(1);
  }
  size_t pos = 0;
  int line = 1;
  while (true) {
    size_t open = src.find('{', pos);
    while (open != std::string_view::npos && open + 1 < src.size() && src[open + 1] != '{' &&
           src[open + 1] != '%' && src[open + 1] != '#') {
      open = src.find('{', open + 1);
    }
    if (open == std::string_view::npos || open + 1 >= src.size()) {
      texts.emplace_back(src.substr(pos));
      break;
    }
    texts.emplace_back(src.substr(pos, open - pos));
    line += CountLines(src.substr(pos, open - pos));
    const char kind = src[open + 1];
    const int tag_line = line;
    const char close_char = kind == '{' ? '}' : kind == '%' ? '%' : '#';
    Strip st;
    size_t i = open + 2;
    if (i < src.size() && src[i] == '-') {
      st.left_all = true;
      ++i;
    } else if (i < src.size() && src[i] == '+') {
      ++i;
    } else if (kind != '{') {
      st.left_block = true;  // lstrip_blocks
    }
    // Find the closing delimiter, skipping string literals in code.
    size_t j = i;
    char quote = 0;
    for (; j + 1 < src.size(); ++j) {
      const char c = src[j];
      if (kind != '#') {
        if (quote) {
          if (c == '\\') {
            ++j;
          } else if (c == quote) {
            quote = 0;
          }
          continue;
        }
        if (c == '\'' || c == '"') {
          quote = c;
          continue;
        }
      }
      if (c == close_char && src[j + 1] == '}') break;
    }
    if (j + 1 >= src.size()) {
      return Error(tag_line, kind == '{' ? "'{{' is never closed" : kind == '%' ? "'{%' is never closed"
                                                                                : "'{#' is never closed");
    }
    size_t code_end = j;
    if (code_end > i && src[code_end - 1] == '-') {
      st.right_all = true;
      --code_end;
    } else if (code_end > i && src[code_end - 1] == '+') {
      --code_end;
    } else if (kind != '{') {
      st.right_newline = true;  // trim_blocks
    }
    line += CountLines(src.substr(open, j + 2 - open));
    const std::string code(src.substr(i, code_end - i));
    tags.push_back({kind == '{' ? Segment::Kind::kExpr : Segment::Kind::kStmt,
                    kind == '#' ? std::string("#") : code, tag_line});
    strips.push_back(st);
    pos = j + 2;
  }

  // Whitespace control, decided on the source text as Jinja2 does (a trimmed
  // newline still counts as the line start for lstrip_blocks).
  std::vector<size_t> cut_front(texts.size(), 0), cut_back(texts.size(), 0);
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  for (size_t k = 0; k < tags.size(); ++k) {
    const std::string& before = texts[k];
    const std::string& after = texts[k + 1];
    const Strip& st = strips[k];
    if (st.left_all) {
      size_t e = before.size();
      while (e > 0 && is_space(before[e - 1])) --e;
      cut_back[k] = before.size() - e;
    } else if (st.left_block) {
      size_t e = before.size();
      while (e > 0 && (before[e - 1] == ' ' || before[e - 1] == '\t')) --e;
      // Only when the tag starts its line.
      if ((e > 0 && before[e - 1] == '\n') || (e == 0 && k == 0)) cut_back[k] = before.size() - e;
    }
    if (st.right_all) {
      size_t b = 0;
      while (b < after.size() && is_space(after[b])) ++b;
      cut_front[k + 1] = b;
    } else if (st.right_newline) {
      if (!after.empty() && after[0] == '\n') {
        cut_front[k + 1] = 1;
      } else if (after.size() >= 2 && after[0] == '\r' && after[1] == '\n') {
        cut_front[k + 1] = 2;
      }
    }
  }
  for (size_t k = 0; k < texts.size(); ++k) {
    const size_t n = texts[k].size();
    if (cut_front[k] + cut_back[k] >= n) {
      texts[k].clear();
    } else {
      texts[k] = texts[k].substr(cut_front[k], n - cut_front[k] - cut_back[k]);
    }
  }
  for (size_t k = 0; k < texts.size(); ++k) {
    if (!texts[k].empty()) out.push_back({Segment::Kind::kText, texts[k], 0});
    if (k < tags.size() && tags[k].text != "#") out.push_back(tags[k]);
  }
  return out;
}

// ---- Code (inside a tag) -> tokens.

struct Tok {
  enum class Kind { kName, kString, kInt, kOp, kEnd } kind;
  std::string text;
};

StatusOr<std::vector<Tok>> LexCode(const std::string& code, int line) {
  std::vector<Tok> toks;
  size_t i = 0;
  while (i < code.size()) {
    const char c = code[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < code.size() && (std::isalnum(static_cast<unsigned char>(code[j])) || code[j] == '_')) ++j;
      toks.push_back({Tok::Kind::kName, code.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < code.size() && std::isdigit(static_cast<unsigned char>(code[j]))) ++j;
      if (j < code.size() && (code[j] == '.' || code[j] == 'e' || code[j] == 'E')) {
        return Unsupported(line, "floating-point literal");
      }
      toks.push_back({Tok::Kind::kInt, code.substr(i, j - i)});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string s;
      size_t j = i + 1;
      for (; j < code.size() && code[j] != c; ++j) {
        if (code[j] != '\\' || j + 1 >= code.size()) {
          s.push_back(code[j]);
          continue;
        }
        const char e = code[++j];
        switch (e) {
          case 'n': s.push_back('\n'); break;
          case 't': s.push_back('\t'); break;
          case 'r': s.push_back('\r'); break;
          case '\\': s.push_back('\\'); break;
          case '\'': s.push_back('\''); break;
          case '"': s.push_back('"'); break;
          default: return Unsupported(line, std::string("string escape \\") + e);
        }
      }
      if (j >= code.size()) return Error(line, "unterminated string literal");
      toks.push_back({Tok::Kind::kString, s});
      i = j + 1;
    } else {
      static const char* kOps[] = {"==", "!=", "<=", ">=", "//", "**", "<", ">", "+", "-", "*",
                                   "/",  "%",  "~",  "|",  ".",  ",",  ":", "(", ")", "[", "]",
                                   "{",  "}",  "="};
      bool matched = false;
      for (const char* op : kOps) {
        const size_t n = std::char_traits<char>::length(op);
        if (code.compare(i, n, op) == 0) {
          toks.push_back({Tok::Kind::kOp, op});
          i += n;
          matched = true;
          break;
        }
      }
      if (!matched) return Error(line, std::string("unexpected character '") + c + "'");
    }
  }
  toks.push_back({Tok::Kind::kEnd, ""});
  return toks;
}

// ---- Expression parser (Jinja2's precedence).

class ExprParser {
 public:
  ExprParser(std::vector<Tok> toks, int line) : toks_(std::move(toks)), line_(line) {}

  bool AtEnd() const { return Peek().kind == Tok::Kind::kEnd; }
  const Tok& Peek(size_t k = 0) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  bool IsOp(const char* op) const { return Peek().kind == Tok::Kind::kOp && Peek().text == op; }
  bool IsName(const char* n) const { return Peek().kind == Tok::Kind::kName && Peek().text == n; }
  Tok Next() { return toks_[std::min(pos_++, toks_.size() - 1)]; }
  Status Expect(const char* op) {
    if (!IsOp(op)) return Error(line_, StrFormat("expected '%s' but found '%s'", op, Peek().text.c_str()));
    ++pos_;
    return OkStatus();
  }
  StatusOr<std::string> ExpectName() {
    if (Peek().kind != Tok::Kind::kName) return Error(line_, "expected a name but found '" + Peek().text + "'");
    return Next().text;
  }
  Status ExpectEnd() {
    if (!AtEnd()) return Error(line_, "unexpected '" + Peek().text + "'");
    return OkStatus();
  }

  using P = std::unique_ptr<Expr>;
  // Without a trailing `if`: a for loop's iterable, where `if` starts a filter.
  StatusOr<P> NoCondExpression() { return Or(); }
  StatusOr<P> Expression() {
    ASSIGN_OR_RETURN(P e, Or());
    if (!IsName("if")) return e;
    Next();
    ASSIGN_OR_RETURN(P cond, Or());
    P otherwise;
    if (IsName("else")) {
      Next();
      ASSIGN_OR_RETURN(otherwise, Expression());
    }
    return Make(Expr::Kind::kTernary, "", std::move(e), std::move(cond), std::move(otherwise));
  }

 private:
  P Make(Expr::Kind kind, std::string name, P a = nullptr, P b = nullptr, P c = nullptr) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line_;
    e->name = std::move(name);
    if (a || b || c) e->args.push_back(std::move(a));
    if (b || c) e->args.push_back(std::move(b));
    if (c) e->args.push_back(std::move(c));
    return e;
  }

  StatusOr<P> Or() {
    ASSIGN_OR_RETURN(P l, And());
    while (IsName("or")) {
      Next();
      ASSIGN_OR_RETURN(P r, And());
      l = Make(Expr::Kind::kOr, "", std::move(l), std::move(r));
    }
    return l;
  }
  StatusOr<P> And() {
    ASSIGN_OR_RETURN(P l, Not());
    while (IsName("and")) {
      Next();
      ASSIGN_OR_RETURN(P r, Not());
      l = Make(Expr::Kind::kAnd, "", std::move(l), std::move(r));
    }
    return l;
  }
  StatusOr<P> Not() {
    if (IsName("not")) {
      Next();
      ASSIGN_OR_RETURN(P e, Not());
      return Make(Expr::Kind::kNot, "", std::move(e));
    }
    return Compare();
  }
  StatusOr<P> Compare() {
    ASSIGN_OR_RETURN(P l, Math1());
    while (true) {
      std::string op;
      bool negate = false;
      if (Peek().kind == Tok::Kind::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">="))) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && Peek(1).kind == Tok::Kind::kName && Peek(1).text == "in") {
        Next();
        Next();
        op = "in";
        negate = true;
      } else {
        return l;
      }
      ASSIGN_OR_RETURN(P r, Math1());
      l = Make(Expr::Kind::kBinary, op, std::move(l), std::move(r));
      l->negate = negate;
    }
  }
  StatusOr<P> Math1() {
    ASSIGN_OR_RETURN(P l, Concat());
    while (IsOp("+") || IsOp("-")) {
      const std::string op = Next().text;
      ASSIGN_OR_RETURN(P r, Concat());
      l = Make(Expr::Kind::kBinary, op, std::move(l), std::move(r));
    }
    return l;
  }
  StatusOr<P> Concat() {
    ASSIGN_OR_RETURN(P l, Math2());
    while (IsOp("~")) {
      Next();
      ASSIGN_OR_RETURN(P r, Math2());
      l = Make(Expr::Kind::kBinary, "~", std::move(l), std::move(r));
    }
    return l;
  }
  StatusOr<P> Math2() {
    ASSIGN_OR_RETURN(P l, Unary());
    while (IsOp("*") || IsOp("//") || IsOp("%") || IsOp("/") || IsOp("**")) {
      if (IsOp("/") || IsOp("**")) return Unsupported(line_, "operator " + Peek().text);
      const std::string op = Next().text;
      ASSIGN_OR_RETURN(P r, Unary());
      l = Make(Expr::Kind::kBinary, op, std::move(l), std::move(r));
    }
    return l;
  }
  StatusOr<P> Unary() {
    if (IsOp("-")) {
      Next();
      ASSIGN_OR_RETURN(P e, Unary());
      return Make(Expr::Kind::kNeg, "", std::move(e));
    }
    if (IsOp("+")) {
      Next();
      return Unary();
    }
    ASSIGN_OR_RETURN(P e, Primary());
    ASSIGN_OR_RETURN(e, Postfix(std::move(e)));
    // Filters and tests bind tighter than arithmetic and comparisons.
    while (true) {
      if (IsOp("|")) {
        Next();
        ASSIGN_OR_RETURN(std::string name, ExpectName());
        if (name != "trim" && name != "length" && name != "count") {
          return Unsupported(line_, "filter '" + name + "'");
        }
        if (IsOp("(")) return Unsupported(line_, "arguments to filter '" + name + "'");
        e = Make(Expr::Kind::kFilter, name == "count" ? "length" : name, std::move(e));
      } else if (IsName("is")) {
        Next();
        bool negate = false;
        if (IsName("not")) {
          Next();
          negate = true;
        }
        ASSIGN_OR_RETURN(std::string name, ExpectName());
        static const char* kTests[] = {"defined", "undefined", "none",     "string",  "number",
                                       "boolean", "iterable",  "sequence", "mapping", "integer"};
        bool known = false;
        for (const char* t : kTests) known = known || name == t;
        if (!known) return Unsupported(line_, "test '" + name + "'");
        if (IsOp("(") || Peek().kind == Tok::Kind::kString || Peek().kind == Tok::Kind::kInt) {
          return Unsupported(line_, "arguments to test '" + name + "'");
        }
        e = Make(Expr::Kind::kTest, name, std::move(e));
        e->negate = negate;
      } else {
        return e;
      }
    }
  }
  StatusOr<P> Primary() {
    const Tok t = Next();
    switch (t.kind) {
      case Tok::Kind::kString: {
        std::string s = t.text;
        while (Peek().kind == Tok::Kind::kString) s += Next().text;  // adjacent literals join
        auto e = Make(Expr::Kind::kLiteral, "");
        e->literal = Value::String(std::move(s));
        return e;
      }
      case Tok::Kind::kInt: {
        auto e = Make(Expr::Kind::kLiteral, "");
        e->literal = Value::Int(std::strtoll(t.text.c_str(), nullptr, 10));
        return e;
      }
      case Tok::Kind::kName: {
        auto e = Make(Expr::Kind::kLiteral, "");
        if (t.text == "true" || t.text == "True") {
          e->literal = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::None();
        } else if (IsOp("(")) {
          if (t.text != "raise_exception") return Unsupported(line_, "function '" + t.text + "'");
          Next();
          e = Make(Expr::Kind::kCall, t.text);
          while (!IsOp(")")) {
            ASSIGN_OR_RETURN(P arg, Expression());
            e->args.push_back(std::move(arg));
            if (!IsOp(")")) RETURN_IF_ERROR(Expect(","));
          }
          Next();
          if (e->args.size() != 1) return Error(line_, "raise_exception takes one argument");
        } else {
          e = Make(Expr::Kind::kName, t.text);
        }
        return e;
      }
      case Tok::Kind::kOp:
        if (t.text == "(") {
          ASSIGN_OR_RETURN(P e, Expression());
          if (IsOp(",")) return Unsupported(line_, "tuple");
          RETURN_IF_ERROR(Expect(")"));
          return e;
        }
        if (t.text == "[") {
          auto e = Make(Expr::Kind::kList, "");
          while (!IsOp("]")) {
            ASSIGN_OR_RETURN(P item, Expression());
            e->args.push_back(std::move(item));
            if (!IsOp("]")) RETURN_IF_ERROR(Expect(","));
          }
          Next();
          return e;
        }
        if (t.text == "{") return Unsupported(line_, "dict literal");
        return Error(line_, "unexpected '" + t.text + "'");
      case Tok::Kind::kEnd:
        return Error(line_, "unexpected end of expression");
    }
    return Error(line_, "unexpected token");
  }
  StatusOr<P> Postfix(P e) {
    while (true) {
      if (IsOp(".")) {
        Next();
        ASSIGN_OR_RETURN(std::string name, ExpectName());
        if (IsOp("(")) return Unsupported(line_, "method call ." + name + "()");
        e = Make(Expr::Kind::kAttr, name, std::move(e));
      } else if (IsOp("[")) {
        Next();
        P start, stop;
        if (!IsOp(":")) {
          ASSIGN_OR_RETURN(start, Expression());
        }
        if (IsOp(":")) {
          Next();
          if (!IsOp("]")) {
            ASSIGN_OR_RETURN(stop, Expression());
          }
          if (IsOp(":")) return Unsupported(line_, "slice step");
          RETURN_IF_ERROR(Expect("]"));
          auto s = std::make_unique<Expr>();
          s->kind = Expr::Kind::kSlice;
          s->line = line_;
          s->args.push_back(std::move(e));
          s->args.push_back(std::move(start));
          s->args.push_back(std::move(stop));
          e = std::move(s);
        } else {
          RETURN_IF_ERROR(Expect("]"));
          e = Make(Expr::Kind::kItem, "", std::move(e), std::move(start));
        }
      } else if (IsOp("(")) {
        return Unsupported(line_, "call of an expression");
      } else {
        return e;
      }
    }
  }

  std::vector<Tok> toks_;
  size_t pos_ = 0;
  int line_;
};

// ---- Statements.

class BlockParser {
 public:
  explicit BlockParser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  // Parses nodes until a statement whose keyword is in `ends` (returned in
  // *end_keyword with its parser), or the end of the template.
  Status ParseBody(std::vector<Node>* out, const std::vector<std::string>& ends,
                   std::string* end_keyword, std::unique_ptr<ExprParser>* end_parser) {
    while (pos_ < segs_.size()) {
      const Segment& seg = segs_[pos_++];
      if (seg.kind == Segment::Kind::kText) {
        Node n;
        n.kind = Node::Kind::kText;
        n.text = seg.text;
        out->push_back(std::move(n));
        continue;
      }
      ASSIGN_OR_RETURN(std::vector<Tok> toks, LexCode(seg.text, seg.line));
      auto p = std::make_unique<ExprParser>(std::move(toks), seg.line);
      if (seg.kind == Segment::Kind::kExpr) {
        Node n;
        n.kind = Node::Kind::kOutput;
        n.line = seg.line;
        ASSIGN_OR_RETURN(n.expr, p->Expression());
        RETURN_IF_ERROR(p->ExpectEnd());
        out->push_back(std::move(n));
        continue;
      }
      if (p->Peek().kind != Tok::Kind::kName) return Error(seg.line, "expected a statement keyword");
      const std::string kw = p->Next().text;
      for (const std::string& e : ends) {
        if (kw == e) {
          *end_keyword = kw;
          *end_parser = std::move(p);
          return OkStatus();
        }
      }
      if (kw == "if") {
        RETURN_IF_ERROR(ParseIf(p.get(), seg.line, out));
      } else if (kw == "for") {
        RETURN_IF_ERROR(ParseFor(p.get(), seg.line, out));
      } else if (kw == "set") {
        Node n;
        n.kind = Node::Kind::kSet;
        n.line = seg.line;
        ASSIGN_OR_RETURN(n.text, p->ExpectName());
        if (p->IsOp(".")) return Unsupported(seg.line, "set of an attribute (namespace)");
        if (p->IsOp(",")) return Unsupported(seg.line, "set of a tuple");
        if (!p->IsOp("=")) return Unsupported(seg.line, "set block");
        p->Next();
        ASSIGN_OR_RETURN(n.expr, p->Expression());
        RETURN_IF_ERROR(p->ExpectEnd());
        out->push_back(std::move(n));
      } else if (kw == "endif" || kw == "endfor" || kw == "elif" || kw == "else") {
        return Error(seg.line, "unexpected '" + kw + "'");
      } else {
        return Unsupported(seg.line, kw);
      }
    }
    if (!ends.empty()) return Error(segs_.empty() ? 1 : segs_.back().line, "missing '" + ends.back() + "'");
    return OkStatus();
  }

 private:
  Status ParseIf(ExprParser* p, int line, std::vector<Node>* out) {
    Node n;
    n.kind = Node::Kind::kIf;
    n.line = line;
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> cond, p->Expression());
    RETURN_IF_ERROR(p->ExpectEnd());
    while (true) {
      std::vector<Node> body;
      std::string end;
      std::unique_ptr<ExprParser> ep;
      RETURN_IF_ERROR(ParseBody(&body, {"elif", "else", "endif"}, &end, &ep));
      n.conditions.push_back(std::move(cond));
      n.branches.push_back(std::move(body));
      if (end == "endif") {
        RETURN_IF_ERROR(ep->ExpectEnd());
        break;
      }
      if (end == "elif") {
        ASSIGN_OR_RETURN(cond, ep->Expression());
        RETURN_IF_ERROR(ep->ExpectEnd());
        continue;
      }
      // else: the last branch.
      RETURN_IF_ERROR(ep->ExpectEnd());
      std::vector<Node> else_body;
      RETURN_IF_ERROR(ParseBody(&else_body, {"endif"}, &end, &ep));
      RETURN_IF_ERROR(ep->ExpectEnd());
      n.conditions.push_back(nullptr);
      n.branches.push_back(std::move(else_body));
      break;
    }
    out->push_back(std::move(n));
    return OkStatus();
  }

  Status ParseFor(ExprParser* p, int line, std::vector<Node>* out) {
    Node n;
    n.kind = Node::Kind::kFor;
    n.line = line;
    ASSIGN_OR_RETURN(n.text, p->ExpectName());
    if (p->IsOp(",")) return Unsupported(line, "for with several targets");
    if (!p->IsName("in")) return Error(line, "expected 'in' in for");
    p->Next();
    ASSIGN_OR_RETURN(n.expr, p->NoCondExpression());
    if (p->IsName("if")) return Unsupported(line, "for ... if filter");
    if (p->IsName("recursive")) return Unsupported(line, "recursive for");
    RETURN_IF_ERROR(p->ExpectEnd());
    std::string end;
    std::unique_ptr<ExprParser> ep;
    RETURN_IF_ERROR(ParseBody(&n.body, {"else", "endfor"}, &end, &ep));
    if (end == "else") return Unsupported(line, "for ... else");
    RETURN_IF_ERROR(ep->ExpectEnd());
    out->push_back(std::move(n));
    return OkStatus();
  }

  std::vector<Segment> segs_;
  size_t pos_ = 0;
};

}  // namespace

Template::Template() = default;
Template::~Template() = default;

StatusOr<std::shared_ptr<const Template>> Template::Parse(std::string_view source) {
  ASSIGN_OR_RETURN(std::vector<Segment> segs, Lex(source));
  BlockParser parser(std::move(segs));
  auto body = std::make_unique<std::vector<Node>>();
  std::string end;
  std::unique_ptr<ExprParser> ep;
  RETURN_IF_ERROR(parser.ParseBody(body.get(), {}, &end, &ep));
  std::shared_ptr<Template> t(new Template());
  t->body_ = std::move(body);
  return std::shared_ptr<const Template>(std::move(t));
}

}  // namespace atrium::jinja
