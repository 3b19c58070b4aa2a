// Chat templates driven by the template stored in the model file
// (tokenizer.chat_template). A template this code cannot render exactly
// fails with a clear message: it never builds a wrong prompt.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/gguf.h"
#include "runtime/status.h"

namespace atrium {

namespace jinja {
class Template;
}  // namespace jinja

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  // From tokenizer.chat_template; a file without one gets its architecture's
  // published template where one is known (gemma3), else FAILED_PRECONDITION.
  static StatusOr<ChatTemplate> FromGguf(const gguf::GgufFile& file);
  static StatusOr<ChatTemplate> FromSource(std::string source, std::string bos_token,
                                           std::string eos_token);

  // The prompt text (special tokens as text; encode it with parse_special).
  StatusOr<std::string> Apply(const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::string bos_token_;
  std::string eos_token_;
  std::shared_ptr<const jinja::Template> parsed_;
};

// Gemma 3's published chat template (google/gemma-3 tokenizer_config.json),
// used for gemma3 files that carry none.
extern const char* const kGemma3ChatTemplate;

}  // namespace atrium
