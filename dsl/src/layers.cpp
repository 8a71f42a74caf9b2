// Shape inference of every layer kind. Each rule that can break throws ModelError naming the
// layer, its input shape and the rule, at generation time.
#include <convgen/tensor.h>

#include <fmt/format.h>

namespace convgen {

namespace {

std::string describe(const Node& node) {
    return std::visit(
        [&](const auto& a) -> std::string {
            using A = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<A, Conv2dAttributes>) {
                return fmt::format("conv2d {}@{}x{}, stride {}, padding {}", a.out_channels, a.kernel, a.kernel,
                                   a.stride, a.padding);
            } else if constexpr (std::is_same_v<A, PoolAttributes>) {
                return fmt::format("{} {}x{}, stride {}, padding {}", to_string(node.kind), a.kernel, a.kernel,
                                   a.stride, a.padding);
            } else if constexpr (std::is_same_v<A, DenseAttributes>) {
                return fmt::format("dense {}", a.out_features);
            } else {
                return to_string(node.kind);
            }
        },
        node.attributes);
}

[[noreturn]] void fail(const Node& node, const Shape& input_shape, const std::string& rule) {
    throw ModelError(fmt::format("layer '{}' ({}): input shape {}: {}", node.name, describe(node),
                                 input_shape.to_string(), rule));
}

// Appends a node after `x`. The node is named before its shape is inferred so that a failing
// rule can name the layer.
Tensor append(const Tensor& x, Node node, const std::function<Shape(const Node&, const Shape&)>& infer) {
    Graph& graph = *x.graph();
    node.inputs = {x.node_id()};
    node.name = graph.assign_name(node.kind, node.name);
    node.shape = infer(node, x.shape());
    return Tensor(x.graph(), graph.add(std::move(node)));
}

void require_image(const Node& node, const Shape& in) {
    if (in.rank() != 3) {
        fail(node, in, fmt::format("expects an image tensor [channels, height, width] but got rank {}{}", in.rank(),
                                   in.rank() == 1 ? " (features); spatial layers cannot follow flatten or dense" : ""));
    }
}

// Output size of a sliding window, PyTorch's floor rule.
int64_t window_output(const Node& node, const Shape& in, const char* axis, int64_t size, int64_t kernel,
                      int64_t stride, int64_t padding) {
    const int64_t padded = size + 2 * padding;
    if (padded < kernel) {
        fail(node, in, fmt::format("{} {} plus padding 2*{} is smaller than the kernel {}", axis, size, padding,
                                   kernel));
    }
    return (padded - kernel) / stride + 1;
}

void require_positive(const Node& node, const Shape& in, const char* what, int64_t value) {
    if (value <= 0) fail(node, in, fmt::format("{} must be positive, got {}", what, value));
}

}  // namespace

Tensor input(const std::string& name, Shape shape) {
    auto graph = std::make_shared<Graph>();
    Node node;
    node.kind = LayerKind::input;
    node.name = name;
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
    node.name = graph->assign_name(LayerKind::input, name);
    return Tensor(graph, graph->add(std::move(node)));
}

Tensor conv2d(const Tensor& x, int64_t out_channels, int64_t kernel, const Conv2dOptions& options) {
    Node node;
    node.kind = LayerKind::conv2d;
    node.name = options.name;
    node.attributes =
        Conv2dAttributes{out_channels, kernel, options.stride, options.padding, options.bias, options.weight_init};
    return append(x, node, [](const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<Conv2dAttributes>();
        require_image(n, in);
        require_positive(n, in, "out_channels", a.out_channels);
        require_positive(n, in, "kernel", a.kernel);
        require_positive(n, in, "stride", a.stride);
        if (a.padding < 0) fail(n, in, fmt::format("padding must be >= 0, got {}", a.padding));
        return Shape{a.out_channels, window_output(n, in, "height", in[1], a.kernel, a.stride, a.padding),
                     window_output(n, in, "width", in[2], a.kernel, a.stride, a.padding)};
    });
}

LayerFunction conv2d(int64_t out_channels, int64_t kernel, const Conv2dOptions& options) {
    return [=](const Tensor& x) { return conv2d(x, out_channels, kernel, options); };
}

namespace {

Tensor pool(LayerKind kind, const Tensor& x, int64_t kernel, const PoolOptions& options) {
    Node node;
    node.kind = kind;
    node.name = options.name;
    node.attributes = PoolAttributes{kernel, options.stride == 0 ? kernel : options.stride, options.padding};
    return append(x, node, [](const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<PoolAttributes>();
        require_image(n, in);
        require_positive(n, in, "kernel", a.kernel);
        require_positive(n, in, "stride", a.stride);
        if (a.padding < 0 || 2 * a.padding > a.kernel) {
            fail(n, in, fmt::format("padding must be between 0 and half the kernel ({}), got {}", a.kernel / 2,
                                    a.padding));
        }
        return Shape{in[0], window_output(n, in, "height", in[1], a.kernel, a.stride, a.padding),
                     window_output(n, in, "width", in[2], a.kernel, a.stride, a.padding)};
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

Tensor dense(const Tensor& x, int64_t out_features, const DenseOptions& options) {
    Node node;
    node.kind = LayerKind::dense;
    node.name = options.name;
    node.attributes = DenseAttributes{out_features, options.bias, options.weight_init};
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

Tensor Relu::operator()(const Tensor& x, const std::string& name) const {
    Node node;
    node.kind = LayerKind::relu;
    node.name = name;
    return append(x, node, [](const Node&, const Shape& in) { return in; });
}

Tensor Flatten::operator()(const Tensor& x, const std::string& name) const {
    Node node;
    node.kind = LayerKind::flatten;
    node.name = name;
    return append(x, node, [](const Node&, const Shape& in) { return Shape{in.elements()}; });
}

}  // namespace convgen
