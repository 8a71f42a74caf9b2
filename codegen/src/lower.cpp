#include <convgen/codegen/lower.h>

#include "layers.h"

#include <convgen/schedules/cpu.h>

#include <fmt/format.h>

#include <cctype>
#include <optional>

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::ImageParam;

Graph canonical_graph(const Model& model, int* output_node) {
    const Graph& source = model.graph();
    auto relu_before_max_pool = [&](const Node& node) {
        if (node.kind != LayerKind::relu || node.id == model.output_node()) return false;
        const std::vector<int> next = source.consumers(node.id);
        return next.size() == 1 && source.node(next[0]).kind == LayerKind::max_pool;
    };
    Graph graph;
    std::vector<int> mapped(source.nodes().size(), -1);
    for (const Node& node : source.nodes()) {
        if (relu_before_max_pool(node)) continue;  // re-added after its pool
        Node copy = node;
        copy.inputs.clear();
        if (node.kind == LayerKind::max_pool && relu_before_max_pool(source.node(node.inputs[0]))) {
            const Node& relu = source.node(node.inputs[0]);
            copy.inputs = {mapped[static_cast<size_t>(relu.inputs[0])]};
            Node moved_relu = relu;
            moved_relu.inputs = {graph.add(copy)};
            moved_relu.shape = node.shape;
            mapped[static_cast<size_t>(node.id)] = graph.add(moved_relu);
            continue;
        }
        for (int input : node.inputs) copy.inputs.push_back(mapped[static_cast<size_t>(input)]);
        mapped[static_cast<size_t>(node.id)] = graph.add(copy);
    }
    *output_node = mapped[static_cast<size_t>(model.output_node())];
    return graph;
}

namespace {

// Halide-order extents of a per-sample shape: [C, H, W] -> {C, W, H}; [F] -> {F}.
std::vector<int64_t> halide_extents(const Shape& shape) {
    if (shape.rank() == 3) return {shape[0], shape[2], shape[1]};
    return shape.dims;
}

// Public (PyTorch) flat-index strides of a tensor's Halide-order dims: an image [C, H, W] flattens
// as c*H*W + y*W + x.
std::vector<int64_t> flatten_strides(const Shape& shape) {
    if (shape.rank() == 3) return {shape[1] * shape[2], 1, shape[2]};
    return {1};
}

ParameterLayout layout_of(const ParameterSpec& spec, const Graph& graph) {
    ParameterLayout layout;
    layout.spec = spec;
    const Node& node = graph.node(spec.node);
    if (spec.shape.rank() == 1) {
        layout.internal_extents = {spec.shape[0]};
        layout.public_strides = {1};
    } else if (node.kind == LayerKind::conv2d) {
        const int64_t out = spec.shape[0], in = spec.shape[1], k = spec.shape[2];
        layout.internal_extents = {out, in, k, k};  // (o, i, kx, ky)
        layout.public_strides = {in * k * k, k * k, 1, k};
    } else {
        // dense: (o, input dims...), the input read in place through any flatten before it
        const Shape& input_shape = graph.node(node.inputs[0]).shape;
        int source = node.inputs[0];
        while (graph.node(source).kind == LayerKind::flatten) source = graph.node(source).inputs[0];
        const Shape& read_shape = graph.node(source).shape;
        layout.internal_extents = {spec.shape[0]};
        layout.public_strides = {input_shape.elements()};
        for (int64_t e : halide_extents(read_shape)) layout.internal_extents.push_back(e);
        for (int64_t s : flatten_strides(read_shape)) layout.public_strides.push_back(s);
    }
    return layout;
}

void constrain_dense(Halide::OutputImageParam buffer, const std::vector<int64_t>& extents, bool last_is_free) {
    Expr stride = 1;
    for (size_t d = 0; d < extents.size(); d++) {
        buffer.dim(static_cast<int>(d)).set_min(0).set_stride(stride);
        if (!(last_is_free && d + 1 == extents.size())) {
            buffer.dim(static_cast<int>(d)).set_extent(static_cast<int>(extents[d]));
            stride = stride * static_cast<int>(extents[d]);
        } else {
            break;
        }
    }
}

std::vector<int64_t> with_free_batch(std::vector<int64_t> extents) {
    extents.push_back(0);
    return extents;
}

class Lowering {
  public:
    Lowering(const Model& model, const LoweringOptions& options, bool training)
        : model_(model), graph_(canonical_graph(model, &output_node_)), training_(training) {
        context_.target = options.target;
        context_.training = training;
        context_.database = options.database;
        const Shape& input_shape = model.graph().node(model.input_node()).shape;
        images_ = ImageParam(Halide::Float(32), input_shape.rank() + 1, "images");
        constrain_dense(images_, with_free_batch(halide_extents(input_shape)), true);
        batch_ = images_.dim(input_shape.rank()).extent();
        for (const ParameterLayout& layout : parameter_layouts(model)) {
            const ParameterSpec& spec = layout.spec;
            Parameter parameter;
            parameter.layout = layout;
            const int dims = static_cast<int>(parameter.layout.internal_extents.size());
            parameter.value = ImageParam(Halide::Float(32), dims, c_name(spec.name));
            constrain_dense(parameter.value, parameter.layout.internal_extents, false);
            if (training) {
                parameter.velocity = ImageParam(Halide::Float(32), dims, c_name(spec.name) + "_velocity");
                constrain_dense(parameter.velocity, parameter.layout.internal_extents, false);
            }
            parameters_.push_back(parameter);
        }
        nodes_.resize(graph_.nodes().size());
    }

