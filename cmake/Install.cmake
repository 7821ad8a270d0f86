# Installs the library, its headers and a CMake package so users can find_package(msgframe).
include(CMakePackageConfigHelpers)

install(TARGETS msgframe EXPORT msgframeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/msgframe DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# Generated headers and the .proto files side by side, so users can
# import "msgframe/v1/envelope.proto" with -I<prefix>/include.
install(DIRECTORY ${PROJECT_BINARY_DIR}/generated/msgframe DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.pb.h")
install(DIRECTORY proto/msgframe DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.proto")

set(MSGFRAME_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/msgframe)
install(EXPORT msgframeTargets NAMESPACE msgframe:: DESTINATION ${MSGFRAME_CMAKE_DIR})
configure_package_config_file(cmake/msgframeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/msgframeConfig.cmake INSTALL_DESTINATION ${MSGFRAME_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/msgframeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/msgframeConfig.cmake
  ${PROJECT_BINARY_DIR}/msgframeConfigVersion.cmake DESTINATION ${MSGFRAME_CMAKE_DIR})
