# CLIP towers against transformers 4.44.2 fixtures made by tests/parity/make_clip_fixtures.py.
aspo_test(test_clip test_clip.c)
add_test(NAME clip COMMAND test_clip ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/clip)
