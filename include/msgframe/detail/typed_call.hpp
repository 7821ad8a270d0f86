// A call of Client::async_call or async_call_into waiting for its reply (not for users): parses
// the reply as a new Response or into the caller's message, and completes the handler on the
// handler's executor.
#pragma once

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/system_executor.hpp>
#include <memory>
#include <string>
#include <type_traits>

#include "msgframe/detail/call_memory.hpp"
#include "msgframe/detail/client_core.hpp"

namespace msgframe::detail {

// A message type's full protobuf name, looked up once: GetTypeName() builds a new string (on the
// heap, for names over 15 bytes) on every call.
template <class Message>
const std::string& type_name_of() {
  static const std::string name = Message::default_instance().GetTypeName();
  return name;
}

// Whether a completion token starts its operation before the initiating function returns: one
// whose async_result returns nothing (a handler, asio::detached, a handler bound to an executor)
// leaves nothing to start it later. A token that returns an operation to start (asio::deferred,
// asio::use_awaitable) or a future, or whose async_result names no return type, counts as not.
template <class Token, class Signature, class = void>
struct starts_at_once : std::false_type {};
template <class Token, class Signature>
struct starts_at_once<
    Token, Signature,
    std::void_t<typename boost::asio::async_result<std::decay_t<Token>, Signature>::return_type>>
    : std::is_void<
          typename boost::asio::async_result<std::decay_t<Token>, Signature>::return_type> {};

// A reply read without failure. A plain enum comes back in a register; an optional<error> came
// back through memory written in two pieces and read in one, which stalls the read (~4 ns a
// call: the store cannot forward to it).
inline constexpr msgframe::error no_failure{};

// Parses `reply` into `response`; the failure, if it is not a response of that type. Inlined:
// GCC put it out of line once a try came around its caller, 13 instructions a call more.
template <class Response>
[[gnu::always_inline]] inline msgframe::error read_reply(const EnvelopeView& reply,
                                                         Response& response,
                                                         std::string* error_message) {
  if (reply.kind == v1::KIND_ERROR) {
    const int code = reply.error ? reply.error->code() : 0;
    if (error_message != nullptr && reply.error) *error_message = reply.error->message();
    return from_wire_error(code);
  }
  if (reply.type != type_name_of<Response>()) return error::unexpected_response_type;
  if (!response.ParseFromArray(reply.payload.data(), static_cast<int>(reply.payload.size()))) {
    return error::bad_payload;
  }
  return no_failure;
}

// Keeps `executor` busy (its io_context's run() from returning) while the copy lives.
template <class Executor>
auto track_work(const Executor& executor) {
  if constexpr (boost::asio::execution::is_executor<Executor>::value) {
    return boost::asio::prefer(executor, boost::asio::execution::outstanding_work.tracked);
  } else {
    return boost::asio::make_work_guard(executor);
  }
}

template <class Work>
auto executor_of(const Work& work) {
  if constexpr (boost::asio::execution::is_executor<Work>::value) {
    return work;
  } else {
    return work.get_executor();
  }
}

// Where a call's reply goes: into a new Response handed to the completion handler, or into the
// caller's own message, reused call after call.
template <class Message>
struct ReplyByValue {
  using Response = Message;
  using Signature = void(boost::system::error_code, Response);
  static constexpr bool into_target = false;
};
template <class Message>
struct ReplyInto {
  using Response = Message;
  using Signature = void(boost::system::error_code);
  static constexpr bool into_target = true;
  Response* target;
};

// Lives from the call's start to its completion, in memory from the handler's allocator (by
// default CallAllocator, the block the thread freed last: no malloc per call). A handler without an
// executor of its own (or bound to the system executor, which runs anything anywhere) runs on the
// client's strand, where replies are read: then it is called directly, and nothing is copied for
// it. Any other executor (a coroutine's, say) is kept busy until the handler is dispatched to it.
template <class Reply, class Handler>
class TypedCall final : public PendingCall {
  using Executor = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
  using Allocator = typename std::allocator_traits<boost::asio::associated_allocator_t<
      Handler, CallAllocator<void>>>::template rebind_alloc<TypedCall>;
  static constexpr bool runs_on_client_strand =
      std::is_same_v<Executor, boost::asio::system_executor>;
  struct NoWork {};
  using Work = std::conditional_t<runs_on_client_strand, NoWork,
                                  decltype(track_work(std::declval<const Executor&>()))>;