    LoweredPipeline inference() {
        lower_forward();
        const Value logits = feature_vector(nodes_[static_cast<size_t>(output_node_)].value);
        schedules::LossStages loss = softmax_cross_entropy("loss", logits, Func(), batch_, false);
        schedules::cpu::schedule_loss(loss, context_);
        constrain_dense(loss.probabilities.output_buffer(), {model_.classes(), 0}, true);
        LoweredPipeline lowered{Halide::Pipeline(loss.probabilities), {images_}};
        for (const Parameter& p : parameters_) lowered.arguments.push_back(p.value);
        return lowered;
    }

    LoweredPipeline training_step() {
        labels_ = ImageParam(Halide::Int(32), 1, "labels");
        labels_.dim(0).set_min(0).set_stride(1).set_extent(batch_);
        lower_forward();
        const Value logits = feature_vector(nodes_[static_cast<size_t>(output_node_)].value);
        schedules::LossStages loss = softmax_cross_entropy("loss", logits, Func(labels_), batch_, true);
        schedules::cpu::schedule_loss(loss, context_);
        add_gradient(output_node_, unflattened_gradient(nodes_[static_cast<size_t>(output_node_)].value,
                                                        Value{loss.logits_grad, {model_.classes()}}));
        lower_backward();

        std::vector<Func> outputs = {loss.loss, loss.correct};
        LoweredPipeline lowered{{}, {images_, labels_, learning_rate_, momentum_, weight_decay_}};
        for (const Parameter& p : parameters_) {
            if (!p.gradient.defined()) {
                throw ModelError(fmt::format("model '{}': parameter '{}' receives no gradient", model_.name(),
                                             p.layout.spec.name));
            }
            const int dims = static_cast<int>(p.layout.internal_extents.size());
            schedules::ParameterUpdateStages update = sgd_momentum_update(
                c_name(p.layout.spec.name), Func(p.value), Func(p.velocity), p.gradient, dims, learning_rate_,
                momentum_, weight_decay_);
            update.innermost_extent = p.layout.internal_extents[0];
            schedules::cpu::schedule_parameter_update(update, context_);
            constrain_dense(update.new_value.output_buffer(), p.layout.internal_extents, false);
            constrain_dense(update.new_velocity.output_buffer(), p.layout.internal_extents, false);
            outputs.push_back(update.new_value);
            outputs.push_back(update.new_velocity);
            lowered.arguments.push_back(p.value);
            lowered.arguments.push_back(p.velocity);
        }
        lowered.pipeline = Halide::Pipeline(outputs);
        return lowered;
    }

  private:
    struct Parameter {
        ParameterLayout layout;
        ImageParam value, velocity;
        Func gradient;
    };

    // What a node's forward lowering leaves for its backward pass.
    struct NodeState {
        Value value;
        std::optional<schedules::Conv2dForwardStages> conv;
        std::optional<schedules::PoolForwardStages> pool;
        std::optional<Value> gradient;
    };

    static std::string c_name(const std::string& name) {
        std::string result = name;
        for (char& ch : result) {
            if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
        }
        return result;
    }

    Parameter* parameter(const std::string& name) {
        for (Parameter& p : parameters_) {
            if (p.layout.spec.name == name) return &p;
        }
        return nullptr;
    }

    NodeState& state(int node) { return nodes_[static_cast<size_t>(node)]; }

    bool single_max_pool_consumer(int node, int* pool) const {
        const std::vector<int> next = graph_.consumers(node);
        if (next.size() != 1 || graph_.node(next[0]).kind != LayerKind::max_pool || node == output_node_) return false;
        *pool = next[0];
        return true;
    }

