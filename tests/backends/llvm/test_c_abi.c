/* C ABI conformance driver for an nnc model library (used by test_c_abi.py).
 *
 * Build: cc -include MODEL.h [-DNNC_PREFIX=nnc] test_c_abi.c -o t -L. -lMODEL -lm
 * Run:   t inputs.bin expected.bin [rtol]
 *
 * inputs.bin holds every input, expected.bin every expected output, as raw float32 in
 * the model's order (sizes come from the introspection functions). Checks the
 * introspection functions, null-pointer error codes, PFX_run against expected.bin and
 * PFX_run_with_workspace (on an unaligned workspace) against PFX_run, bit for bit.
 * Prints "OK" and exits 0 on success; prints the first failure and exits 1 otherwise.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NNC_PREFIX
#define NNC_PREFIX nnc
#endif
#define PASTE2(a, b) a##_##b
#define PASTE(a, b) PASTE2(a, b)
#define API(name) PASTE(NNC_PREFIX, name)

#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                  \
            printf("\n");                         \
            return 1;                             \
        }                                         \
    } while (0)

static size_t elements(int32_t rank, const int64_t *shape) {
    size_t n = 1;
    for (int32_t d = 0; d < rank; d++) n *= (size_t)shape[d];
    return n;
}

static float *read_floats(FILE *f, size_t n) {
    float *buf = malloc(n * sizeof(float) + 1);
    if (buf && fread(buf, sizeof(float), n, f) != n) {
        free(buf);
        return NULL;
    }
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("usage: %s inputs.bin expected.bin [rtol]\n", argv[0]);
        return 2;
    }
    double rtol = argc > 3 ? atof(argv[3]) : 1e-4;
    int32_t n_in = API(num_inputs)(), n_out = API(num_outputs)();
    CHECK(n_in >= 0 && n_in < 64 && n_out >= 1 && n_out < 64, "counts %d %d", n_in, n_out);

    /* Introspection, in range and out of range. */
    size_t in_n[64], out_n[64];
    for (int32_t i = 0; i < n_in; i++) {
        CHECK(API(input_name)(i) != NULL, "input_name(%d) is NULL", i);
        CHECK(API(input_dtype)(i) == 1, "input_dtype(%d) = %d", i, API(input_dtype)(i));
        CHECK(API(input_rank)(i) >= 0, "input_rank(%d) < 0", i);
        CHECK(API(input_shape)(i) != NULL, "input_shape(%d) is NULL", i);
        in_n[i] = elements(API(input_rank)(i), API(input_shape)(i));
    }
    for (int32_t i = 0; i < n_out; i++) {
        CHECK(API(output_name)(i) != NULL, "output_name(%d) is NULL", i);
        CHECK(API(output_dtype)(i) == 1, "output_dtype(%d) = %d", i, API(output_dtype)(i));
        CHECK(API(output_rank)(i) >= 0, "output_rank(%d) < 0", i);
        CHECK(API(output_shape)(i) != NULL, "output_shape(%d) is NULL", i);
        out_n[i] = elements(API(output_rank)(i), API(output_shape)(i));
    }
    CHECK(API(input_name)(n_in) == NULL && API(input_name)(-1) == NULL, "input_name out of range");
    CHECK(API(output_shape)(n_out) == NULL, "output_shape out of range");
    CHECK(API(input_rank)(n_in) == -1 && API(output_rank)(-1) == -1, "rank out of range");
    CHECK(API(input_dtype)(n_in) == 0 && API(output_dtype)(n_out) == 0, "dtype out of range");

    /* Buffers: inputs and expected outputs from the files. */
    FILE *fi = fopen(argv[1], "rb"), *fe = fopen(argv[2], "rb");
    CHECK(fi && fe, "cannot open %s / %s", argv[1], argv[2]);
    const void *ins[64];
    void *outs[64], *outs2[64];
    float *expected[64];
    for (int32_t i = 0; i < n_in; i++) {
        ins[i] = read_floats(fi, in_n[i]);
        CHECK(ins[i] != NULL, "short input file (input %d)", i);
    }
    for (int32_t i = 0; i < n_out; i++) {
        expected[i] = read_floats(fe, out_n[i]);
        CHECK(expected[i] != NULL, "short expected file (output %d)", i);
        outs[i] = calloc(out_n[i] + 1, sizeof(float));
        outs2[i] = calloc(out_n[i] + 1, sizeof(float));
    }
    fclose(fi);
    fclose(fe);

    /* Null pointers are rejected with non-zero codes before anything runs. */
    CHECK(API(run)(NULL, outs) != 0 || n_in == 0, "run(NULL inputs) returned 0");
    CHECK(API(run)(ins, NULL) != 0, "run(NULL outputs) returned 0");
    size_t ws_size = API(workspace_size)();
    if (ws_size > 0)
        CHECK(API(run_with_workspace)(NULL, ins, outs) != 0, "NULL workspace returned 0");

    /* PFX_run against the expected values. */
    CHECK(API(run)(ins, outs) == 0, "run failed");
    for (int32_t i = 0; i < n_out; i++) {
        const float *got = outs[i];
        double scale = 0;
        for (size_t k = 0; k < out_n[i]; k++) scale = fmax(scale, fabs(expected[i][k]));
        for (size_t k = 0; k < out_n[i]; k++) {
            double err = fabs((double)got[k] - expected[i][k]);
            CHECK(err <= rtol * (fabs(expected[i][k]) + scale) + 1e-30,
                  "output %d [%zu]: got %.9g expected %.9g", i, k, got[k], expected[i][k]);
        }
    }

    /* Reentrant entry on an unaligned caller workspace gives identical bits. */
    unsigned char *ws = malloc(ws_size + 1);
    CHECK(ws != NULL, "malloc workspace");
    CHECK(API(run_with_workspace)(ws + 1, ins, outs2) == 0, "run_with_workspace failed");
    for (int32_t i = 0; i < n_out; i++)
        CHECK(memcmp(outs[i], outs2[i], out_n[i] * sizeof(float)) == 0,
              "run_with_workspace output %d differs from run", i);
    printf("OK %d inputs %d outputs workspace %zu\n", n_in, n_out, ws_size);
    return 0;
}
