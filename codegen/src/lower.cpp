#include <convgen/codegen/lower.h>

#include "layers.h"

#include <convgen/schedules/schedules.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <tuple>

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::ImageParam;

CanonicalGraph canonical_graph(const Model& model, bool training) {
    const Graph& source = model.graph();
    int output = model.output_node();
    if (source.node(output).kind == LayerKind::softmax) output = source.node(output).inputs[0];
    auto activation_before_max_pool = [&](const Node& node) {
        if (node.kind != LayerKind::activation || node.id == output ||
            !is_monotone(node.attributes_as<ActivationAttributes>().function)) {
            return false;
        }
        const std::vector<int> next = source.consumers(node.id);
        return next.size() == 1 && source.node(next[0]).kind == LayerKind::max_pool;
    };
    // In training, a frozen layer with nothing but frozen layers below it computes what it would
    // at inference, and nothing flows back into it: it can be rewritten as for inference.
    std::vector<bool> fixed(source.nodes().size(), false);
    for (const Node& node : source.nodes()) {
        bool all_fixed = node.kind == LayerKind::input || model.is_frozen(node.name);
        for (int input : node.inputs) all_fixed = all_fixed && fixed[static_cast<size_t>(input)];
        fixed[static_cast<size_t>(node.id)] = all_fixed;
    }
    auto foldable_batch_norm = [&](const Node& node) {
        if ((training && !fixed[static_cast<size_t>(node.id)]) || node.kind != LayerKind::batch_norm) return false;
        const int conv = node.inputs[0];
        return source.node(conv).kind == LayerKind::conv2d && conv != output && source.consumers(conv).size() == 1;
    };

    CanonicalGraph result;
    Graph& graph = result.graph;
    std::vector<int> mapped(source.nodes().size(), -1);
    auto map_inputs = [&](const Node& node) {
        std::vector<int> inputs;
        for (int input : node.inputs) inputs.push_back(mapped[static_cast<size_t>(input)]);
        return inputs;
    };
    for (const Node& node : source.nodes()) {
        if (node.id > output) break;  // only a softmax output can follow, and it is dropped
        // A frozen dropout runs as at inference.
        if (node.kind == LayerKind::dropout && (!training || model.is_frozen(node.name))) {
            mapped[static_cast<size_t>(node.id)] = mapped[static_cast<size_t>(node.inputs[0])];
            continue;
        }
        if (foldable_batch_norm(node)) {
            const int conv = mapped[static_cast<size_t>(node.inputs[0])];
            result.folded_batch_norm[conv] = node;
            mapped[static_cast<size_t>(node.id)] = conv;
            continue;
        }
        if (activation_before_max_pool(node)) continue;  // re-added after its pool
        Node copy = node;
        if (node.kind == LayerKind::max_pool && activation_before_max_pool(source.node(node.inputs[0]))) {
            const Node& activation = source.node(node.inputs[0]);
            copy.inputs = map_inputs(activation);
            Node moved = activation;
            moved.inputs = {graph.add(copy)};
            moved.shape = node.shape;
            mapped[static_cast<size_t>(node.id)] = graph.add(moved);
            continue;
        }
        copy.inputs = map_inputs(node);
        mapped[static_cast<size_t>(node.id)] = graph.add(copy);
    }
    result.output_node = mapped[static_cast<size_t>(output)];
    for (const Node& node : source.nodes()) {
        const int id = mapped[static_cast<size_t>(node.id)];
        if (node.id > output || id < 0) continue;
        // A conv with a batch norm folded into it computes the batch norm's output, not its own.
        if (node.kind == LayerKind::conv2d && result.folded_batch_norm.count(id)) continue;
        result.layer_values[node.name] = id;
    }
    return result;
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

// How a node's value is laid out: its own shape, except that flatten is a view and a point-wise
// layer after it (activation, dropout) keeps the image layout, so the dense layer that reads
// them all reads the image in place.
Shape storage_shape(const Graph& graph, int id) {
    const Node& node = graph.node(id);
    if (node.inputs.empty() || node.shape.rank() != 1) return node.shape;
    const Shape input = storage_shape(graph, node.inputs[0]);
    const bool pointwise = node.kind == LayerKind::activation || node.kind == LayerKind::dropout;
    // Per-feature batch norm of a flattened [C, 1, 1] image is per-channel batch norm of the image.
    const bool channels_only = node.kind == LayerKind::batch_norm && input.rank() == 3 && input[1] * input[2] == 1;
    return node.kind == LayerKind::flatten || pointwise || channels_only ? input : node.shape;
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
        const Shape read_shape = storage_shape(graph, node.inputs[0]);
        layout.internal_extents = {spec.shape[0]};
        layout.public_strides = {input_shape.elements()};
        for (int64_t e : halide_extents(read_shape)) layout.internal_extents.push_back(e);
        for (int64_t s : flatten_strides(read_shape)) layout.public_strides.push_back(s);
    }
    return layout;
}

// Mins 0 and strides fixed: dense, or with `row_channels` > 0 the rows of a view (see
// ProgramTensor::storage) that many channels apart.
void constrain_dense(Halide::OutputImageParam buffer, const std::vector<int64_t>& extents, bool last_is_free,
                     int64_t row_channels = 0) {
    Expr stride = 1;
    for (size_t d = 0; d < extents.size(); d++) {
        buffer.dim(static_cast<int>(d)).set_min(0).set_stride(stride);
        if (!(last_is_free && d + 1 == extents.size())) {
            buffer.dim(static_cast<int>(d)).set_extent(static_cast<int>(extents[d]));
            const int64_t step = d == 0 && row_channels > 0 ? row_channels : extents[d];
            stride = stride * static_cast<int>(step);
        } else {
            break;
        }
    }
}

std::vector<int64_t> with_free_batch(std::vector<int64_t> extents) {
    extents.push_back(0);
    return extents;
}

// Halide names allow letters, digits and '_'; layer names may hold dots ("layer1.0.conv1").
std::string c_name(const std::string& name) {
    std::string result = name;
    for (char& ch : result) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    return result;
}

class Kernel;
void augment_kernel(Kernel& k, const Model& model, Slot out);

// The model's input images in Halide order (c, x, y).
std::vector<int64_t> image_extents(const Model& model) {
    const Shape& input = model.graph().node(model.input_node()).shape;
    return {input[0], input[2], input[1]};
}

// One kernel being built for one target: its arguments (each with the slot it is called with),
// its outputs, and the schedule context.
class Kernel {
  public:
    // `tensors`: the program's tensors, for the layout of views (none given: every tensor dense).
    Kernel(const Halide::Target& target, const schedules::ScheduleDatabase* database, bool training,
           std::vector<schedules::TunableStage>* tunable_stages = nullptr, bool unscheduled = false,
           const std::vector<ProgramTensor>* tensors = nullptr)
        : tensors_(tensors) {
        context.target = target;
        context.training = training;
        context.database = database;
        context.tunable_stages = tunable_stages;
        context.unscheduled = unscheduled;
    }

    Value tensor(Slot slot, const std::vector<int64_t>& extents, bool batched = true, bool is_uint8 = false) {
        const int dims = static_cast<int>(extents.size()) + (batched ? 1 : 0);
        ImageParam param(is_uint8 ? Halide::UInt(8) : Halide::Float(32), dims, fmt::format("t{}", inputs_.size()));
        constrain_dense(param, batched ? with_free_batch(extents) : extents, batched, row_channels(slot));
        if (batched && !batch.defined()) batch = param.dim(dims - 1).extent();
        add_input(slot, param);
        // Schedules round channel loops up to whole vectors; where the channels are not a whole
        // number of vectors, the lanes past the end read zeros instead of past the buffer. A
        // workspace tensor on a CPU has a vector's worth of memory after it, so its channels are
        // read past the end and the extra lanes zeroed: a load, not a gather (LeNet-5's tensors
        // of 6 channels).
        if (extents.size() >= 1 && extents[0] % context.vector_width() != 0) {
            const Expr zero = is_uint8 ? Halide::cast<uint8_t>(0) : Expr(0.0f);
            const std::string name = param.name() + "_bounded";
            const int unbounded = batched ? 1 : 0;
            if (slot.kind == SlotKind::tensor && !context.gpu()) {
                return Value{channel_overread_extended(Func(param), extents, unbounded, name, zero), extents};
            }
            return Value{zero_extended(Func(param), extents, unbounded, name, zero), extents};
        }
        return Value{Func(param), extents};
    }

    Func parameter(Slot slot, const std::vector<int64_t>& extents) {
        ImageParam param(Halide::Float(32), static_cast<int>(extents.size()), fmt::format("p{}", inputs_.size()));
        constrain_dense(param, extents, false);
        add_input(slot, param);
        return Func(param);
    }

