#include "models/hf_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

namespace atrium {
namespace {

using nlohmann::json;

// SmolLM2-135M-Instruct's config.json (abridged).
json SmolLm2() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_act": "silu",
    "rms_norm_eps": 1e-05, "rope_theta": 100000, "rope_scaling": null,
    "max_position_embeddings": 8192, "vocab_size": 49152, "tie_word_embeddings": true,
    "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "bfloat16", "pad_token_id": 2, "pretraining_tp": 1})");
}

TEST(HfConfigTest, Llama) {
  auto c = ParseHfConfig(SmolLm2().dump());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->num_hidden_layers, 30);
  EXPECT_EQ(c->num_attention_heads, 9);
  EXPECT_EQ(c->num_key_value_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 100000);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->sliding_window.has_value());
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->rope_scaling_type, "");
}

TEST(HfConfigTest, DefaultsAndNulls) {
  json j = SmolLm2();
  for (const char* k : {"num_key_value_heads", "rope_theta", "max_position_embeddings",
                        "tie_word_embeddings", "hidden_act", "bos_token_id", "eos_token_id"}) {
    j.erase(k);
  }
  j["head_dim"] = nullptr;
  auto c = ParseHfConfig(j.dump());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_key_value_heads, 9);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->bos_token_id.has_value());
  EXPECT_TRUE(c->eos_token_ids.empty());
}

TEST(HfConfigTest, MistralAndQwen2) {
  json m = SmolLm2();
  m["architectures"] = {"MistralForCausalLM"};
  m["sliding_window"] = 4096;
  m["head_dim"] = 128;
  m["eos_token_id"] = {2, 7};
  m["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  auto c = ParseHfConfig(m.dump());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(c->rope_scaling_type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope_scaling_factor, 8.0);

  json q = SmolLm2();
  q["architectures"] = {"Qwen2ForCausalLM"};
  q["use_sliding_window"] = false;
  q["sliding_window"] = 32768;
  c = ParseHfConfig(q.dump());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_FALSE(c->sliding_window.has_value());
  q["use_sliding_window"] = true;
  c = ParseHfConfig(q.dump());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sliding_window, 32768);

  json t = SmolLm2();  // model_type alone identifies the architecture
  t.erase("architectures");
  t["model_type"] = "qwen2";
  c = ParseHfConfig(t.dump());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, "Qwen2ForCausalLM");
}

TEST(HfConfigTest, LoadFile) {
  const std::string path = ::testing::TempDir() + "/hf_config_" + std::to_string(getpid()) + ".json";
  std::ofstream(path) << SmolLm2().dump(2);
  auto c = LoadHfConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->vocab_size, 49152);
  std::ofstream(path) << "{\"hidden_size\": ";
  c = LoadHfConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().rfind(path + ": not valid JSON", 0), 0u) << c.status().message();
  std::filesystem::remove(path);
  EXPECT_EQ(LoadHfConfig(path).status().code(), StatusCode::kNotFound);
}

struct Case {
  const char* what;
  std::function<void(json&)> mutate;
  const char* expected;
};

