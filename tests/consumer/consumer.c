/* A program that uses a generated library the way an outside project would: plain C99, only the
 * generated folder's lenet5.h and liblenet5.a, no Halide, LLVM, fmt or convgen anywhere. It trains
 * a few steps on random data, predicts, and round-trips a checkpoint. Prints OK and exits 0 when
 * everything behaves; otherwise prints what failed and exits 1.
 *
 * Usage: consumer <directory for the checkpoint> */
#include "lenet5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 16
#define STEPS 20

static int failures = 0;

#define EXPECT(condition)                                                           \
    do {                                                                            \
        if (!(condition)) {                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #condition); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* A fixed linear congruential generator, so every run sees the same data. */
static uint32_t random_state = 12345u;
static float random_uniform(void) {
    random_state = random_state * 1664525u + 1013904223u;
    return (float)(random_state >> 8) / 16777216.0f; /* [0, 1) */
}

static int same_parameters(lenet5_model* a, lenet5_model* b) {
    int i;
    int same = 1;
    for (i = 0; i < LENET5_PARAMETER_COUNT; i++) {
        const char* name = lenet5_parameter_name(i);
        const int64_t size = lenet5_parameter_size(i);
        float* x = (float*)malloc((size_t)size * sizeof(float));
        float* y = (float*)malloc((size_t)size * sizeof(float));
        if (x == NULL || y == NULL || lenet5_get_parameter(a, name, x, size) != CONVGEN_OK ||
            lenet5_get_parameter(b, name, y, size) != CONVGEN_OK || memcmp(x, y, (size_t)size * sizeof(float)) != 0) {
            same = 0;
        }
        free(x);
        free(y);
    }
    return same;
}

int main(int argc, char** argv) {
    static float images[BATCH * LENET5_INPUT_SIZE];
    static float probabilities[BATCH * LENET5_CLASSES];
    static float reloaded_probabilities[BATCH * LENET5_CLASSES];
    int32_t labels[BATCH];
    char path[4096];
    lenet5_model* model = NULL;
    lenet5_model* reloaded = NULL;
    float first_loss = 0, loss = 0;
    int correct = 0, status, step, i, k;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <directory for the checkpoint>\n", argv[0]);
        return 2;
    }
    snprintf(path, sizeof path, "%s/lenet5_checkpoint.safetensors", argv[1]);

    /* A failed create says why through last_error(NULL). */
    EXPECT(lenet5_create(NULL, 1) == CONVGEN_ERROR_INVALID_ARGUMENT);
    EXPECT(strlen(lenet5_last_error(NULL)) > 0);

    status = lenet5_create(&model, 1);
    if (status != CONVGEN_OK) {
        fprintf(stderr, "lenet5_create failed (%d): %s\n", status, lenet5_last_error(NULL));
        return 1;
    }
    EXPECT(lenet5_set_sgd(model, 0.02f, 0.9f, 0.0f) == CONVGEN_OK);

    for (i = 0; i < BATCH * LENET5_INPUT_SIZE; i++) images[i] = random_uniform();
    for (i = 0; i < BATCH; i++) labels[i] = i % LENET5_CLASSES;

    for (step = 0; step < STEPS; step++) {
        status = lenet5_train_step(model, images, labels, BATCH, &loss, &correct);
        if (status != CONVGEN_OK) {
            fprintf(stderr, "lenet5_train_step failed (%d): %s\n", status, lenet5_last_error(model));
            return 1;
        }
        if (step == 0) first_loss = loss;
        EXPECT(isfinite(loss));
        EXPECT(correct >= 0 && correct <= BATCH);
    }
    printf("loss %.4f -> %.4f after %d steps\n", first_loss, loss, STEPS);
    EXPECT(loss < first_loss);
    EXPECT(lenet5_step_count(model) == STEPS);

    EXPECT(lenet5_predict(model, images, BATCH, probabilities) == CONVGEN_OK);
    for (i = 0; i < BATCH; i++) {
        double sum = 0;
        for (k = 0; k < LENET5_CLASSES; k++) sum += probabilities[i * LENET5_CLASSES + k];
        EXPECT(fabs(sum - 1.0) < 1e-5);
    }

    /* Errors are codes with messages, never aborts. */
    EXPECT(lenet5_predict(model, images, 0, probabilities) == CONVGEN_ERROR_INVALID_ARGUMENT);
    EXPECT(strstr(lenet5_last_error(model), "batch") != NULL);

    status = lenet5_save(model, path);
    if (status != CONVGEN_OK) {
        fprintf(stderr, "lenet5_save failed (%d): %s\n", status, lenet5_last_error(model));
        return 1;
    }
    EXPECT(lenet5_create(&reloaded, 2) == CONVGEN_OK);
    EXPECT(!same_parameters(model, reloaded));
    status = lenet5_load(reloaded, path);
    if (status != CONVGEN_OK) {
        fprintf(stderr, "lenet5_load failed (%d): %s\n", status, lenet5_last_error(reloaded));
        return 1;
    }
    EXPECT(same_parameters(model, reloaded));
    EXPECT(lenet5_step_count(reloaded) == STEPS);
    EXPECT(lenet5_predict(reloaded, images, BATCH, reloaded_probabilities) == CONVGEN_OK);
    EXPECT(memcmp(probabilities, reloaded_probabilities, sizeof probabilities) == 0);

    snprintf(path, sizeof path, "%s/no_such_checkpoint.safetensors", argv[1]);
    EXPECT(lenet5_load(reloaded, path) == CONVGEN_ERROR_IO);
    EXPECT(strstr(lenet5_last_error(reloaded), "no_such_checkpoint") != NULL);

    lenet5_destroy(reloaded);
    lenet5_destroy(model);
    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("OK\n");
    return 0;
}
