// Shape inference of every layer kind. Each rule that can break throws ModelError naming the
// layer, its input shape and the rule, at generation time.
#include <convgen/tensor.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace convgen {

namespace {

[[noreturn]] void fail(const Node& node, const Shape& input_shape, const std::string& rule) {
    throw ModelError(
        fmt::format("layer '{}' ({}): input shape {}: {}", node.name, describe(node), input_shape.to_string(), rule));
}

using ShapeRule = std::function<Shape(const Node&, const Shape&)>;

// Appends a node after `x`. The node is named before its shape is inferred so that a failing
// rule can name the layer.
Tensor append(const Tensor& x, Node node, const ShapeRule& infer) {
    Graph& graph = *x.graph();
    node.inputs = {x.node_id()};
    node.name = graph.assign_name(node);
    node.shape = infer(node, x.shape());
    return Tensor(x.graph(), graph.add(std::move(node)));
}

Node make_node(LayerKind kind, const std::string& name, LayerAttributes attributes = {}) {
    Node node;
    node.kind = kind;
    node.name = name;
    node.attributes = std::move(attributes);
    return node;
}

void require_image(const Node& node, const Shape& in) {
    if (in.rank() != 3) {
        fail(node, in,
             fmt::format("expects an image tensor [channels, height, width] but got rank {}{}", in.rank(),
                         in.rank() == 1 ? " (features); spatial layers cannot follow flatten or dense" : ""));
    }
}

// Output size of a sliding window, PyTorch's rule: rounded down, or with `ceil_mode` up, less a
// last window that would start past the image and its left padding.
// `extent` is the kernel's reach: the kernel for pools, dilation * (kernel - 1) + 1 for convs.
int64_t window_output(const Node& node, const Shape& in, const char* axis, int64_t size, int64_t extent, int64_t stride,
                      int64_t padding, bool dilated = false, bool ceil_mode = false) {
    const int64_t padded = size + 2 * padding;
    if (padded < extent) {
        fail(node, in,
             fmt::format("{} {} plus padding 2*{} is smaller than the {}kernel {}", axis, size, padding,
                         dilated ? "dilated " : "", extent));
    }
    if (!ceil_mode) return (padded - extent) / stride + 1;
    int64_t out = (padded - extent + stride - 1) / stride + 1;
    if ((out - 1) * stride >= size + padding) out--;
    return out;
}

void require_positive(const Node& node, const Shape& in, const char* what, int64_t value) {
    if (value <= 0) fail(node, in, fmt::format("{} must be positive, got {}", what, value));
}

// A layer of several inputs, all from the same graph.
Tensor append_merge(const std::vector<Tensor>& inputs, Node node,
                    const std::function<Shape(const Node&, const std::vector<Tensor>&)>& infer) {
    if (inputs.empty()) throw ModelError(fmt::format("{} of no tensors", to_string(node.kind)));
    const std::shared_ptr<Graph>& graph = inputs.front().graph();
    node.name = graph->assign_name(node);
    for (const Tensor& t : inputs) {
        if (t.graph() != graph) {
            throw ModelError(fmt::format("layer '{}' ({}): input '{}' belongs to another model's graph", node.name,
                                         describe(node), t.name()));
        }
        node.inputs.push_back(t.node_id());
    }
    node.shape = infer(node, inputs);
    return Tensor(graph, graph->add(std::move(node)));
}

std::string shapes_of(const std::vector<Tensor>& inputs) {
    std::vector<std::string> parts;
    for (const Tensor& t : inputs) parts.push_back(fmt::format("'{}' {}", t.name(), t.shape().to_string()));
    return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

Tensor input(const std::string& name, Shape shape) {
    auto graph = std::make_shared<Graph>();
    Node node = make_node(LayerKind::input, name);
    node.shape = shape;
    if (shape.rank() != 3 && shape.rank() != 1) {
        throw ModelError(fmt::format("input '{}': shape {} must be [channels, height, width] or [features]", name,
                                     shape.to_string()));
    }
    for (int64_t d : shape.dims) {
        if (d <= 0) {
            throw ModelError(fmt::format("input '{}': shape {} has a non-positive size", name, shape.to_string()));
        }
    }
    node.name = graph->assign_name(node);
    return Tensor(graph, graph->add(std::move(node)));
}

Tensor conv2d(const Tensor& x, int64_t out_channels, int64_t kernel, const Conv2dOptions& options) {
    Node node = make_node(LayerKind::conv2d, options.name,
                          Conv2dAttributes{out_channels, kernel, options.stride, options.padding, options.dilation,
                                           options.groups, options.bias, options.weight_init});
    return append(x, node, [](const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<Conv2dAttributes>();
        require_image(n, in);
        require_positive(n, in, "out_channels", a.out_channels);
        require_positive(n, in, "kernel", a.kernel);
        require_positive(n, in, "stride", a.stride);
        require_positive(n, in, "dilation", a.dilation);
        require_positive(n, in, "groups", a.groups);
        if (a.padding < 0) fail(n, in, fmt::format("padding must be >= 0, got {}", a.padding));
        if (in[0] % a.groups != 0 || a.out_channels % a.groups != 0) {
            fail(n, in,
                 fmt::format("groups {} must divide the input channels {} and the output channels {}", a.groups, in[0],
                             a.out_channels));
        }
        const int64_t extent = a.dilation * (a.kernel - 1) + 1;
        const bool dilated = a.dilation != 1;
        return Shape{a.out_channels, window_output(n, in, "height", in[1], extent, a.stride, a.padding, dilated),
                     window_output(n, in, "width", in[2], extent, a.stride, a.padding, dilated)};
    });
}

LayerFunction conv2d(int64_t out_channels, int64_t kernel, const Conv2dOptions& options) {
    return [=](const Tensor& x) { return conv2d(x, out_channels, kernel, options); };
}

Tensor batch_norm(const Tensor& x, const BatchNormOptions& options) {
    Node node = make_node(LayerKind::batch_norm, options.name, BatchNormAttributes{options.epsilon, options.momentum});
    return append(x, node, [](const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<BatchNormAttributes>();
        if (!(a.epsilon > 0)) fail(n, in, fmt::format("epsilon must be positive, got {}", a.epsilon));
        if (!(a.momentum >= 0 && a.momentum <= 1)) {
            fail(n, in, fmt::format("momentum must be in [0, 1], got {}", a.momentum));
        }
        return in;
    });
}

LayerFunction batch_norm(const BatchNormOptions& options) {
    return [=](const Tensor& x) { return batch_norm(x, options); };
}

Tensor ActivationLayer::operator()(const Tensor& x, const std::string& name) const {
    return append(x, make_node(LayerKind::activation, name, ActivationAttributes{function, 0.01}),
                  [](const Node&, const Shape& in) { return in; });
}

Tensor leaky_relu(const Tensor& x, double negative_slope, const std::string& name) {
    Node node = make_node(LayerKind::activation, name, ActivationAttributes{Activation::leaky_relu, negative_slope});
    return append(x, node, [](const Node& n, const Shape& in) {
        const double slope = n.attributes_as<ActivationAttributes>().negative_slope;
        // A negative slope would make the activation decreasing, which the max-pool rewrite assumes it is not.
        if (!(slope >= 0 && slope <= 1)) fail(n, in, fmt::format("negative_slope must be in [0, 1], got {}", slope));
        return in;
    });
}

LayerFunction leaky_relu(double negative_slope, const std::string& name) {
    return [=](const Tensor& x) { return leaky_relu(x, negative_slope, name); };
}

namespace {

Tensor dropout_layer(const Tensor& x, const DropoutAttributes& attributes, const DropoutOptions& options) {
    return append(x, make_node(LayerKind::dropout, options.name, attributes), [](const Node& n, const Shape& in) {
        const double r = n.attributes_as<DropoutAttributes>().rate;
        if (!(r >= 0 && r < 1)) fail(n, in, fmt::format("rate must be in [0, 1), got {}", r));
        return in;
    });
}

}  // namespace

Tensor dropout(const Tensor& x, double rate, const DropoutOptions& options) {
    return dropout_layer(x, DropoutAttributes{rate, false}, options);
}

LayerFunction dropout(double rate, const DropoutOptions& options) {
    return [=](const Tensor& x) { return dropout(x, rate, options); };
}

Tensor drop_path(const Tensor& x, double rate, const DropoutOptions& options) {
    return dropout_layer(x, DropoutAttributes{rate, true}, options);
}

LayerFunction drop_path(double rate, const DropoutOptions& options) {
    return [=](const Tensor& x) { return drop_path(x, rate, options); };
}

namespace {

Tensor pool(LayerKind kind, const Tensor& x, int64_t kernel, const PoolOptions& options) {
    Node node = make_node(kind, options.name,
                          PoolAttributes{kernel, options.stride == 0 ? kernel : options.stride, options.padding,
                                         options.ceil_mode, options.count_include_pad});
    return append(x, node, [](const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<PoolAttributes>();
        require_image(n, in);
        require_positive(n, in, "kernel", a.kernel);
        require_positive(n, in, "stride", a.stride);
        if (a.padding < 0 || 2 * a.padding > a.kernel) {
            fail(n, in,
                 fmt::format("padding must be between 0 and half the kernel ({}), got {}", a.kernel / 2, a.padding));
        }
        return Shape{in[0], window_output(n, in, "height", in[1], a.kernel, a.stride, a.padding, false, a.ceil_mode),
                     window_output(n, in, "width", in[2], a.kernel, a.stride, a.padding, false, a.ceil_mode)};
    });
}

}  // namespace

Tensor max_pool(const Tensor& x, int64_t kernel, const PoolOptions& options) {
    return pool(LayerKind::max_pool, x, kernel, options);
}

LayerFunction max_pool(int64_t kernel, const PoolOptions& options) {
    return [=](const Tensor& x) { return max_pool(x, kernel, options); };
}

Tensor avg_pool(const Tensor& x, int64_t kernel, const PoolOptions& options) {
    return pool(LayerKind::avg_pool, x, kernel, options);
}

LayerFunction avg_pool(int64_t kernel, const PoolOptions& options) {
    return [=](const Tensor& x) { return avg_pool(x, kernel, options); };
}

Tensor GlobalAvgPool::operator()(const Tensor& x, const std::string& name) const {
    return append(x, make_node(LayerKind::global_avg_pool, name), [](const Node& n, const Shape& in) {
        require_image(n, in);
        return Shape{in[0], 1, 1};
    });
}

Tensor dense(const Tensor& x, int64_t out_features, const DenseOptions& options) {
    Node node =
        make_node(LayerKind::dense, options.name, DenseAttributes{out_features, options.bias, options.weight_init});
    return append(x, node, [](const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<DenseAttributes>();
        if (in.rank() != 1) {
            fail(n, in, "dense expects features [F]; add flatten before it to use an image tensor");
        }
        require_positive(n, in, "out_features", a.out_features);
        return Shape{a.out_features};
    });
}

LayerFunction dense(int64_t out_features, const DenseOptions& options) {
    return [=](const Tensor& x) { return dense(x, out_features, options); };
}

Tensor Flatten::operator()(const Tensor& x, const std::string& name) const {
    return append(x, make_node(LayerKind::flatten, name),
                  [](const Node&, const Shape& in) { return Shape{in.elements()}; });
}

Tensor Softmax::operator()(const Tensor& x, const std::string& name) const {
    return append(x, make_node(LayerKind::softmax, name), [](const Node& n, const Shape& in) {
        if (in.rank() != 1) fail(n, in, "softmax expects class scores [K]; add flatten and dense before it");
        return in;
    });
}

Tensor add(const Tensor& a, const Tensor& b, const std::string& name) {
    return append_merge({a, b}, make_node(LayerKind::add, name), [](const Node& n, const std::vector<Tensor>& in) {
        if (in[0].shape() != in[1].shape()) {
            throw ModelError(fmt::format("layer '{}' (add): input shapes {}: the tensors added must have one shape",
                                         n.name, shapes_of(in)));
        }
        return in[0].shape();
    });
}

Tensor concat(const std::vector<Tensor>& tensors, const std::string& name) {
    return append_merge(tensors, make_node(LayerKind::concat, name), [](const Node& n, const std::vector<Tensor>& in) {
        int64_t channels = 0;
        for (const Tensor& t : in) {
            if (t.shape().rank() != 3 || in[0].shape().rank() != 3 || t.shape()[1] != in[0].shape()[1] ||
                t.shape()[2] != in[0].shape()[2]) {
                // Name the first input that breaks the rule: in a branching block, the branch to fix.
                const Tensor& odd = t.shape().rank() == 3 && in[0].shape().rank() != 3 ? in[0] : t;
                throw ModelError(fmt::format(
                    "layer '{}' (concat): input shapes {}: concat joins images [C, H, W] of one height and width; "
                    "'{}' breaks it",
                    n.name, shapes_of(in), odd.name()));
            }
            channels += t.shape()[0];
        }
        return Shape{channels, in[0].shape()[1], in[0].shape()[2]};
    });
}

Tensor scale_channels(const Tensor& x, const Tensor& scale, const std::string& name) {
    return append_merge({x, scale}, make_node(LayerKind::channel_scale, name),
                        [](const Node& n, const std::vector<Tensor>& in) {
                            const Shape& image = in[0].shape();
                            const Shape& factors = in[1].shape();
                            if (image.rank() != 3 || factors != Shape{image.rank() == 3 ? image[0] : 0, 1, 1}) {
                                throw ModelError(fmt::format("layer '{}' (channel_scale): input shapes {}: scales an "
                                                             "image [C, H, W] by factors [C, 1, 1]",
                                                             n.name, shapes_of(in)));
                            }
                            return image;
                        });
}

}  // namespace convgen
