# The CUDA backend (ASPO_CUDA=ON): the C vtable and the .cu kernels, cuBLAS/cuBLASLt for
# GEMMs. CUDA architectures must be set explicitly on machines without a GPU ("native"
# needs one): the default is sm_80 (A100), sm_89 (L20/L40/4090) and sm_90 (H100/H200).
if(ASPO_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 89 90)
  endif()
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_STANDARD 17)
  file(GLOB ASPO_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/backends/cuda/*.cu
                                                ${CMAKE_CURRENT_SOURCE_DIR}/backends/cuda/*.c)
  list(APPEND ASPO_SOURCES ${ASPO_CUDA_SOURCES})
  list(APPEND ASPO_LIBS CUDA::cudart CUDA::cublas CUDA::cublasLt)
  add_compile_definitions(ASPO_HAVE_CUDA=1)
  message(STATUS "CUDA backend: on (${CMAKE_CUDA_COMPILER}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
endif()
