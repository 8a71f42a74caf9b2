// Lowering of a model's graph to Halide pipelines: the inference pass and the whole training step
// (forward, loss, adjoints, SGD update of every tensor) as one pipeline each, scheduled for a target.
#pragma once

#include <convgen/model.h>
#include <convgen/schedules/database.h>

#include <Halide.h>

#include <functional>
#include <map>

#include <string>
#include <vector>

namespace convgen::codegen {

// A parameter as the generated code holds it. The public layout is PyTorch's (conv OIHW, dense
// (out, in)); the internal one is what the schedules want (output channels innermost). Internal
// dim d has `internal_extents[d]` elements and advances the public flat index by `public_strides[d]`.
struct ParameterLayout {
    ParameterSpec spec;
    std::vector<int64_t> internal_extents;
    std::vector<int64_t> public_strides;
};

struct LoweredPipeline {
    Halide::Pipeline pipeline;
    std::vector<Halide::Argument> arguments;  // in call order, outputs excluded
    // The same arguments as the pipeline reads them: binding a buffer or value to each runs the
    // pipeline with Halide's JIT (the autotuner does).
    std::vector<Halide::Internal::Parameter> parameters;
};

// A model runs as a program: a sequence of calls to kernels, each one Halide pipeline holding one
// layer (with the activation or pool fused into it) forward or backward. Kernels of layers with
// the same shapes and attributes are one kernel, compiled once. The generated library holds the
// tensors between the calls.
//
// Where each argument of a call comes from, or each output goes:
enum class SlotKind {
    images,         // the caller's images (c, x, y, n)
    labels,         // int32 (n)
    tensor,         // the program's tensor `index`
    value,          // parameter `index` as the step reads it
    velocity,       // its SGD momentum
    new_value,      // where the step writes parameter `index` (or a state tensor's next value)
    new_velocity,   //
    loss,           // 0-D float
    correct,        // 0-D int32
    probabilities,  // (k, n)
    learning_rate,
    momentum,
    weight_decay,
    step_seed,             // uint32: the step's random numbers (dropout masks, augmentation) come from it
    dropout_enabled,       // bool
    augmentation_enabled,  // bool
    augmented_images,      // the caller's buffer for augmented images (c, x, y, n)
    prepared,              // the program's prepared tensor `index` (Program::prepared), flat float
};

struct Slot {
    SlotKind kind = SlotKind::tensor;
    int index = -1;
};

// An intermediate tensor of the program: per-sample extents in Halide order (times the batch when
// `batched`), float32 or uint8 (max-pool argmax).
struct ProgramTensor {
    std::string name;
    std::vector<int64_t> extents;
    bool batched = true;
    bool is_uint8 = false;
    // A view: the tensor is channels [channel_offset, channel_offset + extents[0]) of `storage`
    // (an image tensor of the same width, height and batch that is not a view itself), so its rows
    // are `storage`'s channel count apart. A concatenation's inputs are written this way, straight
    // into their slices of its tensor, and the concatenation costs no copy. -1: its own memory.
    int storage = -1;
    int64_t channel_offset = 0;
};

// Weights a conv's inference kernel reads as a preparation call left them (in blocks of output
// channels, or Winograd-transformed, with a folded batch norm applied: conv2d_prepare_weights),
// computed once per change of the parameters rather than by every prediction. One flat float
// array whose layout each target's kernels choose (the block width is the target's vector width),
// so it is sized for the largest.
struct PreparedTensor {
    std::string name;
    int64_t elements = 0;  // enough for the layout of each target the program was planned for
    int64_t bound = 0;     // enough for every algorithm the conv's schedules may choose (the tuner's candidates)
};

struct KernelCall {
    int kernel = -1;
    std::vector<Slot> slots;  // the kernel's arguments then its outputs, in signature order
    int outputs = 0;          // how many of the slots, at the end, are outputs
    std::string what;         // "forward conv1", for errors and profiles
    // Multiply-adds the call does, roughly: per sample, and once per call whatever the batch (an
    // optimiser's update). A library runs a call this small on the calling thread alone, where
    // waking the thread pool would cost more than it saves.
    int64_t work_per_sample = 0;
    int64_t work_per_call = 0;
};

struct Program {
    std::vector<ProgramTensor> tensors;
    std::vector<std::string> kernels;  // a description of each distinct kernel
    std::vector<KernelCall> calls;
    // Inference: the calls that compute the prepared tensors from the parameters, to be run before
    // `calls` whenever the parameters changed since they last ran.
    std::vector<PreparedTensor> prepared;
    std::vector<KernelCall> preparation_calls;
    // Training: whether the step writes parameter p's new value; frozen layers' parameters it does not.
    std::vector<bool> parameter_updated;
    // Layers whose output the program keeps whole in one of its tensors (after the layer
    // rewrites): (layer name, tensor), in layer order.
    std::vector<std::pair<std::string, int>> layer_outputs;
    // Builds kernel `k` for a target; safe to call from several threads at once.
    std::function<LoweredPipeline(int k, const Halide::Target& target)> build;
};

struct LoweringOptions {
    // Both are read each time Program::build builds a kernel, so the autotuner can change the
    // database between builds and see which parameterised stages a kernel has.
    const schedules::ScheduleDatabase* database = nullptr;
    std::vector<schedules::TunableStage>* tunable_stages = nullptr;
    // Kernels without convgen's schedules, for one of Halide's autoschedulers.
    bool unscheduled = false;
    // Concatenations assembled in place (see ProgramTensor::storage). Off for a GPU library,
    // whose tensors each have a device allocation of their own.
    bool concat_in_place = true;
    // The targets the program's kernels will be built for (none: the host), for the size of the
    // prepared tensors. A GPU target prepares none.
    std::vector<Halide::Target> targets;
    // Inference: prepared tensors (see PreparedTensor) where the schedules read a conv's weights
    // in another layout. Off, every prediction lays them out itself (as an autoscheduled kernel
    // does, in the comparison with Halide's autoschedulers).
    bool prepare_weights = true;

