# Image rows through pair_tokenize and pair_batch_build (fixtures/image_pairs, made by
# tests/parity/make_image_pair_fixtures.py; tokenizers from fixtures/tokenizer).
aspo_test(test_image_pairs test_image_pairs.c)
add_test(NAME image_pairs COMMAND test_image_pairs ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
