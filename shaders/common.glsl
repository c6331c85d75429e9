// Shared by every aspo compute shader: the parameter block arrives as a device address in
// the only push constant; tensors are Views (device address, dtype, sizes, element
// strides, 0 = broadcast) read and written through buffer references, with f32 math
// whatever the storage dtype (as the CPU backend). Mirrors backends/vulkan/vk_internal.h.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference2 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#extension GL_EXT_shader_16bit_storage : require

#include "op_kinds.h"

#define DT_F32 ASPO_DT_F32
#define DT_BF16 ASPO_DT_BF16
#define DT_F16 ASPO_DT_F16
#define DT_I32 ASPO_DT_I32

// What a pass gives for a kind it does not know (the host refuses those before dispatch).
#define NOT_A_NUMBER uintBitsToFloat(0x7fc00000u)

struct View {
    uint64_t addr;
    int dt;
    int pad_;
    ivec4 ne; // sizes, leading dims padded with 1
    ivec4 st; // element strides; 0 where broadcast
};

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Buf { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer I32Buf { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16Buf { uint16_t v[]; };

layout(push_constant) uniform Push { uint64_t params; } push;

float bf16_to_f32(uint h) { return uintBitsToFloat(h << 16); }

uint f32_to_bf16(float f)
{
    uint u = floatBitsToUint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u; // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                               // nearest, ties to even
    return u >> 16;
}

float view_load(View v, int off)
{
    if (v.dt == DT_F32) return F32Buf(v.addr).v[off];
    if (v.dt == DT_BF16) return bf16_to_f32(uint(U16Buf(v.addr).v[off]));
    if (v.dt == DT_F16) return unpackHalf2x16(uint(U16Buf(v.addr).v[off])).x;
    return float(I32Buf(v.addr).v[off]);
}

int view_load_int(View v, int off)
{
    if (v.dt == DT_I32) return I32Buf(v.addr).v[off];
    return int(view_load(v, off));
}

void view_store(View v, int off, float x)
{
    if (v.dt == DT_F32) F32Buf(v.addr).v[off] = x;
    else if (v.dt == DT_BF16) U16Buf(v.addr).v[off] = uint16_t(f32_to_bf16(x));
    else if (v.dt == DT_F16) U16Buf(v.addr).v[off] = uint16_t(packHalf2x16(vec2(x, 0.0)) & 0xffffu);
    else I32Buf(v.addr).v[off] = int(x);
}

// Element index (i0,i1,i2,i3) of linear position n in a View of sizes ne (row-major).
ivec4 view_index(ivec4 ne, int n)
{
    int i3 = n % ne.w;
    n /= ne.w;
    int i2 = n % ne.z;
    n /= ne.z;
    int i1 = n % ne.y;
    return ivec4(n / ne.y, i1, i2, i3);
}

int view_offset(View v, ivec4 i) { return i.x * v.st.x + i.y * v.st.y + i.z * v.st.z + i.w * v.st.w; }

int numel(View v) { return v.ne.x * v.ne.y * v.ne.z * v.ne.w; }

// The linear invocation index for 1-D work spread over (x,y) workgroups (vk_groups_1d).
int linear_id(uint local_size)
{
    return int((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * local_size +
               gl_LocalInvocationID.x);
}

// erf with |error| < 1.5e-7 (Abramowitz and Stegun 7.1.26): GLSL has none.
float erf_approx(float x)
{
    float s = sign(x), a = abs(x);
    float t = 1.0 / (1.0 + 0.3275911 * a);
    float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t +
                     0.254829592) * t * exp(-a * a);
    return s * y;
}
