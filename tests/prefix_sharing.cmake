# Prefix sharing: packed pair batches against the padded rows they replace (layout, then
# LLaMA, LLaVA and InstructBLIP log-probs and LoRA gradients), on the CPU and, when built, on
# Vulkan (lavapipe in CI) and simt (the CUDA kernels on the CPU); exit 77 = no such device.
aspo_test(test_prefix_sharing test_prefix_sharing.c)
add_test(NAME prefix_sharing COMMAND test_prefix_sharing ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
foreach(be vulkan simt)
  string(TOUPPER ${be} BE)
  if(ASPO_HAVE_${BE})
    add_test(NAME prefix_sharing_${be} COMMAND test_prefix_sharing
             ${CMAKE_CURRENT_SOURCE_DIR}/fixtures ${be})
    set_tests_properties(prefix_sharing_${be} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endforeach()
