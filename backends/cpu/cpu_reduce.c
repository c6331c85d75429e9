/* Sums over dims and the sum of squares. Accumulation is in double and in a fixed order,
 * so results do not depend on the thread count. */
#include "cpu_internal.h"
#include "cpu_math.h"

/* sum_i x_i of a contiguous f32 row in double over 8 fixed lanes added in a fixed order
 * (vectorizes; the order depends only on n). */
CPU_VECTOR_CLONES static double row_sum_f32(const float *x, int64_t n)
{
    double lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += (double)x[i + k];
    for (; i < n; i++) lane[0] += (double)x[i];
    return cpu_sum_lanes(lane);
}

CPU_KERNEL(cpu_sum)
{
    tensor *out = c->out[0];
    cpu_view vx = cpu_view_of(c->in[0], NULL), vo = cpu_view_of(out, NULL);
    /* Reduced dims: out has 1 where x does not. Loop the out elements in parallel and the
     * reduced index space inside. */
    int64_t red[4], n_out = tensor_numel(out);
    for (int d = 0; d < 4; d++) red[d] = vo.ne[d] == 1 ? vx.ne[d] : 1;
    if (red[0] == 1 && red[1] == 1 && red[2] == 1 && vx.dt == DT_F32 && vx.st[3] == 1 &&
        vo.dt == DT_F32 && vo.ne[3] == 1) {
        /* Sums of rows over the last dim (logit sums over the vocabulary). */
#pragma omp parallel for schedule(static) if (n_out * red[3] > 65536)
        for (int64_t e = 0; e < n_out; e++) {
            int64_t i0 = e / (vo.ne[1] * vo.ne[2]), i1 = e / vo.ne[2] % vo.ne[1], i2 = e % vo.ne[2];
            cpu_store(&vo, cpu_offset(&vo, i0, i1, i2, 0),
                      (float)row_sum_f32((const float *)vx.data + cpu_offset(&vx, i0, i1, i2, 0),
                                         red[3]));
        }
        return ASPO_OK;
    }
#pragma omp parallel for schedule(static) if (n_out > 256)
    for (int64_t e = 0; e < n_out; e++) {
        int64_t o[4], rem = e;
        for (int d = 3; d >= 0; d--) {
            o[d] = rem % vo.ne[d];
            rem /= vo.ne[d];
        }
        double acc = 0;
        for (int64_t j0 = 0; j0 < red[0]; j0++)
            for (int64_t j1 = 0; j1 < red[1]; j1++)
                for (int64_t j2 = 0; j2 < red[2]; j2++)
                    for (int64_t j3 = 0; j3 < red[3]; j3++)
                        acc += cpu_load(&vx, cpu_offset(&vx, o[0] + j0, o[1] + j1, o[2] + j2,
                                                        o[3] + j3));
        cpu_store(&vo, cpu_offset(&vo, o[0], o[1], o[2], o[3]), (float)acc);
    }
    return ASPO_OK;
}

CPU_KERNEL(cpu_sumsq)
{
    const tensor *x = c->in[0];
    int64_t n = tensor_numel(x);
    /* At most 256 fixed-size blocks: partial sums that do not depend on the threads. */
    enum { MAX_BLOCKS = 256 };
    int64_t block = n / MAX_BLOCKS + 1;
    if (block < 4096) block = 4096;
    int64_t n_blocks = (n + block - 1) / block;
    double partial[MAX_BLOCKS] = {0};
#pragma omp parallel for schedule(static) if (n_blocks > 1)
    for (int64_t b = 0; b < n_blocks; b++) {
        double acc = 0;
        int64_t end = (b + 1) * block < n ? (b + 1) * block : n;
        for (int64_t i = b * block; i < end; i++) {
            double v = dtype_load(x->data, x->dt, i);
            acc += v * v;
        }
        partial[b] = acc;
    }
    double total = 0;
    for (int64_t b = 0; b < n_blocks; b++) total += partial[b];
    *(float *)c->out[0]->data = (float)total;
    return ASPO_OK;
}
