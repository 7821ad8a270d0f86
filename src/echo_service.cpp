// The Echo service.
#include "msgframe/echo_service.hpp"

#include <optional>
#include <string>

namespace msgframe {

namespace {

void uppercase_ascii(std::string& text) {
  for (auto& byte : text) {
    if (byte >= 'a' && byte <= 'z') byte = static_cast<char>(byte - 'a' + 'A');
  }
}

// A request that is nothing but its payload field (what a client sends without `uppercase`) is,
// byte for byte, the EchoResponse that answers it: field 1, bytes, in both messages.
bool is_its_own_response(std::span<const std::byte> request) {
  if (request.empty()) return true;
  constexpr auto payload_tag = std::byte{0x0A};  // field 1, length-delimited
  if (request.front() != payload_tag) return false;
  std::uint64_t length = 0;
  std::size_t at = 1;
  // The length's varint: protobuf reads a length of at most five bytes.
  for (unsigned shift = 0;; shift += 7) {
    if (at == request.size() || shift == 35) return false;
    const auto byte = std::to_integer<std::uint64_t>(request[at++]);
    length |= (byte & 0x7F) << shift;
    if (byte < 0x80) break;
  }
  return length == request.size() - at;
}

}  // namespace

v1::EchoResponse echo(const v1::EchoRequest& request) {
  v1::EchoResponse response;
  response.set_payload(request.payload());
  if (request.uppercase()) uppercase_ascii(*response.mutable_payload());
  return response;
}

void add_echo_service(Router& router) {
  // The usual request is answered with its own bytes: the payload is neither parsed nor copied,
  // and the server writes it from its read buffer. Others are parsed into a reused request and
  // answered from a reused buffer, allocating nothing once warm.
  router.handle_serialized<v1::EchoRequest, v1::EchoResponse>(
      [](std::span<const std::byte> request_bytes) -> SerializedResult {
        if (is_its_own_response(request_bytes)) return request_bytes;
        thread_local v1::EchoRequest request;
        thread_local v1::EchoResponse response;
        thread_local std::string response_bytes;
        if (!request.ParseFromArray(request_bytes.data(), static_cast<int>(request_bytes.size()))) {
          return HandlerError{v1::ERROR_CODE_BAD_PAYLOAD,
                              "the payload does not parse as msgframe.v1.EchoRequest"};
        }
        response.mutable_payload()->swap(*request.mutable_payload());
        if (request.uppercase()) uppercase_ascii(*response.mutable_payload());
        response.SerializeToString(&response_bytes);
        return std::as_bytes(std::span(response_bytes));
      });
}

}  // namespace msgframe
