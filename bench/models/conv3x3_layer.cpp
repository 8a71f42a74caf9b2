// The single-layer workload of the benchmark: conv3x3 32->64 + ReLU + 2x2 max-pool on 32x32
// images, with a small classifier head so that it is a whole model (the head is under 0.5% of
// the FLOPs: 37.7 MFLOP per image are the conv's).
#include <convgen/model.h>

using namespace convgen;

Model conv3x3_layer() {
    auto x = input("image", Shape{32, 32, 32});
    x = conv2d(x, 64, 3, {.padding = 1}) | relu | max_pool(2);
    x = flatten(x) | dense(10);
    return Model("conv3x3_layer", x, softmax_cross_entropy());
}
CONVGEN_MODEL(conv3x3_layer)
