/* The pass numbers that the Vulkan backend's C (backends/vulkan/vk_ops_*.c) and the shaders
 * share: which computation one shader runs, its parameter block's `kind`. Only #define
 * lines and comments: both a C compiler and glslc read this file. The ops' own kinds
 * (unary, binary, norm gradients) are in tensor/op_kinds.h. */
#ifndef ASPO_SHADER_KINDS_H
#define ASPO_SHADER_KINDS_H

/* shaders/elementwise.comp */
#define ELEMENTWISE_BINARY 0          /* a, b; sub = binary kind */
#define ELEMENTWISE_SCALE 1           /* a * f */
#define ELEMENTWISE_UNARY 2           /* a; sub = unary kind */
#define ELEMENTWISE_UNARY_BACKWARD 3  /* x = a, y = b, dy = c; sub = unary kind */
#define ELEMENTWISE_MASKED_FILL 4     /* a, mask = b, f */

/* shaders/norm.comp's row passes */
#define NORM_RMS 0
#define NORM_RMS_DX 1
#define NORM_LAYER 2
#define NORM_LAYER_DX 3
#define NORM_L2 4
#define NORM_L2_DX 5

#endif