TEST(HfConfigTest, Malformed) {
  const std::vector<Case> cases = {
      {"hidden_size string", [](json& j) { j["hidden_size"] = "abc"; },
       "config.json: field 'hidden_size' must be a positive integer, got \"abc\""},
      {"hidden_size missing", [](json& j) { j.erase("hidden_size"); },
       "field 'hidden_size' is missing (expected a positive integer)"},
      {"hidden_size zero", [](json& j) { j["hidden_size"] = 0; }, "got 0"},
      {"hidden_size negative", [](json& j) { j["hidden_size"] = -576; }, "got -576"},
      {"hidden_size float", [](json& j) { j["hidden_size"] = 576.5; }, "got 576.5"},
      {"hidden_size bool", [](json& j) { j["hidden_size"] = true; }, "got true"},
      {"hidden_size huge", [](json& j) { j["hidden_size"] = 18446744073709551615ull; },
       "field 'hidden_size' must be a positive integer"},
      {"intermediate_size missing", [](json& j) { j.erase("intermediate_size"); },
       "'intermediate_size' is missing"},
      {"layers list", [](json& j) { j["num_hidden_layers"] = {30}; }, "got [30]"},
      {"heads missing", [](json& j) { j.erase("num_attention_heads"); },
       "'num_attention_heads' is missing"},
      {"kv heads not dividing", [](json& j) { j["num_key_value_heads"] = 4; },
       "'num_key_value_heads' (4) must divide num_attention_heads (9)"},
      {"hidden not multiple of heads", [](json& j) { j["num_attention_heads"] = 7; j.erase("num_key_value_heads"); },
       "'head_dim' is missing and hidden_size (576) is not a multiple"},
      {"head_dim string", [](json& j) { j["head_dim"] = "64"; }, "'head_dim' must be a positive"},
      {"vocab missing", [](json& j) { j.erase("vocab_size"); }, "'vocab_size' is missing"},
      {"eps missing", [](json& j) { j.erase("rms_norm_eps"); },
       "'rms_norm_eps' is missing (expected a positive number)"},
      {"eps negative", [](json& j) { j["rms_norm_eps"] = -1e-5; }, "'rms_norm_eps' must be a positive number"},
      {"eps string", [](json& j) { j["rms_norm_eps"] = "1e-5"; }, "got \"1e-5\""},
      {"rope_theta zero", [](json& j) { j["rope_theta"] = 0; }, "'rope_theta' must be a positive"},
      {"tie not bool", [](json& j) { j["tie_word_embeddings"] = 1; },
       "'tie_word_embeddings' must be true or false, got 1"},
      {"unsupported architecture", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; },
       "'architectures' 'GPT2LMHeadModel' is not supported"},
      {"architectures empty", [](json& j) { j["architectures"] = json::array(); },
       "'architectures' must be a non-empty list"},
      {"architectures string", [](json& j) { j["architectures"] = "LlamaForCausalLM"; },
       "'architectures' must be a non-empty list"},
      {"no architecture", [](json& j) { j.erase("architectures"); j["model_type"] = "gpt2"; },
       "'architectures' is missing"},
      {"model_type number", [](json& j) { j["model_type"] = 3; }, "'model_type' must be a string"},
      {"hidden_act gelu", [](json& j) { j["hidden_act"] = "gelu"; }, "'hidden_act' 'gelu' is not supported"},
      {"sliding_window bad", [](json& j) { j["sliding_window"] = "4k"; }, "'sliding_window' must be"},
      {"rope_scaling list", [](json& j) { j["rope_scaling"] = {1}; }, "'rope_scaling' must be an object"},
      {"rope_scaling no type", [](json& j) { j["rope_scaling"] = {{"factor", 2}}; }, "'rope_type'"},
      {"rope_scaling factor", [](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", "x"}}; },
       "'rope_scaling.factor'"},
      {"bos negative", [](json& j) { j["bos_token_id"] = -1; }, "'bos_token_id' must be"},
      {"eos list bad", [](json& j) { j["eos_token_id"] = {1, "x"}; }, "'eos_token_id' must be"},
      {"attention_bias string", [](json& j) { j["attention_bias"] = "no"; }, "'attention_bias'"},
  };
  for (const Case& c : cases) {
    json j = SmolLm2();
    c.mutate(j);
    auto r = ParseHfConfig(j.dump());
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos)
        << c.what << ": message lacks \"" << c.expected << "\": " << r.status().message();
  }
  for (const char* text : {"", "[]", "{", "{\"a\":}", "null", "3", "{\"hidden_size\": 1} x"}) {
    auto r = ParseHfConfig(text, "cfg.json");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().message().rfind("cfg.json: ", 0), 0u) << r.status().message();
  }
}

}  // namespace
}  // namespace atrium