    // A prepared tensor (Program::prepared): flat, of any extent at least what the kernel reads.
    Func prepared(Slot slot) {
        ImageParam param(Halide::Float(32), 1, fmt::format("w{}", inputs_.size()));
        param.dim(0).set_min(0).set_stride(1);
        add_input(slot, param);
        return Func(param);
    }

    // A preparation kernel's output: the whole of the caller's flat array, whatever its extent.
    void prepared_output(Slot slot, const Func& func) {
        func.output_buffer().dim(0).set_min(0).set_stride(1);
        outputs_slots_.push_back(slot);
        outputs_.push_back(func);
    }

    Func labels() {
        ImageParam param(Halide::Int(32), 1, "labels");
        param.dim(0).set_min(0).set_stride(1);
        add_input({SlotKind::labels, -1}, param);
        return Func(param);
    }

    Expr scalar(SlotKind kind) {
        const std::string name = fmt::format("s{}", inputs_.size());
        inputs_.push_back({kind, -1});
        if (kind == SlotKind::step_seed) return add_scalar(Halide::Param<uint32_t>(name));
        if (kind == SlotKind::dropout_enabled || kind == SlotKind::augmentation_enabled) {
            return add_scalar(Halide::Param<bool>(name));
        }
        return add_scalar(Halide::Param<float>(name));
    }

    // A pipeline output; `slots` has one entry per value of a Tuple Func. A batched tensor is
    // written through a copy scheduled for the exact extents of the caller's buffer: the stage
    // behind it may round its loops up to whole vectors and tiles, which only an internal
    // buffer may do (where the stage is inline, the copy is the stage).
    // Returns the Func that is the output (the copy, for a batched tensor).
    Func output(std::vector<Slot> slots, Func func, const std::vector<int64_t>& extents, bool batched = true) {
        if (batched) func = exact_copy(func, extents);
        for (size_t v = 0; v < slots.size(); v++) {
            Halide::OutputImageParam buffer = func.output_buffers()[v];
            if (v == 0) {
                constrain_dense(buffer, batched ? with_free_batch(extents) : extents, batched, row_channels(slots[v]));
            } else {
                // A Tuple's other buffers share the first one's mins and extents; only strides can be set.
                Expr stride = 1;
                for (size_t d = 0; d < extents.size(); d++) {
                    buffer.dim(static_cast<int>(d)).set_stride(stride);
                    stride = stride * static_cast<int>(extents[d]);
                }
            }
            outputs_slots_.push_back(slots[v]);
        }
        outputs_.push_back(func);
        return func;
    }
    Func output(Slot slot, Func func, const std::vector<int64_t>& extents, bool batched = true) {
        return output(std::vector<Slot>{slot}, std::move(func), extents, batched);
    }

    int output_count() const { return static_cast<int>(outputs_slots_.size()); }
    std::vector<Slot> slots() const {
        std::vector<Slot> all = inputs_;
        all.insert(all.end(), outputs_slots_.begin(), outputs_slots_.end());
        return all;
    }
    LoweredPipeline finish() const { return {Halide::Pipeline(outputs_), arguments_, parameters_}; }

    schedules::Context context;
    Expr batch;

  private:
    // A view's channels per row (its storage's channel count); 0 for a tensor of its own.
    int64_t row_channels(const Slot& slot) const {
        if (tensors_ == nullptr || slot.kind != SlotKind::tensor) return 0;
        const ProgramTensor& t = (*tensors_)[static_cast<size_t>(slot.index)];
        return t.storage < 0 ? 0 : (*tensors_)[static_cast<size_t>(t.storage)].extents[0];
    }

    Func exact_copy(const Func& func, const std::vector<int64_t>& extents) const {
        const std::vector<Halide::Var> vars = numbered_vars("v", static_cast<int>(extents.size()) + 1);
        const std::vector<Expr> args(vars.begin(), vars.end());
        Func copy(func.name() + "_out");
        if (func.outputs() == 1) {
            copy(args) = func(args);
        } else {
            std::vector<Expr> values;
            for (int v = 0; v < func.outputs(); v++) values.push_back(func(args)[v]);
            copy(args) = Halide::Tuple(values);
        }
        schedules::schedule_kernel_output(copy, extents[0], context);
        return copy;
    }

    template <typename T>
    Expr add_scalar(const Halide::Param<T>& param) {
        arguments_.push_back(param);
        parameters_.push_back(param.parameter());
        return param;
    }

    void add_input(Slot slot, const ImageParam& param) {
        arguments_.push_back(param);
        parameters_.push_back(param.parameter());
        inputs_.push_back(slot);
    }

    std::vector<Halide::Argument> arguments_;
    std::vector<Halide::Internal::Parameter> parameters_;
    std::vector<Slot> inputs_, outputs_slots_;
    std::vector<Func> outputs_;
    const std::vector<ProgramTensor>* tensors_ = nullptr;
};

std::string extents_text(const std::vector<int64_t>& extents) {
    return fmt::format("{}", fmt::join(extents, "x"));
}

// Turns a model into a program. Layers are grouped: an activation joins the layer before it when
// it is that layer's only consumer (and that layer's backward pass does not need the layer's
// own output), and a max pool joins the conv it is the only consumer of. Each group is a forward
// kernel and, in training, a backward kernel; a group's output is a tensor of the program.
class Planner : public std::enable_shared_from_this<Planner> {
  public:
    Planner(const Model& model, const LoweringOptions& options, bool training)
        : model_(model),
          canonical_(canonical_graph(model, training)),
          graph_(canonical_.graph),
          training_(training),
          database_(options.database),
          tunable_stages_(options.tunable_stages),
          unscheduled_(options.unscheduled),
          concat_in_place_(options.concat_in_place),
          prepare_weights_(options.prepare_weights && !training && !options.unscheduled),
          targets_(options.targets.empty() ? std::vector<Halide::Target>{Halide::get_host_target()} : options.targets),
          layouts_(parameter_layouts(model)) {}

    Program plan() {
        check_layouts();
        find_trained_paths();
        group_nodes();
        if (concat_in_place_) place_concatenated_inputs();
        if (training_ && !model_.augmentation().empty()) {
            augmented_tensor_ = add_tensor("augmented_images", image_extents(model_));
            const Slot out{SlotKind::tensor, augmented_tensor_};
            const Model& model = model_;
            add_call("augment", "augment images", [&model, out](Kernel& k) { augment_kernel(k, model, out); },
                     Shape(image_extents(model_)).elements());
        }
        for (const Group& group : groups_) plan_forward(group);
        const int output = canonical_.output_node;
        if (training_) {
            if (!trains_[static_cast<size_t>(source_of(output))]) {
                throw ModelError(fmt::format("model '{}': every layer with parameters is frozen; there is nothing "
                                             "to train",
                                             model_.name()));
            }
            plan_loss(output);
            for (auto it = groups_.rbegin(); it != groups_.rend(); ++it) plan_backward(*it);
            if (clipping()) {
                int64_t parameters = 0;
                for (const ParameterLayout& layout : layouts_) parameters += layout.spec.shape.elements();
                add_call("clip and update", "clip gradients and update", [this](Kernel& k) { clip_and_update(k); }, 0,
                         parameters);
            }
            for (size_t p = 0; p < layouts_.size(); p++) {
                if (!updated_[p] && !model_.is_frozen(model_.graph().node(layouts_[p].spec.node).name)) {
                    throw ModelError(
                        fmt::format("model '{}': parameter '{}' receives no gradient (its layer does not "
                                    "lead to the output)",
                                    model_.name(), layouts_[p].spec.name));
                }
            }
            program_.parameter_updated = updated_;
        } else {
            plan_probabilities(output);
            for (auto& [key, what, body, work] : preparations_) {
                add_call(key, what, body, 0, work, &program_.preparation_calls);
            }
        }
        for (const Node& layer : model_.graph().nodes()) {
            auto value = canonical_.layer_values.find(layer.name);
            if (value == canonical_.layer_values.end()) continue;
            const int tensor = tensor_of_[static_cast<size_t>(source_of(value->second))];
            // A flatten's values are its input's in another order: not kept as the layer gives them.
            if (tensor >= 0 && node(value->second).kind != LayerKind::flatten) {
                program_.layer_outputs.push_back({layer.name, tensor});
            }
        }
        // The returned copy holds the planner alive for its kernel bodies; the planner's own
        // program must not, or the two would keep each other forever (a leak LeakSanitizer found).
        Program program = program_;
        std::shared_ptr<Planner> self = shared_from_this();
        program.build = [self](int k, const Halide::Target& target) {
            Kernel kernel(target, self->database_, self->training_, self->tunable_stages_, self->unscheduled_,
                          &self->program_.tensors);
            self->bodies_[static_cast<size_t>(k)](kernel);
            return kernel.finish();
        };
        return program;
    }

  private:
    using Body = std::function<void(Kernel&)>;

    struct Group {
        std::vector<int> nodes;  // the layer, then what is fused after it
        int head() const { return nodes.front(); }
        int last() const { return nodes.back(); }
    };

