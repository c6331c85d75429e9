# The Vulkan backend: ASPO_VULKAN AUTO builds it when the loader headers and glslc are
# there. Shaders (shaders/*.comp) are compiled to SPIR-V at build time and embedded in
# the binary through a generated vk_shaders.c, so nothing is looked up at run time.
find_package(Vulkan QUIET)
find_program(GLSLC glslc)
set(ASPO_HAVE_VULKAN OFF)
if(ASPO_VULKAN STREQUAL "AUTO")
  if(Vulkan_FOUND AND GLSLC)
    set(ASPO_HAVE_VULKAN ON)
  else()
    message(STATUS "Vulkan backend: off (needs libvulkan-dev and glslc; scripts/setup.sh installs them)")
  endif()
elseif(ASPO_VULKAN)
  if(NOT Vulkan_FOUND OR NOT GLSLC)
    message(FATAL_ERROR "ASPO_VULKAN=ON needs libvulkan-dev and glslc (apt install libvulkan-dev glslc)")
  endif()
  set(ASPO_HAVE_VULKAN ON)
endif()

if(ASPO_HAVE_VULKAN)
  message(STATUS "Vulkan backend: on (glslc ${GLSLC})")
  file(GLOB ASPO_SHADERS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/shaders/*.comp)
  # Shaders #include shaders/*.glsl and *.h, and tensor/op_kinds.h (the kinds C numbers too).
  file(GLOB ASPO_SHADER_INCLUDES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/shaders/*.glsl
       ${CMAKE_CURRENT_SOURCE_DIR}/shaders/*.h)
  list(APPEND ASPO_SHADER_INCLUDES ${CMAKE_CURRENT_SOURCE_DIR}/tensor/op_kinds.h)
  set(spv_files)
  foreach(src ${ASPO_SHADERS})
    get_filename_component(name ${src} NAME_WE)
    set(spv ${CMAKE_CURRENT_BINARY_DIR}/shaders/${name}.spv)
    add_custom_command(
      OUTPUT ${spv}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/shaders
      COMMAND ${GLSLC} --target-env=vulkan1.2 -O -I ${CMAKE_CURRENT_SOURCE_DIR}/shaders
              -I ${CMAKE_CURRENT_SOURCE_DIR}/tensor -o ${spv} ${src}
      DEPENDS ${src} ${ASPO_SHADER_INCLUDES}
      COMMENT "glslc ${name}.comp"
      VERBATIM)
    list(APPEND spv_files ${spv})
  endforeach()
  set(embedded ${CMAKE_CURRENT_BINARY_DIR}/vk_shaders.c)
  add_custom_command(
    OUTPUT ${embedded}
    COMMAND ${CMAKE_COMMAND} -DOUT=${embedded} "-DSPV=${spv_files}"
            -P ${CMAKE_CURRENT_SOURCE_DIR}/shaders/embed.cmake
    DEPENDS ${spv_files} ${CMAKE_CURRENT_SOURCE_DIR}/shaders/embed.cmake
    COMMENT "embedding ${CMAKE_CURRENT_BINARY_DIR}/shaders/*.spv"
    VERBATIM)
  file(GLOB ASPO_VK_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/backends/vulkan/*.c)
  list(APPEND ASPO_SOURCES ${ASPO_VK_SOURCES} ${embedded})
  list(APPEND ASPO_LIBS Vulkan::Vulkan)
  add_compile_definitions(ASPO_HAVE_VULKAN=1)
endif()
