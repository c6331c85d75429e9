# Sources of models/clip_tokenizer (CLIP's BPE text tokenizer) and models/text_unicode (the
# Unicode helpers the text tokenizers share). Unicode categories, lower-casing and NFC come
# from ICU (Debian: libicu-dev).
pkg_check_modules(ICU_UC REQUIRED IMPORTED_TARGET icu-uc)
list(APPEND ASPO_SOURCES models/clip_tokenizer.c models/text_unicode.c)
list(APPEND ASPO_LIBS PkgConfig::ICU_UC)
