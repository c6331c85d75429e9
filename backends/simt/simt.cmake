# The simt backend (`--backend simt`): backends/cuda's sources built a third time, by the
# host C++ compiler, and run on the CPU by backends/simt (each CUDA thread a fiber; docs/GPU.md,
# "The CPU execution layer"). It is how the CUDA/HIP kernels are executed and checked where no
# GPU is. AUTO: on unless this build has the CUDA or HIP backend (the three share symbols).
#
# The kernels' objects are compiled with -fsanitize=thread for the race, address and
# initialisation checks of simt_race.c, which is the runtime those calls reach (ThreadSanitizer's
# own runtime is not linked); an ASan build (ASPO_SANITIZE) compiles them with ASan instead,
# which then checks their global and shared memory accesses. -ffp-contract=off: the _rn
# intrinsics and the CPU backend's roundings hold as written; -g1: line tables, for the
# file:line of a reported race.
set(ASPO_SIMT AUTO CACHE STRING "Build the simt backend (CUDA kernels on the CPU): AUTO, ON or OFF")
set(simt_wanted ${ASPO_SIMT})
if(ASPO_SIMT STREQUAL "AUTO")
  set(simt_wanted ON)
  if(ASPO_CUDA OR ASPO_HIP)
    set(simt_wanted OFF)
  endif()
elseif(ASPO_SIMT AND (ASPO_CUDA OR ASPO_HIP))
  message(FATAL_ERROR "ASPO_SIMT builds backends/cuda's sources as ASPO_CUDA and ASPO_HIP do: "
                      "configure one of them per build directory")
endif()

if(simt_wanted)
  enable_language(CXX)
  set(CMAKE_CXX_STANDARD 17)
  set(CMAKE_CXX_STANDARD_REQUIRED ON)
  set(simt_dir ${CMAKE_CURRENT_SOURCE_DIR}/backends/simt)
  set(ASPO_SIMT_KERNEL_FLAGS -x c++ -ffp-contract=off -g1 -Wno-unknown-pragmas) # #pragma unroll
  if(NOT ASPO_SANITIZE)
    list(APPEND ASPO_SIMT_KERNEL_FLAGS -fsanitize=thread --param=tsan-instrument-func-entry-exit=0)
  else()
    # The sanitizer build is Debug: at -O0 a training step through the fibers takes minutes.
    # -O1 (ASan's usual level) keeps every check and is several times faster.
    list(APPEND ASPO_SIMT_KERNEL_FLAGS -O1)
  endif()
  file(GLOB simt_kernels CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/backends/cuda/*.cu)
  set_source_files_properties(${simt_kernels} PROPERTIES LANGUAGE CXX
    COMPILE_DEFINITIONS ASPO_SIMT=1 COMPILE_OPTIONS "${ASPO_SIMT_KERNEL_FLAGS}")
  file(GLOB simt_c_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/backends/cuda/*.c)
  set_source_files_properties(${simt_c_sources} PROPERTIES COMPILE_DEFINITIONS ASPO_SIMT=1)
  set(simt_layer ${simt_dir}/simt_fiber.c ${simt_dir}/simt_exec.c ${simt_dir}/simt_race.c
      ${simt_dir}/simt_stream.c ${simt_dir}/simt_cublas.c)
  if(ASPO_SANITIZE)
    set_source_files_properties(${simt_layer} ${simt_c_sources} PROPERTIES COMPILE_OPTIONS -O1)
  endif()
  list(APPEND ASPO_SOURCES ${simt_kernels} ${simt_c_sources} ${simt_layer})
  list(APPEND ASPO_LIBS ${CMAKE_DL_LIBS})
  add_compile_definitions(ASPO_HAVE_SIMT=1)
  set(ASPO_HAVE_SIMT ON)
  if(ASPO_SANITIZE)
    message(STATUS "simt backend: on (kernels under ASan; the race check needs a build without ASPO_SANITIZE)")
  else()
    message(STATUS "simt backend: on (kernels instrumented for the race check)")
  endif()
endif()
