// Networks for the transfer-learning tests: one backbone, a source model trained on one task,
// and targets with a new head, frozen or partly fine-tuned, and the head alone on the backbone's
// features (feature extraction).
#include <convgen/model.h>

using namespace convgen;

namespace {

// [3, 8, 8] -> conv1/bn1/relu1 [8, 8, 8] -> pool1 [8, 4, 4] -> conv2/bn2/relu2 [16, 4, 4]
//           -> drop -> features [16, 1, 1] -> flat [16]
Tensor backbone() {
    auto x = input("image", Shape{3, 8, 8});
    x = conv2d(x, 8, 3, {.padding = 1, .bias = false, .name = "conv1"}) | batch_norm({.name = "bn1"});
    x = max_pool(relu(x, "relu1"), 2, {.name = "pool1"});
    x = conv2d(x, 16, 3, {.padding = 1, .name = "conv2"}) | batch_norm({.name = "bn2"});
    x = dropout(relu(x, "relu2"), 0.3, {.name = "drop"});
    return flatten(global_avg_pool(x, "features"), "flat");
}

}  // namespace

// The pretrained model: the backbone and a 4-class head "fc".
Model transfer_source_net() {
    return Model("transfer_source_net", dense(backbone(), 4, {.name = "fc"}), softmax_cross_entropy());
}
CONVGEN_MODEL(transfer_source_net)

// A new 3-class head on the frozen backbone.
Model transfer_frozen_net() {
    Model model("transfer_frozen_net", dense(backbone(), 3, {.name = "head"}), softmax_cross_entropy());
    model.freeze_through("flat");
    return model;
}
CONVGEN_MODEL(transfer_frozen_net)

// The head alone, trained on the frozen backbone's cached features.
Model transfer_head_net() {
    auto features = input("features", Shape{16});
    return Model("transfer_head_net", dense(features, 3, {.name = "head"}), softmax_cross_entropy());
}
CONVGEN_MODEL(transfer_head_net)

// Fine-tuning: the first block frozen, the second trained at a tenth of the head's rate.
Model transfer_finetune_net() {
    Model model("transfer_finetune_net", dense(backbone(), 3, {.name = "head"}), softmax_cross_entropy());
    model.freeze_through("pool1");
    model.set_learning_rate_scale("conv2", 0.1).set_learning_rate_scale("bn2", 0.1);
    return model;
}
CONVGEN_MODEL(transfer_finetune_net)

// The same with every trained layer at the full rate: what the scaled updates are compared with.
Model transfer_unscaled_net() {
    Model model("transfer_unscaled_net", dense(backbone(), 3, {.name = "head"}), softmax_cross_entropy());
    model.freeze_through("pool1");
    return model;
}
CONVGEN_MODEL(transfer_unscaled_net)

// A frozen layer between trained ones: its weights get no gradient, its input still does.
Model transfer_middle_frozen_net() {
    Model model("transfer_middle_frozen_net", dense(backbone(), 3, {.name = "head"}), softmax_cross_entropy());
    model.freeze("conv2").freeze("bn2");
    return model;
}
CONVGEN_MODEL(transfer_middle_frozen_net)
