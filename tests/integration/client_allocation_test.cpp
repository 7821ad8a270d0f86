// A client's calls allocate nothing in the steady state when each reply goes into a message the
// caller reuses (async_call_into): the call's state, its frame, the deadline queue and the reply
// all reuse memory. Counted over the whole process (the server's request path allocates nothing
// either) with a replaced global operator new, not timed.
#define BOOST_TEST_MODULE client_allocation
#include <atomic>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "msgframe/client.hpp"
#include "support/allocation_counter.hpp"
#include "test_server.hpp"

using msgframe::test::allocations;

namespace {

namespace asio = boost::asio;
namespace v1 = msgframe::v1;
using msgframe::test::generous;

constexpr std::size_t chains = 8;  // calls in flight at once on the one connection
constexpr std::size_t warm_up_calls = 4000;
constexpr std::size_t counted_calls = 20000;
// Over the payload that std::string keeps inside itself (15 bytes): a new reply string allocates.
const std::string payload(64, 'p');

// Keeps `chains` echo calls in flight, each started by the last one's reply, until `calls` have
// come back right; how many were right. `by_value`: async_call, each reply a new message; else
// async_call_into, each chain's replies in a message of its own.
class EchoChains {
 public:
  EchoChains(asio::io_context& io, msgframe::Client& client, bool by_value)
      : io_(io), client_(client), by_value_(by_value), replies_(chains) {
    request_.set_payload(payload);
  }

  std::size_t run(std::size_t calls) {
    target_ = calls;
    correct_ = 0;
    started_ = 0;
    finished_ = 0;
    for (std::size_t chain = 0; chain < chains; ++chain) start(chain);
    io_.restart();
    io_.run_for(generous);
    return correct_;
  }

 private:
  void start(std::size_t chain) {
    if (started_ == target_) return;
    ++started_;
    if (by_value_) {
      client_.async_call<v1::EchoResponse>(
          request_, [this, chain](boost::system::error_code error, v1::EchoResponse reply) {
            finish(chain, !error && reply.payload() == payload);
          });
    } else {
      client_.async_call_into(request_, replies_[chain],
                              [this, chain](boost::system::error_code error) {
                                finish(chain, !error && replies_[chain].payload() == payload);
                              });
    }
  }

  void finish(std::size_t chain, bool correct) {
    correct_ += correct ? 1 : 0;
    if (++finished_ == target_) return io_.stop();
    start(chain);
  }

  asio::io_context& io_;
  msgframe::Client& client_;
  const bool by_value_;
  v1::EchoRequest request_;
  std::vector<v1::EchoResponse> replies_;
  std::size_t target_ = 0;
  std::size_t started_ = 0;
  std::size_t finished_ = 0;
  std::size_t correct_ = 0;
};

// Counts what it allocates: a handler's own allocator, which a call must use.
template <class T>
struct CountingAllocator {
  using value_type = T;
  explicit CountingAllocator(std::size_t& count) : count(&count) {}
  template <class U>
  CountingAllocator(const CountingAllocator<U>& other) : count(other.count) {}
  T* allocate(std::size_t n) {
    ++*count;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* pointer, std::size_t n) { std::allocator<T>().deallocate(pointer, n); }
  template <class U>
  bool operator==(const CountingAllocator<U>& other) const {
    return count == other.count;
  }
  std::size_t* count;
};

// Allocations while `counted_calls` calls run, after `warm_up_calls` have grown every buffer.
std::size_t allocations_per_thousand_calls(bool by_value) {
  msgframe::test::TestServer server(msgframe::test::loopback_options(1));
  server.start();
  asio::io_context io(1);
  msgframe::ClientOptions options;
  options.executor_is_single_threaded = true;
  msgframe::Client client(io.get_executor(), options);
  BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, server.port()));

  EchoChains echo(io, client, by_value);
  BOOST_TEST_REQUIRE(echo.run(warm_up_calls) == warm_up_calls);
  const std::size_t before = allocations;
  BOOST_TEST_REQUIRE(echo.run(counted_calls) == counted_calls);
  const std::size_t during = allocations - before;
  BOOST_TEST_MESSAGE((by_value ? "async_call: " : "async_call_into: ")
                     << during << " allocations in " << counted_calls << " calls");
  return during * 1000 / counted_calls;
}

}  // namespace

