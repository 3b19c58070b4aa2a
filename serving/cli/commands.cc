#include "serving/cli/commands.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <random>

#include <nlohmann/json.hpp>

#include "models/catalog.h"
#include "models/tokenizer/chat_template.h"
#include "serving/cli/progress.h"

namespace atrium::cli {
namespace {

std::string HumanCount(int64_t n) {
  if (n >= 1000000000) return StrFormat("%.2fB", n / 1e9);
  if (n >= 1000000) return StrFormat("%.1fM", n / 1e6);
  return StrFormat("%.1fK", n / 1e3);
}

// Streams generated text to stdout as it arrives.
bool ToStdout(std::string_view delta) {
  std::fwrite(delta.data(), 1, delta.size(), stdout);
  std::fflush(stdout);
  return true;
}


// Text -> prompt ids: plain text, or one user turn in the chat template.
StatusOr<std::vector<int32_t>> PromptIds(const Loaded& l, const std::vector<ChatMessage>* chat,
                                         const std::string& text) {
  std::string prompt = text;
  if (chat != nullptr) {
    ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::FromGguf(l.model->file()));
    ASSIGN_OR_RETURN(prompt, tmpl.Apply(*chat, /*add_generation_prompt=*/true));
  }
  std::vector<int32_t> ids = l.tokenizer->EncodePrompt(prompt);
  if (ids.empty()) return InvalidArgument("the prompt is empty: pass --prompt TEXT or pipe text to stdin");
  return ids;
}

void PickSeed(GenerateFlags& f) {
  if (!f.seed_given) f.gen.sampling.seed = std::random_device{}();
}

void PrintStats(const Loaded& l, const GenerationResult& r, uint64_t seed) {
  const double prefill_tps = r.prefill_seconds > 0 ? r.prefilled_tokens / r.prefill_seconds : 0;
  const double decode_tps = r.decode_seconds > 0 ? r.tokens.size() / r.decode_seconds : 0;
  std::fprintf(stderr,
               "\n[atrium] load %.0f ms | prompt %lld tokens, %.1f tok/s | decode %zu tokens, %.1f tok/s | "
               "first token %.0f ms | finish: %s | seed %llu | %s kernels\n",
               l.load_seconds * 1e3, static_cast<long long>(r.prompt_tokens), prefill_tps, r.tokens.size(),
               decode_tps, r.first_token_seconds * 1e3, r.finish_reason.c_str(),
               static_cast<unsigned long long>(seed), kernels::Cpu().name);
}

}  // namespace

int Fail(const Status& s) {
  std::fprintf(stderr, "atrium: %s\n", s.ToString().c_str());
  return 1;
}

StatusOr<Loaded> LoadModel(const CommonFlags& common, const std::string& name) {
  const auto t0 = std::chrono::steady_clock::now();
  Loaded l;
  std::error_code ec;
  if (!name.empty() && std::filesystem::is_regular_file(name, ec)) {
    l.path = name;  // a file needs no catalog: skip reading every model header
  } else {
    const Catalog catalog = Catalog::Scan(Catalog::SearchDirs(common.models_dir));
    ASSIGN_OR_RETURN(l.path, name.empty() ? catalog.DefaultModel() : catalog.Resolve(name));
  }
  ProgressBar bar("loading " + l.path.substr(l.path.find_last_of('/') + 1), "MB", 1e6);
  LoadOptions options;
  options.progress = [&bar](uint64_t done, uint64_t total) { bar.Update(done, total); };
  ASSIGN_OR_RETURN(l.model, Model::Load(l.path, options));
  bar.Finish();
  if (!l.model->has_gguf()) {
    return Unimplemented(StrFormat("%s is a HF checkpoint directory; the CLI reads the tokenizer from a GGUF file, "
                                   "so convert it first (llama.cpp's convert_hf_to_gguf.py)", l.path.c_str()));
  }
  ASSIGN_OR_RETURN(l.tokenizer, Tokenizer::FromGguf(l.model->file()));
  l.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return l;
}

