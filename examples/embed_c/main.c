/* Embedding an nnc-compiled model in a C program.
 *
 *   nnc model.onnx -o libnet.so                  # writes libnet.so and libnet.h
 *   cc main.c -I. -L. -lnet -Wl,-rpath,. -o app  # or: cc main.c libnet.a -lm -o app
 *   ./app
 *
 * The program asks the library for its inputs and outputs (names, shapes, dtypes),
 * fills every float32 input element i with ((i % 17) - 8) / 8, runs the model once and
 * prints each output as a line "name d0xd1x..." followed by one line of values.
 *
 * Symbols carry the prefix given to `nnc --prefix` (default "nnc"). The model needs no
 * Python and no nnc runtime; it does not allocate. nnc_run() uses a static workspace and
 * is not reentrant; nnc_run_with_workspace() with a caller-owned buffer of
 * nnc_workspace_size() bytes may run concurrently from several threads (one buffer each).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "libnet.h"

enum { DTYPE_FLOAT32 = 1 }; /* ONNX TensorProto codes */

static size_t element_count(int32_t rank, const int64_t *shape) {
    size_t n = 1;
    for (int32_t d = 0; d < rank; d++) n *= (size_t)shape[d];
    return n;
}

static void print_output(int32_t i, const float *data) {
    int32_t rank = nnc_output_rank(i);
    const int64_t *shape = nnc_output_shape(i);
    printf("%s ", nnc_output_name(i));
    for (int32_t d = 0; d < rank; d++) printf(d ? "x%lld" : "%lld", (long long)shape[d]);
    printf("\n");
    size_t n = element_count(rank, shape);
    for (size_t k = 0; k < n; k++) printf(k ? " %.9g" : "%.9g", data[k]);
    printf("\n");
}

int main(void) {
    int32_t n_in = nnc_num_inputs(), n_out = nnc_num_outputs();
    void **inputs = calloc((size_t)n_in + 1, sizeof *inputs);
    void **outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    void *workspace = malloc(nnc_workspace_size() + 1);
    if (!inputs || !outputs || !workspace) return 1;

    for (int32_t i = 0; i < n_in; i++) {
        if (nnc_input_dtype(i) != DTYPE_FLOAT32) {
            fprintf(stderr, "input %s: this example only fills float32 inputs\n", nnc_input_name(i));
            return 1;
        }
        size_t n = element_count(nnc_input_rank(i), nnc_input_shape(i));
        float *x = malloc(n * sizeof *x + 1);
        if (!x) return 1;
        for (size_t k = 0; k < n; k++) x[k] = (float)((int)(k % 17) - 8) / 8.0f;
        inputs[i] = x;
    }
    for (int32_t i = 0; i < n_out; i++) {
        if (nnc_output_dtype(i) != DTYPE_FLOAT32) {
            fprintf(stderr, "output %s: this example only prints float32\n", nnc_output_name(i));
            return 1;
        }
        outputs[i] = malloc(element_count(nnc_output_rank(i), nnc_output_shape(i)) * sizeof(float) + 1);
        if (!outputs[i]) return 1;
    }

    int32_t status = nnc_run_with_workspace(workspace, (const void *const *)inputs, outputs);
    if (status != 0) {
        fprintf(stderr, "nnc_run_with_workspace failed with status %d\n", (int)status);
        return 1;
    }
    for (int32_t i = 0; i < n_out; i++) print_output(i, outputs[i]);

    for (int32_t i = 0; i < n_in; i++) free(inputs[i]);
    for (int32_t i = 0; i < n_out; i++) free(outputs[i]);
    free(inputs);
    free(outputs);
    free(workspace);
    return 0;
}
