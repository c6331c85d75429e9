/* Element types and their conversions. bf16/f16 conversions round to nearest even. */
#ifndef ASPO_DTYPE_H
#define ASPO_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" { /* the CUDA/HIP kernels include this header too */
#endif

#include "op_kinds.h" /* the numbers, shared with the shaders */

typedef enum dtype {
    DT_F32 = ASPO_DT_F32, DT_BF16 = ASPO_DT_BF16, DT_F16 = ASPO_DT_F16, DT_I32 = ASPO_DT_I32,
    DT_COUNT
} dtype;

size_t dtype_size(dtype dt);
const char *dtype_name(dtype dt);
/* Parses "f32", "bf16", "f16", "i32"; returns -1 when unknown. */
int dtype_from_name(const char *name);
static inline int dtype_is_float(dtype dt) { return dt == DT_F32 || dt == DT_BF16 || dt == DT_F16; }

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

static inline uint16_t f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

/* Element i of a buffer of dtype dt, as f32 (i32 converted exactly up to 2^24). */
static inline float dtype_load(const void *p, dtype dt, int64_t i)
{
    switch (dt) {
    case DT_F32: return ((const float *)p)[i];
    case DT_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    case DT_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case DT_I32: return (float)((const int32_t *)p)[i];
    default: return 0;
    }
}

static inline void dtype_store(void *p, dtype dt, int64_t i, float v)
{
    switch (dt) {
    case DT_F32: ((float *)p)[i] = v; break;
    case DT_BF16: ((uint16_t *)p)[i] = f32_to_bf16(v); break;
    case DT_F16: ((uint16_t *)p)[i] = f32_to_f16(v); break;
    case DT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    default: break;
    }
}

#ifdef __cplusplus
}
#endif

#endif
