/* Strided copies with dtype conversion (contiguous, cast, concat windows) and fills. */
#include <string.h>

#include "cpu_internal.h"

void cpu_store_f32(const tensor *t, int64_t at, const float *src, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dtype_store(t->data, t->dt, at + i, src[i]);
}

CPU_KERNEL(cpu_copy)
{
    const tensor *src = c->in[0];
    tensor *dst = c->out[0];
    int64_t n = tensor_numel(dst);
    if (src->dt == dst->dt && tensor_is_contiguous(src) && tensor_is_contiguous(dst)) {
        memmove(dst->data, src->data, (size_t)n * dtype_size(dst->dt));
        return ASPO_OK;
    }
    cpu_view s = cpu_view_of(src, dst), d = cpu_view_of(dst, NULL);
    int64_t rows = d.ne[0] * d.ne[1] * d.ne[2];
    if (s.dt == d.dt && s.st[3] == 1 && d.st[3] == 1) {
        /* Rows contiguous on both sides (a permuted view whose last dim stays last): one
         * memcpy per row, no per-element dtype work. */
        size_t row_bytes = (size_t)d.ne[3] * dtype_size(d.dt);
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t r = 0; r < rows; r++) {
            int64_t i0 = r / (d.ne[1] * d.ne[2]), i1 = r / d.ne[2] % d.ne[1], i2 = r % d.ne[2];
            memcpy(d.data + cpu_offset(&d, i0, i1, i2, 0) * (int64_t)dtype_size(d.dt),
                   s.data + cpu_offset(&s, i0, i1, i2, 0) * (int64_t)dtype_size(s.dt), row_bytes);
        }
        return ASPO_OK;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i0 = r / (d.ne[1] * d.ne[2]), i1 = r / d.ne[2] % d.ne[1], i2 = r % d.ne[2];
        int64_t so = cpu_offset(&s, i0, i1, i2, 0), dof = cpu_offset(&d, i0, i1, i2, 0);
        if (s.dt == DT_I32 && d.dt == DT_I32) {
            for (int64_t i3 = 0; i3 < d.ne[3]; i3++)
                ((int32_t *)d.data)[dof + i3 * d.st[3]] = ((int32_t *)s.data)[so + i3 * s.st[3]];
        } else {
            for (int64_t i3 = 0; i3 < d.ne[3]; i3++)
                cpu_store(&d, dof + i3 * d.st[3], cpu_load(&s, so + i3 * s.st[3]));
        }
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_fill)
{
    tensor *dst = c->out[0];
    cpu_view d = cpu_view_of(dst, NULL);
    float value = c->p.f[0];
    for (int64_t i0 = 0; i0 < d.ne[0]; i0++)
        for (int64_t i1 = 0; i1 < d.ne[1]; i1++)
            for (int64_t i2 = 0; i2 < d.ne[2]; i2++) {
                int64_t o = cpu_offset(&d, i0, i1, i2, 0);
                if (d.dt == DT_F32 && d.st[3] == 1 && value == 0.0f)
                    memset((float *)d.data + o, 0, sizeof(float) * d.ne[3]);
                else if (d.dt == DT_I32)
                    for (int64_t i3 = 0; i3 < d.ne[3]; i3++)
                        ((int32_t *)d.data)[o + i3 * d.st[3]] = (int32_t)value;
                else
                    for (int64_t i3 = 0; i3 < d.ne[3]; i3++) cpu_store(&d, o + i3 * d.st[3], value);
            }
    return ASPO_OK;
}
