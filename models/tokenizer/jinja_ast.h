// The parsed form of a template (internal to jinja_parse.cc / jinja_eval.cc).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/tokenizer/jinja.h"

namespace atrium::jinja {

struct Expr {
  enum class Kind {
    kLiteral,   // literal
    kList,      // args: items
    kName,      // name
    kAttr,      // args[0].name
    kItem,      // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]]; a null arg is omitted
    kNot,       // not args[0]
    kNeg,       // -args[0]
    kBinary,    // args[0] op args[1]: + - * // % ~ == != < <= > >= in
    kAnd,       // args[0] and args[1]
    kOr,        // args[0] or args[1]
    kTernary,   // args[0] if args[1] else args[2] (args[2] may be null)
    kFilter,    // args[0] | name
    kTest,      // args[0] is [not] name
    kCall,      // name(args...)
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;  // kName, kAttr, kFilter, kTest, kCall; operator for kBinary
  bool negate = false;  // kTest "is not", kBinary "not in"
  std::vector<std::unique_ptr<Expr>> args;
};

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;             // kText; kSet / kFor target name
  std::unique_ptr<Expr> expr;   // kOutput, kSet value, kFor iterable
  // kIf: one branch per if / elif / else (condition null for else).
  std::vector<std::unique_ptr<Expr>> conditions;
  std::vector<std::vector<Node>> branches;
  std::vector<Node> body;       // kFor
};

}  // namespace atrium::jinja