int RunModels(const CommonFlags& common, const ModelsFlags& flags) {
  const Catalog catalog = Catalog::Scan(Catalog::SearchDirs(common.models_dir));
  for (const std::string& w : catalog.warnings()) std::fprintf(stderr, "atrium: skipped %s\n", w.c_str());
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const CatalogEntry& e : catalog.entries()) {
      out.push_back({{"name", e.name},
                     {"provider", e.provider},
                     {"architecture", e.architecture},
                     {"parameters", e.parameters},
                     {"quantization", e.quantization},
                     {"context_length", e.context_length},
                     {"path", e.path}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  if (catalog.entries().empty()) {
    std::printf("No models installed. Run scripts/setup.sh, or put .gguf files in ~/.cache/atrium/models.\n");
    return 0;
  }
  std::printf("%-26s %-16s %-8s %8s %-8s %8s  %s\n", "NAME", "PROVIDER", "ARCH", "PARAMS", "QUANT", "CONTEXT",
              "PATH");
  for (const CatalogEntry& e : catalog.entries()) {
    std::printf("%-26s %-16s %-8s %8s %-8s %8lld  %s\n", e.name.c_str(), e.provider.c_str(),
                e.architecture.c_str(), HumanCount(e.parameters).c_str(), e.quantization.c_str(),
                static_cast<long long>(e.context_length), e.path.c_str());
  }
  return 0;
}

int RunGenerate(const CommonFlags& common, GenerateFlags f) {
  if (f.prompt.empty() && ::isatty(STDIN_FILENO) == 0) {
    f.prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (f.prompt.empty()) return Fail(InvalidArgument("no prompt: pass --prompt TEXT or pipe text to stdin"));
  if (Status s = f.gen.Validate(); !s.ok()) return Fail(s);
  PickSeed(f);
  StatusOr<Loaded> loaded = LoadModel(common, f.model);
  if (!loaded.ok()) return Fail(loaded.status());
  std::vector<ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system});
  messages.push_back({"user", f.prompt});
  StatusOr<std::vector<int32_t>> ids = PromptIds(*loaded, f.chat ? &messages : nullptr, f.prompt);
  if (!ids.ok()) return Fail(ids.status());

  ops::Context ctx(common.threads);
  const int64_t context = std::max<int64_t>(f.context, static_cast<int64_t>(ids->size()) + f.gen.max_tokens + 1);
  Session session(*loaded->model, *loaded->tokenizer, ctx, context);
  StatusOr<GenerationResult> r = session.Generate(*ids, f.gen, ToStdout);
  if (!r.ok()) return Fail(r.status());
  if (!f.quiet) PrintStats(*loaded, *r, f.gen.sampling.seed);
  return 0;
}

int RunChat(const CommonFlags& common, GenerateFlags f) {
  if (Status s = f.gen.Validate(); !s.ok()) return Fail(s);
  PickSeed(f);
  StatusOr<Loaded> loaded = LoadModel(common, f.model);
  if (!loaded.ok()) return Fail(loaded.status());
  StatusOr<ChatTemplate> tmpl = ChatTemplate::FromGguf(loaded->model->file());
  if (!tmpl.ok()) return Fail(tmpl.status());
  ops::Context ctx(common.threads);
  Session session(*loaded->model, *loaded->tokenizer, ctx, f.context);
  std::vector<ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system});
  const bool interactive = ::isatty(STDIN_FILENO) == 1;
  std::fprintf(stderr, "Chatting with %s (context %lld tokens). /reset starts over, /exit quits.\n",
               loaded->path.c_str(), static_cast<long long>(session.context()));
  std::string line;
  for (;;) {
    if (interactive) std::fprintf(stderr, "\n> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.resize(f.system.empty() ? 0 : 1);
      session.Reset();
      std::fprintf(stderr, "(conversation reset)\n");
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    StatusOr<std::vector<int32_t>> ids = PromptIds(*loaded, &messages, "");
    if (!ids.ok()) return Fail(ids.status());
    StatusOr<GenerationResult> r = session.Generate(*ids, f.gen, ToStdout);
    if (!r.ok()) {
      // A full context is not fatal: say so and let the user /reset.
      std::fprintf(stderr, "\natrium: %s\n", r.status().ToString().c_str());
      messages.pop_back();
      continue;
    }
    std::printf("\n");
    messages.push_back({"assistant", r->text});
  }
  return 0;
}

}  // namespace atrium::cli
