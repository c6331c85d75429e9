# Sources of models/bert_tokenizer (BERT WordPiece, InstructBLIP's Q-Former instruction
# tokenizer); models/text_unicode (listed in clip_tokenizer.cmake) gives it categories, case
# mappings and NFC/NFD from ICU (Debian: libicu-dev).
if(NOT TARGET PkgConfig::ICU_UC)
  pkg_check_modules(ICU_UC REQUIRED IMPORTED_TARGET icu-uc)
endif()
list(APPEND ASPO_SOURCES models/bert_tokenizer.c models/bert_tokenizer_load.c)
list(APPEND ASPO_LIBS PkgConfig::ICU_UC)
