// safetensors: writer -> reader round trip, one corrupt header per
// validation class, every truncation, and random mutations.
// `"literal" + std::string` trips a GCC 12 -Wrestrict false positive
// (GCC bug 105329) in the inlined library code; the cases below are built
// that way for readability.
#pragma GCC diagnostic ignored "-Wrestrict"

#include "models/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "models/safetensors_writer.h"


namespace atrium::safetensors {
namespace {

std::vector<uint8_t> Raw(const std::string& header, size_t data_bytes, uint64_t len_override = 0) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0x11);
  const uint64_t len = len_override != 0 ? len_override : header.size();
  std::memcpy(b.data(), &len, 8);
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

StatusOr<std::unique_ptr<SafetensorsFile>> Parse(const std::vector<uint8_t>& bytes) {
  return SafetensorsFile::FromBuffer("m.safetensors", bytes.data(), bytes.size());
}

TEST(SafetensorsTest, RoundTrip) {
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  w.AddF32("model.embed_tokens.weight", DType::kF32, {4, 3}, std::vector<float>(12, 1.5f));
  w.AddF32("model.norm.weight", DType::kBF16, {4}, {1, 2, 3, 4});
  w.AddF32("lm_head.weight", DType::kF16, {2, 5}, std::vector<float>(10, -0.5f));
  w.Add("scalar", DType::kF32, {}, std::vector<uint8_t>(4, 0));
  w.Add("empty", DType::kF32, {0, 4}, {});
  const std::vector<uint8_t> bytes = w.Serialize();
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  EXPECT_EQ(len % 8, 0u);
  auto f = Parse(bytes);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const SafetensorsFile& s = **f;
  EXPECT_EQ(s.data_start(), 8 + len);
  EXPECT_EQ(s.tensors().size(), 5u);
  EXPECT_EQ(s.metadata().at("format"), "pt");
  const Tensor* e = s.Find("model.embed_tokens.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, DType::kF32);
  EXPECT_EQ(e->dims, (std::vector<int64_t>{4, 3}));  // shape [3, 4] reversed
  EXPECT_EQ(e->n_elements, 12);
  EXPECT_EQ(e->n_bytes, 48u);
  float v;
  std::memcpy(&v, e->data + 44, 4);
  EXPECT_EQ(v, 1.5f);
  const Tensor* n = s.Find("model.norm.weight");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->type, DType::kBF16);
  uint16_t h;
  std::memcpy(&h, n->data + 6, 2);
  EXPECT_EQ(BF16ToF32(h), 4.0f);
  const Tensor* l = s.Find("lm_head.weight");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->dims, (std::vector<int64_t>{2, 5}));
  std::memcpy(&h, l->data, 2);
  EXPECT_EQ(F16ToF32(h), -0.5f);
  EXPECT_TRUE(s.Find("scalar")->dims.empty());
  EXPECT_EQ(s.Find("scalar")->n_elements, 1);
  EXPECT_EQ(s.Find("empty")->n_bytes, 0u);
  EXPECT_EQ(s.Find("nope"), nullptr);
  // Data order: offsets ascend.
  for (size_t i = 1; i < s.tensors().size(); ++i) {
    EXPECT_LE(s.tensors()[i - 1].offset, s.tensors()[i].offset);
  }
}