    static schedules::ConvGeometry conv_geometry(const Node& node, const Shape& in) {
        const auto& a = node.attributes_as<Conv2dAttributes>();
        return {in[0], a.out_channels, in[2], in[1], node.shape[2], node.shape[1], a.kernel, a.stride, a.padding};
    }

    static schedules::PoolGeometry pool_geometry(const Node& node, const Shape& in) {
        const auto& a = node.attributes_as<PoolAttributes>();
        return {in[0], in[2], in[1], node.shape[2], node.shape[1], a.kernel, a.stride, a.padding};
    }

    void lower_forward() {
        for (const Node& node : graph_.nodes()) {
            NodeState& out = state(node.id);
            const Value* in = node.inputs.empty() ? nullptr : &state(node.inputs[0]).value;
            const Shape* in_shape = node.inputs.empty() ? nullptr : &graph_.node(node.inputs[0]).shape;
            switch (node.kind) {
                case LayerKind::input:
                    out.value = Value{Func(images_), halide_extents(node.shape)};
                    break;
                case LayerKind::conv2d: {
                    const Parameter* bias = parameter(node.name + ".bias");
                    out.conv = conv2d_forward(node.name, *in, conv_geometry(node, *in_shape),
                                              Func(parameter(node.name + ".weight")->value),
                                              bias ? Func(bias->value) : Func());
                    out.value = Value{out.conv->output, halide_extents(node.shape)};
                    break;
                }
                case LayerKind::max_pool:
                    out.pool = max_pool_forward(node.name, *in, pool_geometry(node, *in_shape), training_);
                    out.value = Value{training_ ? first_of_tuple(out.pool->output, node.name) : out.pool->output,
                                      halide_extents(node.shape)};
                    break;
                case LayerKind::avg_pool:
                    out.pool = avg_pool_forward(node.name, *in, pool_geometry(node, *in_shape));
                    out.value = Value{out.pool->output, halide_extents(node.shape)};
                    break;
                case LayerKind::relu: {
                    out.value = Value{relu_forward(node.name, *in), in->extents};
                    schedules::cpu::schedule_elementwise({out.value.func, out.value.dimensions(), in->extents[0]},
                                                         context_);
                    break;
                }
                case LayerKind::flatten:
                    out.value = *in;  // read in place by the dense layer after it
                    break;
                case LayerKind::dense: {
                    const Parameter* bias = parameter(node.name + ".bias");
                    schedules::DenseForwardStages stages =
                        dense_forward(node.name, *in, node.attributes_as<DenseAttributes>().out_features,
                                      Func(parameter(node.name + ".weight")->value), bias ? Func(bias->value) : Func());
                    schedules::cpu::schedule_dense_forward(stages, context_);
                    out.value = Value{stages.output, halide_extents(node.shape)};
                    break;
                }
            }
        }
        // Pools are scheduled with the conv that feeds them when it feeds nothing else.
        for (const Node& node : graph_.nodes()) {
            if (node.kind == LayerKind::conv2d) {
                int pool = -1;
                const bool fused = single_max_pool_consumer(node.id, &pool);
                schedules::cpu::schedule_conv2d_forward(*state(node.id).conv, context_,
                                                        fused ? &*state(pool).pool : nullptr);
            }
        }
        for (const Node& node : graph_.nodes()) {
            const bool pool = node.kind == LayerKind::max_pool || node.kind == LayerKind::avg_pool;
            int unused = -1;
            const bool fused = pool && graph_.node(node.inputs[0]).kind == LayerKind::conv2d &&
                               single_max_pool_consumer(node.inputs[0], &unused);
            if (pool && !fused) schedules::cpu::schedule_pool_forward(*state(node.id).pool, context_);
        }
    }

    static Func first_of_tuple(const Func& tuple, const std::string& name) {
        Func value(name + "_value");
        value(Dims::c, Dims::x, Dims::y, Dims::n) = tuple(Dims::c, Dims::x, Dims::y, Dims::n)[0];
        return value;
    }

    // The loss reads class scores (k, n); an image that was only flattened is laid out as one.
    static Value feature_vector(const Value& value) {
        if (value.extents.size() == 1) return value;
        const int width = static_cast<int>(value.extents[1]), height = static_cast<int>(value.extents[2]);
        Func flat("flattened_output");
        flat(Dims::k, Dims::n) = value.func(Dims::k / (width * height), Dims::k % width,
                                            (Dims::k / width) % height, Dims::n);
        return Value{flat, {value.elements()}};
    }

