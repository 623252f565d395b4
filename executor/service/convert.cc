#include "executor/service/convert.h"

namespace tessera::executor {

Assignment FromProto(const v1::Assignment& proto) {
  Assignment a;
  a.lease_id = proto.lease_id();
  a.job_id = proto.job_id();
  a.shard = proto.shard();
  a.task = proto.task();
  a.params_json = proto.params_json();
  a.start = proto.start();
  a.end = proto.end();
  a.attempt = proto.attempt();
  a.timeout = absl::Milliseconds(proto.timeout_ms());
  a.items_json = proto.items_json();
  return a;
}

v1::ExecutorMessage HelloMessage(const HelloInfo& hello) {
  v1::ExecutorMessage msg;
  v1::Hello* h = msg.mutable_hello();
  h->set_executor_id(hello.executor_id);
  h->set_name(hello.name);
  for (const std::string& t : hello.tasks) h->add_tasks(t);
  h->set_slots(hello.slots);
  h->set_version(hello.version);
  for (const std::string& q : hello.queues) h->add_queues(q);
  for (const Assignment& a : hello.held) {
    v1::HeldShard* held = h->add_held();
    held->set_lease_id(a.lease_id);
    held->set_job_id(a.job_id);
    held->set_shard(a.shard);
    held->set_attempt(a.attempt);
  }
  return msg;
}

v1::ExecutorMessage HeartbeatMessage() {
  v1::ExecutorMessage msg;
  msg.mutable_heartbeat();
  return msg;
}

v1::ExecutorMessage ProgressMessage(const std::string& lease_id, int64_t done,
                                    int64_t total) {
  v1::ExecutorMessage msg;
  v1::Progress* p = msg.mutable_progress();
  p->set_lease_id(lease_id);
  p->set_done(done);
  p->set_total(total);
  return msg;
}

v1::ExecutorMessage OutcomeMessage(const ShardOutcome& outcome) {
  v1::ExecutorMessage msg;
  if (outcome.kind == ShardOutcome::Kind::kSucceeded) {
    v1::ShardResult* r = msg.mutable_result();
    r->set_lease_id(outcome.lease_id);
    r->set_result_json(outcome.result_json);
    r->set_job_id(outcome.job_id);
    r->set_shard(outcome.shard);
    r->set_run_micros(absl::ToInt64Microseconds(outcome.run_time));
  } else {
    v1::ShardFailure* f = msg.mutable_failure();
    f->set_lease_id(outcome.lease_id);
    f->set_message(outcome.message);
    f->set_retryable(outcome.retryable);
  }
  return msg;
}

v1::ExecutorMessage ResultBatchMessage(const std::vector<ShardOutcome>& results) {
  v1::ExecutorMessage msg;
  for (const ShardOutcome& o : results) {
    v1::ShardResult* r = msg.mutable_result_batch()->add_results();
    r->set_lease_id(o.lease_id);
    r->set_result_json(o.result_json);
    r->set_job_id(o.job_id);
    r->set_shard(o.shard);
    r->set_run_micros(absl::ToInt64Microseconds(o.run_time));
  }
  return msg;
}

v1::ExecutorMessage ReleaseMessage(const std::vector<std::string>& lease_ids) {
  v1::ExecutorMessage msg;
  v1::Release* r = msg.mutable_release();
  for (const std::string& id : lease_ids) r->add_lease_ids(id);
  return msg;
}

v1::ExecutorMessage DrainingMessage() {
  v1::ExecutorMessage msg;
  msg.mutable_draining();
  return msg;
}

}  // namespace tessera::executor
