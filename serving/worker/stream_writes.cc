#include "serving/worker/stream_writes.h"

namespace atrium::worker {

StreamWrites::Action StreamWrites::Next(bool done) {
  if (writing_ || finish_started_) return Action::kNone;
  const bool write = has_pending_ && !write_failed_;
  if (!write && !done) return Action::kNone;
  if (write) {
    writing_msg_.Swap(&pending_);
    pending_.Clear();
    has_pending_ = false;
    writing_ = true;
  }
  if (done) finish_started_ = true;
  return !done ? Action::kWrite : write ? Action::kWriteAndFinish : Action::kFinish;
}

void StreamWrites::WriteDone(bool ok) {
  writing_ = false;
  if (!ok) {
    write_failed_ = true;
    pending_.Clear();
    has_pending_ = false;
  }
}

void StreamWrites::Perform(Action action, grpc::ServerWriteReactor<v1::GenerateResponse>* reactor,
                           const grpc::Status& status) {
  switch (action) {
    case Action::kNone: break;
    case Action::kWrite: reactor->StartWrite(&writing_msg_); break;
    case Action::kWriteAndFinish: reactor->StartWriteAndFinish(&writing_msg_, grpc::WriteOptions(), status); break;
    case Action::kFinish: reactor->Finish(status); break;
  }
}

}  // namespace atrium::worker
