// Small networks that between them use every layer kind and option of the DSL, for the
// finite-difference gradient checks and the PyTorch parity tests (tests/parity/model_parity.py
// holds their PyTorch twins under the same names).
#include <convgen/model.h>

using namespace convgen;

// Batch norm (trained and folded), relu6, a depthwise strided conv, leaky_relu, global average pooling.
// [3, 8, 8] -> conv1/bn1 [8, 8, 8] -> conv2/bn2 [8, 4, 4] -> [8, 1, 1] -> fc [4]
static Tensor norm_net_logits() {
    auto x = input("image", Shape{3, 8, 8});
    x = conv2d(x, 8, 3, {.padding = 1, .bias = false, .name = "conv1"}) | batch_norm({.name = "bn1"}) | relu6;
    x = conv2d(x, 8, 3, {.stride = 2, .padding = 1, .groups = 8, .name = "conv2"}) | batch_norm({.name = "bn2"});
    return leaky_relu(x, 0.1) | global_avg_pool | flatten | dense(4, {.name = "fc"});
}

Model norm_net() {
    return Model("norm_net", norm_net_logits(), softmax_cross_entropy());
}
CONVGEN_MODEL(norm_net)

// norm_net with gradient clipping by global norm, at a norm small enough to clip every step.
Model clipped_norm_net() {
    Model model("clipped_norm_net", norm_net_logits(), softmax_cross_entropy());
    model.clip_gradient_norm(0.05);
    return model;
}
CONVGEN_MODEL(clipped_norm_net)

// Branches: a dilated conv, tanh and sigmoid, concat, a grouped conv, a residual add with a 1x1
// projection, overlapping average pooling, and a softmax output layer.
// [2, 9, 9] -> conv1 [6, 9, 9] -> branch_a [4, 9, 9] ++ branch_b [4, 9, 9] -> grouped [8, 9, 9]
//           + shortcut [8, 9, 9] -> avg_pool 3/2 [8, 4, 4] -> fc [5]
Model branch_net() {
    auto image = input("image", Shape{2, 9, 9});
    auto trunk = conv2d(image, 6, 3, {.padding = 2, .dilation = 2, .name = "conv1"}) | tanh;
    auto a = conv2d(trunk, 4, 1, {.name = "branch_a"});
    auto b = conv2d(trunk, 4, 3, {.padding = 1, .name = "branch_b"}) | sigmoid;
    auto joined = conv2d(concat({a, b}), 8, 3, {.padding = 1, .groups = 2, .name = "grouped"});
    auto y = relu(add(joined, conv2d(trunk, 8, 1, {.name = "shortcut"})));
    y = avg_pool(y, 3, {.stride = 2}) | flatten | dense(5, {.name = "fc"}) | softmax;
    return Model("branch_net", y, softmax_cross_entropy());
}
CONVGEN_MODEL(branch_net)

// EfficientNet's and GoogLeNet's pieces: silu after a trained batch norm, a ceil_mode max pool,
// 5x5 and 7x7 depthwise convs, hard_swish, a squeeze-and-excitation gate (scale_channels), drop-path
// on a residual branch, and an average pool with ceil_mode that leaves padding out of its divisor.
// [3, 12, 12] -> conv1/bn1 [8, 12, 12] -> max_pool 3/2 ceil [8, 6, 6] -> dw5 [8, 6, 6] * se gate
//           + shortcut -> dw7 [8, 6, 6] -> avg_pool 3/2 pad 1 ceil [8, 4, 4] -> fc [5]
Model gate_net() {
    auto x = input("image", Shape{3, 12, 12});
    x = conv2d(x, 8, 3, {.padding = 1, .bias = false, .name = "conv1"}) | batch_norm({.name = "bn1"}) | silu;
    x = max_pool(x, 3, {.stride = 2, .ceil_mode = true});
    auto y = conv2d(x, 8, 5, {.padding = 2, .groups = 8, .name = "dw5"}) | hard_swish;
    auto gate = global_avg_pool(y) | conv2d(4, 1, {.name = "se.fc1"}) | silu | conv2d(8, 1, {.name = "se.fc2"}) |
                sigmoid;
    y = drop_path(scale_channels(y, gate), 0.2);
    x = conv2d(add(x, y), 8, 7, {.padding = 3, .groups = 8, .name = "dw7"});
    x = avg_pool(x, 3, {.stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false});
    x = flatten(x) | dense(5, {.name = "fc"});
    return Model("gate_net", x, softmax_cross_entropy());
}
CONVGEN_MODEL(gate_net)

// Feature vectors: dense, batch norm over features, dropout.
Model dropout_net() {
    auto x = input("features", Shape{6});
    x = dense(x, 16, {.name = "fc1"}) | batch_norm({.name = "bn"}) | relu | dropout(0.5, {.name = "drop"});
    x = dense(x, 3, {.name = "fc2"});
    return Model("dropout_net", x, softmax_cross_entropy());
}
CONVGEN_MODEL(dropout_net)

// Every augmentation step, on normalised RGB images.
Model augment_net() {
    auto x = input("image", Shape{3, 10, 10});
    x = conv2d(x, 6, 3, {.padding = 1, .name = "conv1"}) | relu | max_pool(2);
    x = flatten(x) | dense(4, {.name = "fc"});
    const Augmentation augmentation{
        .steps = {random_crop(2), random_rotation(15), horizontal_flip(), brightness(0.2), contrast(0.2),
                  color_jitter(0.1), salt_and_pepper(0.02), gaussian_noise(0.03)},
        .pixel_mean = {0.5, 0.45, 0.4},
        .pixel_std = {0.25, 0.25, 0.25}};
    return Model("augment_net", x, softmax_cross_entropy(), augmentation);
}
CONVGEN_MODEL(augment_net)
