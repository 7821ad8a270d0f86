# Finds msgframe's dependencies, refusing versions it was not built and tested with.

# Debian 12 ships Boost 1.74 as the default libboost-dev; msgframe needs 1.81 (libboost1.81-dev).
find_package(Boost 1.81 CONFIG QUIET)
if(NOT Boost_FOUND)
  message(FATAL_ERROR
    "msgframe needs Boost 1.81 or newer (found: ${Boost_VERSION}${Boost_NOT_FOUND_MESSAGE}).\n"
    "On Debian 12 run scripts/install-deps.sh, or apt-get install libboost1.81-dev "
    "libboost-test1.81-dev libboost-program-options1.81-dev.")
endif()

# Protocol Buffers 3.21 (libprotobuf-dev, protobuf-compiler): the messages of the wire contract.
find_package(Protobuf 3.21 REQUIRED)
find_package(Threads REQUIRED)

# OpenSSL (libssl-dev): TLS for the server and the client, through Asio's SSL layer.
find_package(OpenSSL 3 REQUIRED)