    static Value unflattened_gradient(const Value& value, const Value& gradient) {
        if (value.extents.size() == 1) return gradient;
        const int width = static_cast<int>(value.extents[1]), height = static_cast<int>(value.extents[2]);
        Func image("flattened_output_grad");
        image(Dims::c, Dims::x, Dims::y, Dims::n) =
            gradient.func(Dims::c * (width * height) + Dims::y * width + Dims::x, Dims::n);
        return Value{image, value.extents};
    }

    void add_gradient(int node, const Value& gradient) {
        std::optional<Value>& existing = state(node).gradient;
        if (!existing) {
            existing = gradient;
            return;
        }
        std::vector<Halide::Var> vars = sample_vars(gradient);
        vars.push_back(Dims::n);
        const std::vector<Expr> args(vars.begin(), vars.end());
        Func sum(graph_.node(node).name + "_grad_sum");
        sum(args) = existing->func(args) + gradient.func(args);
        existing = Value{sum, gradient.extents};
    }

    // Gradients flow into everything but the network's input.
    bool needs_gradient(int node) const { return graph_.node(node).kind != LayerKind::input; }

    void lower_backward() {
        const auto& nodes = graph_.nodes();
        for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
            const Node& node = *it;
            NodeState& self = state(node.id);
            if (!self.gradient || node.kind == LayerKind::input) continue;
            const Value& grad = *self.gradient;
            const int input = node.inputs[0];
            const Value& in = state(input).value;
            switch (node.kind) {
                case LayerKind::conv2d: {
                    Parameter* weight = parameter(node.name + ".weight");
                    Parameter* bias = parameter(node.name + ".bias");
                    schedules::Conv2dBackwardStages stages =
                        conv2d_backward(node.name, *self.conv, grad, bias != nullptr, needs_gradient(input), batch_);
                    schedules::cpu::schedule_conv2d_backward(stages, context_);
                    weight->gradient = stages.weight_grad;
                    if (bias) bias->gradient = stages.bias_grad;
                    if (stages.input_grad.defined()) add_gradient(input, Value{stages.input_grad, in.extents});
                    break;
                }
                case LayerKind::max_pool: {
                    schedules::PoolBackwardStages stages = max_pool_backward(node.name, *self.pool, grad);
                    schedules::cpu::schedule_pool_backward(stages, context_);
                    add_gradient(input, Value{stages.input_grad, in.extents});
                    break;
                }
                case LayerKind::avg_pool: {
                    schedules::PoolBackwardStages stages = avg_pool_backward(node.name, self.pool->geometry, grad);
                    schedules::cpu::schedule_pool_backward(stages, context_);
                    add_gradient(input, Value{stages.input_grad, in.extents});
                    break;
                }
                case LayerKind::relu:
                    add_gradient(input, Value{relu_backward(node.name, self.value, grad), in.extents});
                    break;
                case LayerKind::flatten:
                    add_gradient(input, grad);
                    break;
                case LayerKind::dense: {
                    Parameter* weight = parameter(node.name + ".weight");
                    Parameter* bias = parameter(node.name + ".bias");
                    schedules::DenseBackwardStages stages = dense_backward(
                        node.name, in, node.attributes_as<DenseAttributes>().out_features, Func(weight->value), grad,
                        bias != nullptr, needs_gradient(input), batch_);
                    schedules::cpu::schedule_dense_backward(stages, context_);
                    weight->gradient = stages.weight_grad;
                    if (bias) bias->gradient = stages.bias_grad;
                    if (stages.input_grad.defined()) add_gradient(input, Value{stages.input_grad, in.extents});
                    break;
                }
                case LayerKind::input:
                    break;
            }
        }
    }

    const Model& model_;
    int output_node_ = -1;
    Graph graph_;
    bool training_;
    schedules::Context context_;
    ImageParam images_, labels_;
    Halide::Param<float> learning_rate_{"learning_rate"}, momentum_{"momentum"}, weight_decay_{"weight_decay"};
    Expr batch_;
    std::vector<Parameter> parameters_;
    std::vector<NodeState> nodes_;
};

}  // namespace

std::vector<ParameterLayout> parameter_layouts(const Model& model) {
    // Specs (and their initialisers) come from the model as written; layouts depend only on the
    // parameter's own layer and what it reads, which the rewrites keep.
    std::vector<ParameterLayout> layouts;
    for (const ParameterSpec& spec : model.graph().parameters()) layouts.push_back(layout_of(spec, model.graph()));
    return layouts;
}

LoweredPipeline lower_inference(const Model& model, const LoweringOptions& options) {
    return Lowering(model, options, false).inference();
}

LoweredPipeline lower_training_step(const Model& model, const LoweringOptions& options) {
    return Lowering(model, options, true).training_step();
}

}  // namespace convgen::codegen
