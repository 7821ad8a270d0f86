// msgframe-bench's grpc system: gRPC's async unary Echo, a CallData state machine per call on the
// server, a completion queue polled on the calling thread in the load client.
#include "grpc_system.hpp"

#include <grpc/support/time.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "grpc_echo.grpc.pb.h"

namespace bench {

namespace {

using Clock = std::chrono::steady_clock;
using msgframe_bench::Echo;
using msgframe_bench::EchoRequest;
using msgframe_bench::EchoResponse;

// Payloads up to 4 MiB, as the raw system's, plus room for the message's own few bytes: both sides
// set it, so that a bulk call is never refused for its size.
constexpr int max_message_bytes = 4 * 1024 * 1024 + 1024;
// Calls each server completion queue has asked for ahead of their arrival: a burst of calls is
// matched at once instead of waiting in the server's queue of unmatched calls.
constexpr int calls_awaited_per_queue = 16;
constexpr auto connect_timeout = std::chrono::seconds(30);
// Channels connected at a time: more at once would overrun the server's listen backlog.
constexpr std::size_t connect_batch = 256;
constexpr auto reply_grace = std::chrono::seconds(5);
// Each channel is a TCP connection with an HTTP/2 transport of its own. At 10,000 of them, here,
// the load client grew to 670 MB and the first round of calls took about a second: a short run's
// window closed before any call came back.
constexpr std::size_t max_channels = 1000;

std::string address_of(const std::string& host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ':' + std::to_string(port);
}

// gRPC takes deadlines as system_clock points or gpr_timespec: this one follows the monotonic
// clock, as steady_clock deadlines do.
gpr_timespec grpc_deadline(Clock::time_point deadline) {
  const auto left = std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now()).count());
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(left, GPR_TIMESPAN));
}

// One Echo call on the server, gRPC's classic async state machine: it asks its queue for a call,
// answers it when it arrives (asking for the next one first), and ends when the answer is sent.
// Its address is the tag its queue returns: the queue owns it in between.
class EchoCall {
 public:
  EchoCall(Echo::AsyncService& service, grpc::ServerCompletionQueue& queue)
      : service_(service), queue_(queue), responder_(&context_) {}

  static void await(Echo::AsyncService& service, grpc::ServerCompletionQueue& queue) {
    auto call = std::make_unique<EchoCall>(service, queue);
    service.RequestCall(&call->context_, &call->request_, &call->responder_, &queue, &queue,
                        call.get());
    static_cast<void>(call.release());  // the queue hands it back with its tag
  }

  // Takes back a tag from the queue and moves the call on; destroys it when it is over.
  static void on_event(void* tag, bool ok) {
    std::unique_ptr<EchoCall> call(static_cast<EchoCall*>(tag));
    // Not ok while awaiting: the server is shutting down. Answered, ok or not (the client may
    // have gone): the call is over.
    if (call->answered_ || !ok) return;
    call->answer();
    static_cast<void>(call.release());  // back to the queue until the answer is sent
  }

 private:
  void answer() {
    await(service_, queue_);
    // The request is not needed after this: its payload moves to the response, not copied.
    response_.mutable_payload()->swap(*request_.mutable_payload());
    answered_ = true;
    responder_.Finish(response_, grpc::Status::OK, this);
  }

  Echo::AsyncService& service_;
  grpc::ServerCompletionQueue& queue_;
  grpc::ServerContext context_;
  EchoRequest request_;
  EchoResponse response_;
  grpc::ServerAsyncResponseWriter<EchoResponse> responder_;
  bool answered_ = false;
};

void serve_queue(grpc::ServerCompletionQueue& queue) {
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) EchoCall::on_event(tag, ok);
}

}  // namespace

