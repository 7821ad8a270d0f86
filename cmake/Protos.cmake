# Generates C++ for the wire contract's messages at build time, into generated/msgframe/v1/, so
# that generated paths mirror the import paths ("msgframe/v1/envelope.pb.h").
set(MSGFRAME_PROTO_DIR ${PROJECT_SOURCE_DIR}/proto)
set(MSGFRAME_GENERATED_DIR ${PROJECT_BINARY_DIR}/generated)
file(MAKE_DIRECTORY ${MSGFRAME_GENERATED_DIR})

foreach(name envelope echo time)
  set(proto ${MSGFRAME_PROTO_DIR}/msgframe/v1/${name}.proto)
  set(generated ${MSGFRAME_GENERATED_DIR}/msgframe/v1/${name}.pb)
  add_custom_command(
    OUTPUT ${generated}.cc ${generated}.h
    COMMAND protobuf::protoc --cpp_out=${MSGFRAME_GENERATED_DIR} -I ${MSGFRAME_PROTO_DIR} ${proto}
    DEPENDS ${proto} protobuf::protoc
    COMMENT "Generating C++ from msgframe/v1/${name}.proto"
    VERBATIM)
  target_sources(msgframe PRIVATE ${generated}.cc ${generated}.h)
endforeach()