    const Node& node(int id) const { return graph_.node(id); }

    // Frozen layers matter only to training: inference runs every layer the same way.
    bool frozen(int id) const { return training_ && model_.is_frozen(node(id).name); }

    // A weight or a bias that the step trains.
    bool has_trained_parameters(int id) const {
        return !frozen(id) &&
               (parameter_index(node(id).name + ".weight") >= 0 || parameter_index(node(id).name + ".bias") >= 0);
    }

    // Whether a node's value depends on parameters that train: only then does the step need its
    // gradient. (Never at inference.)
    void find_trained_paths() {
        trains_.assign(graph_.nodes().size(), false);
        if (!training_) return;
        for (const Node& n : graph_.nodes()) {
            bool trains = has_trained_parameters(n.id);
            for (int input : n.inputs) trains = trains || trains_[static_cast<size_t>(input)];
            trains_[static_cast<size_t>(n.id)] = trains;
        }
    }

    // Flatten is a view: consumers read the tensor before it.
    int source_of(int id) const {
        while (node(id).kind == LayerKind::flatten) id = node(id).inputs[0];
        return id;
    }

    std::vector<int64_t> extents_of(int id) const { return halide_extents(storage_shape(graph_, id)); }

    int parameter_index(const std::string& name) const {
        for (size_t p = 0; p < layouts_.size(); p++) {
            if (layouts_[p].spec.name == name) return static_cast<int>(p);
        }
        return -1;
    }

    bool fusable_into(int producer) const {
        switch (node(producer).kind) {
            case LayerKind::conv2d:
            case LayerKind::batch_norm:
            case LayerKind::dense:
            case LayerKind::add:
                return true;
            default:
                return false;
        }
    }

    // Layers whose inputs are laid out in ways the kernels cannot combine.
    void check_layouts() const {
        for (const Node& n : graph_.nodes()) {
            if (n.kind == LayerKind::batch_norm && storage_shape(graph_, n.id) != storage_shape(graph_, n.inputs[0])) {
                throw ModelError(
                    fmt::format("layer '{}' (batch_norm): input shape {}: batch norm over the features of "
                                "a flattened image is not supported; put it before flatten",
                                n.name, storage_shape(graph_, n.inputs[0]).to_string()));
            }
            if (n.kind == LayerKind::add && storage_shape(graph_, n.inputs[0]) != storage_shape(graph_, n.inputs[1])) {
                throw ModelError(
                    fmt::format("layer '{}' (add): one input is a flattened image {} and the other {}; "
                                "add them before flatten",
                                n.name, storage_shape(graph_, n.inputs[0]).to_string(),
                                storage_shape(graph_, n.inputs[1]).to_string()));
            }
        }
    }

    // A residual add joins the conv (or batch norm) that produces one of its inputs, as that
    // layer's epilogue, when it is that layer's only consumer; the other input is read in.
    bool fuse_add(const Node& add) {
        for (size_t j = 0; j < 2; j++) {
            const int producer = add.inputs[j], other = add.inputs[1 - j];
            const int g = group_of_[static_cast<size_t>(producer)];
            if (g < 0 || producer == other) continue;
            Group& group = groups_[static_cast<size_t>(g)];
            const LayerKind kind = node(producer).kind;
            if (group.nodes.size() != 1 || (kind != LayerKind::conv2d && kind != LayerKind::batch_norm) ||
                graph_.consumers(producer).size() != 1 || producer == canonical_.output_node) {
                continue;
            }
            group.nodes.push_back(add.id);
            group_of_[static_cast<size_t>(add.id)] = g;
            other_addend_[add.id] = other;
            return true;
        }
        return false;
    }

    // At inference, a squeeze-and-excitation gate (channel_scale) read by one conv alone is computed
    // inside that conv's kernel, where the conv copies its input anyway: no kernel, no tensor. (A
    // training step keeps it, for its gradients.)
    bool scaled_inside_consumer(const Node& n) const {
        if (training_ || n.kind != LayerKind::channel_scale || n.id == canonical_.output_node) return false;
        const std::vector<int> consumers = graph_.consumers(n.id);
        return consumers.size() == 1 && node(consumers[0]).kind == LayerKind::conv2d;
    }

    void group_nodes() {
        group_of_.assign(graph_.nodes().size(), -1);
        for (const Node& n : graph_.nodes()) {
            if (n.kind == LayerKind::input || n.kind == LayerKind::flatten || scaled_inside_consumer(n)) continue;
            if (n.kind == LayerKind::add && fuse_add(n)) continue;
            if (n.inputs.size() == 1 && group_of_[static_cast<size_t>(n.inputs[0])] >= 0) {
                const int producer = n.inputs[0];
                Group& group = groups_[static_cast<size_t>(group_of_[static_cast<size_t>(producer)])];
                const bool only_consumer = graph_.consumers(producer).size() == 1 && group.last() == producer &&
                                           producer != canonical_.output_node;
                const Node& head = node(group.head());
                const bool pool_after_conv =
                    n.kind == LayerKind::max_pool && group.nodes.size() == 1 && head.kind == LayerKind::conv2d;
                // (Not one whose adjoint reads its input, where a gradient flows back through it:
                // fused, that input would not be kept.)
                const bool activation_after =
                    n.kind == LayerKind::activation &&
                    !(trains_[static_cast<size_t>(n.id)] &&
                      adjoint_reads_input(n.attributes_as<ActivationAttributes>().function)) &&
                    ((group.nodes.size() == 1 && fusable_into(producer)) || node(group.last()).kind == LayerKind::add);
                // (In training only one whose adjoint reads its output: the pool's is not kept. The
                // pool's argmax is, written beside the activation's output.)
                const bool activation_after_pool =
                    n.kind == LayerKind::activation && node(group.last()).kind == LayerKind::max_pool &&
                    head.kind == LayerKind::conv2d &&
                    !(trains_[static_cast<size_t>(n.id)] &&
                      adjoint_reads_input(n.attributes_as<ActivationAttributes>().function));
                if (only_consumer && (pool_after_conv || activation_after || activation_after_pool)) {
                    group.nodes.push_back(n.id);
                    group_of_[static_cast<size_t>(n.id)] = group_of_[static_cast<size_t>(producer)];
                    continue;
                }
            }
            group_of_[static_cast<size_t>(n.id)] = static_cast<int>(groups_.size());
            groups_.push_back({{n.id}});
        }
        // A group runs where its last layer is: after everything it reads (a fused add's other
        // input may come after the group's head) and before everything that reads it.
        std::sort(groups_.begin(), groups_.end(), [](const Group& a, const Group& b) { return a.last() < b.last(); });
        for (size_t g = 0; g < groups_.size(); g++) {
            for (int id : groups_[g].nodes) group_of_[static_cast<size_t>(id)] = static_cast<int>(g);
        }
        tensor_of_.assign(graph_.nodes().size(), -1);
        contributions_.assign(graph_.nodes().size(), {});
        updated_.assign(layouts_.size(), false);
        for (const Group& group : groups_) {
            const int last = group.last();
            tensor_of_[static_cast<size_t>(last)] = add_tensor(node(last).name, extents_of(last));
        }
    }

    int add_tensor(const std::string& name, const std::vector<int64_t>& extents, bool batched = true,
                   bool is_uint8 = false) {
        program_.tensors.push_back({name, extents, batched, is_uint8});
        return static_cast<int>(program_.tensors.size()) - 1;
    }

    // Lays the inputs of each concatenation out in its tensor, as views (ProgramTensor::storage),
    // so that their kernels write them where the concatenation wants them and it copies nothing.
    // Concatenations are taken last first: in a chain (DenseNet's blocks, each joining the one
    // before and a new layer's maps) the last one's tensor then holds the whole chain. An input
    // that cannot be a view (the images, a value another concatenation holds already, one read
    // twice) leaves its concatenation a copy.
    void place_concatenated_inputs() {
        for (auto group = groups_.rbegin(); group != groups_.rend(); ++group) {
            const Node& concat = node(group->head());
            if (concat.kind != LayerKind::concat || group->nodes.size() != 1) continue;
            const int joined = tensor_of_[static_cast<size_t>(concat.id)];
            std::vector<int> parts;
            for (int input : concat.inputs) {
                const int id = source_of(input);
                const int part = node(id).kind == LayerKind::input ? -1 : tensor_of_[static_cast<size_t>(id)];
                const bool placeable = part >= 0 && part != joined &&
                                       program_.tensors[static_cast<size_t>(part)].storage < 0 && !holds_views(part) &&
                                       std::find(parts.begin(), parts.end(), part) == parts.end();
                if (!placeable) {
                    parts.clear();
                    break;
                }
                parts.push_back(part);
            }
            if (parts.empty()) continue;
            const ProgramTensor& whole = program_.tensors[static_cast<size_t>(joined)];
            const int storage = whole.storage >= 0 ? whole.storage : joined;
            int64_t offset = whole.channel_offset;
            for (int part : parts) {
                ProgramTensor& view = program_.tensors[static_cast<size_t>(part)];
                view.storage = storage;
                view.channel_offset = offset;
                offset += view.extents[0];
            }
            assembled_in_place_.insert(concat.id);
        }
    }

