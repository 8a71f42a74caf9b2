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

std::string Shape::to_string() const { return fmt::format("[{}]", fmt::join(dims, ", ")); }

std::string to_string(LayerKind kind) {
    switch (kind) {
        case LayerKind::input: return "input";
        case LayerKind::conv2d: return "conv2d";
        case LayerKind::relu: return "relu";
        case LayerKind::max_pool: return "max_pool";
        case LayerKind::avg_pool: return "avg_pool";
        case LayerKind::flatten: return "flatten";
        case LayerKind::dense: return "dense";
    }
    return "unknown";
}

namespace {

// Short automatic names, one counter per kind: conv1, conv2, dense1, relu3 ...
std::string automatic_prefix(LayerKind kind) {
    switch (kind) {
        case LayerKind::conv2d: return "conv";
        case LayerKind::max_pool: return "maxpool";
        case LayerKind::avg_pool: return "avgpool";
        default: return to_string(kind);
    }
}

}  // namespace

std::string Graph::assign_name(LayerKind kind, const std::string& requested) {
    auto taken = [&](const std::string& name) {
        return std::any_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.name == name; });
    };
    if (requested.empty()) {
        const std::string prefix = automatic_prefix(kind);
        std::string name;
        do {
            name = fmt::format("{}{}", prefix, ++automatic_name_counts_[prefix]);
        } while (taken(name));
        return name;
    }
    if (taken(requested)) {
        throw ModelError(fmt::format("layer name '{}' is used twice; layer names must be unique because they name "
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
            const int64_t in_channels = node(n.inputs[0]).shape[0];
            const int64_t window = a.kernel * a.kernel;
            result.push_back({n.name + ".weight", n.id, Shape{a.out_channels, in_channels, a.kernel, a.kernel},
                              a.weight_init, in_channels * window, a.out_channels * window});
            if (a.bias) result.push_back({n.name + ".bias", n.id, Shape{a.out_channels}, Initializer::zeros, 0, 0});
        } else if (n.kind == LayerKind::dense) {
            const auto& a = n.attributes_as<DenseAttributes>();
            const int64_t in_features = node(n.inputs[0]).shape.elements();
            result.push_back({n.name + ".weight", n.id, Shape{a.out_features, in_features}, a.weight_init,
                              in_features, a.out_features});
            if (a.bias) result.push_back({n.name + ".bias", n.id, Shape{a.out_features}, Initializer::zeros, 0, 0});
        }
    }
    return result;
}

}  // namespace convgen
