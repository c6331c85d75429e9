# Test suite for models/bert_tokenizer (parity with HF's slow BertTokenizer).
aspo_test(test_bert_tokenizer test_bert_tokenizer.c)
add_test(NAME bert_tokenizer
         COMMAND test_bert_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/bert_tokenizer)
