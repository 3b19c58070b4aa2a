// The catalog's description of a GGUF file: the real models (label
// `model`), and a file that says nothing of itself.
#include <gtest/gtest.h>

#include "models/catalog.h"
#include "models/gguf_writer.h"
#include "tests/test_util.h"

namespace atrium {
namespace {

TEST(CatalogModelTest, DescribesSmolLm2) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  StatusOr<CatalogEntry> e = Catalog::Describe(path);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->name, "smollm2-135m-instruct");
  EXPECT_EQ(e->architecture, "llama");
  EXPECT_EQ(e->quantization, "Q4_1");
  EXPECT_EQ(e->context_length, 8192);
  EXPECT_GT(e->parameters, 100'000'000);
  EXPECT_EQ(e->license, "apache-2.0");
  EXPECT_FALSE(e->display_name.empty());
  EXPECT_FALSE(e->family.empty());
  EXPECT_TRUE(e->chat);
}

TEST(CatalogModelTest, DescribesGemma3) {
  ATRIUM_REQUIRE_MODEL(path, kGemma3File);
  StatusOr<CatalogEntry> e = Catalog::Describe(path);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->architecture, "gemma3");
  EXPECT_EQ(e->quantization, "Q4_K_M");
  EXPECT_EQ(e->context_length, 32768);
  EXPECT_TRUE(e->chat);
}

TEST(CatalogModelTest, AFileWithoutMetadataHasEmptyFieldsAndNoChat) {
  testing::TempDir dir;
  gguf::GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("general.license", 7);  // not a string: left empty, the file still listed
  ASSERT_TRUE(w.WriteFile(dir.File("bare.gguf")).ok());
  StatusOr<CatalogEntry> e = Catalog::Describe(dir.File("bare.gguf"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->name, "bare");
  EXPECT_EQ(e->display_name, "");
  EXPECT_EQ(e->family, "");
  EXPECT_EQ(e->license, "");
  EXPECT_EQ(e->version, "");
  EXPECT_FALSE(e->chat);
  EXPECT_EQ(e->parameters, 0);
}

}  // namespace
}  // namespace atrium
