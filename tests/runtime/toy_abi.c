/* A hand-written library exporting the nnc C ABI (for runtime tests without the compiler).
 * Model: inputs x: f32[2,3], b: f32[3]; output y: f32[2,3] = SCALE*x + b (via the workspace,
 * SCALE defaults to 2).
 * PFX_calls() counts how often native run code was entered. */
#include <stddef.h>
#include <stdint.h>

#ifndef PFX
#define PFX toy
#endif
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define F(name) CAT(PFX, name)
#ifndef SCALE
#define SCALE 2.0f
#endif

static const int64_t x_shape[2] = {2, 3};
static const int64_t b_shape[1] = {3};
static unsigned char static_ws[64 + 24];
static int32_t calls;

int32_t F(calls)(void) { return calls; }
size_t F(workspace_size)(void) { return 6 * sizeof(float); }
int32_t F(num_inputs)(void) { return 2; }
int32_t F(num_outputs)(void) { return 1; }
const char *F(input_name)(int32_t i) { return i == 0 ? "x" : i == 1 ? "b" : NULL; }
const char *F(output_name)(int32_t i) { return i == 0 ? "y" : NULL; }
int32_t F(input_rank)(int32_t i) { return i == 0 ? 2 : 1; }
int32_t F(output_rank)(int32_t i) { (void)i; return 2; }
const int64_t *F(input_shape)(int32_t i) { return i == 0 ? x_shape : b_shape; }
const int64_t *F(output_shape)(int32_t i) { (void)i; return x_shape; }
int32_t F(input_dtype)(int32_t i) { (void)i; return 1; }
int32_t F(output_dtype)(int32_t i) { (void)i; return 1; }

int32_t F(run_with_workspace)(void *workspace, const void *const *inputs, void *const *outputs) {
    __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if ((uintptr_t)workspace % 64 != 0) return 3;
    const float *x = inputs[0], *b = inputs[1];
    float *tmp = workspace, *y = outputs[0];
    for (int i = 0; i < 6; i++) tmp[i] = SCALE * x[i];
    for (int i = 0; i < 6; i++) y[i] = tmp[i] + b[i % 3];
    return 0;
}

int32_t F(run)(const void *const *inputs, void *const *outputs) {
    void *ws = static_ws + (64 - (uintptr_t)static_ws % 64) % 64;
    return F(run_with_workspace)(ws, inputs, outputs);
}
