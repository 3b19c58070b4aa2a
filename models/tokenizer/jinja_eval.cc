// Evaluation of the parsed Jinja subset (see jinja.h), with Python / Jinja2
// semantics for the values chat templates use.
#include <algorithm>

#include "models/tokenizer/jinja.h"
#include "models/tokenizer/jinja_ast.h"
#include "models/tokenizer/unicode.h"

namespace atrium::jinja {

namespace {

using Type = Value::Type;

Status RuntimeError(int line, const std::string& what) {
  return InvalidArgument(StrFormat("chat template: %s at line %d", what.c_str(), line));
}

const char* TypeName(const Value& v) {
  switch (v.type()) {
    case Type::kUndefined: return "undefined";
    case Type::kNone: return "none";
    case Type::kBool: return "boolean";
    case Type::kInt: return "integer";
    case Type::kString: return "string";
    case Type::kList: return "list";
    case Type::kDict: return "dict";
  }
  return "?";
}

bool Truthy(const Value& v) {
  switch (v.type()) {
    case Type::kUndefined:
    case Type::kNone: return false;
    case Type::kBool:
    case Type::kInt: return v.as_int() != 0;
    case Type::kString: return !v.str().empty();
    case Type::kList: return !v.list().empty();
    case Type::kDict: return !v.dict().empty();
  }
  return false;
}

StatusOr<std::string> ToString(const Value& v, int line) {
  switch (v.type()) {
    case Type::kUndefined: return std::string();
    case Type::kNone: return std::string("None");
    case Type::kBool: return std::string(v.as_bool() ? "True" : "False");
    case Type::kInt: return std::to_string(v.as_int());
    case Type::kString: return v.str();
    case Type::kList:
    case Type::kDict: break;
  }
  return RuntimeError(line, StrFormat("printing a %s is not supported", TypeName(v)));
}

bool IsNumber(const Value& v) { return v.type() == Type::kInt || v.type() == Type::kBool; }

bool Equal(const Value& a, const Value& b) {
  if (IsNumber(a) && IsNumber(b)) return a.as_int() == b.as_int();
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::kUndefined:
    case Type::kNone: return true;
    case Type::kString: return a.str() == b.str();
    case Type::kList:
      if (a.list().size() != b.list().size()) return false;
      for (size_t i = 0; i < a.list().size(); ++i) {
        if (!Equal(a.list()[i], b.list()[i])) return false;
      }
      return true;
    case Type::kDict: {
      if (a.dict().size() != b.dict().size()) return false;
      for (const auto& [k, v] : a.dict()) {
        const auto it = b.dict().find(k);
        if (it == b.dict().end() || !Equal(v, it->second)) return false;
      }
      return true;
    }
    default: return false;
  }
}

// Python's str.isspace() set, which str.strip() (Jinja's trim) removes.
bool IsPySpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string Trim(const std::string& s) {
  const std::vector<uint32_t> cpts = tok::DecodeUtf8(s);
  size_t b = 0, e = cpts.size();
  while (b < e && IsPySpace(cpts[b])) ++b;
  while (e > b && IsPySpace(cpts[e - 1])) --e;
  std::string out;
  for (size_t i = b; i < e; ++i) tok::AppendUtf8(cpts[i], &out);
  return out;
}

// Python slice bounds for a sequence of `n` items.
void SliceBounds(int64_t n, const Value* start, const Value* stop, int64_t* b, int64_t* e) {
  auto clamp = [n](int64_t i) {
    if (i < 0) i += n;
    return std::clamp<int64_t>(i, 0, n);
  };
  *b = start ? clamp(start->as_int()) : 0;
  *e = stop ? clamp(stop->as_int()) : n;
  if (*e < *b) *e = *b;
}

class Evaluator {
 public:
  explicit Evaluator(const Value::Dict& globals) { scopes_.push_back(globals); }