 public:
  static PendingCallPtr make(Handler handler, Reply reply, std::string* error_message) {
    Allocator allocator = allocator_of(handler);
    TypedCall* call = std::allocator_traits<Allocator>::allocate(allocator, 1);
    try {
      std::allocator_traits<Allocator>::construct(allocator, call, std::move(handler), reply,
                                                  error_message);
    } catch (...) {
      std::allocator_traits<Allocator>::deallocate(allocator, call, 1);
      throw;
    }
    return PendingCallPtr(call);
  }

  TypedCall(Handler handler, Reply reply, std::string* error_message)
      : handler_(std::move(handler)),
        work_(work_for(handler_)),
        reply_(reply),
        error_message_(error_message) {}

  // A reply that parses hands on `error` itself (no_error), never a copy of it (see no_error).
  void complete(const boost::system::error_code& error, const EnvelopeView* reply,
                const boost::asio::any_io_executor& client_executor, bool may_run_inline) override {
    if constexpr (Reply::into_target) {
      const auto failure = parse_or_free(error, reply, *reply_.target);
      // Nothing of an earlier reply, or half a one.
      if (error || failure != no_failure) reply_.target->Clear();
      if (failure != no_failure) {
        return deliver(client_executor, may_run_inline, make_error_code(failure));
      }
      deliver(client_executor, may_run_inline, error);
    } else {
      typename Reply::Response response;
      const auto failure = parse_or_free(error, reply, response);
      if (failure != no_failure) {
        return deliver(client_executor, may_run_inline, make_error_code(failure),
                       std::move(response));
      }
      deliver(client_executor, may_run_inline, error, std::move(response));
    }
  }

  void destroy() noexcept override { free(allocator_of(handler_)); }

 private:
  msgframe::error parse(const boost::system::error_code& error, const EnvelopeView* reply,
                        typename Reply::Response& response) const {
    if (error || reply == nullptr) return no_failure;
    return read_reply(*reply, response, error_message_);
  }

  // As parse(); if that throws (out of memory), the call is freed first, its handler with it:
  // nothing else would free it.
  msgframe::error parse_or_free(const boost::system::error_code& error, const EnvelopeView* reply,
                                typename Reply::Response& response) {
    try {
      return parse(error, reply, response);
    } catch (...) {
      free(allocator_of(handler_));
      throw;
    }
  }

  // Frees the call, then runs the handler with `results`: the handler may start the next call in
  // this very memory.
  template <class... Results>
  void deliver(const boost::asio::any_io_executor& client_executor, bool may_run_inline,
               Results&&... results) {
    Allocator allocator = allocator_of(handler_);
    auto handler = std::move(handler_);
    auto work = std::move(work_);
    free(allocator);
    if constexpr (runs_on_client_strand) {
      // Straight to the handler: nothing is copied for a closure.
      if (may_run_inline) return std::move(handler)(std::forward<Results>(results)...);
    }
    auto invoke = [handler = std::move(handler),
                   ... results = std::forward<Results>(results)]() mutable {
      std::move(handler)(std::move(results)...);
    };
    if constexpr (runs_on_client_strand) {
      boost::asio::post(client_executor, std::move(invoke));
    } else {
      const auto executor = executor_of(work);
      if (may_run_inline) {
        boost::asio::dispatch(executor, std::move(invoke));
      } else {
        boost::asio::post(executor, std::move(invoke));
      }
    }
  }

  static Allocator allocator_of(const Handler& handler) {
    return Allocator(boost::asio::get_associated_allocator(handler, CallAllocator<void>()));
  }

  static Work work_for(const Handler& handler) {
    if constexpr (runs_on_client_strand) {
      return {};
    } else {
      return track_work(boost::asio::get_associated_executor(handler));
    }
  }

  void free(Allocator allocator) noexcept {
    std::allocator_traits<Allocator>::destroy(allocator, this);
    std::allocator_traits<Allocator>::deallocate(allocator, this, 1);
  }

  Handler handler_;
  Work work_;
  [[no_unique_address]] Reply reply_;
  std::string* error_message_;
};

}  // namespace msgframe::detail
