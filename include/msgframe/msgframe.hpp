// The whole public API of msgframe in one include.
#pragma once

#include "msgframe/error.hpp"
#include "msgframe/frame_decoder.hpp"
#include "msgframe/frame_encoder.hpp"
#include "msgframe/frame_options.hpp"
