// The real `atrium serve` (gateway + per-tenant atrium-worker) called over
// TCP with a real gRPC stub: for each installed model, a greedy Generate and
// a greedy Chat stream exactly the tokens and text the batching engine gives
// in this process, with usage in the last message. The Python real-client
// test (gateway_serve_model_test.py) covers the rest of the product; this
// one holds the exact comparison with the engine, which Python cannot run.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include <grpcpp/grpcpp.h>

#include "atrium/v1/admin.grpc.pb.h"
#include "atrium/v1/inference.grpc.pb.h"
#include "models/model.h"
#include "models/tokenizer/chat_template.h"
#include "tests/serving/engine_oracle.h"
#include "tests/serving/gateway/gateway_test_util.h"
#include "tests/test_util.h"

extern char** environ;

namespace atrium::testing {
namespace {

// `atrium serve` on a scratch data directory and a free port.
class ServeProcess {
 public:
  ServeProcess() {
    const char* bin = std::getenv("ATRIUM_BINARY_DIR");
    const std::string atrium = std::string(bin != nullptr ? bin : ".") + "/atrium";
    int out[2];
    if (::pipe(out) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const std::string data = dir_.File("data");
    const std::string log = dir_.File("serve.log");
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> args = {atrium,        "serve", "--data-dir", data, "--host", "127.0.0.1", "--port",
                                     "0",           "--metrics-port", "-1", "-t", "2"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, atrium.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      pid_ = -1;
      return;
    }
    // Read the banner until it says where it listens.
    std::string banner;
    const std::regex listening("listening on 127\\.0\\.0\\.1:(\\d+)");
    std::smatch m;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::regex_search(banner, m, listening) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      banner.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    if (!std::regex_search(banner, m, listening)) {
      ADD_FAILURE() << "atrium serve did not start:\n" << banner << "\n" << gateway::testing::ReadBytes(log);
      return;
    }
    address_ = "127.0.0.1:" + m[1].str();
    std::ifstream key(data + "/admin.key");
    key >> admin_key_;
  }

  ~ServeProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  }

  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  const std::string& admin_key() const { return admin_key_; }

 private:
  ::atrium::testing::TempDir dir_;
  pid_t pid_ = -1;
  std::string address_;
  std::string admin_key_;
};

struct Streamed {
  std::string text;
  std::vector<int32_t> tokens;
  v1::GenerateResponse last;
  int messages = 0;
  grpc::Status status;
};

template <typename Reader>
Streamed ReadAll(Reader& reader) {
  Streamed out;
  v1::GenerateResponse msg;
  while (reader.Read(&msg)) {
    ++out.messages;
    out.text += msg.text();
    out.tokens.insert(out.tokens.end(), msg.token_ids().begin(), msg.token_ids().end());
    out.last = msg;
  }
  out.status = reader.Finish();
  return out;
}

class GatewayModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess();
    if (!server_->ok()) return;
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    auto admin = v1::Admin::NewStub(*channel_);
    grpc::ClientContext c1;
    c1.AddMetadata("authorization", "Bearer " + server_->admin_key());
    v1::CreateTenantRequest tenant;
    tenant.set_tenant_id("engine-check");
    v1::Tenant created;
    ASSERT_TRUE(admin->CreateTenant(&c1, tenant, &created).ok());
    grpc::ClientContext c2;
    c2.AddMetadata("authorization", "Bearer " + server_->admin_key());
    v1::CreateApiKeyRequest key;
    key.set_parent("tenants/engine-check");
    v1::CreateApiKeyResponse issued;
    ASSERT_TRUE(admin->CreateApiKey(&c2, key, &issued).ok());
    key_ = new std::string(issued.secret());
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    delete key_;
  }

  void SetUp() override { ASSERT_TRUE(server_->ok()); }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + *key_);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    return ctx;
  }

  // The engine in this process, as the worker runs it (EngineOptions
  // defaults, two threads).
  GenerationResult EngineRun(Model& model, const Tokenizer& tokenizer, const std::string& text, int max_tokens) {
    auto r = std::make_unique<EngineRequest>();
    r->ns = "tenants/engine-check";
    r->prompt = tokenizer.EncodePrompt(text);
    r->options.sampling.temperature = 0;
    r->options.max_tokens = max_tokens;
    return RunOnFreshEngine(ctx_, model, tokenizer, std::move(r));
  }

  void CheckModel(const std::string& file, const std::string& name) {
    ATRIUM_REQUIRE_MODEL(path, file);
    auto model = Model::Load(path);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    auto tokenizer = Tokenizer::FromGguf((*model)->file());
    ASSERT_TRUE(tokenizer.ok());
    auto stub = v1::Inference::NewStub(*channel_);

    const std::string prompt = "The three primary colors are";
    v1::GenerateRequest gen;
    gen.set_model(name);
    gen.set_prompt(prompt);
    gen.mutable_config()->set_temperature(0);
    gen.mutable_config()->set_max_tokens(24);
    auto ctx = Context();
    auto reader = stub->Generate(ctx.get(), gen);
    const Streamed got = ReadAll(*reader);
    ASSERT_TRUE(got.status.ok()) << got.status.error_message();
    const GenerationResult want = EngineRun(**model, **tokenizer, prompt, 24);
    EXPECT_EQ(got.text, want.text) << name;
    EXPECT_EQ(got.tokens, want.tokens) << name;
    EXPECT_GT(got.messages, 1) << "streamed in pieces";
    EXPECT_EQ(got.last.usage().completion_tokens(), static_cast<int32_t>(want.tokens.size()));
    EXPECT_EQ(got.last.usage().prompt_tokens(), want.prompt_tokens);

    const std::string question = "What is the capital of France?";
    v1::ChatRequest chat;
    chat.set_model(name);
    v1::ChatMessage* m = chat.add_messages();
    m->set_role("user");
    m->set_content(question);
    chat.mutable_config()->set_temperature(0);
    chat.mutable_config()->set_max_tokens(32);
    auto chat_ctx = Context();
    auto chat_reader = stub->Chat(chat_ctx.get(), chat);
    const Streamed chat_got = ReadAll(*chat_reader);
    ASSERT_TRUE(chat_got.status.ok()) << chat_got.status.error_message();
    auto tmpl = ChatTemplate::FromGguf((*model)->file());
    ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
    auto text = tmpl->Apply({{"user", question}}, true);
    ASSERT_TRUE(text.ok());
    const GenerationResult chat_want = EngineRun(**model, **tokenizer, *text, 32);
    EXPECT_FALSE(chat_got.text.empty());
    EXPECT_EQ(chat_got.text, chat_want.text) << name;
    EXPECT_EQ(chat_got.tokens, chat_want.tokens) << name;
  }

  static ServeProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
  static std::string* key_;
  ops::Context ctx_{2};
};

ServeProcess* GatewayModelTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* GatewayModelTest::channel_ = nullptr;
std::string* GatewayModelTest::key_ = nullptr;

TEST_F(GatewayModelTest, SmolLm2StreamsTheEnginesGreedyOutput) {
  CheckModel(kSmolLm2File, "models/smollm2-135m-instruct");
}

TEST_F(GatewayModelTest, Gemma3StreamsTheEnginesGreedyOutput) { CheckModel(kGemma3File, "models/gemma-3-270m"); }

}  // namespace
}  // namespace atrium::testing
