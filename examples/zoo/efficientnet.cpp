// EfficientNet-B0 (Tan & Le 2019) exactly as torchvision.models.efficientnet_b0 builds it (names
// and shapes): MBConv blocks (1x1 expansion, depthwise conv, squeeze-and-excitation, 1x1 linear
// projection) with SiLU, stochastic depth rising linearly from 0 to 0.2 over the blocks, and
// dropout 0.2 before the classifier. At 224x224 for ImageNet, and at 32x32 for CIFAR-10 (a 1x1
// map after the five stride-2 stages, as torchvision's model gives on such images).
#include "blocks.h"

#include <algorithm>
#include <string>

using namespace convgen;
using zoo::conv_bn;
using zoo::conv_bn_activation;

namespace {

// torchvision's MBConv: "<name>.block.<i>", i counting its layers (the expansion is absent when
// the ratio is 1); the input is added back, through drop-path, where the shape stays.
Tensor mbconv(const Tensor& x, int64_t channels, int64_t kernel, int64_t stride, int64_t expansion,
              double drop_path_rate, const std::string& name) {
    const int64_t inputs = x.shape()[0], hidden = inputs * expansion;
    int index = 0;
    auto next_name = [&] { return name + ".block." + std::to_string(index++); };
    Tensor y = x;
    if (expansion != 1) y = conv_bn_activation(y, hidden, 1, 1, 1, silu, next_name());
    y = conv_bn_activation(y, hidden, kernel, stride, hidden, silu, next_name());
    y = zoo::squeeze_excitation(y, std::max<int64_t>(1, inputs / 4), silu, next_name());
    const std::string projection = next_name();
    y = conv_bn(y, channels, 1, 1, projection + ".0", projection + ".1");
    if (stride != 1 || inputs != channels) return y;
    if (drop_path_rate > 0) y = drop_path(y, drop_path_rate, {.name = name + ".stochastic_depth"});
    return add(y, x);
}

Model efficientnet_b0_model(const std::string& name, int64_t image_size, int64_t classes) {
    struct Stage {
        int64_t expansion, kernel, stride, channels, blocks;
    };
    // Table 1 of the paper: expansion, kernel, first stride, output channels, blocks.
    const Stage stages[] = {{1, 3, 1, 16, 1},  {6, 3, 2, 24, 2},  {6, 5, 2, 40, 2},  {6, 3, 2, 80, 3},
                            {6, 5, 1, 112, 3}, {6, 5, 2, 192, 4}, {6, 3, 1, 320, 1}};
    int64_t total_blocks = 0;
    for (const Stage& stage : stages) total_blocks += stage.blocks;

    auto x = input("image", Shape{3, image_size, image_size});
    x = conv_bn_activation(x, 32, 3, 2, 1, silu, "features.0");
    int64_t block_index = 0;
    for (size_t s = 0; s < std::size(stages); s++) {
        const Stage& stage = stages[s];
        for (int64_t b = 0; b < stage.blocks; b++) {
            const double drop_path_rate = 0.2 * static_cast<double>(block_index++) / static_cast<double>(total_blocks);
            x = mbconv(x, stage.channels, stage.kernel, b == 0 ? stage.stride : 1, stage.expansion, drop_path_rate,
                       "features." + std::to_string(s + 1) + "." + std::to_string(b));
        }
    }
    x = conv_bn_activation(x, 1280, 1, 1, 1, silu, "features." + std::to_string(std::size(stages) + 1));
    x = global_avg_pool(x) | flatten | dropout(0.2, {.name = "classifier.0"});
    x = x | dense(classes, {.name = "classifier.1"});
    return Model(name, x, softmax_cross_entropy());
}

}  // namespace

Model efficientnet_b0() {
    return efficientnet_b0_model("efficientnet_b0", 224, 1000);
}
Model efficientnet_b0_cifar() {
    return efficientnet_b0_model("efficientnet_b0_cifar", 32, 10);
}
CONVGEN_MODEL(efficientnet_b0)
CONVGEN_MODEL(efficientnet_b0_cifar)
