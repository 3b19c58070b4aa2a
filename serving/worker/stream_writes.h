// The write side of a server stream of GenerateResponse that must never wait
// for its client: what is produced while a write is in flight is merged into
// one pending message, written when that write completes, so a slow client
// gets fewer, larger messages and the producer (the engine's step thread at
// the worker, the worker call at the gateway) is never held up. The worker's
// GenerateReactor and the gateway's StreamingGenerationCall both write
// through one.
//
// It holds no lock of its own: every member but Perform is called under the
// owner's mutex, and Perform outside it (a reaction may run, and the reactor
// be deleted, before the write or finish it starts returns).
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include "atrium/v1/inference.pb.h"

namespace atrium::worker {

class StreamWrites {
 public:
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinish };

  // The message to merge new output into; it is written by a later Next.
  v1::GenerateResponse* pending() {
    has_pending_ = true;
    return &pending_;
  }
  // A write is in flight: Next does nothing until WriteDone.
  bool writing() const { return writing_; }
  // A write failed (the client is gone): nothing more is written.
  bool write_failed() const { return write_failed_; }

  // The next step, given whether the stream is done (its final status
  // known). Writes what is pending when no write is in flight; once done,
  // finishes (with that write, if any), at most once.
  Action Next(bool done);
  // From OnWriteDone. A failed write drops what is pending.
  void WriteDone(bool ok);
  // Starts what Next decided on `reactor`. The caller must not touch the
  // reactor afterwards: a finish may complete and delete it at once.
  void Perform(Action action, grpc::ServerWriteReactor<v1::GenerateResponse>* reactor, const grpc::Status& status);

 private:
  v1::GenerateResponse pending_;  // merged output not yet written
  bool has_pending_ = false;
  v1::GenerateResponse writing_msg_;  // the write in flight
  bool writing_ = false;
  bool write_failed_ = false;
  bool finish_started_ = false;
};

}  // namespace atrium::worker
