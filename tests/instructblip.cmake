# InstructBLIP against transformers 4.44.2 fixtures made by
# tests/parity/make_instructblip_fixtures.py and make_blip_preprocess_fixtures.py, on the CPU
# and, when built, on Vulkan (lavapipe in CI) and on simt (the CUDA kernels on the CPU);
# exit 77 = no such device here.
aspo_test(test_instructblip test_instructblip.c)
add_test(NAME instructblip COMMAND test_instructblip ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
foreach(be vulkan simt)
  string(TOUPPER ${be} BE)
  if(ASPO_HAVE_${BE})
    add_test(NAME instructblip_${be} COMMAND test_instructblip ${CMAKE_CURRENT_SOURCE_DIR}/fixtures ${be})
    set_tests_properties(instructblip_${be} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endforeach()
