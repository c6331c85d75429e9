# InstructBLIP against transformers 4.44.2 fixtures made by
# tests/parity/make_instructblip_fixtures.py (the vision encoder so far).
aspo_test(test_instructblip test_instructblip.c)
add_test(NAME instructblip COMMAND test_instructblip ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
