#include <convgen/model.h>

#include <fmt/format.h>

namespace convgen {

Model::Model(std::string name, const Tensor& output, Loss loss)
    : name_(std::move(name)), graph_(output.graph()), output_node_(output.node_id()), loss_(loss) {
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
