// The CIFAR-10 ResNets of He et al. 2016 (section 4.2): a 3x3 conv, three stages of n basic blocks
// at 16, 32 and 64 channels on 32x32, 16x16 and 8x8 maps, global average pooling and a 10-way dense
// layer: 6n + 2 weighted layers. Where a stage halves the map and doubles the channels the shortcut
// is a 1x1 conv + batch norm ("option B", 2,752 parameters); the paper's CIFAR nets used the
// parameter-free option A (subsampling and zero channels).
#include "resnet_cifar.h"

#include "blocks.h"

#include <fmt/format.h>

using namespace convgen;

Model zoo::resnet_cifar(const std::string& name, int blocks_per_stage, Augmentation augmentation) {
    auto x = input("image", Shape{3, 32, 32});
    x = zoo::conv_bn(x, 16, 3, 1, "conv1", "bn1") | relu;
    const int64_t channels[] = {16, 32, 64};
    for (int stage = 0; stage < 3; stage++) {
        for (int block = 0; block < blocks_per_stage; block++) {
            const int64_t stride = stage > 0 && block == 0 ? 2 : 1;
            x = zoo::basic_block(x, channels[stage], stride, fmt::format("layer{}.{}", stage + 1, block));
        }
    }
    x = global_avg_pool(x) | flatten | dense(10, {.name = "fc"});
    return Model(name, x, softmax_cross_entropy(), std::move(augmentation));
}

Model resnet20() {
    return zoo::resnet_cifar("resnet20", 3);
}
Model resnet56() {
    return zoo::resnet_cifar("resnet56", 9);
}
CONVGEN_MODEL(resnet20)
CONVGEN_MODEL(resnet56)
