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
// Convolutions not fused into a pool, with a multiple of 8 output channels, are the exception: a
// register tile per thread (below).
#include <convgen/schedules/gpu.h>

#include "../cpu/heuristics.h"

#include <algorithm>
#include <stdexcept>

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

// A conv's parameters on the GPU: `lanes` threads of a block (a warp, or a quarter or half of
// one) take as many adjacent output channels; each thread accumulates a tile of tile_x x tile_y output pixels
// of its channel in registers, so every weight it loads feeds tile_x * tile_y FMAs; the
// reduction over input channels runs in chunks of `chunk`, and with `stage_input` each chunk's
// input window is first copied into shared memory by the block's threads (the taps of
// neighbouring pixels overlap, and every lane reads the same input). The tiles divide the output
// extents, so the accumulators have constant extents and stay in registers.
ParameterSpace register_tile_space(const ConvGeometry& g) {
    const int64_t group_inputs = g.in_channels / g.groups;
    std::vector<int> lanes;
    for (int l : {8, 16, 32}) {
        if (g.out_channels % l == 0) lanes.push_back(l);
    }
    return {{"lanes", lanes},
            {"tile_x", cpu::divisors(g.out_width, 8)},
            {"tile_y", cpu::divisors(g.out_height, 8)},
            {"chunk", cpu::divisors(group_inputs, 32)},
            {"stage_input", {0, 1}}};
}

ScheduleParameters register_tile_defaults(const ConvGeometry& g, const ParameterSpace& space) {
    auto largest_at_most = [](const std::vector<int>& values, int limit) {
        int best = values.front();
        for (int v : values) {
            if (v <= limit) best = v;
        }
        return best;
    };
    const int tile_x = largest_at_most(space.at("tile_x"), g.out_width <= 8 ? 8 : 4);
    const int tile_y = largest_at_most(space.at("tile_y"), std::max(1, 16 / tile_x));
    return {{"lanes", space.at("lanes").back()},
            {"tile_x", tile_x},
            {"tile_y", tile_y},
            {"chunk", largest_at_most(space.at("chunk"), 16)},
            {"stage_input", g.in_channels / g.groups >= 8 ? 1 : 0}};
}

void register_tiled_conv(Conv2dForwardStages s, const ScheduleParameters& p) {
    Func conv = s.output;
    const std::vector<Var> v = conv.args();
    const Var &c = v[0], &x = v[1], &y = v[2], &n = v[3];
    const int lanes = p.at("lanes"), tile_x = p.at("tile_x"), tile_y = p.at("tile_y");

    // The stored result: one block per (tile of pixels, group of `lanes` channels, image).
    Func result = conv.in();
    Var xo("xo"), xi("xi"), yo("yo"), yi("yi"), co("co"), ci("ci"), block("block");
    result.compute_root()
        .split(x, xo, xi, tile_x)
        .split(y, yo, yi, tile_y)
        .split(c, co, ci, lanes)
        .reorder(xi, yi, ci, xo, yo, co, n)
        .fuse(xo, yo, block)
        .fuse(block, co, block)
        .fuse(block, n, block)
        .gpu_blocks(block)
        .gpu_lanes(ci)
        .unroll(xi)
        .unroll(yi);

    // The accumulators: each lane's tile, in registers (an allocation in registers indexed by the
    // lane is split among the lanes of the warp, which only gpu_lanes does). Inside the lane loop,
    // the reduction over the chunk's channels and the taps, unrolled over the tile; outside it,
    // the chunks (at which the block stages its input).
    conv.compute_at(result, block)
        .store_in(Halide::MemoryType::Register)
        .reorder(x, y, c, n)
        .gpu_lanes(c)
        .unroll(x)
        .unroll(y);
    const Halide::RDom& r = s.reduction;  // (input channel of the group, kx, ky)
    RVar rco("rco"), rci("rci");
    conv.update()
        .split(r.x, rco, rci, p.at("chunk"))
        .reorder(x, y, r.y, r.z, rci, c, rco, n)
        .gpu_lanes(c)
        .unroll(x)
        .unroll(y)
        .unroll(r.y)
        .unroll(r.z);

    if (p.at("stage_input")) {
        // The chunk's input window, copied into shared memory by the block's threads, in order.
        Func staged = s.padded_input.in(conv);
        const std::vector<Var> sv = staged.args();
        Var flat("flat"), rest("rest"), lane("lane");
        staged.compute_at(conv, rco)
            .fuse(sv[0], sv[1], flat)
            .fuse(flat, sv[2], flat)
            .fuse(flat, sv[3], flat)
            .split(flat, rest, lane, lanes, TailStrategy::GuardWithIf)
            .gpu_lanes(lane);
    }
}

}  // namespace

// The threads of a block read neighbouring output channels' weights in one transaction as they
// are; the direct sum (Winograd's transforms have no GPU schedule here).
ConvAlgorithm conv2d_algorithm(const Context&, const ConvGeometry&, bool) {
    return {};
}

ConvAlgorithm conv2d_input_grad_algorithm(const Context&, const ConvGeometry&) {
    return {};
}

ConvAlgorithm conv2d_weight_grad_algorithm(const Context&, const ConvGeometry&) {
    return {};
}

// conv2d_algorithm reads the weights as they are: a GPU library prepares none.
void schedule_conv2d_preparation(Conv2dPreparationStages, const Context&) {
    throw std::logic_error("conv2d: prepared weights asked of a GPU schedule, whose algorithm reads them as they are");
}

bool schedule_conv2d_forward(Conv2dForwardStages s, const Context& context, const PoolForwardStages* pool,
                             bool row_consumer) {
    if (pool) {
        // Each pool thread computes the conv outputs of its window and their maximum.
        Func p_out = pool->output;
        p_out.compute_root();
        const Var thread = tile_all(p_out);
        s.output.compute_at(p_out, thread);
        return false;
    }
    const ConvGeometry& g = s.geometry;
    const ParameterSpace space = register_tile_space(g);
    if (space.at("lanes").empty()) {
        // Lanes must be a power of two dividing the channels, and fewer than 8 leave the warp
        // mostly idle: a thread per output element instead, computed in its consumer's threads
        // (its epilogue, in one kernel) where it can be.
        if (row_consumer) return true;
        stored(s.output);
        return false;
    }
    // The tile is stored whole; its epilogue reads it in the next kernel.
    register_tiled_conv(s, cpu::choose(context, cpu::conv_forward_signature(context, g, false),
                                       register_tile_defaults(g, space), space));
    return false;
}

bool schedule_conv2d_backward(Conv2dBackwardStages s, const Context& context, bool row_consumer) {
    (void)context;
    (void)row_consumer;
    const ConvGeometry& g = s.geometry;
    if (s.weight_grad.defined()) {
        split_over_batch(s.weight_grad, g.out_channels * (g.in_channels / g.groups) * g.kernel * g.kernel);
    }
    if (s.bias_grad.defined()) split_over_batch(s.bias_grad, g.out_channels);
    if (s.input_grad.defined()) stored(s.input_grad);
    return false;
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
    stored(s.sum);  // guarded, never past the last output; the zero-extended output inlined
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
