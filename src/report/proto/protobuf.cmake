# pprof's profile.proto compiled by Debian's protoc at build time into the memlens_report library (lite
# runtime). Included from the top-level CMakeLists.txt after memlens_layer(report ...). Generated files go
# to <build>/generated/report/proto/, included as "report/proto/profile.pb.h".
find_package(Protobuf REQUIRED)

set(MEMLENS_PROTO_OUT ${CMAKE_BINARY_DIR}/generated/report/proto)
file(MAKE_DIRECTORY ${MEMLENS_PROTO_OUT})
protobuf_generate(
  LANGUAGE cpp
  APPEND_PATH
  TARGET memlens_report
  PROTOS ${CMAKE_SOURCE_DIR}/src/report/proto/profile.proto
  PROTOC_OUT_DIR ${MEMLENS_PROTO_OUT})
target_include_directories(memlens_report PUBLIC ${CMAKE_BINARY_DIR}/generated)
target_link_libraries(memlens_report PUBLIC protobuf::libprotobuf-lite)
