#include "models/tokenizer/chat_template.h"

#include "models/tokenizer/jinja.h"

namespace atrium {

// Verbatim from google/gemma-3-*-it tokenizer_config.json "chat_template":
// a system message is folded into the first user turn.
const char* const kGemma3ChatTemplate = R"TPL({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
)TPL";

namespace {

// The text of a special token named by an id key, "" when absent.
StatusOr<std::string> TokenText(const gguf::GgufFile& file, const char* key) {
  if (!file.Has(key)) return std::string();
  ASSIGN_OR_RETURN(int64_t id, file.GetInt(key));
  ASSIGN_OR_RETURN(std::vector<std::string_view> tokens,
                   file.GetStringArray("tokenizer.ggml.tokens"));
  if (id < 0 || id >= static_cast<int64_t>(tokens.size())) {
    return InvalidArgument(StrFormat("%s = %lld is outside the vocabulary", key,
                                     static_cast<long long>(id)));
  }
  return std::string(tokens[id]);
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::FromSource(std::string source, std::string bos_token,
                                                std::string eos_token) {
  ChatTemplate t;
  ASSIGN_OR_RETURN(t.parsed_, jinja::Template::Parse(source));
  t.source_ = std::move(source);
  t.bos_token_ = std::move(bos_token);
  t.eos_token_ = std::move(eos_token);
  return t;
}

StatusOr<ChatTemplate> ChatTemplate::FromGguf(const gguf::GgufFile& file) {
  std::string source;
  if (file.Has("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(source, file.GetString("tokenizer.chat_template"));
  } else {
    ASSIGN_OR_RETURN(std::string arch, file.GetStringOr("general.architecture", ""));
    if (arch != "gemma3") {
      return FailedPrecondition(file.name() +
                                ": the model ships no chat template (no tokenizer.chat_template) "
                                "and none is known for architecture '" + arch + "'");
    }
    source = kGemma3ChatTemplate;
  }
  ASSIGN_OR_RETURN(std::string bos, TokenText(file, "tokenizer.ggml.bos_token_id"));
  ASSIGN_OR_RETURN(std::string eos, TokenText(file, "tokenizer.ggml.eos_token_id"));
  StatusOr<ChatTemplate> t = FromSource(std::move(source), std::move(bos), std::move(eos));
  if (!t.ok()) return t.status().WithContext(file.name());
  return t;
}

StatusOr<std::string> ChatTemplate::Apply(const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) const {
  if (!parsed_) return FailedPrecondition("chat template: not initialized");
  jinja::Value::List list;
  for (const ChatMessage& m : messages) {
    list.push_back(jinja::Value::MakeDict({{"role", jinja::Value::String(m.role)},
                                           {"content", jinja::Value::String(m.content)}}));
  }
  const jinja::Value::Dict globals = {
      {"messages", jinja::Value::MakeList(std::move(list))},
      {"add_generation_prompt", jinja::Value::Bool(add_generation_prompt)},
      {"bos_token", jinja::Value::String(bos_token_)},
      {"eos_token", jinja::Value::String(eos_token_)},
  };
  return parsed_->Render(globals);
}

}  // namespace atrium
