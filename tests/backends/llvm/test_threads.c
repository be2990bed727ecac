/* Threading conformance driver for an nnc model library (used by test_threads.py).
 *
 * Build: cc -pthread -include MODEL.h -DNNC_PREFIX=net test_threads.c -L. -lMODEL -lm
 * Run:   t THREADS
 *
 * Fills every input with a fixed pattern, computes reference outputs single-threaded
 * (PFX_set_num_threads(1)), then sets THREADS threads and runs PFX_run_with_workspace
 * from two pthreads at once, each several times with its own workspace and outputs;
 * every output must equal the reference bit for bit. Prints "OK" and exits 0 on success.
 */
#include <pthread.h>
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

#define CALLERS 2
#define REPEATS 5

static int32_t n_in, n_out;
static size_t in_n[16], out_n[16];
static const void *ins[16];
static float *reference[16];

static size_t elements(int32_t rank, const int64_t *shape) {
    size_t n = 1;
    for (int32_t d = 0; d < rank; d++) n *= (size_t)shape[d];
    return n;
}

static void *caller(void *arg) {
    (void)arg;
    void *outs[16];
    unsigned char *ws = malloc(API(workspace_size)() + 1);
    for (int32_t i = 0; i < n_out; i++) outs[i] = calloc(out_n[i] + 1, sizeof(float));
    intptr_t bad = 0;
    for (int r = 0; r < REPEATS && !bad; r++) {
        if (API(run_with_workspace)(ws + 1, ins, outs) != 0) bad = 1;
        for (int32_t i = 0; i < n_out && !bad; i++)
            if (memcmp(outs[i], reference[i], out_n[i] * sizeof(float)) != 0) bad = 2;
    }
    for (int32_t i = 0; i < n_out; i++) free(outs[i]);
    free(ws);
    return (void *)bad;
}

int main(int argc, char **argv) {
    int32_t threads = argc > 1 ? atoi(argv[1]) : 2;
    n_in = API(num_inputs)();
    n_out = API(num_outputs)();
    if (n_in > 16 || n_out > 16) return 2;
    for (int32_t i = 0; i < n_in; i++) {
        in_n[i] = elements(API(input_rank)(i), API(input_shape)(i));
        float *x = malloc(in_n[i] * sizeof(float) + 1);
        for (size_t k = 0; k < in_n[i]; k++) x[k] = (float)((k * 7919 + i * 13) % 1000) / 250.0f - 2.0f;
        ins[i] = x;
    }
    void *outs[16];
    for (int32_t i = 0; i < n_out; i++) {
        out_n[i] = elements(API(output_rank)(i), API(output_shape)(i));
        reference[i] = calloc(out_n[i] + 1, sizeof(float));
        outs[i] = reference[i];
    }
    if (API(set_num_threads)(1) != 1) {
        printf("FAIL set_num_threads(1)\n");
        return 1;
    }
    if (API(run)(ins, outs) != 0) {
        printf("FAIL serial run\n");
        return 1;
    }
    int32_t got = API(set_num_threads)(threads);
    if (got != threads || API(num_threads)() != threads) {
        printf("FAIL set_num_threads(%d) = %d, num_threads() = %d\n", threads, got,
               API(num_threads)());
        return 1;
    }
    pthread_t tid[CALLERS];
    for (int c = 0; c < CALLERS; c++) pthread_create(&tid[c], NULL, caller, NULL);
    for (int c = 0; c < CALLERS; c++) {
        void *rc;
        pthread_join(tid[c], &rc);
        if (rc != NULL) {
            printf("FAIL caller %d: %s\n", c, (intptr_t)rc == 1 ? "run failed" : "output differs");
            return 1;
        }
    }
    /* Shrink and grow again, then a plain run. */
    API(set_num_threads)(1);
    API(set_num_threads)(threads);
    if (API(run)(ins, outs) != 0) return 1;
    printf("OK threads %d\n", API(num_threads)());
    return 0;
}
