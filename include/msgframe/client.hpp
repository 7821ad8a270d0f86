// msgframe::Client: request/response calls over one TCP connection, pipelined and matched by id.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "msgframe/client_options.hpp"
#include "msgframe/detail/client_core.hpp"
#include "msgframe/detail/typed_call.hpp"

namespace msgframe {

namespace detail {

// Continues a composed operation on `executor`. Posting `self` itself would run it on the
// completion handler's executor instead (a coroutine's, say), off the client's strand.
template <class Executor, class Self>
void resume_on(const Executor& executor, Self self) {
  boost::asio::post(executor, [self = std::move(self)]() mutable { self(); });
}

// Completes a composed operation on its completion handler's executor (a coroutine resumes where
// it belongs, not on the client's strand); inline when that executor is the current one.
template <class Self, class... Args>
void complete_on_handler_executor(Self self, Args... args) {
  auto executor = self.get_executor();
  boost::asio::dispatch(executor, [self = std::move(self), ... args = std::move(args)]() mutable {
    self.complete(std::move(args)...);
  });
}

}  // namespace detail

struct CallOptions {
  std::chrono::milliseconds timeout{0};  // 0: the client's call_timeout
  // Receives the server's message when it answers with an ERROR envelope. Must outlive the call.
  std::string* error_message = nullptr;
};

// Thread-safe. Its handlers run one at a time on its strand: a strand of its own, or the
// io_context's one thread (see ClientOptions::executor_is_single_threaded). Calls and one-way
// sends made on the strand go out in the order they are made; from other threads, in the order
// their posts reach it. async_connect(), on_event() and close() are posted, even on the strand:
// they take effect after the handler that makes them returns, in the order they were made. Not for
// use in a forked child: its read buffer may be mapped in the parent only.
class Client {
 public:
  // A client whose I/O runs on `executor`, e.g. an io_context the program runs.
  explicit Client(boost::asio::any_io_executor executor, ClientOptions options = {});
  // A client with an I/O thread of its own, for programs without an io_context.
  explicit Client(ClientOptions options = {});
  // Closes the connection: pending calls complete with error::connection_lost. In one of the
  // client's own completion handlers it closes at once, so that no reply read with the one being
  // handled completes after it returns. A client with its own I/O thread waits for that thread to
  // finish the completions; destroyed on that very thread, it leaves them to it, and the next
  // client made (or the program's exit) joins the thread.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to host (an address as it is, a name once resolved) at the first of its addresses
  // that answers (IPv4 or IPv6), within the connect timeout. Completion signature:
  // void(boost::system::error_code). With Transport::udp nothing is sent: the UDP socket is
  // bound to the server's first address. With Transport::automatic, a TCP connection that
  // cannot be made falls back to UDP and succeeds.
  template <class Token>
  auto async_connect(std::string host, std::uint16_t port, Token&& token);

  // Blocking connect. Must not be called from the client's own executor.
  boost::system::error_code connect(const std::string& host, std::uint16_t port);

  // Sends `request` and completes with the reply parsed as Response. Completion signature:
  // void(boost::system::error_code, Response), for any completion token (callbacks,
  // asio::use_future, asio::use_awaitable, asio::deferred, ...). Errors: the server's ERROR code
  // (error::unknown_type, ...; its message in options.error_message), error::timeout,
  // error::connection_lost, error::not_connected, error::frame_too_large for a request over the
  // max frame, error::unexpected_response_type / bad_payload for a reply of the wrong type;
  // asio::error::already_started for a copy of an asio::deferred call launched while the other is
  // in flight (it would reuse its id). The request is serialized before this returns. Never
  // completes inside this function. Thread-safe; calls may be in flight at once and complete in
  // any order.
  template <class Response, class Request, class Token>
  auto async_call(const Request& request, CallOptions options, Token&& token) {
    return initiate_call(request, detail::ReplyByValue<Response>{}, options,
                         std::forward<Token>(token));
  }

  template <class Response, class Request, class Token>
  auto async_call(const Request& request, Token&& token) {
    return async_call<Response>(request, CallOptions{}, std::forward<Token>(token));
  }

