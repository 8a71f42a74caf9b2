// Value-style tensors and the layer functions that make them. A tensor is a handle to a graph
// node; every layer call appends a node, infers its shape and throws ModelError when the layer
// cannot take its input. Blocks are plain C++ functions from tensors to tensors, and a tensor may
// feed any number of layers, so residual and multi-branch graphs are written as ordinary code:
//
//     Tensor basic_block(const Tensor& x, int64_t channels) {
//         Tensor y = x | conv2d(channels, 3, {.padding = 1, .bias = false}) | batch_norm() | relu;
//         y = y | conv2d(channels, 3, {.padding = 1, .bias = false}) | batch_norm();
//         return relu(add(x, y));
//     }
#pragma once

#include <convgen/error.h>
#include <convgen/graph.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace convgen {

class Tensor {
  public:
    Tensor(std::shared_ptr<Graph> graph, int node) : graph_(std::move(graph)), node_(node) {}

    const Shape& shape() const { return node().shape; }
    const std::string& name() const { return node().name; }
    int node_id() const { return node_; }
    const Node& node() const { return graph_->node(node_); }
    const std::shared_ptr<Graph>& graph() const { return graph_; }

  private:
    std::shared_ptr<Graph> graph_;
    int node_;
};

// A layer waiting for its input, so stacks read left to right: `x | relu | max_pool(2)`.
using LayerFunction = std::function<Tensor(const Tensor&)>;

template <typename Layer>
Tensor operator|(const Tensor& x, const Layer& layer) {
    return layer(x);
}

Tensor input(const std::string& name, Shape shape);

// out = bias + sum over the window of weight * input; weights OIHW with I = in_channels / groups.
// groups == in_channels == out_channels makes a depthwise conv; dilation spaces the taps.
struct Conv2dOptions {
    int64_t stride = 1;
    int64_t padding = 0;
    int64_t dilation = 1;
    int64_t groups = 1;
    bool bias = true;
    std::string name{};
    Initializer weight_init = Initializer::glorot_uniform;
};
Tensor conv2d(const Tensor& x, int64_t out_channels, int64_t kernel, const Conv2dOptions& options = {});
LayerFunction conv2d(int64_t out_channels, int64_t kernel, const Conv2dOptions& options = {});

// Batch normalisation over (batch, height, width) per channel, or over the batch per feature.
// Training normalises with the batch's statistics and updates the running ones; inference uses
// the running statistics, folded into the conv before it where there is one. Parameters
// "<name>.weight" (scale, starts at 1) and "<name>.bias" (starts at 0); state "<name>.running_mean"
// and "<name>.running_var", as PyTorch's BatchNorm2d.
struct BatchNormOptions {
    double epsilon = 1e-5;
    double momentum = 0.1;
    std::string name{};
};
Tensor batch_norm(const Tensor& x, const BatchNormOptions& options = {});
LayerFunction batch_norm(const BatchNormOptions& options = {});

// An element-wise activation, usable bare in a chain (`x | relu`) or called (`relu(x, "name")`).
struct ActivationLayer {
    Activation function;
    Tensor operator()(const Tensor& x, const std::string& name = "") const;
};
inline constexpr ActivationLayer relu{Activation::relu};
inline constexpr ActivationLayer relu6{Activation::relu6};  // min(max(x, 0), 6)
inline constexpr ActivationLayer tanh{Activation::tanh};
inline constexpr ActivationLayer sigmoid{Activation::sigmoid};
inline constexpr ActivationLayer silu{Activation::silu};              // x * sigmoid(x), "swish"
inline constexpr ActivationLayer hard_swish{Activation::hard_swish};  // x * relu6(x + 3) / 6
// x for x > 0, negative_slope * x otherwise.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01, const std::string& name = "");
LayerFunction leaky_relu(double negative_slope = 0.01, const std::string& name = "");

// Zeroes each element with probability `rate` in training and scales the rest by 1 / (1 - rate);
// the identity in inference. The mask comes from a counter-based generator seeded per step, so a
// run is reproducible from its seed.
struct DropoutOptions {
    std::string name{};
};
Tensor dropout(const Tensor& x, double rate, const DropoutOptions& options = {});
LayerFunction dropout(double rate, const DropoutOptions& options = {});
// Stochastic depth (Huang et al. 2016), torchvision's StochasticDepth(mode="row"): in training,
// each sample's whole tensor is zeroed with probability `rate` and kept samples are scaled by
// 1 / (1 - rate); the identity in inference. Put on a residual branch before its add.
Tensor drop_path(const Tensor& x, double rate, const DropoutOptions& options = {});
LayerFunction drop_path(double rate, const DropoutOptions& options = {});

struct PoolOptions {
    int64_t stride = 0;  // 0 means "same as the kernel", as in PyTorch
    int64_t padding = 0;
    // PyTorch's ceil_mode: the output size rounds up, so a last partial window is pooled where it
    // starts inside the image or its left padding.
    bool ceil_mode = false;
    // avg_pool: whether padded positions count in the divisor (PyTorch's count_include_pad). The
    // part of a ceil_mode window past the padding never counts, as in PyTorch.
    bool count_include_pad = true;
    std::string name{};
};
Tensor max_pool(const Tensor& x, int64_t kernel, const PoolOptions& options = {});
LayerFunction max_pool(int64_t kernel, const PoolOptions& options = {});
Tensor avg_pool(const Tensor& x, int64_t kernel, const PoolOptions& options = {});
LayerFunction avg_pool(int64_t kernel, const PoolOptions& options = {});

// The mean of each channel over the whole image: [C, H, W] -> [C, 1, 1] (PyTorch's
// AdaptiveAvgPool2d(1)).
struct GlobalAvgPool {
    Tensor operator()(const Tensor& x, const std::string& name = "") const;
};
inline constexpr GlobalAvgPool global_avg_pool{};

struct DenseOptions {
    bool bias = true;
    std::string name{};
    Initializer weight_init = Initializer::glorot_uniform;
};
Tensor dense(const Tensor& x, int64_t out_features, const DenseOptions& options = {});
LayerFunction dense(int64_t out_features, const DenseOptions& options = {});

struct Flatten {
    Tensor operator()(const Tensor& x, const std::string& name = "") const;
};
inline constexpr Flatten flatten{};

// Softmax over the features. Only as a model's last layer: the loss then reads the scores before
// it, and inference returns probabilities either way.
struct Softmax {
    Tensor operator()(const Tensor& x, const std::string& name = "") const;
};
inline constexpr Softmax softmax{};

// Element-wise sum of tensors of one shape (a residual connection).
Tensor add(const Tensor& a, const Tensor& b, const std::string& name = "");
// Images of one height and width stacked along the channels, in order. Generated CPU libraries
// copy nothing for it where they can: each input's kernel writes its slice of the result.
Tensor concat(const std::vector<Tensor>& tensors, const std::string& name = "");
// Each channel of an image [C, H, W] multiplied by that channel's factor in `scale` [C, 1, 1] (a
// squeeze-and-excitation gate).
Tensor scale_channels(const Tensor& x, const Tensor& scale, const std::string& name = "");

}  // namespace convgen