    bool holds_views(int tensor) const {
        return std::any_of(program_.tensors.begin(), program_.tensors.end(),
                           [&](const ProgramTensor& t) { return t.storage == tensor; });
    }

    // The slot a node's value is read from: the images or its group's tensor.
    Slot value_slot(int id) const {
        id = source_of(id);
        if (node(id).kind == LayerKind::input) {
            if (augmented_tensor_ >= 0) return {SlotKind::tensor, augmented_tensor_};
            return {SlotKind::images, -1};
        }
        return {SlotKind::tensor, tensor_of_[static_cast<size_t>(id)]};
    }

    Value read_value(Kernel& k, int id) const {
        const Node& n = node(source_of(id));
        if (scaled_inside_consumer(n)) {
            return Value{channel_scale_forward("scale", read_value(k, n.inputs[0]), read_value(k, n.inputs[1])),
                         extents_of(id)};
        }
        return k.tensor(value_slot(id), extents_of(id));
    }

    Func read_parameter(Kernel& k, const std::string& name, SlotKind kind = SlotKind::value) const {
        const int p = parameter_index(name);
        if (p < 0) return Func();
        return k.parameter({kind, p}, parameter_extents(name));
    }

    // For a layer whose loops read a parameter directly, without a bounded copy. A convgen schedule
    // never runs such a loop past the parameter's last element; an autoscheduler may round it up,
    // so an unscheduled program reads the parameter through zeros.
    Func read_parameter_in_place(Kernel& k, const std::string& name) const {
        Func parameter = read_parameter(k, name);
        if (!parameter.defined() || !k.context.unscheduled) return parameter;
        return zero_extended(parameter, parameter_extents(name), 0, parameter.name() + "_bounded");
    }

    const std::vector<int64_t>& parameter_extents(const std::string& name) const {
        return layouts_.at(static_cast<size_t>(parameter_index(name))).internal_extents;
    }

    // A batch norm's four tensors; without `shift`, its weight and running variance alone (what
    // the folded scale reads: the bias and mean are then no kernel arguments).
    BatchNormParameters read_batch_norm(Kernel& k, const std::string& layer, bool shift = true) const {
        return {read_parameter(k, layer + ".weight"), shift ? read_parameter(k, layer + ".bias") : Func(),
                shift ? read_parameter(k, layer + ".running_mean") : Func(),
                read_parameter(k, layer + ".running_var")};
    }

    // Multiply-adds per sample of a group's layers, roughly: each output element reads its share
    // of its layer's weight (a conv's window over its group's inputs, a dense row), else once.
    int64_t multiply_adds(const Group& group) const {
        int64_t total = 0;
        for (int id : group.nodes) {
            const Node& n = node(id);
            const int64_t outputs = n.shape.elements();
            const int weight = parameter_index(n.name + ".weight");
            const int64_t per_output =
                weight < 0 || n.shape.rank() == 0
                    ? 1
                    : std::max<int64_t>(1, layouts_[static_cast<size_t>(weight)].spec.shape.elements() / n.shape[0]);
            total += outputs * per_output;
        }
        return total;
    }

    void add_call(std::string key, const std::string& what, Body body, int64_t work_per_sample,
                  int64_t work_per_call = 0, std::vector<KernelCall>* calls = nullptr) {
        // The body run once here, for the slots this call binds (kernels are built per target later).
        Kernel probe(Halide::get_host_target(), database_, training_, nullptr, false, &program_.tensors);
        body(probe);
        // Calls share a kernel only where they also lay out their tensors alike.
        const std::vector<Slot> slots = probe.slots();
        for (size_t s = 0; s < slots.size(); s++) {
            if (slots[s].kind != SlotKind::tensor) continue;
            const ProgramTensor& t = program_.tensors[static_cast<size_t>(slots[s].index)];
            if (t.storage >= 0) {
                key += fmt::format(" slot{}-rows{}", s, program_.tensors[static_cast<size_t>(t.storage)].extents[0]);
            }
        }
        auto found = kernel_index_.find(key);
        int k;
        if (found == kernel_index_.end()) {
            k = static_cast<int>(program_.kernels.size());
            kernel_index_[key] = k;
            program_.kernels.push_back(key);
            bodies_.push_back(body);
        } else {
            k = found->second;
        }
        (calls != nullptr ? *calls : program_.calls)
            .push_back({k, slots, probe.output_count(), what, work_per_sample, work_per_call});
    }

    static schedules::ConvGeometry conv_geometry(const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<Conv2dAttributes>();
        return {in[0],    a.out_channels, in[2],     in[1],      n.shape[2], n.shape[1],
                a.kernel, a.stride,       a.padding, a.dilation, a.groups};
    }

    static schedules::PoolGeometry pool_geometry(const Node& n, const Shape& in) {
        const auto& a = n.attributes_as<PoolAttributes>();
        return {in[0], in[2], in[1], n.shape[2], n.shape[1], a.kernel, a.stride, a.padding, a.count_include_pad};
    }

    // A conv's weight and bias as a kernel reads them, with a folded batch norm applied:
    // w'(o, ...) = w(o, ...) * scale(o), b'(o) = b(o) * scale(o) + shift(o). Only those asked for
    // are kernel arguments (a prediction reads the weights prepared; a preparation, no bias);
    // the other is undefined.
    std::pair<Func, Func> conv_parameters(Kernel& k, const Node& conv, bool read_weight, bool read_bias) const {
        Func weight = read_weight ? read_parameter(k, conv.name + ".weight") : Func();
        Func bias = read_bias ? read_parameter(k, conv.name + ".bias") : Func();
        auto folded = canonical_.folded_batch_norm.find(conv.id);
        if (folded == canonical_.folded_batch_norm.end()) return {weight, bias};
        const Node& bn = folded->second;
        const FoldedBatchNorm f = batch_norm_folding("bn", read_batch_norm(k, bn.name, read_bias),
                                                     bn.attributes_as<BatchNormAttributes>());
        schedules::schedule_per_channel(f.scale, k.context);
        if (read_bias) schedules::schedule_per_channel(f.shift, k.context);
        const auto& [o, i, kx, ky] = std::tie(Dims::o, Dims::i, Dims::kx, Dims::ky);
        Func folded_weight, folded_bias;
        if (read_weight) {
            folded_weight = Func("folded_weight");
            folded_weight(o, i, kx, ky) = weight(o, i, kx, ky) * f.scale(o);
        }
        if (read_bias) {
            folded_bias = Func("folded_bias");
            folded_bias(o) = (bias.defined() ? bias(o) * f.scale(o) : Expr(0.0f)) + f.shift(o);
        }
        return {folded_weight, folded_bias};
    }

    std::string node_key(const Node& n) const {
        std::string key = describe(n);
        const Shape& in = n.inputs.empty() ? n.shape : node(n.inputs[0]).shape;
        key += fmt::format(" in{}", in.to_string());
        if (!n.inputs.empty() && scaled_inside_consumer(node(source_of(n.inputs[0])))) key += " scaled";
        for (size_t j = 1; j < n.inputs.size(); j++) key += fmt::format("+{}", node(n.inputs[j]).shape.to_string());
        if (n.kind == LayerKind::conv2d || n.kind == LayerKind::dense) {
            key += parameter_index(n.name + ".bias") >= 0 ? " bias" : " no-bias";
            auto folded = canonical_.folded_batch_norm.find(n.id);
            if (folded != canonical_.folded_batch_norm.end()) {
                key += fmt::format(" folded-bn{}", folded->second.attributes_as<BatchNormAttributes>().epsilon);
            }
        }
        if (n.kind == LayerKind::batch_norm) {
            const auto& a = n.attributes_as<BatchNormAttributes>();
            key += fmt::format(" eps{} momentum{}", a.epsilon, a.momentum);
        }
        if (n.kind == LayerKind::dropout) key += " salt " + n.name;  // the mask depends on the layer
        if (n.kind == LayerKind::dense) key += " reads" + extents_text(extents_of(n.inputs[0]));
        if (frozen(n.id)) key += " frozen";
        if (model_.learning_rate_scale(n.name) != 1) key += fmt::format(" lr*{}", model_.learning_rate_scale(n.name));
        return key;
    }

    std::string group_key(const char* direction, const Group& group) const {
        std::string key = direction;
        for (int id : group.nodes) key += " | " + node_key(node(id));
        return key;
    }

    std::string group_name(const Group& group) const {
        std::string name;
        for (int id : group.nodes) name += (name.empty() ? "" : "+") + node(id).name;
        return name;
    }

    // ---- forward ----

