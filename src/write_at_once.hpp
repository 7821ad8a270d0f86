// Writing on a non-blocking socket without waiting for a completion: what the socket takes now
// goes at once, and what it does not take is left for an asynchronous write.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <vector>

namespace msgframe {

// Removes the first `bytes` of `buffers`, which holds more than that.
inline void drop_written(std::vector<boost::asio::const_buffer>& buffers, std::size_t bytes) {
  auto first = buffers.begin();
  while (bytes >= first->size()) bytes -= (first++)->size();
  *first += bytes;
  buffers.erase(buffers.begin(), first);
}

// Writes as much of `buffers` as the socket takes now, past Asio's 64 buffers a call, and drops
// it from `buffers`. True when all of it went; false when the socket would block (error clear)
// or failed (error set).
inline bool write_at_once(boost::asio::ip::tcp::socket& socket,
                          std::vector<boost::asio::const_buffer>& buffers,
                          boost::system::error_code& error) {
  auto left = boost::asio::buffer_size(buffers);
  for (;;) {
    // One buffer goes by send(): sendmsg() would copy an iovec in, on every call of a sequence.
    const auto written = buffers.size() == 1 ? socket.write_some(buffers.front(), error)
                                             : socket.write_some(buffers, error);
    left -= written;
    if (left == 0) {
      buffers.clear();
      error = {};
      return true;
    }
    drop_written(buffers, written);
    if (error == boost::asio::error::would_block) {
      error = {};
      return false;
    }
    if (error) return false;
  }
}

}  // namespace msgframe
