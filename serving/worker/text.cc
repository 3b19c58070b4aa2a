#include "serving/worker/text.h"

#include "models/tokenizer/unicode.h"

namespace atrium::worker {

std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (;;) {
    // Strict RFC 3629 (no overlongs, surrogates or code points past
    // U+10FFFF): the longest well-formed prefix is kept as it is.
    const size_t ok = tok::ScanUtf8(s).complete;
    out.append(s.substr(0, ok));
    if (ok == s.size()) return out;
    out.append("\xEF\xBF\xBD");
    s.remove_prefix(ok + 1);  // resynchronize on the next byte
  }
}

StatusOr<std::vector<int32_t>> PromptTokens(const TextModel& text, std::string_view prompt, std::string_view field,
                                            rpc::ApiError* error) {
  const std::string f(field);
  if (prompt.empty()) {
    *error = rpc::BadField(f, "the prompt is empty", "EMPTY_PROMPT");
    return error->status;
  }
  // Every token covers at most max_piece_bytes of text (the BOS adds one).
  const size_t min_tokens = prompt.size() / text.max_piece_bytes;
  if (static_cast<int64_t>(min_tokens) >= text.context_length) {
    *error = rpc::BadField(f,
                           StrFormat("the prompt (%zu bytes, at least %zu tokens) cannot fit the model's context of "
                                     "%lld tokens",
                                     prompt.size(), min_tokens, static_cast<long long>(text.context_length)),
                           "PROMPT_TOO_LONG");
    error->metadata.emplace_back("context_length", std::to_string(text.context_length));
    return error->status;
  }
  std::vector<int32_t> ids = text.tokenizer->EncodePrompt(prompt);
  if (ids.empty()) {
    *error = rpc::BadField(f, "the prompt has no tokens", "EMPTY_PROMPT");
    return error->status;
  }
  if (static_cast<int64_t>(ids.size()) >= text.context_length) {
    *error = rpc::BadField(f,
                           StrFormat("the prompt has %zu tokens; the model's context holds %lld (prompt and output "
                                     "together)",
                                     ids.size(), static_cast<long long>(text.context_length)),
                           "PROMPT_TOO_LONG");
    error->metadata.emplace_back("prompt_tokens", std::to_string(ids.size()));
    error->metadata.emplace_back("context_length", std::to_string(text.context_length));
    return error->status;
  }
  return ids;
}

StatusOr<std::string> ChatPrompt(const TextModel& text,
                                 const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
                                 const std::string& model_name, rpc::ApiError* error) {
  if (!text.chat.has_value()) {
    *error = rpc::WithReason(FailedPrecondition(model_name + " has no chat template, so Chat cannot build its prompt; "
                                                "use Generate (" + text.chat_error.message() + ")"),
                             "NO_CHAT_TEMPLATE");
    return error->status;
  }
  if (messages.empty()) {
    *error = rpc::BadField("messages", "the conversation is empty: give at least one message", "EMPTY_PROMPT");
    return error->status;
  }
  std::vector<ChatMessage> chat;
  chat.reserve(static_cast<size_t>(messages.size()));
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    if (m.role().empty()) {
      *error = rpc::BadField(StrFormat("messages[%d].role", i), "empty; use \"system\", \"user\" or \"assistant\"");
      return error->status;
    }
    chat.push_back({m.role(), m.content()});
  }
  StatusOr<std::string> prompt = text.chat->Apply(chat, /*add_generation_prompt=*/true);
  if (!prompt.ok()) {
    // The template itself raised (e.g. Gemma's "roles must alternate"): the
    // conversation is what the client should fix.
    *error = rpc::BadField("messages", prompt.status().message(), "CHAT_TEMPLATE_REJECTED");
    return error->status;
  }
  return prompt;
}

}  // namespace atrium::worker
