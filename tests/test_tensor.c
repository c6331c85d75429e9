/* dtype conversions, the arena, views and parameter storage. */
#include <string.h>

#include "backends/registry.h"
#include "tensor/arena.h"
#include "tensor/params.h"
#include "tensor/runtime.h"
#include "tensor/tensor_ops.h"
#include "tests/check.h"

static void test_bf16_rounding(void)
{
    /* Ties go to the even neighbour; above/below a tie round to nearest. */
    CHECK(f32_to_bf16(f32_from_bits(0x3f808000u)) == 0x3f80, "1.00390625 ties down to even");
    CHECK(f32_to_bf16(f32_from_bits(0x3f818000u)) == 0x3f82, "tie rounds up to even");
    CHECK(f32_to_bf16(f32_from_bits(0x3f808001u)) == 0x3f81, "above the tie rounds up");
    CHECK(f32_to_bf16(f32_from_bits(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
    CHECK((f32_to_bf16(NAN) & 0x7fc0) == 0x7fc0, "NaN stays NaN");
    CHECK(bf16_to_f32(0xc0490000 >> 16) == -3.140625f, "bf16 -> f32 is exact");
}

static void test_f16_rounding(void)
{
    CHECK(f32_to_f16(1.0f) == 0x3c00, "1.0");
    CHECK(f32_to_f16(65504.0f) == 0x7bff, "largest normal");
    CHECK(f32_to_f16(65520.0f) == 0x7c00, "halfway past the largest rounds to inf");
    CHECK(f32_to_f16(5.9604645e-8f) == 0x0001, "smallest subnormal");
    CHECK(f32_to_f16(2.98e-8f) == 0x0000, "below half the smallest subnormal is 0");
    CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "tie at 1 + 2^-11 goes to even (down)");
    CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "tie at 1 + 3*2^-11 goes to even (up)");
    CHECK(f32_to_f16(-0.333333343f) == 0xb555, "-1/3");
    for (uint32_t h = 0; h < 0x7c00; h += 7) /* every finite f16 survives a round trip */
        if (f32_to_f16(f16_to_f32((uint16_t)h)) != h) {
            CHECK(false, "f16 0x%04x does not round-trip", h);
            break;
        }
}

static void test_arena(void)
{
    arena a;
    arena_init(&a, "test", NULL, 0);
    a.chunk_default = 1024;
    char *p = arena_alloc(&a, 100), *q = arena_alloc(&a, 2000);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "aligned");
    CHECK(a.n_chunks == 2, "grew by a chunk");
    arena_reset(&a);
    CHECK(a.n_chunks == 1 && a.used == 0, "reset merges chunks into one");
    long before = a.heap_allocations;
    for (int step = 0; step < 3; step++) {
        CHECK(arena_alloc(&a, 100) && arena_alloc(&a, 2000), "steady state fits");
        arena_reset(&a);
    }
    CHECK(a.heap_allocations == before, "no allocation in steady state");
    arena_free(&a);

    /* A stack within a step: release gives back what came after the mark, chunks made since
     * included, and the next allocation reuses the same bytes; reset merges into one chunk
     * of the step's peak, which holds the same sequence again without growing. */
    arena_init(&a, "stack", NULL, 0);
    a.chunk_default = 1024;
    char *first = arena_alloc(&a, 600);
    arena_mark m = arena_mark_now(&a);
    char *inside = arena_alloc(&a, 300), *big = arena_alloc(&a, 5000);
    CHECK(first && inside && big && a.n_chunks == 2 && a.used == 640 + 320 + 5056,
          "grew to %d chunks, %zu bytes", a.n_chunks, a.used);
    size_t peak = a.used;
    arena_release(&a, m);
    CHECK(a.n_chunks == 1 && a.used == 640 && a.step_peak == peak, "released to the mark");
    CHECK(arena_alloc(&a, 300) == inside, "the released bytes are reused");
    arena_reset(&a);
    CHECK(a.n_chunks == 1 && a.chunks[0].size == peak && a.used == 0, "merged to the peak");
    before = a.heap_allocations;
    char *p0 = arena_alloc(&a, 600);
    m = arena_mark_now(&a);
    CHECK(p0 && arena_alloc(&a, 300) && arena_alloc(&a, 5000) && a.heap_allocations == before,
          "the merged chunk holds the step again");
    arena_release(&a, m);
    arena_free(&a);

    arena_init(&a, "limited", NULL, 4096);
    CHECK(arena_alloc(&a, 4000) && !arena_alloc(&a, 200), "limit holds");
    CHECK(strstr(aspo_error_message(), "limited arena") != NULL, "%s", aspo_error_message());
    aspo_error_clear();
    arena_free(&a);
}

static void test_views_share_memory(void)
{
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = (float)i;
    tensor *x = tensor_from_host(DT_F32, DIMS(2, 3, 4), v);
    tensor *t = tensor_transpose(x, 0, 2); /* (4,3,2) */
    CHECK(t && t->data == x->data && !tensor_is_contiguous(t), "transpose is a view");
    float out[24];
    CHECK(tensor_to_host(t, out) == ASPO_OK, "strided download");
    CHECK(out[1] == 12.0f && out[2] == 4.0f, "t[0,0,1] = x[1,0,0], t[0,1,0] = x[0,1,0]");
    tensor *s = tensor_slice(x, 2, 1, 2); /* (2,3,2) */
    tensor_to_host(s, out);
    CHECK(out[0] == 1.0f && out[1] == 2.0f && out[2] == 5.0f, "slice keeps columns 1..2");
    tensor *e = tensor_expand(tensor_slice(x, 0, 1, 1), DIMS(3, 3, 4));
    CHECK(e && e->stride[0] == 0, "expand uses stride 0");
    tensor *b = tensor_cast(x, DT_BF16);
    float back[24];
    tensor_to_host_f32(b, back);
    CHECK(memcmp(back, v, sizeof v) == 0, "small integers survive bf16");
    CHECK(tensor_item(tensor_sum_all(x)) == 276.0, "sum 0..23");
    runtime_step_reset();
}

static void test_params_one_block(void)
{
    param_store ps;
    param_store_init(&ps, backend_cpu());
    tensor *a = param_declare(&ps, "a", DT_BF16, DIMS(3, 5), false);
    tensor *b = param_declare(&ps, "b", DT_F32, DIMS(7), true);
    CHECK(param_store_allocate(&ps) == ASPO_OK, "%s", aspo_error_message());
    CHECK(a->data >= ps.block && b->data < ps.block + ps.bytes, "both live in one block");
    CHECK(!a->grad && b->grad && b->grad->dt == DT_F32, "only trainable params get grads");
    CHECK(param_find(&ps, "b") == b && !param_find(&ps, "c"), "find by name");
    CHECK(param_store_count(&ps, true) == 7 && param_store_count(&ps, false) == 22, "counts");
    CHECK(!param_declare(&ps, "late", DT_F32, DIMS(1), false), "no declaring after allocate");
    aspo_error_clear();
    param_store_free(&ps);
}

int main(void)
{
    runtime_init(backend_cpu(), 0);
    test_bf16_rounding();
    test_f16_rounding();
    test_arena();
    test_views_share_memory();
    test_params_one_block();
    runtime_shutdown();
    return check_summary("tensor");
}
