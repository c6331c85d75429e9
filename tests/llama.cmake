# Test suites for the llama part (aspo_test + add_test).
# Parity against transformers 4.44.2 + PEFT 0.12.0 fixtures made by
# tests/parity/make_llama_fixtures.py.
aspo_test(test_llama test_llama.c)
add_test(NAME llama COMMAND test_llama ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/llama)
