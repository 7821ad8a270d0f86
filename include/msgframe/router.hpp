// The router: a registry from a request's full protobuf type name to the handler that answers it.
// Users register their own message types; nothing in msgframe needs to know them.
#pragma once

#include <google/protobuf/message_lite.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "msgframe/v1/envelope.pb.h"

namespace msgframe {

class Server;

// A handler's way to fail a request with a protocol error code and a message for the caller.
struct HandlerError {
  v1::ErrorCode code = v1::ERROR_CODE_INTERNAL;
  std::string message;
};

// What a handler returns when it may fail: a response or a HandlerError.
template <class Response>
using HandlerResult = std::variant<Response, HandlerError>;

// What a serialized handler answers: the response message's wire bytes, or a HandlerError. The
// bytes may be (part of) the request's own, or any the handler keeps until its next call.
using SerializedResult = std::variant<std::span<const std::byte>, HandlerError>;

// What a handler may know about the request it serves. Cheap to copy.
struct RequestContext {
  std::uint64_t session_id = 0;  // 0 for transports without sessions
  std::uint64_t request_id = 0;  // 0 for a one-way request: its reply is not sent
  boost::asio::ip::address peer_address;
  std::uint16_t peer_port = 0;
  Server* server = nullptr;  // for pushing events; null outside a server
};

// Where a request's reply goes; implemented by the transports. Async handlers hold it through
// keep_alive() until they reply.
class ReplyChannel {
 public:
  virtual ~ReplyChannel() = default;
  virtual void send_reply(std::uint64_t request_id, std::string_view type,
                          const google::protobuf::MessageLite& response) = 0;
  // A reply whose payload is already serialized: `response` is the wire bytes of a message of
  // `type`. Bytes that lie within the request being served are written from where they are,
  // without a copy (valid only while its handler runs, as the request is).
  // Channels that do not take serialized replies (a test's, say) answer ERROR_CODE_INTERNAL.
  virtual void send_serialized_reply(std::uint64_t request_id, std::string_view type,
                                     std::span<const std::byte> response) {
    (void)type;
    (void)response;
    send_error(request_id, v1::ERROR_CODE_INTERNAL, "this transport takes no serialized replies");
  }
  virtual void send_error(std::uint64_t request_id, v1::ErrorCode code,
                          std::string_view message) = 0;
  // Where coroutine handlers run.
  virtual boost::asio::any_io_executor executor() = 0;
  virtual std::shared_ptr<ReplyChannel> keep_alive() = 0;
  // A coroutine handler started (true) or finished (false): transports drain them on close.
  virtual void on_async_handler(bool started) = 0;
};

namespace detail {

// What a handler's return type yields: T itself, or T for an awaitable<T>.
template <class T>
struct handler_outcome {
  using type = T;
  static constexpr bool is_coroutine = false;
};
template <class T, class Executor>
struct handler_outcome<boost::asio::awaitable<T, Executor>> {
  using type = T;
  static constexpr bool is_coroutine = true;
};

template <class T>
struct response_of {
  using type = T;
};
template <class Response>
struct response_of<std::variant<Response, HandlerError>> {
  using type = Response;
};

class RouteEntry {
 public:
  virtual ~RouteEntry() = default;
  // Parses the payload and runs the handler; the reply goes to `channel`, now or later.
  virtual void invoke(std::span<const std::byte> payload, const RequestContext& context,
                      ReplyChannel& channel) const = 0;
};

template <class Request, class Handler>
class Route final : public RouteEntry {
  static constexpr bool takes_context = std::is_invocable_v<Handler&, Request&, RequestContext&>;
  // A handler may return a const reference to a response it keeps and reuses.
  using Result = std::remove_cvref_t<typename std::conditional_t<
      takes_context, std::invoke_result<Handler&, Request&, RequestContext&>,
      std::invoke_result<Handler&, Request&>>::type>;
  static constexpr bool is_coroutine = handler_outcome<Result>::is_coroutine;
  using Outcome = typename handler_outcome<Result>::type;
  using Response = typename response_of<Outcome>::type;
  static_assert(std::is_base_of_v<google::protobuf::MessageLite, Response>,
                "a handler returns a protobuf message, a HandlerResult<message>, or an awaitable "
                "of either");

