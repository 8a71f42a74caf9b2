// The ImageNet ResNets of He et al. 2016 exactly as torchvision.models.resnet18/34/50 build them
// (names, shapes, the stride on the bottleneck's 3x3 conv), and the paper's 34-layer "plain"
// network: the same layers without shortcuts, which trains worse than its 18-layer counterpart.
#include "blocks.h"

#include <fmt/format.h>

#include <array>

using namespace convgen;

namespace {

enum class Block { basic, bottleneck, plain };

// A 7x7 conv and a max pool to 56x56, four stages at 64, 128, 256 and 512 (x4 for bottlenecks)
// channels, each but the first halving the map, global average pooling and a 1000-way dense layer.
Model resnet(const std::string& name, Block kind, std::array<int, 4> blocks_per_stage) {
    auto x = input("image", Shape{3, 224, 224});
    x = zoo::conv_bn(x, 64, 7, 2, "conv1", "bn1") | relu | max_pool(3, {.stride = 2, .padding = 1});
    const int64_t widths[] = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; stage++) {
        for (int block = 0; block < blocks_per_stage[stage]; block++) {
            const int64_t stride = stage > 0 && block == 0 ? 2 : 1;
            const std::string block_name = fmt::format("layer{}.{}", stage + 1, block);
            if (kind == Block::bottleneck) {
                x = zoo::bottleneck(x, widths[stage], stride, block_name);
            } else {
                x = zoo::basic_block(x, widths[stage], stride, block_name, kind == Block::basic);
            }
        }
    }
    x = global_avg_pool(x) | flatten | dense(1000, {.name = "fc"});
    return Model(name, x, softmax_cross_entropy());
}

}  // namespace

Model resnet18() {
    return resnet("resnet18", Block::basic, {2, 2, 2, 2});
}
Model resnet34() {
    return resnet("resnet34", Block::basic, {3, 4, 6, 3});
}
Model resnet50() {
    return resnet("resnet50", Block::bottleneck, {3, 4, 6, 3});
}
Model plain34() {
    return resnet("plain34", Block::plain, {3, 4, 6, 3});
}
CONVGEN_MODEL(resnet18)
CONVGEN_MODEL(resnet34)
CONVGEN_MODEL(resnet50)
CONVGEN_MODEL(plain34)