    // As a library generated for `targets` is planned (emit_library, and the tuner planning
    // candidates for one target), so that its calls are the ones the library makes.
    static LoweringOptions for_library(const std::vector<Halide::Target>& targets,
                                       const schedules::ScheduleDatabase* database) {
        LoweringOptions options;
        options.database = database;
        options.concat_in_place = targets.empty() || !targets.front().has_gpu_feature();
        options.targets = targets;
        return options;
    }
};

// The model's graph after the rewrites codegen applies before lowering, layer names kept:
// - an activation feeding only a max-pool is moved after it (max commutes with a monotone
//   activation), so the pool reads the conv directly and the activation runs on the smaller
//   pooled tensor;
// - a softmax output is dropped (the loss and the inference output apply it);
// - in inference, dropout is dropped, and a batch norm that is the only consumer of a conv is
//   folded into it (listed in folded_batch_norm under the conv's new id).
struct CanonicalGraph {
    Graph graph;
    int output_node = -1;
    std::map<int, Node> folded_batch_norm;  // conv node -> the batch-norm node folded into it
    // Each layer of the model whose values some node here computes -> that node. Missing: an
    // activation moved after its pool, and a conv whose batch norm was folded into it.
    std::map<std::string, int> layer_values;
};
CanonicalGraph canonical_graph(const Model& model, bool training);

std::vector<ParameterLayout> parameter_layouts(const Model& model);

// The training step's augmentation alone: images in, augmented images out (so a caller can look
// at what the network sees). A model without augmentation gets a copy.
Program plan_augmentation(const Model& model);

// Inference: images in, class probabilities (k, n) out, parameters read.
Program plan_inference(const Model& model, const LoweringOptions& options = {});

// One training step: the augmentation of the images (where the model declares one), forward,
// softmax cross-entropy, backward, and the SGD update of every parameter (and the running statistics) from
// `value`/`velocity` into `new_value`/`new_velocity`.
Program plan_training_step(const Model& model, const LoweringOptions& options = {});

}  // namespace convgen::codegen
