#include "dtype.h"

#include <math.h>

size_t dtype_size(dtype dt)
{
    switch (dt) {
    case DT_F32: case DT_I32: return 4;
    case DT_BF16: case DT_F16: return 2;
    default: return 0;
    }
}

static const char *const names[DT_COUNT] = {"f32", "bf16", "f16", "i32"};

const char *dtype_name(dtype dt) { return (unsigned)dt < DT_COUNT ? names[dt] : "?"; }

int dtype_from_name(const char *name)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13)); /* inf/nan */
    if (exp == 0) {                                                       /* subnormal */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f)
{
    uint32_t u = f32_bits(f), sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);        /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);       /* rounds to inf */
    if (a < 0x38800000u) {                                         /* f16 subnormal or 0 */
        /* value = a_float; subnormal unit is 2^-24: round(value * 2^24) ties-to-even */
        float v = f32_from_bits(a) * 16777216.0f;
        float r = nearbyintf(v); /* default rounding mode is to nearest even */
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t e = ((a >> 23) - 112) << 10, m = a & 0x7fffff;
    uint32_t h = e | (m >> 13);
    uint32_t rest = m & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* carry may bump the exponent */
    return (uint16_t)(sign | h);
}
