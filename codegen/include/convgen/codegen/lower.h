// Lowering of a model's graph to Halide pipelines: the inference pass and the whole training step
// (forward, loss, adjoints, SGD update of every tensor) as one pipeline each, scheduled for a target.
#pragma once

#include <convgen/model.h>
#include <convgen/schedules/database.h>

#include <Halide.h>

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
};

struct LoweringOptions {
    Halide::Target target;
    const schedules::ScheduleDatabase* database = nullptr;
};

// The model's graph after the rewrites codegen applies before lowering: a ReLU feeding only a
// max-pool is moved after it (max commutes with a monotone activation), so the pool reads the
// conv directly and the ReLU runs on the 4x smaller pooled tensor. Layer names are kept.
Graph canonical_graph(const Model& model, int* output_node);

std::vector<ParameterLayout> parameter_layouts(const Model& model);

// Arguments: images (c, x, y, n) float, then each parameter. Output: class probabilities (k, n).
LoweredPipeline lower_inference(const Model& model, const LoweringOptions& options);

// Arguments: images, labels (n) int32, learning_rate, momentum, weight_decay, then for each
// parameter its value and its velocity. Outputs: loss (0-D), correct predictions (0-D int32),
// then for each parameter its new value and new velocity.
LoweredPipeline lower_training_step(const Model& model, const LoweringOptions& options);

}  // namespace convgen::codegen