int serve_grpc(const ServeSettings& settings) {
  // Blocked here, before gRPC starts a thread: every thread inherits the mask, and the signals
  // wait for sigwait below instead of ending the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Echo::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  const auto address = address_of(settings.host, settings.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  for (std::size_t index = 0; index < std::max<std::size_t>(settings.threads, 1); ++index) {
    queues.push_back(builder.AddCompletionQueue());
  }
  // Declared after the queues: gRPC needs the server gone before its queues.
  const std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "grpc server: cannot listen on " << address << '\n';
    return 1;
  }
  for (auto& queue : queues) {
    for (int call = 0; call < calls_awaited_per_queue; ++call) EchoCall::await(service, *queue);
  }
  std::vector<std::jthread> pollers;
  pollers.reserve(queues.size());
  for (auto& queue : queues) pollers.emplace_back([&queue] { serve_queue(*queue); });
  std::cout << "listening on " << port << std::endl;

  int signal = 0;
  sigwait(&stop_signals, &signal);
  // Calls still running 5 s from now are cancelled; the pollers keep serving until then.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  for (auto& queue : queues) queue->Shutdown();
  pollers.clear();  // each returns once its queue is drained
  return 0;
}

namespace {

// One channel to the server: its own subchannel pool, hence its own TCP connection.
struct Channel {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Echo::Stub> stub;
  std::uint64_t next_sequence = 0;
};

// One of a channel's calls in flight, reused for the next call when its reply comes.
struct Call {
  explicit Call(Channel& on) : channel(on) {}

  Channel& channel;
  std::optional<grpc::ClientContext> context;  // a context serves one call only
  // Lives in the call's memory, which the context frees: declared after it, gone before it.
  std::unique_ptr<grpc::ClientAsyncResponseReader<EchoResponse>> reader;
  EchoRequest request;
  EchoResponse response;
  grpc::Status status;
  std::uint64_t sequence = 0;
  Clock::time_point sent_at;
  bool in_flight = false;
};

class EchoLoad {
 public:
  EchoLoad(const Scenario& scenario, const LoadSettings& settings)
      : scenario_(scenario),
        settings_(settings),
        address_(address_of(settings.host, settings.port)) {}

  EchoLoad(const EchoLoad&) = delete;
  EchoLoad& operator=(const EchoLoad&) = delete;

  // False when calls could not be ended: this object must then outlive the process (gRPC aborts
  // when a completion queue with work in it is destroyed).
  bool run() {
    if (scenario_.connections == 0 || scenario_.in_flight_per_connection == 0) {
      fail("the scenario asks for no connection or no call in flight");
    } else if (connect()) {
      if (settings_.on_connected) settings_.on_connected();
      deadline_ = Clock::now() + settings_.duration;
      sending_ = true;
      for (auto& call : calls_) send(call);
      poll_until_answered();
    }
    const bool ended = end_calls();
    queue_.Shutdown();
    return drain_shut_queue() && ended;
  }

  LoadResult take_result() {
    result_.window = settings_.duration;
    return std::move(result_);
  }

