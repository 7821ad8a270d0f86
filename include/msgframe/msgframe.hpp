// The whole public API of msgframe in one include.
#pragma once

#include "msgframe/client.hpp"
#include "msgframe/echo_service.hpp"
#include "msgframe/envelope.hpp"
#include "msgframe/error.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"
#include "msgframe/frame_options.hpp"
#include "msgframe/router.hpp"
#include "msgframe/server.hpp"
#include "msgframe/time_service.hpp"
