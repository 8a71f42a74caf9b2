// Transfer learning on CIFAR-10: a compact CNN pretrained on classes 0-4 (airplane, automobile,
// bird, cat, deer) and moved to classes 5-9 (dog, frog, horse, ship, truck) with little data.
// Every model here builds the same backbone, so its parameters have the same names in all of
// them and a checkpoint of one loads into another with load_pretrained.
#include "../cifar/cifar10_statistics.h"

#include <convgen/model.h>

#include <string>

using namespace convgen;

namespace {

// The classes of either task.
constexpr int64_t classes = 5;
// The width of the backbone's features: what the head of every model reads.
constexpr int64_t feature_width = 128;

// A conv without bias (the batch norm after it has one), batch norm and relu.
Tensor conv_bn_relu(const Tensor& x, int64_t channels, const std::string& index) {
    const Tensor y = conv2d(
        x, channels, 3, {.padding = 1, .bias = false, .name = "conv" + index, .weight_init = Initializer::he_normal});
    return relu(batch_norm(y, {.name = "bn" + index}), "relu" + index);
}

// [3, 32, 32] -> block 1: conv1 [32, 32, 32], pool1 [32, 16, 16]
//             -> block 2: conv2, conv3 [64, 16, 16], pool2 [64, 8, 8]
//             -> block 3: conv4 [128, 8, 8], pool3 [128, 4, 4]
//             -> features [128, 1, 1] -> flat [128]
Tensor backbone() {
    auto x = input("image", Shape{3, 32, 32});
    x = max_pool(conv_bn_relu(x, 32, "1"), 2, {.name = "pool1"});
    x = conv_bn_relu(x, 64, "2");
    x = max_pool(conv_bn_relu(x, 64, "3"), 2, {.name = "pool2"});
    x = max_pool(conv_bn_relu(x, feature_width, "4"), 2, {.name = "pool3"});
    return flatten(global_avg_pool(x, "features"), "flat");
}

// The augmentation ResNet's CIFAR models train with; the images are normalised with CIFAR-10's
// training-set statistics.
Augmentation crop_and_flip() {
    return {.steps = {random_crop(4), horizontal_flip()},
            .pixel_mean = {cifar10::mean[0], cifar10::mean[1], cifar10::mean[2]},
            .pixel_std = {cifar10::std_dev[0], cifar10::std_dev[1], cifar10::std_dev[2]}};
}

}  // namespace

// Pretraining on the source task. Its head has its own name, so it is reported unused (not
// loaded) when the backbone moves to the target task.
Model transfer_source() {
    return Model("transfer_source", dense(backbone(), classes, {.name = "source_head"}), softmax_cross_entropy(),
                 crop_and_flip());
}
CONVGEN_MODEL(transfer_source)

// The baseline: the same network trained on the target task alone, from random weights.
Model transfer_scratch() {
    return Model("transfer_scratch", dense(backbone(), classes, {.name = "head"}), softmax_cross_entropy(),
                 crop_and_flip());
}
CONVGEN_MODEL(transfer_scratch)

// Fine-tuning: the first block (generic edges and colours) frozen, the rest of the backbone
// trained at a tenth of the new head's rate, so that the pretrained features move only gently.
Model transfer_finetune() {
    Model model("transfer_finetune", dense(backbone(), classes, {.name = "head"}), softmax_cross_entropy(),
                crop_and_flip());
    model.freeze_through("pool1");
    for (const char* layer : {"conv2", "bn2", "conv3", "bn3", "conv4", "bn4"})
        model.set_learning_rate_scale(layer, 0.1);
    return model;
}
CONVGEN_MODEL(transfer_finetune)

// The whole backbone frozen: a fixed function of the image. Its "features" output is what the
// feature-extraction head trains on, and its training step shows what freezing saves. No
// augmentation, so that its features are those the cached ones were computed from.
Model transfer_frozen() {
    Model model("transfer_frozen", dense(backbone(), classes, {.name = "head"}), softmax_cross_entropy());
    model.freeze_through("flat");
    return model;
}
CONVGEN_MODEL(transfer_frozen)

// The head alone, on cached features: feature extraction trains only this.
Model transfer_head() {
    const Tensor features = input("features", Shape{feature_width});
    return Model("transfer_head", dense(features, classes, {.name = "head"}), softmax_cross_entropy());
}
CONVGEN_MODEL(transfer_head)
