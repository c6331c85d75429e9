# ASPO's CLIP similarities against transformers 4.44.2 fixtures made by
# tests/parity/make_similarity_fixtures.py.
aspo_test(test_similarity test_similarity.c)
add_test(NAME similarity COMMAND test_similarity ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/similarity)
