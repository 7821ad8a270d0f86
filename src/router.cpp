// Dispatching a request to its handler by type name.
#include "msgframe/router.hpp"

namespace msgframe {

void Router::add(std::string type, std::unique_ptr<detail::RouteEntry> route) {
  if (routes_.contains(type)) {
    throw std::invalid_argument("Router: " + type + " already has a handler");
  }
  routes_.emplace(std::move(type), std::move(route));
}

void Router::dispatch(std::string_view type, std::span<const std::byte> payload,
                      const RequestContext& context, ReplyChannel& channel) const {
  const auto route = routes_.find(type);
  if (route == routes_.end()) {
    channel.send_error(context.request_id, v1::ERROR_CODE_UNKNOWN_TYPE,
                       type.empty() ? std::string("the request has no type")
                                    : "no handler for type " + std::string(type));
    return;
  }
  route->second->invoke(payload, context, channel);
}

}  // namespace msgframe