 private:
  bool connect() {
    grpc::ChannelArguments arguments;
    // Without it, channels with equal arguments share one subchannel, hence one connection.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // A call that fails must show as a failure, not be retried (nor its message buffered for it).
    arguments.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    arguments.SetMaxReceiveMessageSize(max_message_bytes);
    arguments.SetMaxSendMessageSize(max_message_bytes);
    const auto connect_deadline = Clock::now() + connect_timeout;
    for (std::size_t first = 0; first < scenario_.connections; first += connect_batch) {
      const std::size_t last = std::min(first + connect_batch, scenario_.connections);
      for (std::size_t index = first; index < last; ++index) {
        auto channel =
            grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), arguments);
        channel->GetState(true);  // starts connecting: the batch connects in parallel
        auto stub = Echo::NewStub(channel);
        channels_.push_back({std::move(channel), std::move(stub)});
      }
      for (std::size_t index = first; index < last; ++index) {
        if (!channels_[index].channel->WaitForConnected(grpc_deadline(connect_deadline))) {
          fail("only " + std::to_string(index) + " of " + std::to_string(scenario_.connections) +
               " gRPC channels to " + address_ + " connected in 30 s");
          return false;
        }
      }
    }
    for (auto& channel : channels_) {
      for (std::size_t call = 0; call < scenario_.in_flight_per_connection; ++call) {
        calls_.emplace_back(channel);
      }
    }
    return true;
  }

  void send(Call& call) {
    call.reader.reset();
    call.context.emplace();
    call.sequence = call.channel.next_sequence++;
    auto& payload = *call.request.mutable_payload();
    payload.resize(scenario_.payload_bytes);
    write_payload(payload.data(), payload.size(), call.sequence);
    call.sent_at = Clock::now();
    call.reader = call.channel.stub->PrepareAsyncCall(&*call.context, call.request, &queue_);
    call.reader->StartCall();
    call.reader->Finish(&call.response, &call.status, &call);
    call.in_flight = true;
    ++outstanding_;
  }

  void on_reply(Call& call, bool ok) {
    const auto now = Clock::now();
    call.in_flight = false;
    --outstanding_;
    if (now >= deadline_) sending_ = false;
    if (!ok || !call.status.ok()) {
      return fail("a call to " + address_ + " failed: " +
                  (ok ? call.status.error_message() : "its completion queue reported failure"));
    }
    const auto& echoed = call.response.payload();
    if (echoed.size() != scenario_.payload_bytes ||
        !payload_matches(echoed.data(), echoed.size(), call.sequence)) {
      ++result_.wrong_replies;
    } else if (now <= deadline_) {
      ++result_.calls;
      result_.payload_bytes += echoed.size();
      result_.latency.record(now - call.sent_at);
    }
    if (sending_) send(call);
  }

  // Sends until the deadline, then waits at most reply_grace for the calls still out.
  void poll_until_answered() {
    while (outstanding_ > 0) {
      void* tag = nullptr;
      bool ok = false;
      const auto wait_until = sending_ ? deadline_ : deadline_ + reply_grace;
      const auto event = queue_.AsyncNext(&tag, &ok, grpc_deadline(wait_until));
      if (event == grpc::CompletionQueue::GOT_EVENT) {
        on_reply(*static_cast<Call*>(tag), ok);
      } else if (sending_) {
        sending_ = false;
      } else {
        return fail(std::to_string(outstanding_) + " calls to " + address_ +
                    " were still unanswered 5 s after the window");
      }
    }
  }

  // Cancels the calls still out and waits (bounded) for their completions; false if some never
  // came.
  bool end_calls() {
    for (auto& call : calls_) {
      if (call.in_flight) call.context->TryCancel();
    }
    const auto give_up = Clock::now() + reply_grace;
    while (outstanding_ > 0) {
      void* tag = nullptr;
      bool ok = false;
      if (queue_.AsyncNext(&tag, &ok, grpc_deadline(give_up)) != grpc::CompletionQueue::GOT_EVENT) {
        return false;
      }
      static_cast<Call*>(tag)->in_flight = false;
      --outstanding_;
    }
    return true;
  }

  bool drain_shut_queue() {
    void* tag = nullptr;
    bool ok = false;
    const auto give_up = grpc_deadline(Clock::now() + reply_grace);
    for (;;) {
      const auto event = queue_.AsyncNext(&tag, &ok, give_up);
      if (event == grpc::CompletionQueue::SHUTDOWN) return true;
      if (event == grpc::CompletionQueue::TIMEOUT) return false;
    }
  }

  void fail(std::string message) {
    if (result_.failure.empty()) result_.failure = std::move(message);
    sending_ = false;
  }

  const Scenario& scenario_;
  const LoadSettings& settings_;
  const std::string address_;
  // Declared first, destroyed last: after every call and channel that used it.
  grpc::CompletionQueue queue_;
  std::deque<Channel> channels_;
  std::deque<Call> calls_;  // in_flight_per_connection per channel; they point into channels_
  std::size_t outstanding_ = 0;
  bool sending_ = false;
  Clock::time_point deadline_ = Clock::time_point::max();
  LoadResult result_;
};

}  // namespace

LoadResult load_grpc(const Scenario& scenario, const LoadSettings& settings) {
  auto load = std::make_unique<EchoLoad>(scenario, settings);
  const bool ended = load->run();
  LoadResult result = load->take_result();
  if (!ended) {
    // Destroying a completion queue that still holds work aborts the process: leave it be.
    static_cast<void>(load.release());
    if (result.failure.empty()) result.failure = "gRPC calls could not be cancelled within 5 s";
  }
  return result;
}

std::string grpc_cannot_run(const Scenario& scenario) {
  if (scenario.carrier == Carrier::udp) return "gRPC has no UDP transport";
  if (scenario.connections > max_channels) {
    return "over " + std::to_string(max_channels) +
           " gRPC channels, one round of calls outlasts a short window";
  }
  return {};
}

}  // namespace bench
