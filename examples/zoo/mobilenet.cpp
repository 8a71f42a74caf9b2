// MobileNets: v1 (Howard et al. 2017), depthwise separable convs; v2 (Sandler et al. 2018),
// inverted residuals with linear bottlenecks, exactly as torchvision.models.mobilenet_v2 builds it
// (names and shapes), at 224x224 for ImageNet and at 32x32 for CIFAR-10. A depthwise conv is a
// conv2d with as many groups as channels.
#include "blocks.h"

#include <string>

using namespace convgen;
using zoo::conv_bn_activation;

namespace {

// v1's block: a 3x3 depthwise conv ("<name>.0") then a 1x1 pointwise conv ("<name>.1"), each with
// batch norm and ReLU.
Tensor depthwise_separable(const Tensor& x, int64_t channels, int64_t stride, const std::string& name) {
    const Tensor y = conv_bn_activation(x, x.shape()[0], 3, stride, x.shape()[0], relu, name + ".0");
    return conv_bn_activation(y, channels, 1, 1, 1, relu, name + ".1");
}

// v2's block: 1x1 expansion to `expansion` times the channels (absent when 1), 3x3 depthwise, 1x1
// linear projection with batch norm and no activation; the input is added back when the shape
// stays. torchvision's names: "<name>.conv.<i>", i counting the layers of its nn.Sequential.
Tensor inverted_residual(const Tensor& x, int64_t channels, int64_t stride, int64_t expansion,
                         const std::string& name) {
    const int64_t hidden = x.shape()[0] * expansion;
    int index = 0;
    auto next_name = [&] { return name + ".conv." + std::to_string(index++); };
    Tensor y = x;
    if (expansion != 1) y = conv_bn_activation(y, hidden, 1, 1, 1, relu6, next_name());
    y = conv_bn_activation(y, hidden, 3, stride, hidden, relu6, next_name());
    y = y | conv2d(channels, 1, {.bias = false, .name = next_name(), .weight_init = Initializer::he_normal});
    y = y | batch_norm({.name = next_name()});
    return stride == 1 && x.shape()[0] == channels ? add(x, y) : y;
}

// Width multiplier 1.0. Each row of the paper's Table 2: expansion t, channels c, n blocks, the
// first of them with stride s. At 32x32 the same strides leave a 1x1 map, as
// torchvision.models.mobilenet_v2(num_classes=10) does on CIFAR-10 images.
Model mobilenet_v2_model(const std::string& name, int64_t image_size, int64_t classes) {
    struct Stage {
        int64_t expansion, channels, blocks, stride;
    };
    const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                            {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    auto x = input("image", Shape{3, image_size, image_size});
    x = conv_bn_activation(x, 32, 3, 2, 1, relu6, "features.0");
    int index = 1;
    for (const Stage& stage : stages) {
        for (int64_t block = 0; block < stage.blocks; block++) {
            x = inverted_residual(x, stage.channels, block == 0 ? stage.stride : 1, stage.expansion,
                                  "features." + std::to_string(index++));
        }
    }
    x = conv_bn_activation(x, 1280, 1, 1, 1, relu6, "features." + std::to_string(index));
    x = global_avg_pool(x) | flatten | dropout(0.2, {.name = "classifier.0"});
    x = x | dense(classes, {.name = "classifier.1"});
    return Model(name, x, softmax_cross_entropy());
}

}  // namespace

// Width multiplier 1.0: a strided 3x3 conv to 32 channels, 13 depthwise separable blocks
// (Table 1 of the paper; its last stride-2 entry is a misprint for 1), global average pooling and
// a 1000-way dense layer.
Model mobilenet_v1() {
    struct Block {
        int64_t channels, stride;
    };
    const Block blocks[] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},  {512, 2}, {512, 1},
                            {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
    auto x = input("image", Shape{3, 224, 224});
    x = conv_bn_activation(x, 32, 3, 2, 1, relu, "features.0");
    int index = 1;
    for (const Block& block : blocks) {
        x = depthwise_separable(x, block.channels, block.stride, "features." + std::to_string(index++));
    }
    x = global_avg_pool(x) | flatten | dense(1000, {.name = "classifier"});
    return Model("mobilenet_v1", x, softmax_cross_entropy());
}

Model mobilenet_v2() {
    return mobilenet_v2_model("mobilenet_v2", 224, 1000);
}
Model mobilenet_v2_cifar() {
    return mobilenet_v2_model("mobilenet_v2_cifar", 32, 10);
}
CONVGEN_MODEL(mobilenet_v1)
CONVGEN_MODEL(mobilenet_v2)
CONVGEN_MODEL(mobilenet_v2_cifar)