  // As async_call, but parses the reply into `response`, which must outlive the call and not be
  // touched until it completes: a message reused call after call keeps the memory of its fields,
  // so that a reply allocates nothing. Completion signature: void(boost::system::error_code).
  // After an error, `response` is cleared.
  template <class Response, class Request, class Token>
  auto async_call_into(const Request& request, Response& response, CallOptions options,
                       Token&& token) {
    return initiate_call(request, detail::ReplyInto<Response>{&response}, options,
                         std::forward<Token>(token));
  }

  template <class Response, class Request, class Token>
  auto async_call_into(const Request& request, Response& response, Token&& token) {
    return async_call_into(request, response, CallOptions{}, std::forward<Token>(token));
  }

  // Blocking call: returns the reply or throws boost::system::system_error whose what() holds
  // the server's message. Must not be called from a thread that runs the client's executor
  // (it would wait for itself): detected on the client's strand (with a single-threaded
  // executor, anywhere on its thread); a deadlock otherwise.
  template <class Response, class Request>
  Response call(const Request& request, std::chrono::milliseconds timeout = {}) {
    boost::system::error_code error;
    std::string message;
    Response response = call<Response>(request, timeout, error, &message);
    if (error) throw boost::system::system_error(error, message);
    return response;
  }

  // Blocking call reporting failure in `error` (and the server's message in *error_message).
  template <class Response, class Request>
  Response call(const Request& request, std::chrono::milliseconds timeout,
                boost::system::error_code& error, std::string* error_message = nullptr) {
    expect_other_thread();
    std::promise<std::pair<boost::system::error_code, Response>> done;
    auto reply = done.get_future();
    async_call<Response>(request, CallOptions{timeout, error_message},
                         [&done](boost::system::error_code call_error, Response response) {
                           done.set_value({call_error, std::move(response)});
                         });
    auto [call_error, response] = reply.get();
    error = call_error;
    return std::move(response);
  }

  // Sends a one-way request (id 0): the server runs its handler and sends nothing back. Over
  // TCP, or as a datagram when the client calls over UDP. Returns error::not_connected when
  // neither is up, error::frame_too_large for a request over the frame (or, over UDP, the
  // datagram) limit.
  template <class Request>
  boost::system::error_code send(const Request& request) {
    if (!core_->is_connected()) return error::not_connected;
    std::vector<std::byte> frame = core_->take_frame_buffer();
    const std::string& type = detail::type_name_of<Request>();
    if (auto error = append_envelope_frame(frame, core_->encoder(),
                                           {0, v1::KIND_REQUEST, type, &request, nullptr})) {
      return error;
    }
    if (core_->current_transport() == Transport::udp &&
        frame.size() - 4 > options_.max_datagram_bytes) {
      return error::frame_too_large;
    }
    core_->enter([frame = std::move(frame)](detail::ClientCore& core) mutable {
      core.send_one_way(std::move(frame));
    });
    return {};
  }

  // Calls handler(const Event&) on the client's strand for every KIND_EVENT push of type Event.
  template <class Event, class Handler>
  void on_event(Handler handler) {
    auto parse_and_handle = [handler = std::move(handler)](std::span<const std::byte> payload) {
      Event event;
      if (event.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) handler(event);
    };
    // Posted even on the strand: an event handler may subscribe again, and must not replace
    // itself while it runs.
    boost::asio::post(core_->executor(),
                      [core = core_, type = Event::default_instance().GetTypeName(),
                       parse_and_handle = std::move(parse_and_handle)]() mutable {
                        core->subscribe(std::move(type), std::move(parse_and_handle));
                      });
  }

  // Connected over TCP, or able to call over UDP (Transport::udp, or automatic's fallback).
  bool is_connected() const noexcept { return core_->is_connected(); }

  // The transport new calls use now: TCP, or UDP (udp mode, or automatic while TCP is down).
  Transport transport() const noexcept { return core_->current_transport(); }

  ClientStats stats() const noexcept { return core_->stats(); }

