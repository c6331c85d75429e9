/* The numbers that C (tensor/ops.h's enums), the CUDA kernels and the GLSL shaders
 * (shaders/, through glslc -I tensor) share, so a kind is numbered in one place. Only
 * #define lines and comments: both a C compiler and glslc read this file. */
#ifndef ASPO_OP_KINDS_H
#define ASPO_OP_KINDS_H

/* OP_BINARY's p.i[0] (enum binary_kind) */
#define ASPO_BINARY_ADD 0
#define ASPO_BINARY_SUB 1
#define ASPO_BINARY_MUL 2
#define ASPO_BINARY_DIV 3
#define ASPO_BINARY_COUNT 4

/* OP_UNARY's and OP_UNARY_BACKWARD's p.i[0] (enum unary_kind) */
#define ASPO_UNARY_EXP 0
#define ASPO_UNARY_LOG 1
#define ASPO_UNARY_SILU 2
#define ASPO_UNARY_GELU_ERF 3
#define ASPO_UNARY_GELU_TANH 4
#define ASPO_UNARY_QUICK_GELU 5
#define ASPO_UNARY_SQRT 6
#define ASPO_UNARY_RSQRT 7
#define ASPO_UNARY_NEG 8
#define ASPO_UNARY_SQUARE 9
#define ASPO_UNARY_COUNT 10

/* The norm backward ops' p.i[0]: a mask of the gradients wanted (enum norm_grads) */
#define ASPO_WANT_DX 1
#define ASPO_WANT_DWEIGHT 2
#define ASPO_WANT_DBIAS 4

/* Element types (enum dtype in tensor/dtype.h is defined from these) */
#define ASPO_DT_F32 0
#define ASPO_DT_BF16 1
#define ASPO_DT_F16 2
#define ASPO_DT_I32 3

#endif
