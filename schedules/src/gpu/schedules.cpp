// CUDA schedules. Every stored stage is one kernel whose threads each compute one element of it,
// its whole reduction in registers: the pure dimensions are fused into one loop and split over
// blocks of threads, so any extent, the runtime batch included, maps onto the grid and no loop is
// left on the host (a dimension left out of the GPU tiling would launch a kernel per value). Stages
// the CPU schedules store as zero-extended copies are inlined here: a boundary select costs a GPU
// thread less than a launch and a round trip through memory. Channels are innermost, so adjacent
// threads touch adjacent channels: coalesced loads and stores, and a tap of the input shared by a
// warp's output channels is one broadcast. Reductions with few outputs and long sums (weight and
// bias gradients, batch statistics) are split over chunks of the batch first (rfactor), so the
// grid has enough threads to fill the GPU, then the chunks are summed by a second kernel.
#include <convgen/schedules/gpu.h>

#include <algorithm>

namespace convgen::schedules::gpu {

using Halide::Func;
using Halide::RVar;
using Halide::TailStrategy;
using Halide::Var;

namespace {

constexpr int threads_per_block = 128;
// Threads a split reduction aims at: enough to fill an H100 (132 SMs x 2048 resident threads).
constexpr int64_t target_threads = int64_t(1) << 18;
// The batch a split reduction assumes when it sizes its chunks (the real one is known at run time).
constexpr int64_t assumed_batch = 128;

// The loop a kernel output's threads run; a stage computed at it is computed per output element.
Var output_thread() {
    return Var("output_thread");
}

// Fuses `vars` (innermost first) of `stage` into one loop and spreads it over blocks of threads.
// Returns the thread loop.
Var flat_tile(Halide::Stage stage, const std::vector<Var>& vars, const Var& thread) {
    Var flat = vars[0];
    for (size_t d = 1; d < vars.size(); d++) {
        Var fused(flat.name() + "_" + vars[d].name());
        stage.fuse(flat, vars[d], fused);
        flat = fused;
    }
    Var block(flat.name() + "_block");
    stage.gpu_tile(flat, block, thread, threads_per_block, TailStrategy::GuardWithIf);
    return thread;
}

// A stage's every definition on the GPU, as the pipeline's output or a stored stage: the pure
// definition and each update tiled over the pure dimensions, reductions serial in each thread.
// A 0-D Func runs on one GPU thread. Returns the pure definition's thread loop.
Var tile_all(Func f, const Var& thread = Var("thread")) {
    const std::vector<Var> vars = f.args();
    if (vars.empty()) {
        f.gpu_single_thread();
        for (int u = 0; u < f.num_update_definitions(); u++) f.update(u).gpu_single_thread();
        return thread;
    }
    flat_tile(f, vars, thread);
    for (int u = 0; u < f.num_update_definitions(); u++) flat_tile(f.update(u), vars, Var(thread.name() + "_u"));
    return thread;
}

// A stored stage. With updates (a reduction), the stage is computed per element inside a stored
// wrapper, so the initial value and every term of the sum stay in one thread's registers: one
// kernel instead of one per definition, and no round trip through memory between them.
void stored(Func f) {
    if (f.num_update_definitions() == 0 || f.args().empty()) {
        f.compute_root();
        tile_all(f);
        return;
    }
    Func wrapper = f.in();
    wrapper.compute_root();
    const Var thread = tile_all(wrapper);
    f.compute_at(wrapper, thread);
}

// A sum `f` over rvars whose last one runs over the batch, with `outputs` elements: split into
// chunks of the batch summed in parallel (each chunk one thread's serial sum), then the chunks.
void split_over_batch(Func f, int64_t outputs) {
    const std::vector<RVar> r = f.rvars();
    int chunk = 1;
    while (chunk < 32 && outputs * (assumed_batch / chunk) > target_threads) chunk *= 2;
    if (r.empty() || outputs * assumed_batch < 4 * threads_per_block) {
        stored(f);
        return;
    }
    RVar chunks("chunks"), within("within");
    Var u("u");
    Func partial = f.update().split(r.back(), chunks, within, chunk, TailStrategy::GuardWithIf).rfactor(chunks, u);
    stored(partial);
    stored(f);
}


}  // namespace

bool schedule_conv2d_forward(Conv2dForwardStages s, const Context& context, const PoolForwardStages* pool,
                             bool row_consumer) {
    (void)context;
    if (pool) {
        // Each pool thread computes the conv outputs of its window and their maximum.
        Func p_out = pool->output;
        p_out.compute_root();
        const Var thread = tile_all(p_out);
        s.output.compute_at(p_out, thread);
        return false;
    }
    // The consumer's threads compute the conv per element, with its epilogue, in one kernel.
    if (row_consumer) return true;
    stored(s.output);
    return false;
}

void schedule_conv2d_backward(Conv2dBackwardStages s, const Context& context) {
    (void)context;
    const ConvGeometry& g = s.geometry;
    if (s.weight_grad.defined()) {
        split_over_batch(s.weight_grad, g.out_channels * (g.in_channels / g.groups) * g.kernel * g.kernel);
    }
    if (s.bias_grad.defined()) split_over_batch(s.bias_grad, g.out_channels);
    if (s.input_grad.defined()) stored(s.input_grad);
}

void schedule_pool_forward(PoolForwardStages s, const Context& context) {
    (void)context;
    stored(s.output);
}

void schedule_pool_backward(PoolBackwardStages s, const Context& context) {
    (void)context;
    stored(s.input_grad);
}

void schedule_dense_forward(DenseForwardStages s, const Context& context) {
    (void)context;
    stored(s.output);
}

void schedule_dense_backward(DenseBackwardStages s, const Context& context) {
    (void)context;
    // The weight and bias gradients sum over the batch: each thread one weight, the batch serial.
    if (s.weight_grad.defined()) stored(s.weight_grad);
    if (s.bias_grad.defined()) stored(s.bias_grad);
    if (s.input_grad.defined()) stored(s.input_grad);
}

void schedule_elementwise(ElementwiseStage stage, const Context& context) {
    (void)context;
    stored(stage.func);
}

void schedule_gradient_copy(Func copy, int64_t innermost_extent, const Context& context) {
    (void)innermost_extent;
    (void)context;
    tile_all(copy);
}

void schedule_sums_of_squares(const std::vector<Func>& sums, const Context& context) {
    (void)context;
    // Each 0-D sum over a whole gradient: slices of its outermost dimension summed in parallel,
    // then the slices on one thread.
    for (Func sum : sums) {
        const std::vector<RVar> r = sum.rvars();
        if (r.size() < 2) {
            stored(sum);
            continue;
        }
        Var u("u");
        Func partial = sum.update().rfactor(r.back(), u);
        stored(partial);
        stored(sum);
    }
}

void schedule_batch_norm(BatchNormStages s, const Context& context) {
    (void)context;
    split_over_batch(s.mean, s.channels);
    split_over_batch(s.variance, s.channels);
    stored(s.mean_of_batch);
    stored(s.variance_of_batch);
    stored(s.scale);
    stored(s.shift);
}

void schedule_batch_norm_backward(BatchNormBackwardStages s, const Context& context) {
    (void)context;
    stored(s.rstd);
    split_over_batch(s.grad_sum, s.channels);
    split_over_batch(s.grad_dot_normalised, s.channels);
}

void schedule_global_pool(GlobalPoolStages s, const Context& context) {
    (void)context;
    stored(s.sum);
}

void schedule_kernel_output(Func output, int64_t innermost_extent, const Context& context) {
    (void)innermost_extent;
    (void)context;
    tile_all(output, output_thread());
}

void compute_per_output_row(Func stage, Func output, const Context& context) {
    (void)context;
    stage.compute_at(output, output_thread());
}

void schedule_per_channel(Func func, const Context& context) {
    (void)context;
    stored(func);
}

void schedule_state_update(Func func, const Context& context) {
    (void)context;
    tile_all(func);
}

void schedule_augmentation(AugmentationStages stages, const Context& context) {
    (void)context;
    for (Func& f : stages.per_image) stored(f);
    for (Func& f : stages.resampled) stored(f);
}

void schedule_loss(LossStages s, const Context& context) {
    (void)context;
    stored(s.row_max);
    stored(s.row_sum);
    if (s.logits_grad.defined()) stored(s.logits_grad);
    // The 0-D outputs: sums over the batch, on one thread (a batch is at most a few thousand).
    if (s.loss.defined()) tile_all(s.loss);
    if (s.correct.defined()) tile_all(s.correct);
}

void schedule_parameter_update(ParameterUpdateStages s, const Context& context) {
    (void)context;
    tile_all(s.new_value);
    tile_all(s.new_velocity);
}

}  // namespace convgen::schedules::gpu
