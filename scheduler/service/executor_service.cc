#include "scheduler/service/executor_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/service/convert.h"
#include "scheduler/service/message_batcher.h"
#include "shared/grpc_util.h"
#include "shared/logging.h"

namespace tessera::scheduler {
namespace {

// Keeps slot arithmetic far from overflow; no machine has more cores.
constexpr int32_t kMaxSlots = 65536;

// Names an executor tells us are bounded before they are kept anywhere.
constexpr int kMaxHelloTasks = 256;
constexpr int kMaxHelloQueues = 64;
constexpr size_t kMaxNameBytes = 200;

absl::Status CheckHelloNames(const v1::Hello& h) {
  auto too_long = [](const std::string& field, const std::string& v) {
    return absl::InvalidArgumentError(absl::StrCat("hello.", field, " must be at most ",
                                                   kMaxNameBytes, " bytes (got ",
                                                   v.size(), ")"));
  };
  if (h.executor_id().size() > kMaxNameBytes)
    return too_long("executor_id", h.executor_id());
  if (h.name().size() > kMaxNameBytes) return too_long("name", h.name());
  if (h.version().size() > kMaxNameBytes) return too_long("version", h.version());
  if (h.tasks_size() > kMaxHelloTasks || h.queues_size() > kMaxHelloQueues) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hello may list at most ", kMaxHelloTasks, " tasks and ", kMaxHelloQueues,
        " queues (got ", h.tasks_size(), " and ", h.queues_size(), ")"));
  }
  for (const std::string& t : h.tasks()) {
    if (t.size() > kMaxNameBytes) return too_long("tasks[]", t);
  }
  for (const std::string& q : h.queues()) {
    if (q.size() > kMaxNameBytes) return too_long("queues[]", q);
  }
  return absl::OkStatus();
}

// Hands a message read from `conn`'s stream to the runtime, moving its strings
// out (`m` is read into again).
void Dispatch(Runtime& runtime, const ExecutorConn& conn, v1::ExecutorMessage& m) {
  switch (m.msg_case()) {
    case v1::ExecutorMessage::kHeartbeat:
      runtime.Heartbeat(conn);
      break;
    case v1::ExecutorMessage::kProgress:
      runtime.Progress(conn, m.progress().lease_id(), m.progress().done());
      break;
    case v1::ExecutorMessage::kResult:
      runtime.Results(conn, {ResultFromProto(*m.mutable_result())});
      break;
    case v1::ExecutorMessage::kResultBatch: {
      std::vector<ExecutorResult> results;
      results.reserve(m.result_batch().results_size());
      for (v1::ShardResult& r : *m.mutable_result_batch()->mutable_results()) {
        results.push_back(ResultFromProto(r));
      }
      runtime.Results(conn, std::move(results));
      break;
    }
    case v1::ExecutorMessage::kFailure:
      runtime.Failure(conn, m.failure().lease_id(), m.failure().message(),
                      m.failure().retryable());
      break;
    case v1::ExecutorMessage::kRelease:
      runtime.Release(conn,
                      {m.release().lease_ids().begin(), m.release().lease_ids().end()});
      break;
    case v1::ExecutorMessage::kDraining:
      runtime.Draining(conn);
      break;
    case v1::ExecutorMessage::kHello:
    case v1::ExecutorMessage::MSG_NOT_SET:
      break;
  }
}