 public:
  explicit Route(Handler handler)
      : handler_(std::move(handler)), response_type_(Response::default_instance().GetTypeName()) {}

  void invoke(std::span<const std::byte> payload, const RequestContext& context,
              ReplyChannel& channel) const override {
    if constexpr (is_coroutine) {
      Request request;
      if (!parse(payload, request, context, channel)) return;
      spawn(std::move(request), context, channel);
    } else {
      // One reusable request per thread: parsing keeps its buffers, no allocation once warm.
      thread_local Request request;
      request.Clear();
      if (!parse(payload, request, context, channel)) return;
      try {
        RequestContext handler_context = context;
        reply(call(request, handler_context), context.request_id, channel);
      } catch (...) {  // `throw 42` too: nothing a handler throws may escape the I/O thread
        fail_internal(context.request_id, channel);
      }
    }
  }

 private:
  bool parse(std::span<const std::byte> payload, Request& request, const RequestContext& context,
             ReplyChannel& channel) const {
    if (request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return true;
    channel.send_error(context.request_id, v1::ERROR_CODE_BAD_PAYLOAD,
                       "the payload does not parse as " + request.GetTypeName());
    return false;
  }

  decltype(auto) call(Request& request, RequestContext& context) const {
    if constexpr (takes_context) {
      return handler_(request, context);
    } else {
      return handler_(request);
    }
  }

  void reply(const Outcome& outcome, std::uint64_t request_id, ReplyChannel& channel) const {
    if constexpr (std::is_same_v<Outcome, Response>) {
      channel.send_reply(request_id, response_type_, outcome);
    } else if (const auto* response = std::get_if<Response>(&outcome)) {
      channel.send_reply(request_id, response_type_, *response);
    } else {
      const auto& failure = std::get<HandlerError>(outcome);
      channel.send_error(request_id, failure.code, failure.message);
    }
  }

  static void fail_internal(std::uint64_t request_id, ReplyChannel& channel) {
    channel.send_error(request_id, v1::ERROR_CODE_INTERNAL, "the request's handler failed");
  }

  // The completion handler, not the coroutine's last line, reports the end: it runs however the
  // coroutine finished, even if replying threw. It does not run for a coroutine abandoned by
  // Server::stop (destroyed unfinished), which stop() accounts for.
  void spawn(Request request, const RequestContext& context, ReplyChannel& channel) const {
    auto held = channel.keep_alive();
    held->on_async_handler(true);
    boost::asio::co_spawn(
        channel.executor(),
        [this, request = std::move(request), context = RequestContext(context),
         held]() mutable -> boost::asio::awaitable<void> {
          try {
            reply(co_await call(request, context), context.request_id, *held);
          } catch (...) {  // `throw 42` too: the caller gets an answer whatever was thrown
            fail_internal(context.request_id, *held);
          }
        },
        // Only fail_internal itself can have thrown (out of memory): the caller's deadline
        // reports that request, and the server keeps serving.
        [held](const std::exception_ptr&) { held->on_async_handler(false); });
  }

  mutable Handler handler_;
  std::string response_type_;
};

// Whether a serialized handler returns what SerializedResult may hold without a dangling view:
// a span or SerializedResult itself, not a container a span would be made from and outlive.
template <class Handler>
constexpr bool returns_borrowed_bytes() {
  using Bytes = std::span<const std::byte>;
  const auto allowed = []<class Result>(std::type_identity<Result>) {
    return std::is_same_v<Result, SerializedResult> || std::is_same_v<Result, Bytes> ||
           std::is_same_v<Result, HandlerError>;
  };
  if constexpr (std::is_invocable_v<Handler&, Bytes, RequestContext&>) {
    return allowed(std::type_identity<std::invoke_result_t<Handler&, Bytes, RequestContext&>>{});
  } else if constexpr (std::is_invocable_v<Handler&, Bytes>) {
    return allowed(std::type_identity<std::invoke_result_t<Handler&, Bytes>>{});
  } else {
    return false;
  }
}

// A handler of requests as bytes: it parses (or forwards) them itself.
template <class Handler>
class SerializedRoute final : public RouteEntry {
  static constexpr bool takes_context =
      std::is_invocable_v<Handler&, std::span<const std::byte>, RequestContext&>;

