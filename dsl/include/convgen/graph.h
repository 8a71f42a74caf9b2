// The model's intermediate representation: a directed acyclic graph of layers. Nodes are kept in
// creation order, which is a topological order because a layer can only consume existing tensors.
#pragma once

#include <convgen/shape.h>

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace convgen {

enum class LayerKind { input, conv2d, relu, max_pool, avg_pool, flatten, dense };

std::string to_string(LayerKind kind);

// How the generated library initialises a weight from its seed: Glorot/Xavier uniform
// (U(+-sqrt(6 / (fan_in + fan_out))), the Keras default) or He/Kaiming normal
// (N(0, 2 / fan_in)). Biases start at zero.
enum class Initializer { zeros, he_normal, glorot_uniform };

struct Conv2dAttributes {
    int64_t out_channels = 0;
    int64_t kernel = 0;
    int64_t stride = 1;
    int64_t padding = 0;
    bool bias = true;
    Initializer weight_init = Initializer::glorot_uniform;
};

struct PoolAttributes {
    int64_t kernel = 0;
    int64_t stride = 0;
    int64_t padding = 0;
};

struct DenseAttributes {
    int64_t out_features = 0;
    bool bias = true;
    Initializer weight_init = Initializer::glorot_uniform;
};

using LayerAttributes = std::variant<std::monostate, Conv2dAttributes, PoolAttributes, DenseAttributes>;

struct Node {
    int id = -1;
    LayerKind kind = LayerKind::input;
    std::string name;
    std::vector<int> inputs;
    Shape shape;  // output shape, per sample
    LayerAttributes attributes;

    template <typename T>
    const T& attributes_as() const { return std::get<T>(attributes); }
};

struct ParameterSpec {
    std::string name;  // "<layer>.weight" / "<layer>.bias", as in a PyTorch state dict
    int node = -1;
    Shape shape;  // PyTorch layout: conv OIHW, dense (out, in), bias (out)
    Initializer initializer = Initializer::zeros;
    int64_t fan_in = 0;
    int64_t fan_out = 0;
};

class Graph {
  public:
    // The requested name, or "<kind><k>" when it is empty; throws ModelError when it is taken.
    std::string assign_name(LayerKind kind, const std::string& requested);
    // Appends a node (named by assign_name) and returns its id.
    int add(Node node);

    const Node& node(int id) const { return nodes_.at(static_cast<size_t>(id)); }
    const std::vector<Node>& nodes() const { return nodes_; }
    std::vector<int> consumers(int id) const;

    // Weights and biases of every layer, in node order.
    std::vector<ParameterSpec> parameters() const;

  private:
    std::vector<Node> nodes_;
    std::map<std::string, int> automatic_name_counts_;
};

}  // namespace convgen
