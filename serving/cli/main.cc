// atrium: the command line. `atrium --help` lists the subcommands; each has
// its own --help with examples.
#include <CLI/CLI.hpp>

#include "serving/cli/commands.h"
#include "serving/engine/engine.h"

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
      "  atrium chat -m smollm2-135m-instruct  talk to a model\n"
      "  atrium serve                          serve them over gRPC (the model plaza)\n"};
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
      "and end-of-sequence is ignored so every output has its planned length. Greedy sampling\n"
      "unless --temperature (then --top-k 40 and --top-p as given; request i seeded with --seed + i).\n"
      "Prints JSON on stdout: throughput (generated and total tokens/s), TTFT, inter-token and\n"
      "end-to-end latency percentiles (ms), peak KV blocks, preemptions, prefix-cache hits.\n"
      "A summary goes to stderr.\n"
      "  atrium bench-serve -m smollm2-135m-instruct -t 2\n"
      "  atrium bench-serve --clients 1 --prompt-tokens 64 --output-tokens 128 --requests 4\n"
      "  atrium bench-serve --clients 32 --duration 60 --shared-prefix 256 --prompt-tokens 300:600\n"
      "  atrium bench-serve --clients 64 --kv-mib 16      (a small KV pool: watch preemptions)\n"
      "  atrium bench-serve --clients 16 --temperature 0.8 --top-p 0.95   (sampling as chat clients do)\n"
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
  bench_serve->add_option("--kv-type", serve_flags.kv_type, atrium::kKvTypeHelp)
      ->capture_default_str()->check(atrium::KvTypeNameError);
  bench_serve->add_flag("--kv-lazy", serve_flags.kv_lazy,
                        "Commit the KV pool's memory as blocks first fill instead of at start (the page "
                        "faults then land in decode steps, as in a server's first minutes)");
  bench_serve->add_option("--seed", serve_flags.seed, "Seed of the length draws (and of request i's sampling: seed + i)")
      ->capture_default_str();
  bench_serve->add_option("--temperature,--temp", serve_flags.temperature,
                          "Sampling temperature of every request; 0 = greedy")
      ->capture_default_str();
  bench_serve->add_option("--top-k", serve_flags.top_k, "With --temperature: keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  bench_serve->add_option("--top-p", serve_flags.top_p, "With --temperature: keep this total probability (1 = off)")
      ->capture_default_str();

  atrium::cli::ServeFlags serve_run_flags;
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Serve the installed models over gRPC (the model plaza): ModelPlaza, Inference and Admin,\n"
      "with health checks, reflection and Prometheus metrics. Each tenant's calls run in its own\n"
      "atrium-worker process, started on demand. The first run creates the data directory, the\n"
      "operator tenant and an admin key (printed once, and written to <data-dir>/admin.key).\n"
      "SIGTERM or Ctrl-C drains: no new calls, those in flight may finish, then it exits.\n"
      "  atrium serve\n"
      "  atrium serve --port 8443 --data-dir /var/lib/atrium -t 4");
  serve->add_option("--data-dir", serve_run_flags.data_dir, "Tenants, keys, audit log (SQLite) and worker logs")
      ->capture_default_str();
  serve->add_option("--host", serve_run_flags.host, "Address to listen on")->capture_default_str();
  serve->add_option("--port", serve_run_flags.port, "gRPC port (0: a free one)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  serve->add_option("--metrics-port", serve_run_flags.metrics_port,
                    "Prometheus /metrics port (0: a free one, -1: none)")
      ->capture_default_str()->check(CLI::Range(-1, 65535));
  serve->add_option("--worker-binary", serve_run_flags.worker_binary, "atrium-worker (default: next to atrium)");
  serve->add_option("--kv-mib", serve_run_flags.kv_mib, "Paged KV pool per resident model per worker, MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  serve->add_option("--kv-type", serve_run_flags.kv_type, atrium::kKvTypeHelp)
      ->capture_default_str()->check(atrium::KvTypeNameError);
  serve->add_option("--budget-mib", serve_run_flags.budget_mib, "Memory for resident models per worker, MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  serve->add_option("--idle-timeout", serve_run_flags.idle_timeout,
                    "Seconds a worker may go without calls before it is stopped (0: never)")
      ->capture_default_str()->check(CLI::Range(0.0, 1e9));
  serve->add_option("--drain-timeout", serve_run_flags.drain_timeout,
                    "On SIGTERM, seconds the calls in flight may take")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  serve->add_option("--max-message-mib", serve_run_flags.max_message_mib,
                    "Largest request message (larger: RESOURCE_EXHAUSTED), MiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 10));
  serve->add_option("--max-prompt-kib", serve_run_flags.max_prompt_kib,
                    "Longest prompt or chat (longer: INVALID_ARGUMENT), KiB")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));

  atrium::cli::AdminFlags admin_flags;
  CLI::App* admin = app.add_subcommand(
      "admin",
      "Administer a running `atrium serve` through its Admin API (answers print as JSON).\n"
      "  atrium admin create-tenant acme\n"
      "  atrium admin create-key acme                  (prints the new key's secret, once)\n"
      "  atrium admin set-quota acme --requests-per-minute 60 --tokens-per-minute 100000\n"
      "  atrium admin revoke-key tenants/acme/apiKeys/key-0123456789ab\n"
      "  atrium admin list-tenants\n"
      "  atrium admin audit --tenant acme              (the audit log, from the data directory)");
  admin->require_subcommand(1);
  admin->add_option("--address", admin_flags.address, "The server's gRPC address")->capture_default_str();
  admin->add_option("--key", admin_flags.key, "Admin API key (default: $ATRIUM_API_KEY, else --key-file)");
  admin->add_option("--key-file", admin_flags.key_file, "File holding the admin key")->capture_default_str();
  admin->add_option("--timeout", admin_flags.timeout, "Seconds to wait for the answer")->capture_default_str();
  CLI::App* create_tenant = admin->add_subcommand("create-tenant", "Create a tenant: [a-z][a-z0-9-]*");
  create_tenant->add_option("tenant", admin_flags.tenant, "Tenant id (\"acme\")")->required();
  create_tenant->add_option("--display-name", admin_flags.display_name, "Human-readable name");
  CLI::App* create_key = admin->add_subcommand("create-key", "Issue an API key for a tenant");
  create_key->add_option("tenant", admin_flags.tenant, "Tenant (\"acme\" or \"tenants/acme\")")->required();
  create_key->add_option("--display-name", admin_flags.display_name, "What the key is for");
  CLI::App* revoke_key = admin->add_subcommand("revoke-key", "Revoke an API key: it stops working at once");
  revoke_key->add_option("name", admin_flags.key_name, "\"tenants/<tenant>/apiKeys/<key>\"")->required();
  CLI::App* set_quota = admin->add_subcommand("set-quota", "Set a tenant's limits (0 = unlimited; others unchanged)");
  set_quota->add_option("tenant", admin_flags.tenant, "Tenant")->required();
  set_quota->add_option("--requests-per-minute", admin_flags.requests_per_minute, "Inference calls per minute");
  set_quota->add_option("--tokens-per-minute", admin_flags.tokens_per_minute, "Prompt + generated tokens per minute");
  set_quota->add_option("--concurrent-streams", admin_flags.concurrent_streams, "Generate/Chat calls open at once");
  CLI::App* get_quota = admin->add_subcommand("get-quota", "Show a tenant's limits");
  get_quota->add_option("tenant", admin_flags.tenant, "Tenant")->required();
  CLI::App* list_tenants = admin->add_subcommand("list-tenants", "List tenants");
  list_tenants->add_option("--page-size", admin_flags.page_size, "At most this many (default 50, max 1000)");
  CLI::App* list_keys = admin->add_subcommand("list-keys", "List a tenant's API keys");
  list_keys->add_option("tenant", admin_flags.tenant, "Tenant")->required();
  list_keys->add_option("--page-size", admin_flags.page_size, "At most this many (default 50, max 1000)");
  CLI::App* audit = admin->add_subcommand(
      "audit", "Print the audit log as JSON lines, oldest first (read from --data-dir, no server needed)");
  audit->add_option("--data-dir", admin_flags.data_dir, "The server's data directory")->capture_default_str();
  audit->add_option("--tenant", admin_flags.tenant, "Only this tenant's calls");

  CLI11_PARSE(app, argc, argv);
  if (models->parsed()) return atrium::cli::RunModels(common, models_flags);
  if (generate->parsed()) return atrium::cli::RunGenerate(common, gen_flags);
  if (chat->parsed()) return atrium::cli::RunChat(common, chat_flags);
  if (bench->parsed()) return atrium::cli::RunBench(common, bench_flags);
  if (bench_serve->parsed()) {
    if (bench_serve->count("--duration") > 0 && bench_serve->count("--requests") == 0) serve_flags.requests = 0;
    return atrium::cli::RunBenchServe(common, serve_flags);
  }
  if (serve->parsed()) return atrium::cli::RunServe(common, serve_run_flags);
  if (admin->parsed()) {
    for (CLI::App* sub : admin->get_subcommands()) return atrium::cli::RunAdmin(sub->get_name(), admin_flags);
  }
  return 2;
}
