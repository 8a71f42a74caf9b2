// CPU schedules, one function per stage kind. Each applies a parameterised schedule: the
// parameters come from the schedule database when it has the layer's signature, otherwise from
// the default heuristics in this folder.
#pragma once

#include <convgen/schedules/database.h>
#include <convgen/schedules/stages.h>

namespace convgen::schedules {

struct Context {
    Halide::Target target;
    bool training = false;
    const ScheduleDatabase* database = nullptr;  // may be null: heuristics only
    // When set, every parameterised stage scheduled is appended here (the autotuner's work list).
    std::vector<TunableStage>* tunable_stages = nullptr;
    // Leave every stage unscheduled, for one of Halide's autoschedulers to schedule (the
    // comparison with them): each schedule function then does nothing.
    bool unscheduled = false;

    int vector_width() const { return target.natural_vector_size<float>(); }
};

namespace cpu {

// `fused_pool`, when given, is the only consumer of the conv: the conv is computed inside the
// pool's loop nest, so no full-size conv output is ever stored. `row_consumer`: the caller can
// compute the conv a row at a time inside its consumer (an epilogue). Returns whether the
// schedule chose that (the caller then calls compute_per_output_row); otherwise it is stored whole.
bool schedule_conv2d_forward(Conv2dForwardStages stages, const Context& context, const PoolForwardStages* fused_pool,
                             bool row_consumer = false);
void schedule_conv2d_backward(Conv2dBackwardStages stages, const Context& context);
void schedule_pool_forward(PoolForwardStages stages, const Context& context);
void schedule_pool_backward(PoolBackwardStages stages, const Context& context);
void schedule_dense_forward(DenseForwardStages stages, const Context& context);
void schedule_dense_backward(DenseBackwardStages stages, const Context& context);
// A pointwise stage that is stored (computed at root): activation outputs, adjoints read by a
// reduction.
void schedule_elementwise(ElementwiseStage stage, const Context& context);
// Gradient clipping: a gradient written out for the update after the backward pass, and the
// 0-D sums of squares of all the gradients.
void schedule_gradient_copy(Halide::Func copy, int64_t innermost_extent, const Context& context);
void schedule_sums_of_squares(const std::vector<Halide::Func>& sums, const Context& context);
void schedule_batch_norm(BatchNormStages stages, const Context& context);
void schedule_batch_norm_backward(BatchNormBackwardStages stages, const Context& context);
void schedule_global_pool(GlobalPoolStages stages, const Context& context);
// A kernel's output written at the caller's exact extents: vectors over the innermost dim (guarded
// where it is not a whole number of vectors; only internal buffers may be rounded up), parallel
// over rows (y and n, for images) or samples.
void schedule_kernel_output(Halide::Func output, int64_t innermost_extent, const Context& context);
// `stage` computed a row at a time inside an output scheduled by schedule_kernel_output: a conv
// with its epilogue (bias, folded batch norm, residual add, activation) as one loop nest.
void compute_per_output_row(Halide::Func stage, Halide::Func output);
// A small per-channel vector (folded batch-norm scales), computed once per call.
void schedule_per_channel(Halide::Func func, const Context& context);
// A state tensor's new value (running statistics), a pipeline output.
void schedule_state_update(Halide::Func func, const Context& context);
// The augmentation's output is the kernel's output (scheduled by schedule_kernel_output).
void schedule_augmentation(AugmentationStages stages, const Context& context);
void schedule_loss(LossStages stages, const Context& context);
void schedule_parameter_update(ParameterUpdateStages stages, const Context& context);

}  // namespace cpu
}  // namespace convgen::schedules
