#include <convgen/error.h>
#include <convgen/graph.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace convgen {

int64_t Shape::elements() const {
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    return count;
}

std::string Shape::to_string() const {
    return fmt::format("[{}]", fmt::join(dims, ", "));
}

std::string to_string(LayerKind kind) {
    switch (kind) {
        case LayerKind::input:
            return "input";
        case LayerKind::conv2d:
            return "conv2d";
        case LayerKind::batch_norm:
            return "batch_norm";
        case LayerKind::activation:
            return "activation";
        case LayerKind::dropout:
            return "dropout";
        case LayerKind::max_pool:
            return "max_pool";
        case LayerKind::avg_pool:
            return "avg_pool";
        case LayerKind::global_avg_pool:
            return "global_avg_pool";
        case LayerKind::flatten:
            return "flatten";
        case LayerKind::dense:
            return "dense";
        case LayerKind::add:
            return "add";
        case LayerKind::concat:
            return "concat";
        case LayerKind::channel_scale:
            return "channel_scale";
        case LayerKind::softmax:
            return "softmax";
    }
    return "unknown";
}

std::string to_string(Activation activation) {
    switch (activation) {
        case Activation::relu:
            return "relu";
        case Activation::relu6:
            return "relu6";
        case Activation::leaky_relu:
            return "leaky_relu";
        case Activation::tanh:
            return "tanh";
        case Activation::sigmoid:
            return "sigmoid";
        case Activation::silu:
            return "silu";
        case Activation::hard_swish:
            return "hard_swish";
    }
    return "unknown";
}

bool is_monotone(Activation activation) {
    return activation != Activation::silu && activation != Activation::hard_swish;
}

bool adjoint_reads_input(Activation activation) {
    return activation == Activation::silu || activation == Activation::hard_swish;
}

std::string describe(const Node& node) {
    return std::visit(
        [&](const auto& a) -> std::string {
            using A = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<A, Conv2dAttributes>) {
                std::string text = fmt::format("conv2d {}@{}x{}, stride {}, padding {}", a.out_channels, a.kernel,
                                               a.kernel, a.stride, a.padding);
                if (a.dilation != 1) text += fmt::format(", dilation {}", a.dilation);
                if (a.groups != 1) text += fmt::format(", groups {}", a.groups);
                return text;
            } else if constexpr (std::is_same_v<A, PoolAttributes>) {
                std::string text = fmt::format("{} {}x{}, stride {}, padding {}", to_string(node.kind), a.kernel,
                                               a.kernel, a.stride, a.padding);
                if (a.ceil_mode) text += ", ceil_mode";
                if (node.kind == LayerKind::avg_pool && !a.count_include_pad) text += ", padding not counted";
                return text;
            } else if constexpr (std::is_same_v<A, DenseAttributes>) {
                return fmt::format("dense {}", a.out_features);
            } else if constexpr (std::is_same_v<A, ActivationAttributes>) {
                return a.function == Activation::leaky_relu ? fmt::format("leaky_relu {}", a.negative_slope)
                                                            : to_string(a.function);
            } else if constexpr (std::is_same_v<A, DropoutAttributes>) {
                return fmt::format("{} {}", a.per_sample ? "drop_path" : "dropout", a.rate);
            } else {
                return to_string(node.kind);
            }
        },
        node.attributes);
}

namespace {

// Short automatic names, one counter per kind: conv1, conv2, bn1, relu1, dense1 ...
std::string automatic_prefix(const Node& node) {
    switch (node.kind) {
        case LayerKind::conv2d:
            return "conv";
        case LayerKind::batch_norm:
            return "bn";
        case LayerKind::max_pool:
            return "maxpool";
        case LayerKind::avg_pool:
            return "avgpool";
        case LayerKind::global_avg_pool:
            return "avgpool";
        case LayerKind::activation:
            return to_string(node.attributes_as<ActivationAttributes>().function);
        case LayerKind::dropout:
            return node.attributes_as<DropoutAttributes>().per_sample ? "drop_path" : "dropout";
        case LayerKind::channel_scale:
            return "scale";
        default:
            return to_string(node.kind);
    }
}

}  // namespace

std::string Graph::assign_name(const Node& node) {
    const std::string& requested = node.name;
    auto taken = [&](const std::string& name) {
        return std::any_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.name == name; });
    };
    if (requested.empty()) {
        const std::string prefix = automatic_prefix(node);
        std::string name;
        do {
            name = fmt::format("{}{}", prefix, ++automatic_name_counts_[prefix]);
        } while (taken(name));
        return name;
    }
    if (taken(requested)) {
        throw ModelError(
            fmt::format("layer name '{}' is used twice; layer names must be unique because they name "
                        "the parameters",
                        requested));
    }
    return requested;
}

int Graph::add(Node node) {
    node.id = static_cast<int>(nodes_.size());
    nodes_.push_back(std::move(node));
    return nodes_.back().id;
}

std::vector<int> Graph::consumers(int id) const {
    std::vector<int> result;
    for (const Node& n : nodes_) {
        for (int input : n.inputs) {
            if (input == id) result.push_back(n.id);
        }
    }
    return result;
}

std::vector<ParameterSpec> Graph::parameters() const {
    std::vector<ParameterSpec> result;
    for (const Node& n : nodes_) {
        if (n.kind == LayerKind::conv2d) {
            const auto& a = n.attributes_as<Conv2dAttributes>();
            const int64_t group_inputs = node(n.inputs[0]).shape[0] / a.groups;
            const int64_t window = a.kernel * a.kernel;
            // Fans as PyTorch computes them from the weight's shape.
            result.push_back({n.name + ".weight", n.id, Shape{a.out_channels, group_inputs, a.kernel, a.kernel},
                              a.weight_init, group_inputs * window, a.out_channels * window});
            if (a.bias) result.push_back({n.name + ".bias", n.id, Shape{a.out_channels}, Initializer::zeros, 0, 0});
        } else if (n.kind == LayerKind::batch_norm) {
            const Shape channels{n.shape[0]};
            result.push_back({n.name + ".weight", n.id, channels, Initializer::ones, 0, 0});
            result.push_back({n.name + ".bias", n.id, channels, Initializer::zeros, 0, 0});
            result.push_back({n.name + ".running_mean", n.id, channels, Initializer::zeros, 0, 0, false});
            result.push_back({n.name + ".running_var", n.id, channels, Initializer::ones, 0, 0, false});
        } else if (n.kind == LayerKind::dense) {
            const auto& a = n.attributes_as<DenseAttributes>();
            const int64_t in_features = node(n.inputs[0]).shape.elements();
            result.push_back({n.name + ".weight", n.id, Shape{a.out_features, in_features}, a.weight_init, in_features,
                              a.out_features});
            if (a.bias) result.push_back({n.name + ".bias", n.id, Shape{a.out_features}, Initializer::zeros, 0, 0});
        }
    }
    return result;
}

}  // namespace convgen