 public:
  SerializedRoute(Handler handler, std::string response_type)
      : handler_(std::move(handler)), response_type_(std::move(response_type)) {}

  void invoke(std::span<const std::byte> payload, const RequestContext& context,
              ReplyChannel& channel) const override {
    try {
      RequestContext handler_context = context;
      const SerializedResult result = call(payload, handler_context);
      if (const auto* response = std::get_if<std::span<const std::byte>>(&result)) {
        channel.send_serialized_reply(context.request_id, response_type_, *response);
      } else {
        const auto& failure = std::get<HandlerError>(result);
        channel.send_error(context.request_id, failure.code, failure.message);
      }
    } catch (...) {  // as for typed handlers: nothing may escape the I/O thread
      channel.send_error(context.request_id, v1::ERROR_CODE_INTERNAL,
                         "the request's handler failed");
    }
  }

 private:
  SerializedResult call(std::span<const std::byte> payload, RequestContext& context) const {
    if constexpr (takes_context) {
      return handler_(payload, context);
    } else {
      return handler_(payload);
    }
  }

  mutable Handler handler_;
  std::string response_type_;
};

}  // namespace detail

class Router {
 public:
  // Registers the handler for requests of type Request (a generated protobuf message). Handler:
  //   Response f(const Request&)                     plain, runs on the I/O thread
  //   Response f(const Request&, RequestContext&)    the same, knowing who asks
  //   asio::awaitable<Response> f(Request&[, RequestContext&])   a coroutine, for handlers that
  //                                                             wait on I/O
  // Response may also be HandlerResult<Response>, to fail with a HandlerError, or (plain
  // handlers) const Response& to a response the handler keeps and reuses, which then allocates
  // nothing per request. A handler that throws answers ERROR_CODE_INTERNAL. Throws
  // std::invalid_argument if Request has a handler.
  template <class Request, class Handler>
  void handle(Handler handler) {
    static_assert(std::is_base_of_v<google::protobuf::MessageLite, Request>,
                  "Request must be a generated protobuf message");
    add(Request::default_instance().GetTypeName(),
        std::make_unique<detail::Route<Request, Handler>>(std::move(handler)));
  }

  // Registers a handler that takes Request's serialized bytes and answers with Response's:
  //   SerializedResult f(std::span<const std::byte> request[, RequestContext&])
  // For services that forward bytes or answer with the request's own: a response that lies
  // within the request is written without being copied, nor is anything parsed. Runs on the I/O
  // thread; a handler that throws answers ERROR_CODE_INTERNAL. Throws std::invalid_argument if
  // Request has a handler.
  template <class Request, class Response, class Handler>
  void handle_serialized(Handler handler) {
    static_assert(std::is_base_of_v<google::protobuf::MessageLite, Request> &&
                      std::is_base_of_v<google::protobuf::MessageLite, Response>,
                  "Request and Response must be generated protobuf messages");
    static_assert(detail::returns_borrowed_bytes<Handler>(),
                  "a serialized handler is SerializedResult f(std::span<const std::byte>"
                  "[, RequestContext&]); it may return a span or a HandlerError, not a container "
                  "whose bytes would die with it");
    add(Request::default_instance().GetTypeName(),
        std::make_unique<detail::SerializedRoute<Handler>>(
            std::move(handler), Response::default_instance().GetTypeName()));
  }

  // Runs the handler registered for `type`, or answers ERROR_CODE_UNKNOWN_TYPE.
  void dispatch(std::string_view type, std::span<const std::byte> payload,
                const RequestContext& context, ReplyChannel& channel) const;

  bool empty() const noexcept { return routes_.empty(); }

 private:
  void add(std::string type, std::unique_ptr<detail::RouteEntry> route);

  std::map<std::string, std::unique_ptr<detail::RouteEntry>, std::less<>> routes_;
};

}  // namespace msgframe
