# The CUDA/HIP kernels executed on the CPU (backends/simt): every op case against the CPU
# backend with 32-lane warps (NVIDIA) and 64-lane warps (AMD CDNA limits, a random schedule),
# the race, address and shared-memory checks on (they need the instrumented build, i.e. not
# ASPO_SANITIZE; the ASan build runs the same cases under AddressSanitizer instead).
if(ASPO_HAVE_SIMT)
  add_test(NAME ops_simt32 COMMAND test_ops --backend simt)
  add_test(NAME ops_simt64 COMMAND test_ops --backend simt)
  set_tests_properties(ops_simt32 PROPERTIES ENVIRONMENT ASPO_SIMT_WARP=32)
  # The 64-lane run also takes the second schedule: a block's threads in a seeded random order
  # between barriers, so a race changes results too.
  set_tests_properties(ops_simt64 PROPERTIES ENVIRONMENT "ASPO_SIMT_WARP=64;ASPO_SIMT_SCHEDULE=random:1")
  # The matmul cases again with every product on the own GEMM kernel (cuda_gemm.cu), which
  # otherwise gets only the layouts the cuBLAS stand-in cannot take.
  add_test(NAME ops_simt_own_gemm COMMAND test_ops --backend simt matmul)
  set_tests_properties(ops_simt_own_gemm PROPERTIES ENVIRONMENT ASPO_CUDA_GEMM=own)
  # Training end to end: loss curves on simt against the CPU's (tests/cli/backend.sh). The race
  # check is off here (it doubles the time; the op suites above run every kernel under it).
  # The sanitizer build (Debug, ASan) takes the f32 LLaMA curve only: its kernels' memory
  # safety is what it adds, and each simt run there takes a minute and a half.
  add_test(NAME cli_simt COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/backend.sh $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures simt)
  if(ASPO_SANITIZE)
    set_tests_properties(cli_simt PROPERTIES ENVIRONMENT CLI_BACKEND_PARTS=f32 SKIP_RETURN_CODE 77)
  else()
    set_tests_properties(cli_simt PROPERTIES ENVIRONMENT ASPO_SIMT_RACECHECK=0 SKIP_RETURN_CODE 77)
  endif()
  # The CUDA backend's behaviour beyond the ops, on simt, as on an H100 (227 KiB opt-in).
  aspo_test(test_simt_backend test_simt_backend.c)
  add_test(NAME simt_backend COMMAND test_simt_backend)
  set_tests_properties(simt_backend PROPERTIES ENVIRONMENT ASPO_SIMT_SHARED_OPTIN=227)
  aspo_test(test_simt_cublas test_simt_cublas.c)
  add_test(NAME simt_cublas COMMAND test_simt_cublas)
endif()

# The layer's own checks, on kernels with planted bugs (tests/simt/test_simt.cu, built as the
# backend's kernels are), at both warp widths.
if(ASPO_HAVE_SIMT)
  add_executable(test_simt simt/test_simt.cu)
  set_source_files_properties(simt/test_simt.cu PROPERTIES LANGUAGE CXX
    COMPILE_DEFINITIONS ASPO_SIMT=1 COMPILE_OPTIONS "${ASPO_SIMT_KERNEL_FLAGS}")
  target_include_directories(test_simt PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(test_simt PRIVATE aspo_core)
  add_test(NAME simt_checks32 COMMAND test_simt)
  add_test(NAME simt_checks64 COMMAND test_simt)
  set_tests_properties(simt_checks32 PROPERTIES ENVIRONMENT ASPO_SIMT_WARP=32)
  set_tests_properties(simt_checks64 PROPERTIES ENVIRONMENT "ASPO_SIMT_WARP=64;ASPO_SIMT_SCHEDULE=random:7")
endif()