  Status Run(const std::vector<Node>& nodes, std::string* out) {
    for (const Node& n : nodes) RETURN_IF_ERROR(Exec(n, out));
    return OkStatus();
  }

 private:
  Status Exec(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::Kind::kText:
        out->append(n.text);
        return OkStatus();
      case Node::Kind::kOutput: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        ASSIGN_OR_RETURN(std::string s, ToString(v, n.line));
        out->append(s);
        return OkStatus();
      }
      case Node::Kind::kSet: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        scopes_.back()[n.text] = std::move(v);
        return OkStatus();
      }
      case Node::Kind::kIf:
        for (size_t i = 0; i < n.branches.size(); ++i) {
          bool take = true;
          if (n.conditions[i]) {
            ASSIGN_OR_RETURN(Value c, Eval(*n.conditions[i]));
            take = Truthy(c);
          }
          if (take) return Run(n.branches[i], out);
        }
        return OkStatus();
      case Node::Kind::kFor: {
        ASSIGN_OR_RETURN(Value seq, Eval(*n.expr));
        Value::List items;
        if (seq.type() == Type::kList) {
          items = seq.list();
        } else if (seq.type() == Type::kString) {
          for (uint32_t c : tok::DecodeUtf8(seq.str())) {
            std::string ch;
            tok::AppendUtf8(c, &ch);
            items.push_back(Value::String(std::move(ch)));
          }
        } else if (seq.type() != Type::kUndefined) {
          return RuntimeError(n.line, StrFormat("cannot loop over a %s", TypeName(seq)));
        }
        // Variables set inside the loop stay inside it, as in Jinja2.
        scopes_.emplace_back();
        const int64_t len = static_cast<int64_t>(items.size());
        Status status;
        for (int64_t i = 0; i < len && status.ok(); ++i) {
          Value::Dict loop = {
              {"index0", Value::Int(i)},        {"index", Value::Int(i + 1)},
              {"revindex0", Value::Int(len - i - 1)}, {"revindex", Value::Int(len - i)},
              {"first", Value::Bool(i == 0)},   {"last", Value::Bool(i == len - 1)},
              {"length", Value::Int(len)},
          };
          if (i > 0) loop["previtem"] = items[i - 1];
          if (i + 1 < len) loop["nextitem"] = items[i + 1];
          scopes_.back()["loop"] = Value::MakeDict(std::move(loop));
          scopes_.back()[n.text] = items[i];
          status = Run(n.body, out);
        }
        scopes_.pop_back();
        return status;
      }
    }
    return OkStatus();
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value();
  }

  StatusOr<Value> Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kList: {
        Value::List items;
        for (const auto& a : e.args) {
          ASSIGN_OR_RETURN(Value v, Eval(*a));
          items.push_back(std::move(v));
        }
        return Value::MakeList(std::move(items));
      }
      case Expr::Kind::kAttr: {
        ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        return Member(obj, Value::String(e.name), e.line);
      }
      case Expr::Kind::kItem: {
        ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        return Member(obj, key, e.line);
      }
      case Expr::Kind::kSlice: return Slice(e);
      case Expr::Kind::kNot: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        return Value::Bool(!Truthy(v));
      }
      case Expr::Kind::kNeg: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (!IsNumber(v)) return RuntimeError(e.line, StrFormat("cannot negate a %s", TypeName(v)));
        return Value::Int(-v.as_int());
      }
      case Expr::Kind::kAnd: {
        ASSIGN_OR_RETURN(Value l, Eval(*e.args[0]));
        if (!Truthy(l)) return l;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kOr: {
        ASSIGN_OR_RETURN(Value l, Eval(*e.args[0]));
        if (Truthy(l)) return l;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kTernary: {
        ASSIGN_OR_RETURN(Value c, Eval(*e.args[1]));
        if (Truthy(c)) return Eval(*e.args[0]);
        if (e.args.size() > 2 && e.args[2]) return Eval(*e.args[2]);
        return Value();
      }
      case Expr::Kind::kBinary: return Binary(e);
      case Expr::Kind::kFilter: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (e.name == "trim") {
          ASSIGN_OR_RETURN(std::string s, ToString(v, e.line));
          return Value::String(Trim(s));
        }
        // length
        switch (v.type()) {
          case Type::kString: return Value::Int(static_cast<int64_t>(tok::DecodeUtf8(v.str()).size()));
          case Type::kList: return Value::Int(static_cast<int64_t>(v.list().size()));
          case Type::kDict: return Value::Int(static_cast<int64_t>(v.dict().size()));
          case Type::kUndefined: return Value::Int(0);
          default: return RuntimeError(e.line, StrFormat("a %s has no length", TypeName(v)));
        }
      }
      case Expr::Kind::kTest: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        const Type t = v.type();
        bool r = false;
        if (e.name == "defined") r = t != Type::kUndefined;
        else if (e.name == "undefined") r = t == Type::kUndefined;
        else if (e.name == "none") r = t == Type::kNone;
        else if (e.name == "string") r = t == Type::kString;
        else if (e.name == "number") r = t == Type::kInt || t == Type::kBool;
        else if (e.name == "integer") r = t == Type::kInt;
        else if (e.name == "boolean") r = t == Type::kBool;
        else if (e.name == "iterable") r = t == Type::kString || t == Type::kList || t == Type::kDict || t == Type::kUndefined;
        else if (e.name == "sequence") r = t == Type::kString || t == Type::kList || t == Type::kDict;
        else if (e.name == "mapping") r = t == Type::kDict;
        return Value::Bool(r != e.negate);
      }
      case Expr::Kind::kCall: {
        // raise_exception(message): the only function.
        ASSIGN_OR_RETURN(Value msg, Eval(*e.args[0]));
        ASSIGN_OR_RETURN(std::string s, ToString(msg, e.line));
        return InvalidArgument("chat template raised an exception: " + s);
      }
    }
    return RuntimeError(e.line, "unknown expression");
  }

  StatusOr<Value> Member(const Value& obj, const Value& key, int line) {
    if (obj.type() == Type::kDict && key.type() == Type::kString) {
      const auto it = obj.dict().find(key.str());
      return it == obj.dict().end() ? Value() : it->second;
    }
    if ((obj.type() == Type::kList || obj.type() == Type::kString) && IsNumber(key)) {
      if (obj.type() == Type::kList) {
        const int64_t n = static_cast<int64_t>(obj.list().size());
        int64_t i = key.as_int();
        if (i < 0) i += n;
        return i >= 0 && i < n ? obj.list()[i] : Value();
      }
      const std::vector<uint32_t> cpts = tok::DecodeUtf8(obj.str());
      const int64_t n = static_cast<int64_t>(cpts.size());
      int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      std::string ch;
      tok::AppendUtf8(cpts[i], &ch);
      return Value::String(std::move(ch));
    }
    if (obj.type() == Type::kUndefined) {
      return RuntimeError(line, "attribute or item of an undefined value");
    }
    return Value();  // Jinja2 gives undefined for a missing attribute
  }

  StatusOr<Value> Slice(const Expr& e) {
    ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
    Value start, stop;
    if (e.args[1]) {
      ASSIGN_OR_RETURN(start, Eval(*e.args[1]));
    }
    if (e.args[2]) {
      ASSIGN_OR_RETURN(stop, Eval(*e.args[2]));
    }
    for (const Value* v : {&start, &stop}) {
      if (!v->is_undefined() && v->type() != Type::kNone && !IsNumber(*v)) {
        return RuntimeError(e.line, "slice bounds must be integers");
      }
    }
    auto bound = [](const Value& v) { return v.is_undefined() || v.type() == Type::kNone ? nullptr : &v; };
    int64_t b, en;
    if (obj.type() == Type::kList) {
      SliceBounds(static_cast<int64_t>(obj.list().size()), bound(start), bound(stop), &b, &en);
      return Value::MakeList(Value::List(obj.list().begin() + b, obj.list().begin() + en));
    }
    if (obj.type() == Type::kString) {
      const std::vector<uint32_t> cpts = tok::DecodeUtf8(obj.str());
      SliceBounds(static_cast<int64_t>(cpts.size()), bound(start), bound(stop), &b, &en);
      std::string s;
      for (int64_t i = b; i < en; ++i) tok::AppendUtf8(cpts[i], &s);
      return Value::String(std::move(s));
    }
    return RuntimeError(e.line, StrFormat("cannot slice a %s", TypeName(obj)));
  }

  StatusOr<Value> Binary(const Expr& e) {
    ASSIGN_OR_RETURN(Value l, Eval(*e.args[0]));
    ASSIGN_OR_RETURN(Value r, Eval(*e.args[1]));
    const std::string& op = e.name;
    if (op == "~") {
      ASSIGN_OR_RETURN(std::string a, ToString(l, e.line));
      ASSIGN_OR_RETURN(std::string b, ToString(r, e.line));
      return Value::String(a + b);
    }
    if (op == "==") return Value::Bool(Equal(l, r));
    if (op == "!=") return Value::Bool(!Equal(l, r));
    if (op == "in") {
      bool found = false;
      if (r.type() == Type::kString && l.type() == Type::kString) {
        found = r.str().find(l.str()) != std::string::npos;
      } else if (r.type() == Type::kList) {
        for (const Value& x : r.list()) found = found || Equal(l, x);
      } else if (r.type() == Type::kDict && l.type() == Type::kString) {
        found = r.dict().count(l.str()) > 0;
      } else {
        return RuntimeError(e.line, StrFormat("'in' on a %s and a %s", TypeName(l), TypeName(r)));
      }
      return Value::Bool(found != e.negate);
    }
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int cmp;
      if (IsNumber(l) && IsNumber(r)) {
        cmp = l.as_int() < r.as_int() ? -1 : l.as_int() > r.as_int() ? 1 : 0;
      } else if (l.type() == Type::kString && r.type() == Type::kString) {
        cmp = l.str().compare(r.str());
      } else {
        return RuntimeError(e.line, StrFormat("cannot compare a %s with a %s", TypeName(l), TypeName(r)));
      }
      const bool res = op == "<" ? cmp < 0 : op == "<=" ? cmp <= 0 : op == ">" ? cmp > 0 : cmp >= 0;
      return Value::Bool(res);
    }
    if (op == "+") {
      if (l.type() == Type::kString && r.type() == Type::kString) return Value::String(l.str() + r.str());
      if (l.type() == Type::kList && r.type() == Type::kList) {
        Value::List items = l.list();
        items.insert(items.end(), r.list().begin(), r.list().end());
        return Value::MakeList(std::move(items));
      }
    }
    if (IsNumber(l) && IsNumber(r)) {
      const int64_t a = l.as_int(), b = r.as_int();
      if (op == "+") return Value::Int(a + b);
      if (op == "-") return Value::Int(a - b);
      if (op == "*") return Value::Int(a * b);
      if (b == 0) return RuntimeError(e.line, "division by zero");
      // Python floors: the result takes the divisor's sign.
      int64_t q = a / b, m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {
        q -= 1;
        m += b;
      }
      return Value::Int(op == "//" ? q : m);
    }
    return RuntimeError(e.line, StrFormat("operator '%s' on a %s and a %s", op.c_str(), TypeName(l), TypeName(r)));
  }

  std::vector<Value::Dict> scopes_;
};

}  // namespace

StatusOr<std::string> Template::Render(const Value::Dict& globals) const {
  Evaluator ev(globals);
  std::string out;
  RETURN_IF_ERROR(ev.Run(*body_, &out));
  return out;
}

}  // namespace atrium::jinja
