// The model's intermediate representation: a directed acyclic graph of layers. Nodes are kept in
// creation order, which is a topological order because a layer can only consume existing tensors.
#pragma once

#include <convgen/shape.h>

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace convgen {

enum class LayerKind {
    input,
    conv2d,
    batch_norm,
    activation,
    dropout,
    max_pool,
    avg_pool,
    global_avg_pool,
    flatten,
    dense,
    add,
    concat,
    channel_scale,
    softmax,
};

std::string to_string(LayerKind kind);

// How the generated library initialises a tensor from its seed: Glorot/Xavier uniform
// (U(+-sqrt(6 / (fan_in + fan_out))), the Keras default), He/Kaiming normal (N(0, 2 / fan_in)),
// or a constant. Biases start at zero, batch-norm scales and running variances at one.
enum class Initializer { zeros, ones, he_normal, glorot_uniform };

// Element-wise activations. silu (swish) is x * sigmoid(x); hard_swish is x * relu6(x + 3) / 6.
enum class Activation { relu, relu6, leaky_relu, tanh, sigmoid, silu, hard_swish };

std::string to_string(Activation activation);
// Monotone non-decreasing: codegen may then move the activation after a max pool.
bool is_monotone(Activation activation);
// Whether the adjoint needs the activation's input; the others are written on its output alone.
bool adjoint_reads_input(Activation activation);

struct Conv2dAttributes {
    int64_t out_channels = 0;
    int64_t kernel = 0;
    int64_t stride = 1;
    int64_t padding = 0;
    int64_t dilation = 1;
    int64_t groups = 1;  // groups == input channels == output channels: depthwise
    bool bias = true;
    Initializer weight_init = Initializer::glorot_uniform;
};

struct BatchNormAttributes {
    double epsilon = 1e-5;
    double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch statistic, as PyTorch
};

struct ActivationAttributes {
    Activation function = Activation::relu;
    double negative_slope = 0.01;  // leaky_relu only
};

struct DropoutAttributes {
    double rate = 0.5;  // probability of zeroing an element in training
    // Drop-path (stochastic depth): the whole sample is dropped or kept, not each element.
    bool per_sample = false;
};

struct PoolAttributes {
    int64_t kernel = 0;
    int64_t stride = 0;
    int64_t padding = 0;
    bool ceil_mode = false;          // PyTorch's ceil_mode: a last, partial window where one starts inside
    bool count_include_pad = true;   // avg_pool: padded positions count in the divisor
};

struct DenseAttributes {
    int64_t out_features = 0;
    bool bias = true;
    Initializer weight_init = Initializer::glorot_uniform;
};

using LayerAttributes = std::variant<std::monostate, Conv2dAttributes, BatchNormAttributes, ActivationAttributes,
                                     DropoutAttributes, PoolAttributes, DenseAttributes>;

struct Node {
    int id = -1;
    LayerKind kind = LayerKind::input;
    std::string name;
    std::vector<int> inputs;
    Shape shape;  // output shape, per sample
    LayerAttributes attributes;

    template <typename T>
    const T& attributes_as() const {
        return std::get<T>(attributes);
    }
};

// "conv2d 16@3x3, stride 1, padding 1", "batch_norm", "relu6" ...: what error messages call a layer.
std::string describe(const Node& node);

struct ParameterSpec {
    std::string name;  // "<layer>.weight", "<layer>.running_mean" ...: as in a PyTorch state dict
    int node = -1;
    Shape shape;  // PyTorch layout: conv OIHW (I = input channels / groups), dense (out, in), vectors (out)
    Initializer initializer = Initializer::zeros;
    int64_t fan_in = 0;
    int64_t fan_out = 0;
    // Trained by the optimiser, or state the training step updates itself (batch-norm's running
    // statistics, PyTorch's "buffers").
    bool trainable = true;
};

class Graph {
  public:
    // The node's requested name, or "<kind><k>" when it is empty; throws ModelError when it is taken.
    std::string assign_name(const Node& node);
    // Appends a node (named by assign_name) and returns its id.
    int add(Node node);

    const Node& node(int id) const { return nodes_.at(static_cast<size_t>(id)); }
    const std::vector<Node>& nodes() const { return nodes_; }
    std::vector<int> consumers(int id) const;

    // Weights, biases and batch-norm statistics of every layer, in node order.
    std::vector<ParameterSpec> parameters() const;

  private:
    std::vector<Node> nodes_;
    std::map<std::string, int> automatic_name_counts_;
};

}  // namespace convgen