  // Closes the connection, once the strand gets to it (posted); pending calls complete with
  // error::connection_lost. Thread-safe.
  void close();

  // The client's strand: a strand of its own, or the single-threaded io_context's executor.
  boost::asio::any_io_executor get_executor() const { return core_->executor(); }

 private:
  class ConnectOperation;

  template <class Request, class Reply, class Token>
  auto initiate_call(const Request& request, Reply reply, const CallOptions& options,
                     Token&& token) {
    using Signature = typename Reply::Signature;
    const std::uint64_t id = core_->next_call_id();
    const auto timeout = options.timeout.count() > 0 ? options.timeout : call_timeout_;
    const OutgoingEnvelope envelope{id, v1::KIND_REQUEST, detail::type_name_of<Request>(), &request,
                                    nullptr};
    if constexpr (detail::starts_at_once<Token, Signature>::value) {
      // Serialized as the call starts: on the client's strand (in a reply's handler, say),
      // straight into the next write.
      return boost::asio::async_initiate<Token, Signature>(
          [this, &envelope, timeout, reply, error_message = options.error_message](auto handler) {
            auto call = detail::TypedCall<Reply, decltype(handler)>::make(std::move(handler), reply,
                                                                          error_message);
            if (core_->on_strand()) {
              return core_->start_call_on_strand(envelope.id, envelope, timeout, std::move(call));
            }
            auto frame = core_->take_frame_buffer();
            const auto encoded = append_envelope_frame(frame, core_->encoder(), envelope);
            core_->submit_call(envelope.id, std::move(frame), encoded, timeout, std::move(call));
          },
          token);
    } else {
      // A token that may start the call later, or twice (asio::deferred), or returns a future:
      // the request is serialized now, while the caller surely still holds it.
      std::vector<std::byte> frame = core_->take_frame_buffer();
      const auto encoded = append_envelope_frame(frame, core_->encoder(), envelope);
      return boost::asio::async_initiate<Token, Signature>(
          [core = core_, id, frame = std::move(frame), encoded, timeout, reply,
           error_message = options.error_message](auto handler) mutable {
            using Call = detail::TypedCall<Reply, decltype(handler)>;
            core->submit_call(id, std::move(frame), encoded, timeout,
                              Call::make(std::move(handler), reply, error_message));
          },
          token);
    }
  }

  void expect_other_thread() const;

  ClientOptions options_;
  // Only for the client with its own I/O thread.
  std::shared_ptr<boost::asio::io_context> own_context_;  // shared with own_thread_
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> own_work_;
  std::thread own_thread_;
  // options_.call_timeout, beside core_: every call reads both.
  const std::chrono::milliseconds call_timeout_;
  std::shared_ptr<detail::ClientCore> core_;
};

// Moves to the strand, then lets the core connect (see ClientCore::connect).
class Client::ConnectOperation {
 public:
  ConnectOperation(std::shared_ptr<detail::ClientCore> core, std::string host, std::uint16_t port)
      : core_(std::move(core)), host_(std::move(host)), port_(port) {}

  template <class Self>
  void operator()(Self& self) {
    if (!on_strand_) {
      on_strand_ = true;
      const auto executor = core_->executor();  // before `self`, holding core_, moves
      return detail::resume_on(executor, std::move(self));
    }
    auto core = core_;
    auto host = std::move(host_);
    const auto port = port_;
    // The core keeps the handler in a std::function, which must be copyable: share it.
    auto shared_self = std::make_shared<Self>(std::move(self));
    core->connect(std::move(host), port, [shared_self](boost::system::error_code error) {
      detail::complete_on_handler_executor(std::move(*shared_self), error);
    });
  }

 private:
  std::shared_ptr<detail::ClientCore> core_;
  std::string host_;
  std::uint16_t port_;
  bool on_strand_ = false;
};

template <class Token>
auto Client::async_connect(std::string host, std::uint16_t port, Token&& token) {
  return boost::asio::async_compose<Token, void(boost::system::error_code)>(
      ConnectOperation{core_, std::move(host), port}, token, core_->executor());
}

}  // namespace msgframe
