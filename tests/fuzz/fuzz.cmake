# ASPO_FUZZ: the libFuzzer targets of tests/fuzz (README.md there; scripts/fuzz.sh builds and
# runs them). Included from CMakeLists.txt before the backends and aspo_core: everything is
# compiled with coverage for libFuzzer plus ASan and UBSan (a UBSan report stops the run, so
# libFuzzer keeps the input); only the targets link libFuzzer's runtime and main.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "ASPO_FUZZ needs clang's libFuzzer, and the C compiler is "
                      "${CMAKE_C_COMPILER_ID}: configure a fresh build directory with CC=clang "
                      "(scripts/fuzz.sh does; bash scripts/setup.sh --fuzz installs clang)")
endif()
if(ASPO_CUDA OR ASPO_HIP)
  message(FATAL_ERROR "ASPO_FUZZ builds the CPU backend only: configure it without "
                      "ASPO_CUDA and ASPO_HIP")
endif()
# The inputs reach file loaders and the CPU backend only: no GPU backend, and no simt (its
# kernels are C++, and no fuzz target reaches them).
set(ASPO_VULKAN OFF CACHE STRING "Build the Vulkan compute backend: AUTO, ON or OFF" FORCE)
set(ASPO_SIMT OFF CACHE STRING
    "Build the simt backend (CUDA kernels on the CPU): AUTO, ON or OFF" FORCE)

add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -g)
add_link_options(-fsanitize=address,undefined)

set(ASPO_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
# One executable per input kind (fuzz_<name>.c); scripts/fuzz.sh runs each that has a seed
# corpus, tests/fuzz/corpus/<name>/.
set(ASPO_FUZZ_TARGETS safetensors model_config dataset tokenizer tokenizer_config clip_tokenizer
                      image adapter_config)

# Called once CMakeLists.txt is read to the end, when aspo_core exists.
function(aspo_fuzz_add_targets)
  add_library(aspo_fuzz_common STATIC ${ASPO_FUZZ_DIR}/fuzz_common.c
                                      ${ASPO_FUZZ_DIR}/fuzz_tokenize.c)
  target_link_libraries(aspo_fuzz_common PUBLIC aspo_core)
  set(all)
  foreach(name ${ASPO_FUZZ_TARGETS})
    add_executable(fuzz_${name} ${ASPO_FUZZ_DIR}/fuzz_${name}.c)
    target_link_libraries(fuzz_${name} PRIVATE aspo_fuzz_common aspo_core)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    list(APPEND all fuzz_${name})
  endforeach()
  add_custom_target(fuzz_targets DEPENDS ${all})
endfunction()
cmake_language(DEFER CALL aspo_fuzz_add_targets)
