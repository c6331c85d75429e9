/* The task of `aspo demo`, generated in the binary: preference pairs about a small made-up
 * world of animals whose facts are known, so which answer is right is never in doubt.
 *
 *   prompt:   Tell me about the bee.
 *   chosen:   The bee lives in the hive. The bee has six legs. The bee eats nectar.
 *   rejected: The bee lives in the hive. The bee has eight legs. The bee eats nectar.
 *
 * Each answer has three sentences (legs, home, food) in a random order; the rejected one
 * has exactly one of them made false with another animal's value. Also the LLaMA-style
 * tokenizer.json for the task's words, so nothing is downloaded. */
#ifndef ASPO_DEMO_TASK_H
#define ASPO_DEMO_TASK_H

#include <stdint.h>
#include <stdio.h>

#include "tensor/error.h"

/* Animals in the world (the first n of them are used). */
int demo_task_animals(void);

/* Writes n_pairs distinct pairs as JSONL ({"prompt", "chosen", "rejected"}) about the first
 * n_animals animals, drawn by a counter-based RNG keyed by seed. Fails when n_pairs exceeds
 * the distinct pairs those animals allow. */
aspo_status demo_task_write_data(const char *path, uint64_t seed, int n_animals, int n_pairs);

/* Pair `index` of what demo_task_write_data(seed, n_animals, ...) writes, into three
 * buffers of `cap` bytes each (for printing an example). */
aspo_status demo_task_pair(uint64_t seed, int n_animals, int index, char *prompt,
                           char *chosen, char *rejected, size_t cap);

/* Writes a tokenizer.json that transformers' LlamaTokenizerFast and models/tokenizer.h
 * load: SentencePiece-style BPE (metaspace "▁") whose merges spell every word of the
 * task, plus byte fallback <0x00>..<0xFF>, and <unk> <s> </s> as ids 0, 1, 2. *vocab_size
 * receives the number of tokens. */
aspo_status demo_task_write_tokenizer(const char *path, int *vocab_size);

/* Loads the tokenizer at tokenizer_path and encodes every sentence and prompt of the
 * world: fails naming the text if any token is <unk> or a byte-fallback piece. */
aspo_status demo_task_check_tokenizer(const char *tokenizer_path);

/* One line describing the world and the corruption, for the demo's header. */
void demo_task_describe(FILE *f, int n_animals);

#endif
