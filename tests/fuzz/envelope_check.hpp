// The fuzz property of the Envelope parser: on every input, parse_envelope gives what the
// reference parser on protobuf's own CodedInputStream gives — the same verdict, the same id
// (which a BAD_ENVELOPE reply carries), and on success the same fields, viewing the same bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "fuzz/reference_envelope.hpp"

namespace msgframe::test {

inline std::string check_envelope(std::span<const std::uint8_t> input) {
  const auto body = std::as_bytes(input);
  EnvelopeView parsed;
  EnvelopeView expected;
  const auto error = parse_envelope(body, parsed);
  const auto expected_error = reference_parse_envelope(body, expected);
  if (error != expected_error) {
    return "verdict " + error.message() + ", the reference's " + expected_error.message();
  }
  if (parsed.id != expected.id) {
    return "id " + std::to_string(parsed.id) + ", the reference's " + std::to_string(expected.id);
  }
  if (error) return "";
  if (parsed.kind != expected.kind) return "a different kind";
  if (parsed.type.data() != expected.type.data() || parsed.type.size() != expected.type.size()) {
    return "a different type";
  }
  if (parsed.payload.data() != expected.payload.data() ||
      parsed.payload.size() != expected.payload.size()) {
    return "a different payload";
  }
  if (parsed.error.has_value() != expected.error.has_value()) return "an error in one only";
  if (parsed.error && (parsed.error->code() != expected.error->code() ||
                       parsed.error->message() != expected.error->message())) {
    return "a different error";
  }
  return "";
}

}  // namespace msgframe::test
