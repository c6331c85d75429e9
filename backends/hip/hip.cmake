# The HIP/ROCm backend (ASPO_HIP=ON, `--backend hip`): backends/cuda's sources built for AMD
# GPUs through backends/hip/hip_compat.h, which names the macros set here. CMake's HIP
# language does not configure on Debian's ROCm layout, so hipcc builds each .cu into an
# object of aspo_core (a custom command, header dependencies from hipcc's depfile); the C
# files of backends/cuda build with cc against HIP's runtime headers. Debian 12: hipcc,
# libamdhip64-dev and rocm-device-libs (scripts/setup.sh --hip); a ROCm install is found
# through ROCM_PATH or /opt/rocm. ASPO_HIP_ARCHITECTURES picks the GPUs (--offload-arch).
if(ASPO_HIP)
  if(ASPO_CUDA)
    message(FATAL_ERROR "ASPO_HIP and ASPO_CUDA build the same sources (backends/cuda): "
                        "configure one of them per build directory")
  endif()
  set(ASPO_HIP_ARCHITECTURES gfx90a CACHE STRING
      "AMD GPU targets of the HIP backend, ;-separated (gfx90a = MI200, gfx942 = MI300)")
  set(hip_hints HINTS ENV ROCM_PATH /opt/rocm)
  find_program(ASPO_HIPCC hipcc ${hip_hints} PATH_SUFFIXES bin)
  find_path(ASPO_HIP_INCLUDE_DIR hip/hip_runtime_api.h ${hip_hints} PATH_SUFFIXES include)
  find_library(ASPO_AMDHIP64 amdhip64 ${hip_hints} PATH_SUFFIXES lib)
  if(NOT ASPO_HIPCC OR NOT ASPO_HIP_INCLUDE_DIR OR NOT ASPO_AMDHIP64)
    message(FATAL_ERROR "ASPO_HIP: hipcc (${ASPO_HIPCC}), hip/hip_runtime_api.h "
                        "(${ASPO_HIP_INCLUDE_DIR}) or libamdhip64 (${ASPO_AMDHIP64}) not found. "
                        "Debian 12: apt-get install hipcc libamdhip64-dev rocm-device-libs "
                        "(bash scripts/setup.sh --hip does); ROCm: set ROCM_PATH")
  endif()

  # hipBLAS for the matmuls when ROCm has it (Debian 12 does not): else every matmul runs on
  # the project's own GEMM (backends/cuda/cuda_gemm.cu).
  find_path(ASPO_HIPBLAS_INCLUDE_DIR NAMES hipblas/hipblas.h hipblas.h ${hip_hints}
            PATH_SUFFIXES include)
  find_library(ASPO_HIPBLAS_LIBRARY hipblas ${hip_hints} PATH_SUFFIXES lib)
  set(hip_defines ASPO_HIP=1)
  set(hip_includes ${ASPO_HIP_INCLUDE_DIR})
  if(ASPO_HIPBLAS_INCLUDE_DIR AND ASPO_HIPBLAS_LIBRARY)
    list(APPEND hip_defines ASPO_HIP_BLAS=1)
    list(APPEND hip_includes ${ASPO_HIPBLAS_INCLUDE_DIR})
    list(APPEND ASPO_LIBS ${ASPO_HIPBLAS_LIBRARY})
    set(hip_blas "hipBLAS ${ASPO_HIPBLAS_LIBRARY}")
  else()
    list(APPEND hip_defines ASPO_NO_BLAS=1)
    set(hip_blas "no hipBLAS: the own GEMM")
  endif()

  # The C files: cc with HIP's runtime API (AMD platform).
  file(GLOB hip_c_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/backends/cuda/*.c)
  set_source_files_properties(${hip_c_sources} PROPERTIES
    COMPILE_DEFINITIONS "${hip_defines};__HIP_PLATFORM_AMD__=1"
    INCLUDE_DIRECTORIES "${hip_includes}")
  list(APPEND ASPO_SOURCES ${hip_c_sources})

  # The .cu files: hipcc, the build type's optimisation flags (-O3 -DNDEBUG, -g, ...), no
  # sanitizers (their runtimes are gcc's, not clang's; the C files keep theirs).
  string(TOUPPER "${CMAKE_BUILD_TYPE}" hip_config)
  separate_arguments(hip_flags UNIX_COMMAND "${CMAKE_C_FLAGS_${hip_config}}")
  # -ffp-contract=off: clang's HIP headers define __fmul_rn/__fadd_rn as plain operators, so
  # without it a*b + c in AdamW would fuse into an FMA and differ from the CPU in the last
  # bit (nvcc keeps the _rn operations apart). Division and sqrt correctly rounded, as the
  # CPU's and CUDA's __fdiv_rn/__fsqrt_rn (clang's default for HIP, made explicit).
  list(APPEND hip_flags -x hip -std=c++17 -fPIC -Wall -Wextra -ffp-contract=off
       -fhip-fp32-correctly-rounded-divide-sqrt
       -I${CMAKE_CURRENT_SOURCE_DIR} -I${CMAKE_CURRENT_BINARY_DIR})
  foreach(d ${hip_defines})
    list(APPEND hip_flags -D${d})
  endforeach()
  foreach(d ${hip_includes})
    list(APPEND hip_flags -I${d})
  endforeach()
  foreach(arch ${ASPO_HIP_ARCHITECTURES})
    list(APPEND hip_flags --offload-arch=${arch})
  endforeach()
  set(hip_object_dir ${CMAKE_CURRENT_BINARY_DIR}/backends/hip)
  file(MAKE_DIRECTORY ${hip_object_dir})
  file(GLOB hip_cu_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/backends/cuda/*.cu)
  set(hip_objects)
  foreach(src ${hip_cu_sources})
    get_filename_component(name ${src} NAME_WE)
    set(obj ${hip_object_dir}/${name}.o)
    add_custom_command(OUTPUT ${obj}
      COMMAND ${ASPO_HIPCC} ${hip_flags} -MD -MF ${obj}.d -c ${src} -o ${obj}
      DEPENDS ${src}
      DEPFILE ${obj}.d
      COMMENT "Building HIP object backends/hip/${name}.o (${ASPO_HIP_ARCHITECTURES})"
      VERBATIM)
    list(APPEND hip_objects ${obj})
  endforeach()
  set_source_files_properties(${hip_objects} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  list(APPEND ASPO_SOURCES ${hip_objects})

  # libstdc++: the objects' host code is C++ (static-local guards), linked by cc.
  list(APPEND ASPO_LIBS ${ASPO_AMDHIP64} stdc++)
  add_compile_definitions(ASPO_HAVE_HIP=1)
  message(STATUS "HIP backend: on (${ASPO_HIPCC}, ${ASPO_HIP_ARCHITECTURES}, ${hip_blas})")
endif()
