# aspo/data: preference datasets (JSONL, SeVa's list), chat templates, TRL-style
# tokenization of pairs, batches, the rows' images, sentence units, the run's prepared data.
list(APPEND ASPO_SOURCES aspo/data/dataset.c aspo/data/dataset_seva.c aspo/data/chat_template.c
                         aspo/data/pair_tokens.c aspo/data/pair_batch.c aspo/data/pair_pack.c
                         aspo/data/image_rows.c
                         aspo/data/sentences.c aspo/data/train_data.c)
