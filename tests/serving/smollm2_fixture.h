// A test fixture with the real SmolLM2 file loaded: model, tokenizer, a
// two-thread context, and helpers for prompts and greedy options. Skips (or,
// in CI, fails) when the model is not installed.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/tokenizer/tokenizer.h"
#include "serving/engine/session.h"
#include "tests/test_util.h"

namespace atrium::testing {

class SmolLm2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
    auto model = Model::Load(path);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = std::move(*model);
    auto tok = Tokenizer::FromGguf(model_->file());
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tokenizer_ = std::move(*tok);
  }

  static GenerationOptions Greedy(int max_tokens, bool ignore_eos = false) {
    GenerationOptions o;
    o.sampling.temperature = 0;
    o.max_tokens = max_tokens;
    o.ignore_eos = ignore_eos;
    return o;
  }

  std::vector<int32_t> Prompt(const std::string& text) { return tokenizer_->Encode(text, true, false); }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ops::Context ctx_{2};
};

}  // namespace atrium::testing
