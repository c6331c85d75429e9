# The CUDA backend's device, memory and indexing behaviour, or the HIP backend's in a HIP
# build, or the simt backend's (the same sources on the CPU; backends/simt). The ops are in
# tests/ops. Exit 77 = no GPU on this machine = skipped.
if(ASPO_CUDA OR ASPO_HIP OR ASPO_HAVE_SIMT)
  if(ASPO_HIP)
    set(gpu hip)
  elseif(ASPO_CUDA)
    set(gpu cuda)
  else()
    set(gpu simt)
  endif()
  aspo_test(test_cuda test_cuda.c)
  add_test(NAME ${gpu} COMMAND test_cuda ${gpu})
  set_tests_properties(${gpu} PROPERTIES SKIP_RETURN_CODE 77)
  if(ASPO_HAVE_SIMT AND ASPO_SANITIZE)
    # Under ASan the 2^31 + 4099-element case would take many minutes: a 4 GiB device skips
    # it (the test says so); the Release build runs it.
    set_tests_properties(${gpu} PROPERTIES ENVIRONMENT ASPO_SIMT_MEMORY=4096)
  elseif(ASPO_HAVE_SIMT)
    # 2^31 + 4099 elements through the kernels (8 GiB of device memory, about a minute); the
    # race check's shadow would double that, so it is off for this one.
    set_tests_properties(${gpu} PROPERTIES ENVIRONMENT ASPO_SIMT_RACECHECK=0)
  endif()
endif()
