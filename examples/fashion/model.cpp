// A small VGG-style CNN with batch norm for Fashion-MNIST: two blocks of two 3x3 convs (32 and 64
// channels), each conv followed by batch norm and ReLU and each block by a 2x2 max pool, then a
// 256-unit dense layer with batch norm and dropout. Trained with random 2-pixel shifts and
// horizontal flips (clothes look alike mirrored).
#include "fashion_statistics.h"

#include <convgen/model.h>

using namespace convgen;

namespace {

Tensor conv_bn_relu(const Tensor& x, int64_t channels, const std::string& name) {
    return conv2d(x, channels, 3, {.padding = 1, .bias = false, .name = name, .weight_init = Initializer::he_normal}) |
           batch_norm({.name = name + "_bn"}) | relu;
}

}  // namespace

Model fashion_cnn() {
    auto x = input("image", Shape{1, 28, 28});
    x = conv_bn_relu(x, 32, "conv1");
    x = conv_bn_relu(x, 32, "conv2") | max_pool(2);
    x = conv_bn_relu(x, 64, "conv3");
    x = conv_bn_relu(x, 64, "conv4") | max_pool(2);
    x = flatten(x) | dense(256, {.bias = false, .name = "fc1", .weight_init = Initializer::he_normal}) |
        batch_norm({.name = "fc1_bn"}) | relu | dropout(0.3);
    x = dense(x, 10, {.name = "fc2"});
    Augmentation augmentation{.steps = {random_crop(2), horizontal_flip()},
                              .pixel_mean = {fashion_mnist::mean},
                              .pixel_std = {fashion_mnist::std_dev}};
    return Model("fashion_cnn", x, softmax_cross_entropy(), augmentation);
}
CONVGEN_MODEL(fashion_cnn)
