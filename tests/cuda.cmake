# The CUDA backend's device, memory and indexing behaviour, or the HIP backend's in a HIP
# build (the ops are in tests/ops). Exit 77 = no GPU on this machine = skipped.
if(ASPO_CUDA OR ASPO_HIP)
  if(ASPO_HIP)
    set(gpu hip)
  else()
    set(gpu cuda)
  endif()
  aspo_test(test_cuda test_cuda.c)
  add_test(NAME ${gpu} COMMAND test_cuda ${gpu})
  set_tests_properties(${gpu} PROPERTIES SKIP_RETURN_CODE 77)
endif()