    void plan_forward(const Group& group) {
        // Its inputs' kernels wrote it already.
        if (assembled_in_place_.count(group.head()) != 0) return;
        const Node& head = node(group.head());
        const int value_tensor = tensor_of_[static_cast<size_t>(group.last())];
        // Extra tensors the backward pass reads.
        int argmax_tensor = -1, mean_tensor = -1, variance_tensor = -1;
        for (int id : group.nodes) {
            if (keeps_argmax(id)) {
                argmax_tensor = add_tensor(node(id).name + ".argmax", extents_of(id), true, true);
                argmax_of_[id] = argmax_tensor;
            }
        }
        if (training_ && head.kind == LayerKind::batch_norm && !frozen(head.id)) {
            mean_tensor = add_tensor(head.name + ".batch_mean", {head.shape[0]}, false);
            variance_tensor = add_tensor(head.name + ".batch_var", {head.shape[0]}, false);
            stats_[head.id] = {mean_tensor, variance_tensor};
        }
        if (prepare_weights_ && head.kind == LayerKind::conv2d) plan_preparation(group);
        add_call(group_key(training_ ? "forward-train" : "forward", group), "forward " + group_name(group),
                 [this, group, value_tensor, argmax_tensor, mean_tensor, variance_tensor](Kernel& k) {
                     forward_body(k, group, value_tensor, argmax_tensor, mean_tensor, variance_tensor);
                 },
                 multiply_adds(group));
    }

    static bool pooled(const Graph& graph, const std::vector<int>& nodes) {
        return nodes.size() > 1 && graph.node(nodes[1]).kind == LayerKind::max_pool;
    }

    // A conv whose schedules read its weights in another layout gets them from a prepared tensor,
    // sized for the largest layout of the targets, and a preparation call that writes it.
    void plan_preparation(const Group& group) {
        const Node& head = node(group.head());
        const bool with_pool = pooled(graph_, group.nodes);
        const ConvGeometry geometry = conv_geometry(head, node(head.inputs[0]).shape);
        PreparedTensor prepared{head.name + ".prepared_weights", 0, 0};
        for (const Halide::Target& target : targets_) {
            if (target.has_gpu_feature()) return;
            schedules::Context context;
            context.target = target;
            context.database = database_;
            const int64_t elements =
                prepared_weight_elements(geometry, schedules::conv2d_algorithm(context, geometry, with_pool));
            if (elements == 0) return;
            prepared.elements = std::max(prepared.elements, elements);
            prepared.bound = std::max(prepared.bound, prepared_weight_bound(geometry, context.vector_width()));
        }
        const int index = static_cast<int>(program_.prepared.size());
        program_.prepared.push_back(prepared);
        prepared_of_[head.id] = index;
        const int id = head.id;
        preparations_.emplace_back(
            fmt::format("prepare | {}{}", node_key(head), with_pool ? " pooled" : ""), "prepare " + head.name,
            [this, id, with_pool, index](Kernel& k) {
                const Node& conv = node(id);
                const ConvGeometry g = conv_geometry(conv, node(conv.inputs[0]).shape);
                const Func weight = conv_parameters(k, conv, true, false).first;
                schedules::Conv2dPreparationStages stages =
                    conv2d_prepare_weights("conv", g, weight, schedules::conv2d_algorithm(k.context, g, with_pool));
                schedules::schedule_conv2d_preparation(stages, k.context);
                k.prepared_output({SlotKind::prepared, index}, stages.flat);
            },
            prepared.elements);
    }

    void forward_body(Kernel& k, const Group& group, int value_tensor, int argmax_tensor, int mean_tensor,
                      int variance_tensor) const {
        const Node& head = node(group.head());
        std::vector<Value> inputs;
        for (int input : head.inputs) inputs.push_back(read_value(k, input));
        const std::vector<int64_t> extents = extents_of(head.id);
        const Slot out_slot{SlotKind::tensor, value_tensor};
        Func row_producer;  // a stage computed per row of the output
        Value value;
        Func argmax;  // a fused max pool's, written beside the value
        size_t next = 1;  // the next fused node
        switch (head.kind) {
            case LayerKind::conv2d: {
                const auto prepared = prepared_of_.find(head.id);
                const bool weights_prepared = prepared != prepared_of_.end();
                const auto [weight, bias] = conv_parameters(k, head, !weights_prepared, true);
                const bool with_pool = pooled(graph_, group.nodes);
                const ConvGeometry geometry = conv_geometry(head, node(head.inputs[0]).shape);
                const Func prepared_weights =
                    weights_prepared ? k.prepared({SlotKind::prepared, prepared->second}) : Func();
                schedules::Conv2dForwardStages conv =
                    conv2d_forward("conv", inputs[0], geometry, weight, bias,
                                   schedules::conv2d_algorithm(k.context, geometry, with_pool), prepared_weights);
                if (!with_pool) {
                    // Computed a row at a time inside the output's loop, with what follows it
                    // (bias and folded batch norm are in it already; add and activation are
                    // inlined into the output): one loop nest, unless the schedule stores it.
                    if (schedules::schedule_conv2d_forward(conv, k.context, nullptr, true)) {
                        row_producer = conv.output;
                    }
                    value = Value{conv.output, extents};
                    break;
                }
                const Node& pool = node(group.nodes[1]);
                schedules::PoolForwardStages stages = max_pool_forward("pool", Value{conv.output, extents},
                                                                       pool_geometry(pool, head.shape), keeps_argmax(pool.id));
                // The pool may be computed a row at a time inside the kernel's output, with what
                // follows it.
                if (schedules::schedule_conv2d_forward(conv, k.context, &stages, true)) row_producer = stages.output;
                next = 2;
                if (keeps_argmax(pool.id)) {
                    // What follows applies to the maximum; the argmax goes out as the pool found it.
                    Func maximum("pool_max");
                    maximum(Dims::c, Dims::x, Dims::y, Dims::n) = stages.output(Dims::c, Dims::x, Dims::y, Dims::n)[0];
                    argmax = Func("pool_argmax");
                    argmax(Dims::c, Dims::x, Dims::y, Dims::n) = stages.output(Dims::c, Dims::x, Dims::y, Dims::n)[1];
                    value = Value{maximum, halide_extents(pool.shape)};
                } else {
                    value = Value{stages.output, halide_extents(pool.shape)};
                }
                break;
            }
            case LayerKind::batch_norm: {
                const auto& a = head.attributes_as<BatchNormAttributes>();
                if (training_ && !frozen(head.id)) {
                    schedules::BatchNormStages stages =
                        batch_norm_training("bn", inputs[0], read_batch_norm(k, head.name), a, k.batch);
                    schedules::schedule_batch_norm(stages, k.context);
                    k.output({SlotKind::tensor, mean_tensor}, stages.mean_of_batch, {head.shape[0]}, false);
                    k.output({SlotKind::tensor, variance_tensor}, stages.variance_of_batch, {head.shape[0]}, false);
                    schedules::schedule_state_update(stages.new_running_mean, k.context);
                    schedules::schedule_state_update(stages.new_running_var, k.context);
                    k.output({SlotKind::new_value, parameter_index(head.name + ".running_mean")},
                             stages.new_running_mean, {head.shape[0]}, false);
                    k.output({SlotKind::new_value, parameter_index(head.name + ".running_var")}, stages.new_running_var,
                             {head.shape[0]}, false);
                    value = Value{stages.output, extents};
                } else {
                    const FoldedBatchNorm f = batch_norm_folding("bn", read_batch_norm(k, head.name), a);
                    schedules::schedule_per_channel(f.scale, k.context);
                    schedules::schedule_per_channel(f.shift, k.context);
                    value = Value{channel_affine("bn", inputs[0], f), extents};
                }
                break;
            }
            case LayerKind::activation:
                value = Value{activation_forward("activation", inputs[0], head.attributes_as<ActivationAttributes>()),
                              extents};
                break;
            case LayerKind::dropout: {
                const DropoutControl dropout{k.scalar(SlotKind::step_seed), k.scalar(SlotKind::dropout_enabled)};
                Func factor =
                    dropout_factor(c_name(head.name), inputs[0], head.attributes_as<DropoutAttributes>(), dropout);
                value = Value{scaled_by("dropout", inputs[0], factor), extents};
                break;
            }
            case LayerKind::max_pool: {
                schedules::PoolForwardStages stages = max_pool_forward(
                    "pool", inputs[0], pool_geometry(head, node(head.inputs[0]).shape), keeps_argmax(head.id));
                schedules::schedule_pool_forward(stages, k.context);
                if (keeps_argmax(head.id)) {
                    k.output({out_slot, {SlotKind::tensor, argmax_tensor}}, stages.output, extents);
                    return;
                }
                value = Value{stages.output, extents};
                break;
            }
            case LayerKind::avg_pool: {
                schedules::PoolForwardStages stages =
                    avg_pool_forward("pool", inputs[0], pool_geometry(head, node(head.inputs[0]).shape));
                schedules::schedule_pool_forward(stages, k.context);
                value = Value{stages.output, extents};
                break;
            }
            case LayerKind::global_avg_pool: {
                const schedules::GlobalPoolStages stages = global_avg_pool_forward("pool", inputs[0]);
                schedules::schedule_global_pool(stages, k.context);
                value = Value{stages.output, extents};
                break;
            }
            case LayerKind::dense: {
                Func weight = read_parameter_in_place(k, head.name + ".weight"),
                     bias = read_parameter_in_place(k, head.name + ".bias");
                schedules::DenseForwardStages stages = dense_forward(
                    "dense", inputs[0], head.attributes_as<DenseAttributes>().out_features, weight, bias);
                schedules::schedule_dense_forward(stages, k.context);
                value = Value{stages.output, extents};
                break;
            }
            case LayerKind::add:
                value = Value{add_forward("add", inputs[0], inputs[1]), extents};
                break;
            case LayerKind::concat:
                value = Value{concat_forward("concat", inputs), extents};
                break;
            case LayerKind::channel_scale:
                value = Value{channel_scale_forward("scale", inputs[0], inputs[1]), extents};
                break;
            case LayerKind::input:
            case LayerKind::flatten:
            case LayerKind::softmax:
                throw ModelError(fmt::format("layer '{}' ({}) has no kernel", head.name, describe(head)));
        }
        for (; next < group.nodes.size(); next++) {
            const Node& fused = node(group.nodes[next]);
            if (fused.kind == LayerKind::add) {
                value = Value{add_forward("add", value, read_value(k, other_addend_.at(fused.id))), value.extents};
            } else {
                value = Value{activation_forward("activation", value, fused.attributes_as<ActivationAttributes>()),
                              value.extents};
            }
        }
        Func written;
        if (argmax.defined()) {
            Func pair("pooled");
            pair(Dims::c, Dims::x, Dims::y, Dims::n) = Halide::Tuple(value.func(Dims::c, Dims::x, Dims::y, Dims::n),
                                                                     argmax(Dims::c, Dims::x, Dims::y, Dims::n));
            written = k.output({out_slot, {SlotKind::tensor, argmax_tensor}}, pair, value.extents);
        } else {
            written = k.output(out_slot, value.func, value.extents);
        }
        if (row_producer.defined()) schedules::compute_per_output_row(row_producer, written, k.context);
    }

