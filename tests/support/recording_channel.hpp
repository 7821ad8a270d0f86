// Test support: a ReplyChannel that records the last reply a handler gave, for calling a Router
// without a transport.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "msgframe/router.hpp"

namespace msgframe::test {

class RecordingChannel final : public ReplyChannel {
 public:
  void send_reply(std::uint64_t request_id, std::string_view type,
                  const google::protobuf::MessageLite& response) override {
    record(request_id, type, response.SerializeAsString());
  }
  void send_serialized_reply(std::uint64_t request_id, std::string_view type,
                             std::span<const std::byte> response) override {
    record(request_id, type,
           std::string(reinterpret_cast<const char*>(response.data()), response.size()));
    serialized_at = response.data();
  }
  void send_error(std::uint64_t request_id, v1::ErrorCode code, std::string_view message) override {
    ++calls;
    id = request_id;
    error = code;
    error_message = message;
  }
  boost::asio::any_io_executor executor() override { return {}; }
  std::shared_ptr<ReplyChannel> keep_alive() override { return nullptr; }
  void on_async_handler(bool) override {}

  std::size_t calls = 0;  // replies and errors
  std::uint64_t id = 0;
  std::string type;
  std::optional<std::string> response;       // the last reply's serialized payload
  const std::byte* serialized_at = nullptr;  // where a serialized reply's bytes were
  std::optional<v1::ErrorCode> error;
  std::string error_message;

 private:
  void record(std::uint64_t request_id, std::string_view reply_type, std::string bytes) {
    ++calls;
    id = request_id;
    type = reply_type;
    response = std::move(bytes);
  }
};

}  // namespace msgframe::test
