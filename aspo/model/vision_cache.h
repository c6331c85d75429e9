/* --vision-cache DIR: a model's frozen image-side outputs kept on disk between epochs, one
 * file per image (and instruction, for a model whose image side reads one). The image side
 * is frozen, so an image's features never change during training. */
#ifndef ASPO_VISION_CACHE_H
#define ASPO_VISION_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"

/* <dir>/<hash>.f32 files holding a header (magic, the model's key, N, Cv) and N*Cv floats.
 * The name hashes the key, the image file's path, size and modification time, and the
 * salt: an edited image, another model or another instruction misses. */
typedef struct vision_cache {
    char *dir;    /* NULL: no cache */
    uint64_t key; /* the model and its image settings (vision_cache_hash) */
    int64_t N, Cv;
    int64_t hits, misses;
} vision_cache;

/* FNV-1a, 64 bit, continuing from h (VISION_CACHE_SEED to start): a stable name for a key,
 * not a security measure. */
#define VISION_CACHE_SEED 1469598103934665603ull
uint64_t vision_cache_hash(uint64_t h, const void *data, size_t n);
/* The start of a model's key: family (a short name) and the model directory's real path,
 * so that the same checkpoint reached by another path hits. */
uint64_t vision_cache_model_key(const char *family, const char *model_dir);

/* dir NULL leaves the cache off. Creates dir (mkdir -p). Features are (N,Cv) floats. */
aspo_status vision_cache_start(vision_cache *c, const char *dir, uint64_t key, int64_t N,
                               int64_t Cv);
void vision_cache_close(vision_cache *c);

/* The file of the image at path with salt[0..salt_len) (may be 0); false when the image
 * cannot be stat'ed or the name does not fit. */
bool vision_cache_file(const vision_cache *c, const char *path, const void *salt,
                       size_t salt_len, char *out, size_t size);
/* The cached features when the file is there and whole; anything else is a miss. */
bool vision_cache_get(const vision_cache *c, const char *file, float *out);
/* Written as <file>.tmp and renamed: a killed run leaves no half file under the name. */
aspo_status vision_cache_put(const vision_cache *c, const char *file, const float *features);

#endif
