# Sources of models/tokenizer: append to ASPO_SOURCES (library), ASPO_LIBS, ASPO_CLI_SOURCES.
# tokenizer.model is a SentencePiece protobuf: protoc-c turns models/sentencepiece_model.proto
# into C in the build directory (on the include path) at build time (Debian:
# protobuf-c-compiler, libprotobuf-c-dev).
pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
find_program(PROTOC_C protoc-c)
if(NOT PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: install protobuf-c-compiler (scripts/setup.sh does)")
endif()
set(ASPO_SPM_PROTO_C ${CMAKE_CURRENT_BINARY_DIR}/models/sentencepiece_model.pb-c.c)
add_custom_command(
  OUTPUT ${ASPO_SPM_PROTO_C} ${CMAKE_CURRENT_BINARY_DIR}/models/sentencepiece_model.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/models
  COMMAND ${PROTOC_C} --proto_path=${CMAKE_CURRENT_SOURCE_DIR}
          --c_out=${CMAKE_CURRENT_BINARY_DIR} models/sentencepiece_model.proto
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/models/sentencepiece_model.proto
  COMMENT "protoc-c models/sentencepiece_model.proto"
  VERBATIM)
# Generated code: not ours to keep -Wextra clean.
set_source_files_properties(${ASPO_SPM_PROTO_C} PROPERTIES COMPILE_OPTIONS "-w")

list(APPEND ASPO_SOURCES
  models/tokenizer.c models/tokenizer_json.c models/tokenizer_spm.c models/tokenizer_bpe.c
  models/tokenizer_encode.c models/tokenizer_decode.c models/tokenizer_map.c
  ${ASPO_SPM_PROTO_C})
list(APPEND ASPO_LIBS PkgConfig::PROTOBUF_C)
