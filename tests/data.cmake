# Test suites for the data part (aspo_test + add_test).
# test_data <fixtures dir>: reads fixtures/data (TRL-made expectations),
# fixtures/tokenizer (the tokenizer part's tokenizer.json) and fixtures/llava_data (image
# preference pairs as JSONL and as SeVa's JSON list, tests/parity/make_llava_data.py).
aspo_test(test_data test_data.c)
add_test(NAME data COMMAND test_data ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
