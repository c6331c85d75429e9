# Fault injection (issue 12). CI runs a sample of each loop; scripts/faults.sh runs them
# whole and prints the figures of docs/RELIABILITY.md.
#
# Allocation failures (tests/fault/alloc_faults.c): `aspo run`'s job in-process with its
# Nth allocation failing. The wrappers reach the library's calls because aspo_core is
# static: its objects are linked into this binary, where --wrap applies.
add_executable(alloc_faults fault/alloc_faults.c)
target_include_directories(alloc_faults PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(alloc_faults PRIVATE aspo_core ${CMAKE_DL_LIBS})
target_link_options(alloc_faults PRIVATE
  -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=posix_memalign,--wrap=aligned_alloc,--wrap=strdup,--wrap=strndup)
# Every 5th N (a prime, so the sample does not fall in step with loops that allocate in a
# fixed pattern), from N=1 so that a failure reproduces: about 1850 of the job's ~9300.
add_test(NAME alloc_faults COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fault/alloc_faults.sh
         $<TARGET_FILE:aspo> $<TARGET_FILE:alloc_faults> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures 5)
# A full disk and a SIGKILL at every 7th write-side system call into --out (strace injects
# them; exit 77 = strace cannot trace here = skipped, with the reason).
foreach(mode enospc kill)
  add_test(NAME write_faults_${mode} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fault/write_faults.sh
           $<TARGET_FILE:aspo> ${CMAKE_CURRENT_SOURCE_DIR}/fixtures ${mode} 7)
  set_tests_properties(write_faults_${mode} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
