// Generated tokens -> the text a client may see now. Text is held back while
// it could still be the start of a stop string or a cut UTF-8 character;
// a stop string ends the stream and is never shown. Shared by Session and
// the batching Engine, so both stream exactly the same text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/tokenizer/tokenizer.h"

namespace atrium {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, const std::vector<std::string>& stops)
      : decoder_(tokenizer), stops_(stops) {}

  // Adds a generated token; returns the text that became final (possibly
  // empty). After a stop string, stopped() is true and the text before the
  // stop was the last returned.
  std::string Push(int32_t token);
  // At the end of generation: whatever was held back (a possible stop
  // prefix, a cut UTF-8 tail) is final. Empty after a stop.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  StreamDecoder decoder_;
  const std::vector<std::string>& stops_;
  std::string pending_;  // decoded, not yet released
  bool stopped_ = false;
};

}  // namespace atrium
