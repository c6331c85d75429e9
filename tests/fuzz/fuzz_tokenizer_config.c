/* tokenizer_config.json and special_tokens_map.json beside a fixed small tokenizer.json (a
 * LLaMA-style BPE with byte fallback): special tokens, added_tokens_decoder and the flags
 * the tokenizer reads from them, then a text encoded and decoded as fuzz_tokenizer does.
 *
 * Input, cut by scissors lines (fuzz_common.h): tokenizer_config.json, then optionally
 * special_tokens_map.json and the text; an empty config part is no file. */
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_tokenize.h"
#include "models/tokenizer.h"

enum { MAX_INPUT = 1 << 16 };

/* Ids 0-2 special, "<0x41>" and "<0x0A>" for byte fallback, two merges; the rest as
 * transformers writes a LLaMA tokenizer.json. */
static const char tokenizer_json[] =
    "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n"
    " \"added_tokens\": [\n"
    "  {\"id\": 0, \"content\": \"<unk>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 1, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true},\n"
    "  {\"id\": 2, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false,"
    " \"rstrip\": false, \"normalized\": false, \"special\": true}],\n"
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
    "{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
    " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},\n"
    " \"pre_tokenizer\": null,\n"
    " \"post_processor\": {\"type\": \"TemplateProcessing\","
    " \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
    " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
    " \"pair\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
    " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
    " {\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 1}},"
    " {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}],"
    " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},\n"
    " \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
    "{\"type\": \"Replace\", \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"},"
    " {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"},"
    " {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},\n"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\","
    " \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": true,"
    " \"byte_fallback\": true, \"ignore_merges\": false,\n"
    "  \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0x0A>\": 3, \"<0x41>\": 4,"
    " \"\\u2581\": 5, \"a\": 6, \"b\": 7, \"c\": 8, \"\\u2581a\": 9, \"ab\": 10},\n"
    "  \"merges\": [\"\\u2581 a\", \"a b\"]}}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return 0;
    const char *dir = fuzz_reset();
    fuzz_part part[3];
    fuzz_split(data, size, part, 3);
    fuzz_write("tokenizer.json", tokenizer_json, strlen(tokenizer_json));
    if (part[0].size) fuzz_write("tokenizer_config.json", part[0].data, part[0].size);
    if (part[1].size) fuzz_write("special_tokens_map.json", part[1].data, part[1].size);
    tokenizer *t;
    if (tokenizer_load(dir, &t) == ASPO_OK) {
        fuzz_tokenize_lines(t, part[2].data, part[2].size);
        tokenizer_free(t);
    }
    fuzz_error_done();
    return 0;
}
