// Corrupt GGUF files: one per validation class, every truncation of a valid
// file, and random mutations. Each must fail with a Status naming the field
// and its byte offset; none may crash (run under ASan + UBSan too).
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "models/gguf.h"
#include "models/gguf_writer.h"

namespace atrium::gguf {
namespace {

constexpr uint32_t kU8 = 0, kU32 = 4, kI32 = 5, kBool = 7, kStr = 8, kArr = 9, kU64 = 10;
constexpr uint64_t kHuge = 1ull << 62;

struct RawKv {
  std::string key;
  uint32_t type;
  std::vector<uint8_t> value;  // encoded value bytes after the type
};

struct RawTensor {
  std::string name;
  uint32_t n_dims;
  std::vector<uint64_t> dims;
  uint32_t type;
  uint64_t offset;
};

// A hand-built file, so any field can hold any value.
struct Spec {
  char magic[4] = {'G', 'G', 'U', 'F'};
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors;  // default: tensors.size()
  std::optional<uint64_t> n_kv;       // default: kvs.size()
  std::vector<RawKv> kvs;
  std::vector<RawTensor> tensors;
  uint64_t alignment = 32;  // for padding only
  uint64_t data_bytes = 128;
  std::vector<std::pair<size_t, uint64_t>> patches;  // 8-byte overwrites after building
};

template <typename T>
void Put(std::vector<uint8_t>& b, T v) {
  const size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}
void PutStr(std::vector<uint8_t>& b, const std::string& s) {
  Put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
template <typename T>
std::vector<uint8_t> Le(T v) {
  std::vector<uint8_t> b;
  Put<T>(b, v);
  return b;
}
std::vector<uint8_t> StrValue(const std::string& s) {
  std::vector<uint8_t> b;
  PutStr(b, s);
  return b;
}
std::vector<uint8_t> ArrayHeader(uint32_t elem, uint64_t count) {
  std::vector<uint8_t> b;
  Put<uint32_t>(b, elem);
  Put<uint64_t>(b, count);
  return b;
}
std::vector<uint8_t> Cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<uint8_t> Build(const Spec& s) {
  std::vector<uint8_t> b(s.magic, s.magic + 4);
  Put<uint32_t>(b, s.version);
  Put<uint64_t>(b, s.n_tensors.value_or(s.tensors.size()));
  Put<uint64_t>(b, s.n_kv.value_or(s.kvs.size()));
  for (const RawKv& kv : s.kvs) {
    PutStr(b, kv.key);
    Put<uint32_t>(b, kv.type);
    b.insert(b.end(), kv.value.begin(), kv.value.end());
  }
  for (const RawTensor& t : s.tensors) {
    PutStr(b, t.name);
    Put<uint32_t>(b, t.n_dims);
    for (uint64_t d : t.dims) Put<uint64_t>(b, d);
    Put<uint32_t>(b, t.type);
    Put<uint64_t>(b, t.offset);
  }
  b.resize((b.size() + s.alignment - 1) / s.alignment * s.alignment, 0);
  b.resize(b.size() + s.data_bytes, 0);
  for (const auto& [at, v] : s.patches) std::memcpy(b.data() + at, &v, 8);
  return b;
}

// A valid file: one string key, an f32 [8, 2] tensor at 0 (64 bytes) and a
// q8_0 [32] tensor at 64 (34 bytes).
Spec ValidSpec() {
  Spec s;
  s.kvs.push_back({"general.architecture", kStr, StrValue("llama")});
  s.tensors.push_back({"a", 2, {8, 2}, 0, 0});
  s.tensors.push_back({"b", 1, {32}, 8, 64});
  return s;
}

struct Case {
  const char* what;
  Spec spec;
  std::vector<const char*> expected;  // substrings of the message
};

std::vector<Case> Cases() {
  std::vector<Case> c;
  auto add = [&](const char* what, auto mutate, std::vector<const char*> expected) {
    Spec s = ValidSpec();
    mutate(s);
    c.push_back({what, s, expected});
  };
  add("bad magic", [](Spec& s) { std::memcpy(s.magic, "GGML", 4); }, {"magic at byte 0", "not a GGUF"});
  add("version 1", [](Spec& s) { s.version = 1; }, {"version at byte 4", "version 1 is not supported"});
  add("version 0", [](Spec& s) { s.version = 0; }, {"version at byte 4", "unsupported GGUF version 0"});
  add("version 99", [](Spec& s) { s.version = 99; }, {"version at byte 4", "version 99"});
  add("byte-swapped version", [](Spec& s) { s.version = 0x03000000; }, {"big-endian"});
  add("tensor count huge", [](Spec& s) { s.n_tensors = kHuge; }, {"tensor count at byte 8", "cannot fit"});
  add("tensor count max", [](Spec& s) { s.n_tensors = ~0ull; }, {"tensor count at byte 8"});
  add("kv count huge", [](Spec& s) { s.n_kv = kHuge; }, {"metadata key count at byte 16", "cannot fit"});
  add("kv count too big", [](Spec& s) { s.n_kv = 3; }, {"#"});
  add("string length past EOF", [](Spec& s) { s.kvs[0].value = Le<uint64_t>(100000); },
      {"key #0 'general.architecture': string value at byte 56", "string length 100000 runs past"});
  add("string length huge", [](Spec& s) { s.kvs[0].value = Le<uint64_t>(~0ull); },
      {"string value at byte 56", "runs past the end"});
  add("empty key", [](Spec& s) { s.kvs[0].key.clear(); s.kvs[0].type = 0; },
      {"key #0: name at byte 24", "key name is empty"});
  add("key length huge", [](Spec& s) { s.patches.push_back({24, ~0ull}); },
      {"key #0: name at byte 24", "string length 18446744073709551615 runs past"});
  add("key length past EOF", [](Spec& s) { s.patches.push_back({24, 1000}); },
      {"key #0: name at byte 24", "string length 1000 runs past"});
  add("bad value type", [](Spec& s) { s.kvs[0].type = 13; },
      {"value type at byte 52", "13 is not a GGUF value type"});
  add("bad value type max", [](Spec& s) { s.kvs[0].type = 0xffffffffu; },
      {"value type at byte 52", "4294967295 is not a GGUF value type"});
  add("bool value 2", [](Spec& s) { s.kvs.push_back({"flag", kBool, {2}}); },
      {"key #1 'flag': bool value at byte", "must be 0 or 1"});
  add("bad array element type",
      [](Spec& s) { s.kvs.push_back({"arr", kArr, ArrayHeader(77, 1)}); },
      {"key #1 'arr': array element type at byte", "77 is not a GGUF value type"});
  add("array length huge",
      [](Spec& s) { s.kvs.push_back({"arr", kArr, ArrayHeader(kU32, kHuge)}); },
      {"key #1 'arr': array length at byte", "run past the end"});
  add("array length max",
      [](Spec& s) { s.kvs.push_back({"arr", kArr, ArrayHeader(kU64, ~0ull)}); },
      {"array length at byte"});
  add("string array length huge",
      [](Spec& s) { s.kvs.push_back({"arr", kArr, ArrayHeader(kStr, kHuge)}); },
      {"array length at byte", "strings cannot fit"});
  add("string array element past EOF",
      [](Spec& s) {
        s.kvs.push_back({"arr", kArr, Cat(ArrayHeader(kStr, 2), StrValue("0123456789abcdef"))});
        s.tensors.clear();
        s.alignment = 1;
        s.data_bytes = 0;
      },
      {"key #1 'arr': array string #1 at byte", "needs 8 bytes"});
  add("bool array element 5",
      [](Spec& s) { s.kvs.push_back({"arr", kArr, Cat(ArrayHeader(kBool, 2), {1, 5})}); },
      {"array element 1 at byte", "bool must be 0 or 1"});
  add("nested array",
      [](Spec& s) {
        s.kvs.push_back({"arr", kArr, Cat(ArrayHeader(kArr, 1), ArrayHeader(kU8, 0))});
      },
      {"array element type at byte", "arrays of arrays"});
  add("duplicate key",
      [](Spec& s) { s.kvs.push_back({"general.architecture", kStr, StrValue("gemma")}); },
      {"key #1 'general.architecture' at byte", "duplicate key"});
  add("alignment not power of two",
      [](Spec& s) { s.kvs.push_back({"general.alignment", kU32, Le<uint32_t>(48)}); },
      {"general.alignment", "power of two, got 48"});
  add("alignment 0",
      [](Spec& s) { s.kvs.push_back({"general.alignment", kU32, Le<uint32_t>(0)}); },
      {"general.alignment", "power of two, got 0"});
  add("alignment wrong type",
      [](Spec& s) { s.kvs.push_back({"general.alignment", kU64, Le<uint64_t>(32)}); },
      {"general.alignment", "must be a uint32, got uint64"});
  add("alignment string",
      [](Spec& s) { s.kvs.push_back({"general.alignment", kStr, StrValue("32")}); },
      {"general.alignment", "must be a uint32, got string"});
  add("empty tensor name", [](Spec& s) { s.tensors[1].name = ""; },
      {"tensor #1: name at byte", "tensor name is empty"});
  add("n_dims 0", [](Spec& s) { s.tensors[0].n_dims = 0; s.tensors[0].dims.clear(); },
      {"tensor #0 'a': n_dims at byte", "must be 1..4, got 0"});
  add("n_dims 5",
      [](Spec& s) { s.tensors[0].n_dims = 5; s.tensors[0].dims = {8, 2, 1, 1, 1}; },
      {"tensor #0 'a': n_dims at byte", "got 5"});
  add("n_dims huge", [](Spec& s) { s.tensors[0].n_dims = 0x80000000u; }, {"n_dims at byte"});
  add("zero dim", [](Spec& s) { s.tensors[0].dims[1] = 0; },
      {"tensor #0 'a': dims[1] at byte", "must be positive"});
  add("dim above int64", [](Spec& s) { s.tensors[0].dims[0] = ~0ull; },
      {"tensor #0 'a': dims[0] at byte", "fit int64"});
  add("element count overflow",
      [](Spec& s) { s.tensors[0].dims = {1ull << 32, 1ull << 32}; },
      {"tensor #0 'a': dims[1] at byte", "element count overflows"});
  add("byte size overflow",  // 2^62 f32 elements = 2^64 bytes
      [](Spec& s) { s.tensors[0].dims = {1ull << 31, 1ull << 31}; },
      {"tensor #0 'a': type at byte", "byte size", "overflows"});
  add("unknown tensor type 4", [](Spec& s) { s.tensors[0].type = 4; },
      {"tensor #0 'a': type at byte", "unknown tensor type 4"});
  add("unknown tensor type huge", [](Spec& s) { s.tensors[1].type = 100000; },
      {"tensor #1 'b': type at byte", "unknown tensor type 100000"});
  add("dims[0] not a multiple of the block size", [](Spec& s) { s.tensors[1].dims = {33}; },
      {"tensor #1 'b': dims[0] at byte", "33 is not a multiple of the q8_0 block size 32"});
  add("misaligned offset", [](Spec& s) { s.tensors[1].offset = 68; },
      {"tensor #1 'b': offset at byte", "68 is not a multiple of the alignment 32"});
  add("data past EOF", [](Spec& s) { s.tensors[1].offset = 96; },
      {"tensor #1 'b' at byte", "offset 96 + 34 bytes runs past the end of the file"});
  add("offset huge", [](Spec& s) { s.tensors[1].offset = ~0ull << 5; },
      {"tensor #1 'b' at byte", "runs past the end"});
  add("size huge", [](Spec& s) { s.tensors[0].dims = {1ull << 40, 4}; },
      {"tensor #0 'a' at byte", "runs past the end"});
  add("overlapping tensors", [](Spec& s) { s.tensors[1].offset = 32; },
      {"tensor #1 'b' at byte", "overlaps tensor #0 'a'"});
  add("same offset", [](Spec& s) { s.tensors[1].offset = 0; },
      {"overlaps"});
  add("duplicate tensor name", [](Spec& s) { s.tensors[1].name = "a"; },
      {"tensor #1 'a' at byte", "duplicate tensor name (first is tensor #0"});
  add("no data section", [](Spec& s) { s.data_bytes = 0; s.alignment = 1; },
      {"data section at byte"});
  add("non-printable name is escaped", [](Spec& s) { s.tensors[0].name = "a\n\x01"; s.tensors[0].type = 99; },
      {"tensor #0 'a\\x0a\\x01': type"});
  return c;
}

void ExpectCleanError(const std::vector<uint8_t>& bytes, const std::vector<const char*>& expected,
                      const std::string& what) {
  // An exact-size heap copy, so ASan sees any read past the end.
  const std::vector<uint8_t> copy(bytes);
  auto f = GgufFile::FromBuffer("bad.gguf", copy.data(), copy.size());
  ASSERT_FALSE(f.ok()) << what << ": parsed a corrupt file";
  const Status s = f.status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << what;
  EXPECT_EQ(s.message().rfind("bad.gguf: ", 0), 0u) << what << ": " << s.message();
  EXPECT_NE(s.message().find(" at byte "), std::string::npos) << what << ": " << s.message();
  for (const char* e : expected) {
    EXPECT_NE(s.message().find(e), std::string::npos)
        << what << ": message lacks \"" << e << "\": " << s.message();
  }
}

TEST(GgufMalformedTest, ValidSpecParses) {
  const std::vector<uint8_t> bytes = Build(ValidSpec());
  auto f = GgufFile::FromBuffer("ok.gguf", bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->tensors()[1].n_bytes, 34u);
}

TEST(GgufMalformedTest, EachValidationClass) {
  const std::vector<Case> cases = Cases();
  EXPECT_GE(cases.size(), 40u);
  for (const Case& c : cases) ExpectCleanError(Build(c.spec), c.expected, c.what);
}

TEST(GgufMalformedTest, EmptyAndTinyFiles) {
  ExpectCleanError({}, {"magic at byte 0", "needs 4 bytes"}, "empty");
  ExpectCleanError({'G', 'G'}, {"magic"}, "2 bytes");
  ExpectCleanError({'G', 'G', 'U', 'F', 3, 0}, {"version at byte 4"}, "6 bytes");
}

// A writer-built file with every kind of header record.
std::vector<uint8_t> RichFile() {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.block_count", 2);
  w.SetInt32("i", -1);
  w.SetUint64("u", 5);
  w.SetFloat32("f", 0.5f);
  w.SetBool("b", true);
  w.SetStringArray("tokens", {"<s>", "a", "bc"});
  w.SetFloat32Array("scores", {0, 1, 2});
  w.SetInt32Array("types", {1, 2, 3});
  w.SetAlignment(64);
  std::vector<uint8_t> a(4 * 8 * 2, 1), b(34 * 2, 2), c(2 * 3, 3);
  w.AddTensor("a.weight", DType::kF32, {8, 2}, a);
  w.AddTensor("b.weight", DType::kQ8_0, {32, 2}, b);
  w.AddTensor("c.weight", DType::kF16, {3}, c);
  return w.Serialize();
}

TEST(GgufMalformedTest, TruncationAtEveryHeaderByteAndInData) {
  const std::vector<uint8_t> full = RichFile();
  auto f = GgufFile::FromBuffer("full.gguf", full.data(), full.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  uint64_t data_end = 0;
  uint64_t data_start = full.size();
  for (const TensorInfo& t : (*f)->tensors()) {
    data_end = std::max<uint64_t>(data_end, t.data - full.data() + t.n_bytes);
    data_start = std::min<uint64_t>(data_start, t.data - full.data());
  }
  ASSERT_LT(data_start, data_end);
  for (uint64_t n = 0; n < data_start; ++n) {
    ExpectCleanError(std::vector<uint8_t>(full.begin(), full.begin() + n), {},
                     "truncated to " + std::to_string(n));
  }
  for (uint64_t n = data_start; n < data_end; n += 7) {
    ExpectCleanError(std::vector<uint8_t>(full.begin(), full.begin() + n), {"runs past the end"},
                     "truncated to " + std::to_string(n));
  }
  ExpectCleanError(std::vector<uint8_t>(full.begin(), full.begin() + data_end - 1),
                   {"tensor #2 'c.weight'", "runs past the end"}, "last byte of data");
  // Only trailing padding after the last tensor may go.
  for (uint64_t n = data_end; n <= full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    EXPECT_TRUE(GgufFile::FromBuffer("cut.gguf", cut.data(), cut.size()).ok()) << n;
  }
}

// Every getter on every key of a file that parsed: must not crash.
void ExerciseGetters(const GgufFile& g) {
  for (const std::string& k : g.keys()) {
    (void)g.GetString(k);
    (void)g.GetInt(k);
    (void)g.GetFloat(k);
    (void)g.GetBool(k);
    (void)g.GetStringArray(k);
    (void)g.GetFloatArray(k);
    (void)g.GetIntArray(k);
  }
}

TEST(GgufMalformedTest, RandomMutations) {
  const std::vector<uint8_t> base = RichFile();
  std::mt19937_64 rng(1234);
  int parsed = 0;
  int failed = 0;
  const uint64_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0xffffffffull, kHuge,
                                  ~0ull, 1ull << 63, 32, 64};
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> bytes = base;
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < n_mut; ++m) {
      const size_t pos = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[pos] = static_cast<uint8_t>(rng()); break;
        case 1: bytes[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 2: {  // an interesting 8- or 4-byte value
          const uint64_t v = interesting[rng() % std::size(interesting)];
          const size_t w = (rng() % 2) ? 8 : 4;
          for (size_t i = 0; i < w && pos + i < bytes.size(); ++i) bytes[pos + i] = v >> (8 * i);
          break;
        }
        case 3: bytes.resize(std::max<size_t>(1, pos)); break;
      }
    }
    const std::vector<uint8_t> copy(bytes);
    auto f = GgufFile::FromBuffer("fuzz.gguf", copy.data(), copy.size());
    if (f.ok()) {
      ++parsed;
      ExerciseGetters(**f);
      for (const TensorInfo& t : (*f)->tensors()) {
        ASSERT_GE(t.data, copy.data());
        ASSERT_LE(t.data + t.n_bytes, copy.data() + copy.size());
      }
    } else {
      ++failed;
      ASSERT_EQ(f.status().message().rfind("fuzz.gguf: ", 0), 0u) << f.status().message();
      ASSERT_NE(f.status().message().find(" at byte "), std::string::npos)
          << f.status().message();
    }
  }
  EXPECT_GT(parsed, 100);
  EXPECT_GT(failed, 1000);
}

}  // namespace
}  // namespace atrium::gguf
