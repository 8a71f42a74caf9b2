// DenseNets (Huang et al. 2017): every layer of a dense block reads the feature maps of all the
// layers before it. DenseNet-121 exactly as torchvision.models.densenet121 builds it (names and
// shapes), and the paper's CIFAR DenseNet-BC (depth 100, growth 12: three blocks of 16 bottleneck
// layers, transitions halving the channels) under torchvision's names, with the paper's CIFAR stem
// (one 3x3 conv to 2 * growth channels, no pooling) in place of the ImageNet one.
#include "blocks.h"

#include <string>
#include <vector>

using namespace convgen;

namespace {

// The blocks, each followed by a transition halving the channels except the last, then batch norm
// ("features.norm5"), ReLU, global average pooling and the classifier.
Tensor densenet_body(Tensor x, const std::vector<int>& block_layers, int64_t growth, int64_t classes) {
    constexpr int64_t bn_size = 4;
    for (size_t b = 0; b < block_layers.size(); b++) {
        const std::string index = std::to_string(b + 1);
        x = zoo::dense_block(x, block_layers[b], growth, bn_size, "features.denseblock" + index);
        if (b + 1 < block_layers.size()) x = zoo::transition(x, x.shape()[0] / 2, "features.transition" + index);
    }
    x = batch_norm(x, {.name = "features.norm5"}) | relu;
    return global_avg_pool(x) | flatten | dense(classes, {.name = "classifier"});
}

}  // namespace

// Growth 32, blocks of 6, 12, 24 and 16 layers after a 7x7 stride-2 conv to 64 channels and a
// 3x3 stride-2 max pool.
Model densenet121() {
    auto x = input("image", Shape{3, 224, 224});
    x = x | conv2d(64, 7,
                   {.stride = 2, .padding = 3, .bias = false, .name = "features.conv0",
                    .weight_init = Initializer::he_normal});
    x = batch_norm(x, {.name = "features.norm0"}) | relu | max_pool(3, {.stride = 2, .padding = 1});
    return Model("densenet121", densenet_body(x, {6, 12, 24, 16}, 32, 1000), softmax_cross_entropy());
}

Model densenet_bc100_cifar() {
    constexpr int64_t growth = 12;
    auto x = input("image", Shape{3, 32, 32});
    x = x | conv2d(2 * growth, 3,
                   {.padding = 1, .bias = false, .name = "features.conv0", .weight_init = Initializer::he_normal});
    return Model("densenet_bc100_cifar", densenet_body(x, {16, 16, 16}, growth, 10), softmax_cross_entropy());
}
CONVGEN_MODEL(densenet121)
CONVGEN_MODEL(densenet_bc100_cifar)
