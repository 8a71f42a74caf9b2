// A small test network for the paths LeNet-5 does not take: a non-square, odd-sized input with
// three channels, a strided and padded convolution (He-initialised), a convolution without bias,
// average pooling with overlapping windows (stride 1) and padded max pooling with a stride smaller
// than its kernel.
#include <convgen/model.h>

using namespace convgen;

// Shapes: [3, 9, 11] -> conv1 [8, 5, 6] -> avgpool1 [8, 4, 5] -> conv2 [6, 4, 5]
//         -> maxpool1 [6, 2, 3] -> flatten [36] -> dense1 [12] -> dense2 [5]
Model small_cnn() {
    auto x = input("image", Shape{3, 9, 11});
    x = conv2d(x, 8, 3, {.stride = 2, .padding = 1, .weight_init = Initializer::he_normal}) | relu |
        avg_pool(2, {.stride = 1});
    x = conv2d(x, 6, 3, {.padding = 1, .bias = false}) | relu | max_pool(3, {.stride = 2, .padding = 1});
    x = flatten(x) | dense(12) | relu | dense(5);
    return Model("small_cnn", x, softmax_cross_entropy());
}
CONVGEN_MODEL(small_cnn)