TEST(SafetensorsTest, OpenFile) {
  SafetensorsWriter w;
  w.AddF32("x", DType::kF32, {2}, {1, 2});
  const std::string path =
      ::testing::TempDir() + "/st_test_" + std::to_string(getpid()) + ".safetensors";
  ASSERT_TRUE(w.WriteFile(path).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_NE((*f)->mapped(), nullptr);
  EXPECT_EQ((*f)->Find("x")->n_bytes, 8u);
  std::filesystem::remove(path);
  EXPECT_EQ(SafetensorsFile::Open(path).status().code(), StatusCode::kNotFound);
}

struct Case {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* expected;
};

std::string T(const std::string& name, const std::string& dtype, const std::string& shape,
              const std::string& offsets) {
  std::string s = "\"";
  s.append(name).append("\":{\"dtype\":").append(dtype).append(",\"shape\":").append(shape);
  s.append(",\"data_offsets\":").append(offsets).append("}");
  return s;
}

std::vector<Case> Cases() {
  const std::string a = T("a", "\"F32\"", "[2,2]", "[0,16]");
  return {
      {"empty file", {}, "header length at byte 0: needs 8 bytes"},
      {"7 bytes", std::vector<uint8_t>(7, 0), "needs 8 bytes"},
      {"header over 100 MiB", Raw("{}", 0, (100ull << 20) + 1), "over the 100 MiB limit"},
      {"header length huge", Raw("{}", 0, ~0ull), "over the 100 MiB limit"},
      {"header past EOF", Raw("{}", 0, 1000), "runs past the end of the file"},
      {"header not an object", Raw("[1,2]", 0), "must be a JSON object"},
      {"header length 0", Raw("", 0, 0), "must be a JSON object"},
      {"bad JSON", Raw("{\"a\":", 0), "header JSON at byte"},
      {"JSON garbage", Raw("{\"a\" 1}", 0), "header JSON at byte"},
      {"trailing JSON", Raw("{} {}", 0), "header JSON at byte"},
      {"entry not an object", Raw("{\"a\":5}", 0), "tensor 'a': must be an object, got 5"},
      {"empty name", Raw("{" + T("", "\"F32\"", "[1]", "[0,4]") + "}", 4), "empty tensor name"},
      {"dtype I64", Raw("{" + T("a", "\"I64\"", "[2]", "[0,16]") + "}", 16),
       "dtype \"I64\" is not supported (F32, F16 or BF16)"},
      {"dtype F8", Raw("{" + T("a", "\"F8_E4M3\"", "[2]", "[0,2]") + "}", 2), "not supported"},
      {"dtype missing", Raw("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       "field 'dtype' must be a string"},
      {"dtype number", Raw("{" + T("a", "7", "[1]", "[0,4]") + "}", 4), "'dtype'"},
      {"shape missing", Raw("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4),
       "field 'shape'"},
      {"shape negative", Raw("{" + T("a", "\"F32\"", "[-1,4]", "[0,4]") + "}", 4),
       "non-negative integers, got -1"},
      {"shape float", Raw("{" + T("a", "\"F32\"", "[2.5]", "[0,4]") + "}", 4), "got 2.5"},
      {"shape string", Raw("{" + T("a", "\"F32\"", "[\"2\"]", "[0,4]") + "}", 4), "got \"2\""},
      {"shape overflow",
       Raw("{" + T("a", "\"F32\"", "[4294967296,4294967296]", "[0,4]") + "}", 4),
       "element count overflows"},
      {"shape too long", Raw("{" + T("a", "\"F32\"", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
                                     "[0,4]") + "}", 4),
       "array longer than 16"},
      {"offsets missing", Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
       "field 'data_offsets'"},
      {"offsets 3 values", Raw("{" + T("a", "\"F32\"", "[1]", "[0,4,8]") + "}", 4),
       "'data_offsets' must be [begin, end]"},
      {"offsets negative", Raw("{" + T("a", "\"F32\"", "[1]", "[-4,0]") + "}", 4),
       "'data_offsets' must be [begin, end]"},
      {"offsets reversed", Raw("{" + T("a", "\"F32\"", "[1]", "[4,0]") + "}", 4),
       "end before begin"},
      {"size mismatch", Raw("{" + T("a", "\"F32\"", "[2,3]", "[0,20]") + "}", 20),
       "hold 20 bytes, but 6 f32 elements need 24"},
      {"size overflow bytes",
       Raw("{" + T("a", "\"F32\"", "[4611686018427387904]", "[0,4]") + "}", 4),
       "4611686018427387904 f32 elements"},
      {"past end of data", Raw("{" + a + "}", 8), "run past the end of the data section"},
      {"offset huge",
       Raw("{" + T("a", "\"F32\"", "[1]", "[18446744073709551612,18446744073709551616]") + "}", 4),
       "'data_offsets'"},
      {"gap", Raw("{" + a + "," + T("b", "\"F16\"", "[2]", "[20,24]") + "}", 24), "(a gap)"},
      {"not starting at 0", Raw("{" + T("a", "\"F32\"", "[1]", "[4,8]") + "}", 8),
       "the start of the data section ends at 0 (a gap)"},
      {"overlap", Raw("{" + a + "," + T("b", "\"F32\"", "[2]", "[8,16]") + "}", 16),
       "(overlap)"},
      {"trailing bytes", Raw("{" + a + "}", 20), "trailing bytes"},
      {"duplicate tensor", Raw("{" + a + "," + a + "}", 16), "duplicate tensor name 'a'"},
      {"duplicate field",
       Raw("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       "duplicate field 'dtype'"},
      {"nested too deep", Raw("{" + T("a", "\"F32\"", "[[1]]", "[0,4]") + "}", 4),
       "nested deeper"},
      {"metadata not object", Raw("{\"__metadata__\":[\"x\"]," + a + "}", 16),
       "'__metadata__' must be an object"},
      {"metadata value not string", Raw("{\"__metadata__\":{\"k\":1}," + a + "}", 16),
       "'__metadata__' value 'k' must be a string, got 1"},
  };
}

TEST(SafetensorsTest, Malformed) {
  const std::vector<Case> cases = Cases();
  EXPECT_GE(cases.size(), 30u);
  for (const Case& c : cases) {
    auto f = Parse(c.bytes);
    ASSERT_FALSE(f.ok()) << c.what;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << c.what;
    const std::string m = f.status().message();
    EXPECT_EQ(m.rfind("m.safetensors: ", 0), 0u) << c.what << ": " << m;
    EXPECT_NE(m.find(" at byte "), std::string::npos) << c.what << ": " << m;
    EXPECT_NE(m.find(c.expected), std::string::npos)
        << c.what << ": message lacks \"" << c.expected << "\": " << m;
  }
}

std::vector<uint8_t> SmallFile() {
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  w.AddF32("a", DType::kF32, {3, 2}, {1, 2, 3, 4, 5, 6});
  w.AddF32("b", DType::kBF16, {4}, {1, 2, 3, 4});
  return w.Serialize();
}

TEST(SafetensorsTest, EveryTruncationFails) {
  const std::vector<uint8_t> full = SmallFile();
  ASSERT_TRUE(Parse(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    const std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    auto f = Parse(cut);
    ASSERT_FALSE(f.ok()) << n;
    EXPECT_NE(f.status().message().find(" at byte "), std::string::npos) << f.status().message();
  }
}

TEST(SafetensorsTest, RandomMutations) {
  const std::vector<uint8_t> base = SmallFile();
  std::mt19937_64 rng(99);
  int parsed = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> bytes = base;
    const int n_mut = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < n_mut && !bytes.empty(); ++m) {
      const size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[pos] = static_cast<uint8_t>(rng()); break;
        case 1: bytes[pos] = "{}[]\",:0123456789-.e \\"[rng() % 21]; break;
        case 2: bytes.resize(pos); break;
      }
    }
    const std::vector<uint8_t> copy(bytes);
    auto f = Parse(copy);
    if (f.ok()) {
      ++parsed;
      for (const Tensor& t : (*f)->tensors()) {
        ASSERT_GE(t.data, copy.data());
        ASSERT_LE(t.data + t.n_bytes, copy.data() + copy.size());
      }
    } else {
      ASSERT_EQ(f.status().message().rfind("m.safetensors: ", 0), 0u);
    }
  }
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace atrium::safetensors
