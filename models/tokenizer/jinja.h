// A small Jinja2 subset for chat templates: enough for SmolLM2's and Gemma 3's
// published templates, and strict everywhere else. A construct outside the
// subset fails when the template is parsed, naming the construct and its
// line, so a template is either rendered exactly as Jinja2 would (with
// Hugging Face's trim_blocks + lstrip_blocks settings) or refused.
//
// Statements: for / endfor (loop.index, index0, revindex, revindex0, first,
// last, length), if / elif / else / endif, set name = expr; comments;
// whitespace control with '-' and '+'.
// Expressions: string / integer / true / false / none literals, list
// literals, names, attribute and item access, slices, + - * // % ~,
// == != < <= > >=, in / not in, and / or / not, `a if c else b`, filters
// trim and length, tests defined / undefined / none / string / number /
// boolean / iterable / sequence / mapping, and the function raise_exception.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace atrium::jinja {

class Value {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kString, kList, kDict };
  using List = std::vector<Value>;
  using Dict = std::map<std::string, Value, std::less<>>;

  Value() = default;  // undefined
  static Value None() { return Value(Type::kNone); }
  static Value Bool(bool b) {
    Value v(Type::kBool);
    v.int_ = b;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Type::kInt);
    v.int_ = i;
    return v;
  }
  static Value String(std::string s) {
    Value v(Type::kString);
    v.str_ = std::make_shared<const std::string>(std::move(s));
    return v;
  }
  static Value MakeList(List items) {
    Value v(Type::kList);
    v.list_ = std::make_shared<const List>(std::move(items));
    return v;
  }
  static Value MakeDict(Dict items) {
    Value v(Type::kDict);
    v.dict_ = std::make_shared<const Dict>(std::move(items));
    return v;
  }

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }
  const std::string& str() const { return *str_; }
  const List& list() const { return *list_; }
  const Dict& dict() const { return *dict_; }

 private:
  explicit Value(Type t) : type_(t) {}
  Type type_ = Type::kUndefined;
  int64_t int_ = 0;
  std::shared_ptr<const std::string> str_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<const Dict> dict_;
};

struct Node;

class Template {
 public:
  // INVALID_ARGUMENT with "line N" for syntax errors and unsupported constructs.
  static StatusOr<std::shared_ptr<const Template>> Parse(std::string_view source);
  ~Template();

  // Renders with the given global variables. raise_exception(msg) in the
  // template and type errors come back as INVALID_ARGUMENT.
  StatusOr<std::string> Render(const Value::Dict& globals) const;

 private:
  Template();
  std::unique_ptr<std::vector<Node>> body_;
};

}  // namespace atrium::jinja
