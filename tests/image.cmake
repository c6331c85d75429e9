# Test suite for models/image: decoding and CLIPImageProcessor parity on committed fixtures.
aspo_test(test_image test_image.c)
add_test(NAME image COMMAND test_image ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/image)
