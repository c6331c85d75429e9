/* Rotary embedding over (B,H,T,D) rows; x and cos/sin may be strided, out is contiguous.
 * Halves 1 = [0, D/2) and 2 = [D/2, D):
 *   forward:   y1 = x1*c1 - x2*s1,   y2 = x2*c2 + x1*s2
 *   transpose: y1 = x1*c1 + x2*s2,   y2 = x2*c2 - x1*s1   (backward; no c1 == c2 assumed)
 * Each output row is written by one thread. */
#include "cpu_internal.h"
#include "cpu_math.h"

/* One row with f32 x, cos, sin of unit stride along D: the loops below without loads
 * through the dtype switch, so they vectorize (y is a fresh output: restrict). */
CPU_VECTOR_CLONES static void rope_row_f32(const float *restrict x, const float *restrict cs,
                                           const float *restrict sn, float *restrict y,
                                           int64_t half, bool transpose)
{
    if (transpose) {
        for (int64_t i = 0; i < half; i++) {
            y[i] = x[i] * cs[i] + x[i + half] * sn[i + half];
            y[half + i] = x[i + half] * cs[i + half] - x[i] * sn[i];
        }
    } else {
        for (int64_t i = 0; i < half; i++) {
            y[i] = x[i] * cs[i] - x[i + half] * sn[i];
            y[half + i] = x[i + half] * cs[i + half] + x[i] * sn[i + half];
        }
    }
}

CPU_KERNEL(cpu_rope)
{
    const tensor *x = c->in[0], *cs = c->in[1], *sn = c->in[2];
    tensor *out = c->out[0];
    bool transpose = c->p.i[0] != 0;
    int64_t B = x->shape[0], H = x->shape[1], T = x->shape[2], D = x->shape[3], half = D / 2;
    /* cos/sin (B|1,T,D): a batch of 1 is shared by every batch row. */
    int64_t cb = cs->shape[0] == 1 ? 0 : cs->stride[0], sb = sn->shape[0] == 1 ? 0 : sn->stride[0];
    int64_t rows = B * H * T;
    if (x->dt == DT_F32 && cs->dt == DT_F32 && sn->dt == DT_F32 && out->dt == DT_F32 &&
        x->stride[3] == 1 && cs->stride[2] == 1 && sn->stride[2] == 1) {
#pragma omp parallel for schedule(static) if (rows * D > 65536)
        for (int64_t r = 0; r < rows; r++) {
            int64_t b = r / (H * T), h = r / T % H, t = r % T;
            rope_row_f32((const float *)x->data + b * x->stride[0] + h * x->stride[1] +
                             t * x->stride[2],
                         (const float *)cs->data + b * cb + t * cs->stride[1],
                         (const float *)sn->data + b * sb + t * sn->stride[1],
                         (float *)out->data + r * D, half, transpose);
        }
        return ASPO_OK;
    }
#pragma omp parallel for schedule(static) if (rows * D > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / (H * T), h = r / T % H, t = r % T;
        int64_t xo = b * x->stride[0] + h * x->stride[1] + t * x->stride[2];
        int64_t co = b * cb + t * cs->stride[1], so = b * sb + t * sn->stride[1];
        int64_t oo = r * D;
        for (int64_t i = 0; i < half; i++) {
            float x1 = dtype_load(x->data, x->dt, xo + i * x->stride[3]);
            float x2 = dtype_load(x->data, x->dt, xo + (i + half) * x->stride[3]);
            float c1 = dtype_load(cs->data, cs->dt, co + i * cs->stride[2]);
            float c2 = dtype_load(cs->data, cs->dt, co + (i + half) * cs->stride[2]);
            float s1 = dtype_load(sn->data, sn->dt, so + i * sn->stride[2]);
            float s2 = dtype_load(sn->data, sn->dt, so + (i + half) * sn->stride[2]);
            float y1 = transpose ? x1 * c1 + x2 * s2 : x1 * c1 - x2 * s1;
            float y2 = transpose ? x2 * c2 - x1 * s1 : x2 * c2 + x1 * s2;
            dtype_store(out->data, out->dt, oo + i, y1);
            dtype_store(out->data, out->dt, oo + half + i, y2);
        }
    }
    return ASPO_OK;
}
