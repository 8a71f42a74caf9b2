#include <convgen/model.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace convgen {

namespace {

void check_augmentation(const std::string& model, const Augmentation& augmentation, const Shape& input) {
    if (augmentation.empty()) return;
    const auto fail = [&](const std::string& what) {
        throw ModelError(fmt::format("model '{}': augmentation: {}", model, what));
    };
    if (input.rank() != 3) fail(fmt::format("needs [C, H, W] images, but the input is {}", input.to_string()));
    const int64_t channels = input[0], height = input[1], width = input[2];
    for (const auto* values : {&augmentation.pixel_mean, &augmentation.pixel_std}) {
        const char* which = values == &augmentation.pixel_mean ? "pixel_mean" : "pixel_std";
        if (!values->empty() && static_cast<int64_t>(values->size()) != channels) {
            fail(fmt::format("{} has {} values for {} channels", which, values->size(), channels));
        }
    }
    for (double s : augmentation.pixel_std) {
        if (!(s > 0)) fail(fmt::format("pixel_std must be positive, got {:g}", s));
    }
    for (const AugmentationStep& step : augmentation.steps) {
        const double a = step.amount;
        bool valid = a >= 0;
        switch (step.kind) {
            case AugmentationKind::random_crop:
                valid = valid && a == static_cast<double>(static_cast<int64_t>(a)) && a < std::min(height, width);
                break;
            case AugmentationKind::rotation:
                valid = valid && a <= 180;
                break;
            case AugmentationKind::horizontal_flip:
            case AugmentationKind::salt_and_pepper:
                valid = valid && a <= 1;
                break;
            case AugmentationKind::brightness:
            case AugmentationKind::contrast:
            case AugmentationKind::color_jitter:
                valid = valid && a < 1;
                break;
            case AugmentationKind::gaussian_noise:
                break;
        }
        if (!valid) {
            fail(fmt::format("{} is out of range for {}x{} images (crop padding: a whole number of pixels below the "
                             "image size; rotation: up to 180 degrees; probabilities up to 1; factor ranges below 1)",
                             describe(step), height, width));
        }
    }
}

}  // namespace

Model::Model(std::string name, const Tensor& output, Loss loss, Augmentation augmentation)
    : name_(std::move(name)),
      graph_(output.graph()),
      output_node_(output.node_id()),
      loss_(loss),
      augmentation_(std::move(augmentation)) {
    for (const Node& n : graph_->nodes()) {
        if (n.kind == LayerKind::softmax && n.id != output_node_) {
            throw ModelError(
                fmt::format("model '{}': layer '{}' (softmax) is not the model's output; softmax is an "
                            "output layer (the loss applies it to the scores before it)",
                            name_, n.name));
        }
        if (n.kind != LayerKind::input) continue;
        if (input_node_ >= 0) {
            throw ModelError(
                fmt::format("model '{}': more than one input ('{}' and '{}'); one image input is supported", name_,
                            graph_->node(input_node_).name, n.name));
        }
        input_node_ = n.id;
    }
    check_augmentation(name_, augmentation_, graph_->node(input_node_).shape);
    const Shape& logits = output.shape();
    if (loss_.kind == LossKind::softmax_cross_entropy && logits.rank() != 1) {
        throw ModelError(
            fmt::format("model '{}': softmax cross-entropy needs class scores [classes] from layer '{}', "
                        "but its output shape is {}; end the model with flatten and dense",
                        name_, output.name(), logits.to_string()));
    }
    if (logits.rank() == 1 && logits[0] < 2) {
        throw ModelError(fmt::format("model '{}': the output layer '{}' has {} class, a classifier needs at least 2",
                                     name_, output.name(), logits[0]));
    }
}

int Model::layer_id(const std::string& layer, const char* what) const {
    for (const Node& n : graph_->nodes()) {
        if (n.name == layer && n.id <= output_node_) return n.id;
    }
    throw ModelError(fmt::format("model '{}': {}: no layer named '{}'", name_, what, layer));
}

Model& Model::freeze(const std::string& layer) {
    layer_id(layer, "freeze");
    if (learning_rate_scales_.count(layer)) {
        throw ModelError(fmt::format("model '{}': freeze: layer '{}' has a learning-rate scale; a frozen layer "
                                     "does not train",
                                     name_, layer));
    }
    frozen_.insert(layer);
    return *this;
}

Model& Model::freeze_through(const std::string& layer) {
    std::vector<int> pending = {layer_id(layer, "freeze_through")};
    while (!pending.empty()) {
        const Node& n = graph_->node(pending.back());
        pending.pop_back();
        if (frozen_.count(n.name)) continue;
        freeze(n.name);
        pending.insert(pending.end(), n.inputs.begin(), n.inputs.end());
    }
    return *this;
}

Model& Model::set_learning_rate_scale(const std::string& layer, double scale) {
    layer_id(layer, "set_learning_rate_scale");
    if (!(scale > 0) || !std::isfinite(scale)) {
        throw ModelError(fmt::format("model '{}': set_learning_rate_scale: layer '{}': the scale must be positive "
                                     "and finite, got {:g} (freeze the layer to stop it training)",
                                     name_, layer, scale));
    }
    if (is_frozen(layer)) {
        throw ModelError(fmt::format("model '{}': set_learning_rate_scale: layer '{}' is frozen", name_, layer));
    }
    learning_rate_scales_[layer] = scale;
    return *this;
}

Model& Model::clip_gradient_norm(double max_norm) {
    if (!(max_norm > 0) || !std::isfinite(max_norm)) {
        throw ModelError(fmt::format("model '{}': clip_gradient_norm: the norm must be positive and finite, got {:g}",
                                     name_, max_norm));
    }
    gradient_clip_norm_ = max_norm;
    return *this;
}

double Model::learning_rate_scale(const std::string& layer) const {
    auto found = learning_rate_scales_.find(layer);
    return found == learning_rate_scales_.end() ? 1.0 : found->second;
}

namespace {
std::vector<RegisteredModel>& registry() {
    static std::vector<RegisteredModel> models;
    return models;
}
}  // namespace

const std::vector<RegisteredModel>& registered_models() {
    return registry();
}

ModelRegistration::ModelRegistration(const char* name, ModelFactory factory) {
    registry().push_back({name, factory});
}

}  // namespace convgen