    // ---- loss and probabilities ----

    Value logits_of(Kernel& k, int output) const {
        const Value value = read_value(k, output);
        if (value.extents.size() == 1) return value;
        const int width = static_cast<int>(value.extents[1]), height = static_cast<int>(value.extents[2]);
        Func flat("flattened_output");
        flat(Dims::k, Dims::n) =
            value.func(Dims::k / (width * height), Dims::k % width, (Dims::k / width) % height, Dims::n);
        return Value{flat, {value.elements()}};
    }

    void plan_loss(int output) {
        const int gradient = add_tensor(node(output).name + ".grad", extents_of(output));
        contributions_[static_cast<size_t>(source_of(output))].push_back(gradient);
        add_call("loss " + extents_text(extents_of(output)), "loss", [this, output, gradient](Kernel& k) {
            const Value logits = logits_of(k, output);
            Func labels = k.labels();
            schedules::LossStages loss = softmax_cross_entropy("loss", logits, labels, k.batch, true);
            schedules::schedule_loss(loss, k.context);
            k.output({SlotKind::loss, -1}, loss.loss, {}, false);
            k.output({SlotKind::correct, -1}, loss.correct, {}, false);
            const std::vector<int64_t> extents = extents_of(output);
            Func grad = loss.logits_grad;
            if (extents.size() == 3) {
                const int width = static_cast<int>(extents[1]), height = static_cast<int>(extents[2]);
                Func image("logits_grad_image");
                image(Dims::c, Dims::x, Dims::y, Dims::n) =
                    loss.logits_grad(Dims::c * (width * height) + Dims::y * width + Dims::x, Dims::n);
                grad = image;
            }
            k.output({SlotKind::tensor, gradient}, grad, extents);
        }, Shape(extents_of(output)).elements());
    }

    void plan_probabilities(int output) {
        add_call("probabilities " + extents_text(extents_of(output)), "probabilities", [this, output](Kernel& k) {
            const Value logits = logits_of(k, output);
            schedules::LossStages loss = softmax_cross_entropy("softmax", logits, Func(), k.batch, false);
            schedules::schedule_loss(loss, k.context);
            k.output({SlotKind::probabilities, -1}, loss.probabilities, {model_.classes()});
        }, Shape(extents_of(output)).elements());
    }

    // ---- backward ----

    bool needs_gradient(int id) const { return trains_[static_cast<size_t>(source_of(id))]; }

    // A max pool keeps the index of each window's maximum for its backward pass, where it has one.
    bool keeps_argmax(int id) const { return node(id).kind == LayerKind::max_pool && needs_gradient(node(id).inputs[0]); }

    // The gradient of a node's value: the sum of what its consumers contributed.
    Value read_gradient(Kernel& k, int id, const std::vector<int>& tensors) const {
        const std::vector<int64_t> extents = extents_of(id);
        Value sum = k.tensor({SlotKind::tensor, tensors[0]}, extents);
        for (size_t t = 1; t < tensors.size(); t++) {
            const Value more = k.tensor({SlotKind::tensor, tensors[t]}, extents);
            std::vector<Halide::Var> vars = sample_vars(sum);
            vars.push_back(Dims::n);
            const std::vector<Expr> args(vars.begin(), vars.end());
            Func total(fmt::format("grad_sum{}", t));
            total(args) = sum.func(args) + more.func(args);
            sum = Value{total, extents};
        }
        return sum;
    }

    bool clipping() const { return training_ && model_.gradient_clip_norm() > 0; }

    // A trained parameter's gradient kept for the update after the backward pass (with clipping).
    struct ClippedParameter {
        int parameter;
        int gradient_tensor;
        double learning_rate_scale;
    };

    int gradient_tensor_of(int p) const {
        for (const ClippedParameter& c : clipped_) {
            if (c.parameter == p) return c.gradient_tensor;
        }
        return -1;
    }

    // Every trained parameter's gradient scaled by min(1, max_norm / (global norm + 1e-6)), then
    // SGD with momentum, as PyTorch's clip_grad_norm_ before optimizer.step().
    void clip_and_update(Kernel& k) const {
        std::vector<Func> gradients, squares;
        for (const ClippedParameter& c : clipped_) {
            const ParameterLayout& layout = layouts_[static_cast<size_t>(c.parameter)];
            gradients.push_back(k.tensor({SlotKind::tensor, c.gradient_tensor}, layout.internal_extents, false).func);
            squares.push_back(sum_of_squares(fmt::format("squares{}", c.parameter), gradients.back(),
                                             layout.internal_extents));
        }
        const GradientClipping clip = clip_by_global_norm("clip", squares, model_.gradient_clip_norm());
        schedules::schedule_sums_of_squares(squares, k.context);
        for (size_t i = 0; i < clipped_.size(); i++) {
            const ClippedParameter& c = clipped_[i];
            const int dims = static_cast<int>(layouts_[static_cast<size_t>(c.parameter)].internal_extents.size());
            sgd_update(k, c.parameter, c.learning_rate_scale, scaled_by_scalar(gradients[i], clip.scale, dims),
                       fmt::format("update{}", c.parameter));
        }
    }

    // SGD with momentum of parameter p from its gradient: new value and velocity are outputs.
    void sgd_update(Kernel& k, int p, double learning_rate_scale, const Func& gradient, const std::string& name) const {
        const ParameterLayout& layout = layouts_[static_cast<size_t>(p)];
        const int dims = static_cast<int>(layout.internal_extents.size());
        Func value = k.parameter({SlotKind::value, p}, layout.internal_extents);
        Func velocity = k.parameter({SlotKind::velocity, p}, layout.internal_extents);
        Expr learning_rate = k.scalar(SlotKind::learning_rate);
        if (learning_rate_scale != 1) learning_rate = learning_rate * static_cast<float>(learning_rate_scale);
        schedules::ParameterUpdateStages update = sgd_momentum_update(
            name, value, velocity, gradient, dims, learning_rate, k.scalar(SlotKind::momentum),
            k.scalar(SlotKind::weight_decay));
        update.extents = layout.internal_extents;
        schedules::schedule_parameter_update(update, k.context);
        k.output({SlotKind::new_value, p}, update.new_value, layout.internal_extents, false);
        k.output({SlotKind::new_velocity, p}, update.new_velocity, layout.internal_extents, false);
    }