BOOST_AUTO_TEST_CASE(calls_into_reused_messages_allocate_nothing_in_the_steady_state) {
  // Not one per call, nor one per batch of calls: a rare one (a buffer growing past a new
  // high-water mark) at most.
  BOOST_TEST(allocations_per_thousand_calls(false) <= 1u);
}

// The counter sees a client's allocations: each reply by value allocates its payload string (and
// protobuf 3.21 the std::string object holding it).
BOOST_AUTO_TEST_CASE(replies_by_value_allocate_their_strings) {
  BOOST_TEST(allocations_per_thousand_calls(true) >= 1000u);
}

// A handler bound to an allocator of its own (asio::bind_allocator) has its call's state allocated
// by it, not kept among the client's default blocks.
BOOST_AUTO_TEST_CASE(a_handlers_own_allocator_holds_its_call) {
  msgframe::test::TestServer server(msgframe::test::loopback_options(1));
  server.start();
  asio::io_context io(1);
  msgframe::Client client(io.get_executor());
  BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, server.port()));

  std::size_t allocated_by_handler = 0;
  v1::EchoRequest request;
  request.set_payload(payload);
  v1::EchoResponse reply;
  constexpr int calls = 3;
  int answered = 0;
  for (int call = 0; call < calls; ++call) {
    client.async_call_into(request, reply,
                           asio::bind_allocator(CountingAllocator<void>(allocated_by_handler),
                                                [&](boost::system::error_code error) {
                                                  answered +=
                                                      !error && reply.payload() == payload ? 1 : 0;
                                                  if (answered == calls) io.stop();
                                                }));
  }
  io.restart();
  io.run_for(generous);
  BOOST_TEST(answered == calls);
  BOOST_TEST(allocated_by_handler >= static_cast<std::size_t>(calls));
}

// Bytes this thread allocates for a client that connects and makes one call over `transport`.
std::size_t bytes_for_a_client_over(msgframe::Transport transport) {
  msgframe::test::TestServer server(msgframe::test::loopback_options(1));
  server.start();
  asio::io_context io(1);
  const std::size_t before = msgframe::test::thread_allocated_bytes;
  {
    msgframe::ClientOptions options;
    options.transport = transport;
    options.executor_is_single_threaded = true;
    options.read_bytes = 4096;
    msgframe::Client client(io.get_executor(), options);
    BOOST_TEST_REQUIRE(msgframe::test::connect_on(io, client, server.port()));
    v1::EchoRequest request;
    request.set_payload(payload);
    bool answered = false;
    client.async_call<v1::EchoResponse>(
        request, [&](boost::system::error_code error, v1::EchoResponse reply) {
          answered = !error && reply.payload() == payload;
          io.stop();
        });
    io.restart();
    io.run_for(generous);
    BOOST_TEST(answered);
  }
  return msgframe::test::thread_allocated_bytes - before;
}

// The UDP receive buffer (max_datagram_bytes, 64 KiB by default) belongs to clients that use UDP:
// one over TCP does not allocate it (a process with 10,000 TCP clients held 640 MiB of them).
BOOST_AUTO_TEST_CASE(only_a_client_over_udp_allocates_a_datagram_buffer) {
  const auto datagram_bytes = msgframe::ClientOptions{}.max_datagram_bytes;
  const auto over_tcp = bytes_for_a_client_over(msgframe::Transport::tcp);
  const auto over_udp = bytes_for_a_client_over(msgframe::Transport::udp);
  BOOST_TEST_MESSAGE("bytes allocated: over TCP " << over_tcp << ", over UDP " << over_udp);
  BOOST_TEST(over_tcp < datagram_bytes);
  BOOST_TEST(over_udp > datagram_bytes);
}
