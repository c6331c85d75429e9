# Sourced by scripts/test.sh and scripts/faults.sh: the build directory and CMake settings
# for a Release build in build/, or with ASPO_SANITIZE=1 an ASan+UBSan Debug build in
# build-asan/ ($BUILD_DIR overrides either). Sets build_dir and config.
if [[ "${ASPO_SANITIZE:-0}" == 1 ]]; then
    build_dir=${BUILD_DIR:-build-asan}
    config=(-DCMAKE_BUILD_TYPE=Debug -DASPO_SANITIZE=ON)
    # Leaks inside the Vulkan driver are the driver's (scripts/lsan.supp says which).
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
else
    build_dir=${BUILD_DIR:-build}
    config=(-DCMAKE_BUILD_TYPE=Release -DASPO_SANITIZE=OFF)
fi