    // SGD with momentum for one parameter, fused into the backward kernel that computed its
    // gradient; with clipping, the gradient written out for the update after the backward pass.
    void update_parameter(Kernel& k, const Node& layer, const std::string& name, const Func& gradient) {
        const int p = parameter_index(name);
        if (clipping()) {
            const ParameterLayout& layout = layouts_[static_cast<size_t>(p)];
            const std::vector<Halide::Var> vars = numbered_vars("g", static_cast<int>(layout.internal_extents.size()));
            const std::vector<Expr> args(vars.begin(), vars.end());
            Func copy("gradient_out");
            copy(args) = gradient(args);
            schedules::schedule_gradient_copy(copy, layout.internal_extents[0], k.context);
            k.output({SlotKind::tensor, gradient_tensor_of(p)}, copy, layout.internal_extents, false);
            return;
        }
        sgd_update(k, p, model_.learning_rate_scale(layer.name), gradient, "update");
    }

    // A layer's weight, and its bias where it has one, updated from their gradients.
    void update_weight_and_bias(Kernel& k, const Node& layer, const Func& weight_grad, const Func& bias_grad) {
        if (frozen(layer.id)) return;
        update_parameter(k, layer, layer.name + ".weight", weight_grad);
        if (bias_grad.defined()) update_parameter(k, layer, layer.name + ".bias", bias_grad);
    }

    void plan_backward(const Group& group) {
        const Node& head = node(group.head());
        const std::vector<int>& incoming = contributions_[static_cast<size_t>(group.last())];
        if (incoming.empty()) return;  // nothing after it reaches the loss
        for (int id : group.nodes) {
            if (frozen(id)) continue;
            for (const char* suffix : {".weight", ".bias", ".running_mean", ".running_var"}) {
                const int p = parameter_index(node(id).name + suffix);
                if (p < 0) continue;
                updated_[static_cast<size_t>(p)] = true;
                // With clipping, the backward kernel writes the gradient out for the update after it.
                const ParameterLayout& layout = layouts_[static_cast<size_t>(p)];
                if (clipping() && layout.spec.trainable) {
                    clipped_.push_back({p, add_tensor(layout.spec.name + ".grad", layout.internal_extents, false),
                                        model_.learning_rate_scale(node(id).name)});
                }
            }
        }
        // A sum without an activation passes its gradient on as it is.
        if (head.kind == LayerKind::add && group.nodes.size() == 1) {
            for (int input : head.inputs) {
                if (!needs_gradient(input)) continue;
                auto& list = contributions_[static_cast<size_t>(source_of(input))];
                list.insert(list.end(), incoming.begin(), incoming.end());
            }
            return;
        }
        // One gradient tensor per input that needs one; an add (with its activation) writes one
        // that both inputs read.
        std::vector<int> input_grads(head.inputs.size(), -1);
        const bool shared = head.kind == LayerKind::add;
        for (size_t j = 0; j < head.inputs.size(); j++) {
            const int input = head.inputs[j];
            if (!needs_gradient(input)) continue;
            if (shared && j > 0 && input_grads[0] >= 0) {
                input_grads[j] = input_grads[0];
            } else {
                input_grads[shared ? 0 : j] = add_tensor(
                    fmt::format("{}.grad_from_{}", node(source_of(input)).name, head.name), extents_of(input));
                if (shared) input_grads[j] = input_grads[0];
            }
            contributions_[static_cast<size_t>(source_of(input))].push_back(input_grads[j]);
        }
        if (shared) input_grads.resize(1);
        // A fused add hands its gradient to its other input too: the incoming tensors themselves,
        // or, behind an activation, the activation's adjoint written out.
        int addend_grad = -1;
        for (int id : group.nodes) {
            if (id == group.head() || node(id).kind != LayerKind::add) continue;
            const int other = other_addend_.at(id);
            if (!needs_gradient(other)) continue;
            auto& list = contributions_[static_cast<size_t>(source_of(other))];
            if (node(group.last()).kind == LayerKind::activation) {
                addend_grad = add_tensor(fmt::format("{}.grad_from_{}", node(source_of(other)).name, node(id).name),
                                         extents_of(other));
                list.push_back(addend_grad);
            } else {
                list.insert(list.end(), incoming.begin(), incoming.end());
            }
        }
        // A frozen layer whose inputs need no gradient has nothing left to compute.
        const bool passes_gradient =
            addend_grad >= 0 || std::any_of(input_grads.begin(), input_grads.end(), [](int g) { return g >= 0; });
        if (!has_trained_parameters(head.id) && !passes_gradient) return;
        std::string key = group_key("backward", group) + fmt::format(" grads{}", incoming.size());
        for (int g : input_grads) key += g >= 0 ? " in-grad" : " no-in-grad";
        if (addend_grad >= 0) key += " addend-grad";
        // The input gradient and the weight gradient: each about the forward's work.
        add_call(key, "backward " + group_name(group), [this, group, incoming, input_grads, addend_grad](Kernel& k) {
            backward_body(k, group, incoming, input_grads, addend_grad);
        }, 2 * multiply_adds(group));
    }

    void backward_body(Kernel& k, const Group& group, const std::vector<int>& incoming,
                       const std::vector<int>& input_grads, int addend_grad) {
        const Node& head = node(group.head());
        Value grad = read_gradient(k, group.last(), incoming);
        // A sum or an adjoint is an expression: stored once before a reduction reads it many times.
        bool expression = incoming.size() > 1;
        // Through the fused activation first: its adjoint reads the group's output.
        if (group.nodes.size() > 1 && node(group.last()).kind == LayerKind::activation) {
            expression = true;
            const Value output = read_value(k, group.last());
            grad = Value{activation_backward("activation", node(group.last()).attributes_as<ActivationAttributes>(),
                                             Value{}, output, grad),
                         output.extents};
        }
        if (addend_grad >= 0) k.output({SlotKind::tensor, addend_grad}, grad.func, grad.extents);
        // The kernel output written, or undefined where no gradient flows to input j.
        auto output_input_grad = [&](size_t j, const Func& func) {
            if (input_grads[j] < 0) return Func();
            const std::vector<int64_t> extents = extents_of(head.inputs[j]);
            return k.output({SlotKind::tensor, input_grads[j]}, func, extents);
        };
        auto stored = [&](const Value& value) {
            if (expression) {
                schedules::schedule_elementwise({value.func, value.dimensions(), value.extents[0]}, k.context);
            }
            return value;
        };
        switch (head.kind) {
            case LayerKind::conv2d: {
                const Value in = read_value(k, head.inputs[0]);
                const bool with_pool = group.nodes.size() > 1 && node(group.nodes[1]).kind == LayerKind::max_pool;
                Func weight = read_parameter(k, head.name + ".weight");
                // Only the forward's inputs are read here (its weights as they are): no weight blocks.
                const schedules::ConvGeometry geometry = conv_geometry(head, node(head.inputs[0]).shape);
                const schedules::Conv2dForwardStages forward =
                    conv2d_forward("conv", in, geometry, weight, Func(), schedules::ConvAlgorithm{});
                const Value pooled_grad = grad;
                if (with_pool) {
                    // The pool's adjoint is stored by its own schedule (a first conv's weight
                    // gradient, its only reader then, may compute it per batch chunk instead).
                    const Node& pool = node(group.nodes[1]);
                    grad = Value{max_pool_input_grad(k, pool, grad), halide_extents(head.shape)};
                } else {
                    grad = stored(grad);
                }
                const bool has_bias = parameter_index(head.name + ".bias") >= 0;
                schedules::Conv2dBackwardStages stages =
                    conv2d_backward("conv", forward, grad, !frozen(head.id),
                                    has_bias ? (with_pool ? pooled_grad : grad) : Value{}, input_grads[0] >= 0, k.batch,
                                    schedules::conv2d_input_grad_algorithm(k.context, geometry),
                                    schedules::conv2d_weight_grad_algorithm(k.context, geometry));
                if (with_pool) stages.output_grad_stage = grad.func;
                if (schedules::schedule_conv2d_backward(stages, k.context, true)) {
                    schedules::compute_per_output_row(stages.input_grad, output_input_grad(0, stages.input_grad),
                                                      k.context);
                } else if (stages.input_grad.defined()) {
                    output_input_grad(0, stages.input_grad);
                }
                update_weight_and_bias(k, head, stages.weight_grad, stages.bias_grad);
                break;
            }
            case LayerKind::batch_norm: {
                if (frozen(head.id)) {
                    // Fixed statistics: the gradient passes through scaled, per channel.
                    const FoldedBatchNorm f = batch_norm_folding("bn", read_batch_norm(k, head.name),
                                                                 head.attributes_as<BatchNormAttributes>());
                    schedules::schedule_per_channel(f.scale, k.context);
                    output_input_grad(0, channel_affine_input_grad("bn_input_grad", grad, f));
                    break;
                }
                grad = stored(grad);
                const Value in = read_value(k, head.inputs[0]);
                const auto& [mean_tensor, variance_tensor] = stats_.at(head.id);
                schedules::BatchNormStages forward;
                forward.channels = head.shape[0];
                forward.mean_of_batch = Func(k.tensor({SlotKind::tensor, mean_tensor}, {head.shape[0]}, false).func);
                forward.variance_of_batch =
                    Func(k.tensor({SlotKind::tensor, variance_tensor}, {head.shape[0]}, false).func);
                const BatchNormParameters p{read_parameter(k, head.name + ".weight"), Func(), Func(), Func()};
                schedules::BatchNormBackwardStages stages =
                    batch_norm_backward("bn", forward, in, p, head.attributes_as<BatchNormAttributes>(), grad, k.batch);
                schedules::schedule_batch_norm_backward(stages, k.context);
                if (input_grads[0] >= 0) output_input_grad(0, stages.input_grad);
                update_weight_and_bias(k, head, stages.grad_dot_normalised, stages.grad_sum);
                break;
            }
            case LayerKind::activation: {
                const auto& a = head.attributes_as<ActivationAttributes>();
                const Value input = adjoint_reads_input(a.function) ? read_value(k, head.inputs[0]) : Value{};
                const Value output = adjoint_reads_input(a.function) ? Value{} : read_value(k, head.id);
                output_input_grad(0, activation_backward("activation", a, input, output, grad));
                break;
            }
            case LayerKind::dropout: {
                const DropoutControl control{k.scalar(SlotKind::step_seed), k.scalar(SlotKind::dropout_enabled)};
                Func factor = dropout_factor(c_name(head.name), grad, head.attributes_as<DropoutAttributes>(), control);
                output_input_grad(0, scaled_by("dropout_grad", grad, factor));
                break;
            }
            case LayerKind::max_pool:
                output_input_grad(0, max_pool_input_grad(k, head, stored(grad)));
                break;
            case LayerKind::avg_pool: {
                schedules::PoolBackwardStages stages =
                    avg_pool_backward("pool", pool_geometry(head, node(head.inputs[0]).shape), stored(grad));
                output_input_grad(0, stages.input_grad);
                schedules::schedule_pool_backward(stages, k.context);
                break;
            }
            case LayerKind::global_avg_pool: {
                const Value in{Func(), extents_of(head.inputs[0])};
                output_input_grad(0, global_avg_pool_backward("pool", in, grad));
                break;
            }
            case LayerKind::dense: {
                grad = stored(grad);
                const Value in = read_value(k, head.inputs[0]);
                Func weight = read_parameter(k, head.name + ".weight");
                const bool has_bias = parameter_index(head.name + ".bias") >= 0;
                schedules::DenseBackwardStages stages =
                    dense_backward("dense", in, head.attributes_as<DenseAttributes>().out_features, weight, grad,
                                   !frozen(head.id), has_bias, input_grads[0] >= 0, k.batch);
                schedules::schedule_dense_backward(stages, k.context);
                if (stages.input_grad.defined()) output_input_grad(0, stages.input_grad);
                update_weight_and_bias(k, head, stages.weight_grad, stages.bias_grad);
                break;
            }
            case LayerKind::add: {
                // With its activation fused: the activation's adjoint, passed to both inputs.
                output_input_grad(0, grad.func);
                break;
            }
            case LayerKind::concat: {
                int64_t offset = 0;
                for (size_t j = 0; j < head.inputs.size(); j++) {
                    output_input_grad(j, concat_input_grad(fmt::format("concat_grad{}", j), grad, offset));
                    offset += extents_of(head.inputs[j])[0];
                }
                break;
            }
            case LayerKind::channel_scale: {
                grad = stored(grad);
                const Value image = read_value(k, head.inputs[0]), scale = read_value(k, head.inputs[1]);
                output_input_grad(0, channel_scale_input_grad("scale_input_grad", scale, grad));
                if (input_grads[1] >= 0) {
                    const schedules::GlobalPoolStages stages = channel_scale_scale_grad("scale_grad", image, grad);
                    schedules::schedule_global_pool(stages, k.context);
                    output_input_grad(1, stages.output);
                }
                break;
            }
            case LayerKind::input:
            case LayerKind::flatten:
            case LayerKind::softmax:
                break;
        }
    }

