// atrium: the command line. `atrium --help` lists the subcommands; each has
// its own --help with examples.
#include <CLI/CLI.hpp>

#include "serving/cli/commands.h"

namespace {

void AddSamplingFlags(CLI::App* app, atrium::cli::GenerateFlags& f) {
  atrium::SamplingParams& s = f.gen.sampling;
  app->add_option("-n,--max-tokens", f.gen.max_tokens, "Most new tokens to generate")->capture_default_str();
  app->add_option("--temperature,--temp", s.temperature, "Sampling temperature; 0 = greedy (deterministic)")
      ->capture_default_str();
  app->add_option("--top-k", s.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  app->add_option("--top-p", s.top_p, "Keep the smallest set with this total probability (1 = off)")
      ->capture_default_str();
  app->add_option("--min-p", s.min_p, "Drop tokens less likely than min-p x the top token (0 = off)")
      ->capture_default_str();
  app->add_option("--repeat-penalty", s.repeat_penalty, "Penalize tokens of the last --repeat-last-n (1 = off)")
      ->capture_default_str();
  app->add_option("--repeat-last-n", s.repeat_last_n, "Window of the penalties (-1 = whole history)")
      ->capture_default_str();
  app->add_option("--presence-penalty", s.presence_penalty, "Subtract from every token already seen")
      ->capture_default_str();
  app->add_option("--frequency-penalty", s.frequency_penalty, "Subtract per occurrence of a token")
      ->capture_default_str();
  app->add_option("--seed", s.seed, "Random seed: the same seed gives the same output (default: random)")
      ->each([&f](const std::string&) { f.seed_given = true; });
  app->add_option("--stop", f.gen.stop, "Stop before this text (repeatable)");
  app->add_flag("--ignore-eos", f.gen.ignore_eos, "Keep generating past end-of-sequence (benchmarks)");
  app->add_option("-m,--model", f.model, "Catalog name (see `atrium models`) or path to a .gguf file");
  app->add_option("--context", f.context, "KV cache size in tokens (capped at the model's context)")
      ->capture_default_str();
  app->add_option("--system", f.system, "System message (chat mode)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Atrium: run large language models from GGUF files on the CPU.\n\n"
      "Examples:\n"
      "  atrium models                         list installed models\n"
      "  atrium generate --prompt \"Once upon a time\" --max-tokens 64\n"
      "  atrium generate -m gemma-3-270m --chat --prompt \"What is 2+2?\" --temperature 0\n"
      "  atrium chat -m smollm2-135m-instruct  talk to a model\n"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads and --models-dir also work after the subcommand
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  atrium::cli::CommonFlags common;
  app.add_option("--models-dir", common.models_dir,
                 "Extra directory of .gguf files (also $ATRIUM_MODELS_DIR; ~/.cache/atrium/models is always searched)");
  app.add_option("-t,--threads", common.threads, "Worker threads (default: one per core)");

  atrium::cli::ModelsFlags models_flags;
  CLI::App* models = app.add_subcommand("models", "List the installed models (name, provider, size, ...)");
  models->add_flag("--json", models_flags.json, "Print JSON instead of a table");

  atrium::cli::GenerateFlags gen_flags;
  CLI::App* generate = app.add_subcommand(
      "generate",
      "Generate text after a prompt; the text streams to stdout, timings go to stderr.\n"
      "  atrium generate --prompt \"The capital of France is\" --temperature 0 -n 16\n"
      "  echo \"Write a haiku\" | atrium generate --chat      (prompt from stdin)");
  AddSamplingFlags(generate, gen_flags);
  generate->add_option("-p,--prompt", gen_flags.prompt, "Prompt text (default: read stdin)");
  generate->add_flag("--chat", gen_flags.chat, "Wrap the prompt in the model's chat template as a user message");
  generate->add_flag("-q,--quiet", gen_flags.quiet, "No timings on stderr");

  atrium::cli::GenerateFlags chat_flags;
  chat_flags.gen.max_tokens = 512;
  CLI::App* chat = app.add_subcommand(
      "chat",
      "Talk to a model with its chat template. Type a message and press Enter;\n"
      "/reset starts over, /exit (or Ctrl-D) quits.");
  AddSamplingFlags(chat, chat_flags);

  atrium::cli::BenchFlags bench_flags;
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Measure single-request speed as JSON: prefill tokens/s (one prompt of --prompt-tokens),\n"
      "decode tokens/s (--gen-tokens greedy tokens after a short prompt), time to first token,\n"
      "peak RSS, and the bytes of weights read per token. Medians of --repetitions runs.\n"
      "  atrium bench -m gemma-3-270m -t 2        (bench/compare.py runs it beside llama.cpp)");
  bench->add_option("-m,--model", bench_flags.model, "Catalog name or path to a .gguf file");
  bench->add_option("--prompt-tokens", bench_flags.prompt_tokens, "Prompt length for prefill")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  bench->add_option("--gen-tokens", bench_flags.gen_tokens, "Tokens to decode")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  bench->add_option("-r,--repetitions", bench_flags.repetitions, "Runs per measurement (median reported)")
      ->capture_default_str()->check(CLI::Range(1, 1000));

  atrium::cli::BenchServeFlags serve_flags;
  CLI::App* bench_serve = app.add_subcommand(
      "bench-serve",
      "Load-test the batching engine: --clients synthetic clients each send a request, wait for\n"
      "its last token, and send the next, until --requests have been sent (or --duration passes).\n"
      "Prompt and output lengths are drawn uniformly from the MIN:MAX ranges with --seed (the same\n"
      "flags send the same requests); prompts are the model's own tokens of an English paragraph,\n"
      "and end-of-sequence is ignored so every output has its planned length. Greedy sampling.\n"
      "Prints JSON on stdout: throughput (generated and total tokens/s), TTFT, inter-token and\n"
      "end-to-end latency percentiles (ms), peak KV blocks, preemptions, prefix-cache hits.\n"
      "A summary goes to stderr.\n"
      "  atrium bench-serve -m smollm2-135m-instruct -t 2\n"
      "  atrium bench-serve --clients 1 --prompt-tokens 64 --output-tokens 128 --requests 4\n"
      "  atrium bench-serve --clients 32 --duration 60 --shared-prefix 256 --prompt-tokens 300:600\n"
      "  atrium bench-serve --clients 64 --kv-mib 16      (a small KV pool: watch preemptions)\n"
      "-t/--threads and --models-dir work here too. bench/serve.py compares 1 client with 16.");
  bench_serve->add_option("-m,--model", serve_flags.model, "Catalog name or path to a .gguf file");
  bench_serve->add_option("--clients", serve_flags.clients, "Concurrent clients (requests in flight)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  bench_serve->add_option("--requests", serve_flags.requests, "Requests in all (0 = until --duration)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  bench_serve->add_option("--duration", serve_flags.duration,
                          "Seconds to send requests for (those in flight then finish); without --requests,\n"
                          "as many as fit, else whichever limit comes first")
      ->check(CLI::Range(0.0, 1e7));
  bench_serve->add_option("--prompt-tokens", serve_flags.prompt_tokens, "Prompt length: N or MIN:MAX")
      ->capture_default_str();
  bench_serve->add_option("--output-tokens", serve_flags.output_tokens, "Generated tokens: N or MIN:MAX")
      ->capture_default_str();
  bench_serve->add_option("--shared-prefix", serve_flags.shared_prefix,
                          "Every prompt starts with the same N tokens (a system prompt; exercises the "
                          "prefix cache); below the shortest prompt")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  bench_serve->add_option("--kv-mib", serve_flags.kv_mib, "Paged KV pool size in MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  bench_serve->add_option("--seed", serve_flags.seed, "Seed of the length draws")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (models->parsed()) return atrium::cli::RunModels(common, models_flags);
  if (generate->parsed()) return atrium::cli::RunGenerate(common, gen_flags);
  if (chat->parsed()) return atrium::cli::RunChat(common, chat_flags);
  if (bench->parsed()) return atrium::cli::RunBench(common, bench_flags);
  if (bench_serve->parsed()) {
    if (bench_serve->count("--duration") > 0 && bench_serve->count("--requests") == 0) serve_flags.requests = 0;
    return atrium::cli::RunBenchServe(common, serve_flags);
  }
  return 2;
}
