# Test suite for models/clip_tokenizer (parity with HF CLIPTokenizer).
aspo_test(test_clip_tokenizer test_clip_tokenizer.c)
add_test(NAME clip_tokenizer
         COMMAND test_clip_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/clip_tokenizer)
