// Value-style tensors and the layer functions that make them. A tensor is a handle to a graph
// node; every layer call appends a node, infers its shape and throws ModelError when the layer
// cannot take its input. Blocks are plain C++ functions from tensors to tensors.
#pragma once

#include <convgen/error.h>
#include <convgen/graph.h>

#include <functional>
#include <memory>
#include <string>

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

struct Conv2dOptions {
    int64_t stride = 1;
    int64_t padding = 0;
    bool bias = true;
    std::string name{};
    Initializer weight_init = Initializer::glorot_uniform;
};
Tensor conv2d(const Tensor& x, int64_t out_channels, int64_t kernel, const Conv2dOptions& options = {});
LayerFunction conv2d(int64_t out_channels, int64_t kernel, const Conv2dOptions& options = {});

struct PoolOptions {
    int64_t stride = 0;  // 0 means "same as the kernel", as in PyTorch
    int64_t padding = 0;
    std::string name{};
};
Tensor max_pool(const Tensor& x, int64_t kernel, const PoolOptions& options = {});
LayerFunction max_pool(int64_t kernel, const PoolOptions& options = {});
Tensor avg_pool(const Tensor& x, int64_t kernel, const PoolOptions& options = {});
LayerFunction avg_pool(int64_t kernel, const PoolOptions& options = {});

struct DenseOptions {
    bool bias = true;
    std::string name{};
    Initializer weight_init = Initializer::glorot_uniform;
};
Tensor dense(const Tensor& x, int64_t out_features, const DenseOptions& options = {});
LayerFunction dense(int64_t out_features, const DenseOptions& options = {});

struct Relu {
    Tensor operator()(const Tensor& x, const std::string& name = "") const;
};
inline constexpr Relu relu{};

struct Flatten {
    Tensor operator()(const Tensor& x, const std::string& name = "") const;
};
inline constexpr Flatten flatten{};

}  // namespace convgen