// One executor stream. Reads drive the runtime; writes go through a queue so
// that at most one write is in flight. Deletes itself in OnDone.
class ConnectReactor
    : public grpc::ServerBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage>,
      public ExecutorStream {
 public:
  // Refused at once with `refusal` (credentials) when it is not OK.
  // `bound`: whether the caller's identity binds its executor id (auth on).
  ConnectReactor(Runtime* runtime, absl::StatusOr<Identity> caller, bool bound,
                 std::string peer)
      : runtime_(runtime), peer_(std::move(peer)) {
    if (!caller.ok()) {
      spdlog::warn("executor stream from {} refused: {}", peer_,
                   std::string(caller.status().message()));
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(caller.status()));
      return;
    }
    identity_ = bound ? caller->name : "";
    StartRead(&in_);
  }

  void SendAssignments(std::vector<Assignment> assignments) override {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    out_.AddAssignments(std::move(assignments));
    WriteNextLocked();
  }

  void SendCancel(const std::string& lease_id) override {
    v1::SchedulerMessage m;
    m.mutable_cancel()->set_lease_id(lease_id);
    Send(std::move(m));
  }

  void SendAcks(std::vector<std::string> lease_ids) override {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    out_.AddAcks(std::move(lease_ids));
    WriteNextLocked();
  }

  void Close(const std::string& reason) override {
    absl::MutexLock lock(&mu_);
    out_.Clear();
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, reason));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The executor closed its side or the stream broke: its leases go back
      // to the queue at once.
      EndConnection();
      absl::MutexLock lock(&mu_);
      FinishLocked(grpc::Status::OK);
      return;
    }
    std::optional<ExecutorConn> conn;
    {
      absl::MutexLock lock(&mu_);
      conn = conn_;
    }
    if (!conn.has_value()) {
      if (!in_.has_hello()) {
        Reject("the first message on the stream must be hello");
        return;
      }
      const v1::Hello& h = in_.hello();
      if (h.executor_id().empty()) {
        Reject("hello.executor_id is required");
        return;
      }
      if (absl::Status s = CheckHelloNames(h); !s.ok()) {
        Reject(std::string(s.message()));
        return;
      }
      if (h.slots() <= 0 || h.slots() > kMaxSlots) {
        Reject(absl::StrCat("hello.slots must be between 1 and ", kMaxSlots, " (got ",
                            h.slots(), ")"));
        return;
      }
      ExecutorHello hello = HelloFromProto(h);
      hello.identity = identity_;
      if (absl::Status s = runtime_->CheckIdentity(hello); !s.ok()) {
        absl::MutexLock lock(&mu_);
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      v1::SchedulerMessage welcome;
      welcome.mutable_welcome()->set_executor_id(h.executor_id());
      welcome.mutable_welcome()->set_heartbeat_interval_ms(static_cast<int32_t>(
          absl::ToInt64Milliseconds(runtime_->heartbeat_interval())));
      // Welcome goes first: Connect may already produce assignments.
      Send(std::move(welcome));
      absl::StatusOr<ExecutorConn> connected = runtime_->Connect(hello, this);
      if (!connected.ok()) {
        absl::MutexLock lock(&mu_);
        FinishLocked(ToGrpcStatus(connected.status()));
        return;
      }
      conn = *connected;
      bool ended;
      {
        absl::MutexLock lock(&mu_);
        conn_ = conn;
        ended = ended_;
      }
      // The stream was cancelled while connecting: undo the registration.
      if (ended) runtime_->Disconnect(*conn);
    } else {
      Dispatch(*runtime_, *conn, in_);
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) out_.Clear();
    if (!finishing_) WriteNextLocked();
    if (!writing_ && finish_status_.has_value() && !finished_) {
      finished_ = true;
      Finish(*finish_status_);
    }
  }

  void OnCancel() override {
    EndConnection();
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    EndConnection();
    delete this;
  }

 private:
  void Reject(const std::string& message) {
    spdlog::warn("executor stream refused: {}", message);
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message));
  }

  // Unregisters from the runtime once; later calls do nothing.
  void EndConnection() {
    std::optional<ExecutorConn> conn;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      ended_ = true;
      conn = conn_;
    }
    if (conn.has_value()) runtime_->Disconnect(*conn);
  }

  // Finishes now, or after the write in flight completes.
  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = std::move(status);
    if (!writing_) {
      finished_ = true;
      Finish(*finish_status_);
    }
  }

  void Send(v1::SchedulerMessage message) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    out_.Add(std::move(message));
    WriteNextLocked();
  }

  // Starts writing the oldest queued message unless a write is in flight:
  // meanwhile what is sent joins the queue's tail (few, large messages on a
  // busy stream).
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || out_.empty()) return;
    writing_ = true;
    in_flight_ = out_.PopFront();
    StartWrite(&in_flight_);
  }

  Runtime* const runtime_;
  const std::string peer_;
  std::string identity_;    // set before the first read; "" without auth
  v1::ExecutorMessage in_;  // only touched by the read chain
  absl::Mutex mu_;
  std::optional<ExecutorConn> conn_ ABSL_GUARDED_BY(mu_);  // set once, after hello
  MessageBatcher out_ ABSL_GUARDED_BY(mu_){kMaxAssignMessageBytes};
  // The message being written: gRPC reads it until OnWriteDone.
  v1::SchedulerMessage in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage>*
ExecutorServiceImpl::Connect(grpc::CallbackServerContext* context) {
  return new ConnectReactor(
      runtime_, auth_->Check(*context, Permission::kExecute, "ExecutorService.Connect"),
      auth_->Required(Permission::kExecute), context->peer());
}

}  // namespace tessera::scheduler
