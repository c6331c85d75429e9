# LLaVA-1.5 (both layouts, LoRA, sharing, adapters) against transformers 4.44.2 + PEFT 0.12.0
# fixtures made by tests/parity/make_llava_fixtures.py; also reads fixtures/image and
# fixtures/llama, hence the fixtures root.
aspo_test(test_llava test_llava.c)
add_test(NAME llava COMMAND test_llava ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
