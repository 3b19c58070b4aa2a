// Text <-> tokens for requests: the prompt of a Generate or Chat exactly as
// `atrium generate` builds it, and UTF-8 hygiene for proto string fields
// (protobuf's string type must hold valid UTF-8; token pieces and metadata
// from a file need not be).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/v1/inference.pb.h"
#include "serving/worker/model_registry.h"
#include "serving/worker/rpc_status.h"

namespace atrium::worker {

// `text` with every invalid or cut UTF-8 sequence replaced by U+FFFD.
std::string ValidUtf8(std::string_view text);

// Prompt text -> ids: BOS where the model wants one (unless the text starts
// with it, as a chat template's output may), special-token text read as
// those tokens. `field` names the request field in errors. Refuses before
// tokenizing a text too long to fit the context whatever its tokens.
StatusOr<std::vector<int32_t>> PromptTokens(const TextModel& text, std::string_view prompt, std::string_view field,
                                            rpc::ApiError* error);

// Messages -> prompt text through the model's chat template, with the
// assistant's turn opened. FAILED_PRECONDITION for a model without one.
StatusOr<std::string> ChatPrompt(const TextModel& text, const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
                                 const std::string& model_name, rpc::ApiError* error);

}  // namespace atrium::worker