    // The max pool's adjoint from the argmax tensor the forward kernel wrote.
    Func max_pool_input_grad(Kernel& k, const Node& pool, const Value& grad) const {
        const Value argmax =
            k.tensor({SlotKind::tensor, argmax_of_.at(pool.id)}, halide_extents(pool.shape), true, true);
        schedules::PoolForwardStages forward;
        forward.geometry = pool_geometry(pool, node(pool.inputs[0]).shape);
        const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
        // The sample clamped to the batch: computed a chunk of the batch at a time (inside a conv's
        // weight gradient, schedule_conv2d_backward), the chunks' region as Halide bounds it runs
        // past the last sample, though no loop does.
        const Expr sample = Halide::clamp(n, 0, k.batch - 1);
        forward.output = Func("pool_argmax");
        forward.output(c, x, y, n) = Halide::Tuple(0.0f, argmax.func(c, x, y, sample));
        Func clamped_grad("pool_output_grad");
        clamped_grad(c, x, y, n) = grad.func(c, x, y, sample);
        schedules::PoolBackwardStages stages =
            max_pool_backward("pool", forward, Value{clamped_grad, grad.extents});
        schedules::schedule_pool_backward(stages, k.context);
        return stages.input_grad;
    }

    const Model& model_;
    CanonicalGraph canonical_;
    const Graph& graph_;
    bool training_;
    const schedules::ScheduleDatabase* database_;
    std::vector<schedules::TunableStage>* tunable_stages_;
    bool unscheduled_;
    bool concat_in_place_;
    bool prepare_weights_;
    std::vector<Halide::Target> targets_;
    std::vector<ParameterLayout> layouts_;
    std::vector<Group> groups_;
    std::vector<int> group_of_, tensor_of_;
    std::vector<std::vector<int>> contributions_;
    std::vector<bool> updated_;
    std::vector<bool> trains_;  // per node: whether its value depends on a parameter that trains
    std::vector<ClippedParameter> clipped_;  // with gradient clipping: what the update kernel reads
    std::map<int, std::pair<int, int>> stats_;  // batch-norm node -> (mean, variance) tensors
    std::map<int, int> argmax_of_;              // max-pool node -> argmax tensor
    std::map<int, int> other_addend_;           // add fused into a group -> its input from outside
    int augmented_tensor_ = -1;                 // what the network reads in a training step, if augmented
    std::set<int> assembled_in_place_;          // concat nodes whose inputs are views of their tensor
    Program program_;
    std::map<std::string, int> kernel_index_;
    std::vector<Body> bodies_;
    std::map<int, int> prepared_of_;  // conv node -> its prepared weights (Program::prepared)
    // Added after every other call, so that the other kernels keep the indices a program planned
    // without preparation gives them: (key, what, body, work per call).
    std::vector<std::tuple<std::string, std::string, Body, int64_t>> preparations_;
};

// The augmentation of the caller's images into `out`.
void augment_kernel(Kernel& k, const Model& model, Slot out) {
    const std::vector<int64_t> extents = image_extents(model);
    const Value images = k.tensor({SlotKind::images, -1}, extents);
    const Expr seed = k.scalar(SlotKind::step_seed);
    const Expr enabled = k.scalar(SlotKind::augmentation_enabled);
    const schedules::AugmentationStages stages = augment_images(images, model.augmentation(), seed, enabled);
    schedules::schedule_augmentation(stages, k.context);
    k.output(out, stages.output, extents);
}

}  // namespace

std::vector<ParameterLayout> parameter_layouts(const Model& model) {
    // Specs (and their initialisers) come from the model as written; layouts depend only on the
    // parameter's own layer and what it reads, which the rewrites keep.
    std::vector<ParameterLayout> layouts;
    for (const ParameterSpec& spec : model.graph().parameters()) layouts.push_back(layout_of(spec, model.graph()));
    return layouts;
}

Program plan_augmentation(const Model& model) {
    const Shape& input = model.graph().node(model.input_node()).shape;
    if (input.rank() != 3) {
        throw ModelError(fmt::format("model '{}': augmentation needs [C, H, W] images, not {}", model.name(),
                                     input.to_string()));
    }
    Program program;
    program.kernels.push_back("augment");
    const Slot out{SlotKind::augmented_images, -1};
    Kernel probe(Halide::get_host_target(), nullptr, true);
    augment_kernel(probe, model, out);
    program.calls.push_back(
        {0, probe.slots(), probe.output_count(), "augment images", Shape(image_extents(model)).elements(), 0});
    program.build = [&model, out](int, const Halide::Target& target) {
        Kernel kernel(target, nullptr, true);
        augment_kernel(kernel, model, out);
        return kernel.finish();
    };
    return program;
}

Program plan_inference(const Model& model, const LoweringOptions& options) {
    return std::make_shared<Planner>(model, options, false)->plan();
}

Program plan_training_step(const Model& model, const LoweringOptions& options) {
    return std::make_shared<Planner>(model, options, true)->plan();
}

}  // namespace convgen::codegen
