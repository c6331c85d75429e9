# Sources of models/image (PNG/JPEG decoding, CLIP preprocessing): libpng and
# libjpeg-turbo (Debian: libpng-dev, libjpeg62-turbo-dev).
pkg_check_modules(LIBPNG REQUIRED IMPORTED_TARGET libpng)
pkg_check_modules(LIBJPEG REQUIRED IMPORTED_TARGET libjpeg)
list(APPEND ASPO_SOURCES models/image_decode.c models/image_preprocess.c)
list(APPEND ASPO_LIBS PkgConfig::LIBPNG PkgConfig::LIBJPEG)
