// CPU schedules in the style of Halide's apps/conv_layer: channels innermost and vectorised,
// a register tile of (channel vectors x output pixels) per reduction step, parallel over rows
// of the batch. Internal buffers may be rounded up to whole vectors: the algorithm zero-extends
// every tensor read through a boundary, so lanes past the last channel compute harmless zeros.
#include "heuristics.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <stdexcept>

namespace convgen::schedules::cpu {

using Halide::Func;
using Halide::RVar;
using Halide::TailStrategy;
using Halide::Var;

namespace {

// AVX-512's 32 vector registers, whichever of its feature sets the target names (a library's
// AVX-512 variant names avx512_skylake, not avx512): a 16-float vector means AVX-512.
int registers(const Context& context) {
    return context.vector_width() >= 16 ? 32 : 16;
}

int vectors_for(int64_t channels, int width) {
    return static_cast<int>((channels + width - 1) / width);
}

// Vectors along the channels of a copy, or along x where there is one channel (grey images).
void vectorize_copy(Func f, int vector_width, int64_t innermost_extent) {
    const std::vector<Var> v = f.args();
    if (innermost_extent % vector_width == 0) {
        f.vectorize(v[0], vector_width);
    } else if (innermost_extent == 1 && v.size() == 4) {
        f.vectorize(v[1], vector_width, TailStrategy::GuardWithIf);
    }
}

// A zero-extended copy of a tensor, computed once per call; the select of the boundary stays out
// of the consumer's inner loop.
void copy_at_root(Func f, int vector_width, int64_t innermost_extent) {
    f.compute_root();
    vectorize_copy(f, vector_width, innermost_extent);
    // Copies are cheap per row: one task per sample, so that scheduling a task costs less than it does.
    f.parallel(f.args().back());
}

// Pure vars of a stored feature/image tensor: vectorise the innermost, parallel over the batch.
void stored_elementwise(Func f, int vector_width) {
    f.compute_root();
    const std::vector<Var> v = f.args();
    f.vectorize(v[0], vector_width, TailStrategy::RoundUp);
    if (v.size() >= 2) f.parallel(v.back());  // one task per sample, as for copies
}

// Dims v[first], v[first + 1], ... of a stage fused into one loop (innermost first), returned:
// one parallel loop over several short outer dims.
Var fused_dims(Halide::Stage stage, const std::vector<Var>& v, size_t first) {
    Var outer = v[first];
    for (size_t d = first + 1; d < v.size(); d++) {
        Var fused(outer.name() + "_" + v[d].name());
        stage.fuse(outer, v[d], fused);
        outer = fused;
    }
    return outer;
}

// A copy of a weight Func for `consumer`, stored with its second dim innermost. With
// `padded_extent`, that dim is computed over [0, padded_extent) so that every lane a rounded-up
// vector loop reads is written (the weight Func must then be defined there: zero-extended).
// In parallel over its last dim where it has more than two: LeNet-5's dense1 weights (48K) took
// 1% of a training step on one thread while the other waited.
void transposed_copy(Func weight, Func consumer, int64_t padded_extent = 0) {
    Func copy = weight.in(consumer);
    const std::vector<Var> v = copy.args();
    std::vector<Var> order = v;
    std::swap(order[0], order[1]);
    copy.compute_root().reorder_storage(order);
    if (padded_extent > 0) copy.bound(v[1], 0, static_cast<int>(padded_extent));
    if (v.size() > 2) copy.parallel(v.back());
}

// Default parameters of a conv-shaped register tile (a forward conv, or the input gradient)
// over `channels` vectorised channels of rows `width` pixels wide.
ScheduleParameters register_tile_defaults(const Context& context, int64_t channels, int64_t width, int64_t kernel) {
    const int channel_vectors = vectors_for(channels, context.vector_width());
    const RegisterTile tile = channel_vectors == 1
                                  ? RegisterTile{1, register_tile_width(width, 1, registers(context) - int(kernel))}
                                  : choose_register_tile(channel_vectors, width, registers(context));
    return {{"tile_x", tile.tile_x},
            {"channel_block", tile.channel_block},
            {"unroll_kx", kernel <= 7 ? 1 : 0},
            {"blocks_outer", 0}};
}

// Every register tile of such a stage: up to a register file of pixels, blocks of channel
// vectors that divide them (a block never reaches past the last channel vector) and fit in the
// registers with a pixel of accumulators each.
// `blocks_outer` (a stage that may be stored whole, with enough channel blocks to run in
// parallel): the blocks are the outer, parallel loop and every row of the output is computed
// inside one, so a block's weights are loaded once for all rows instead of once per row. It pays
// where the weights outgrow the caches and the rows are few: deep layers on small maps.
ParameterSpace register_tile_space(const Context& context, int64_t channels, int64_t width, bool may_store_whole) {
    std::vector<int> tiles;
    for (int t = 1; t <= std::min<int64_t>(width, registers(context) - 2); t++) tiles.push_back(t);
    const int channel_vectors = vectors_for(channels, context.vector_width());
    return {{"tile_x", tiles},
            {"channel_block", divisors(channel_vectors, (registers(context) - 1) / 2)},
            {"unroll_kx", {0, 1}},
            {"blocks_outer", may_store_whole && channel_vectors >= 4 ? std::vector<int>{0, 1} : std::vector<int>{0}}};
}

// The register tile of a conv-shaped update over (c, x, ...) with reduction r = (channel, kx, ky):
// channel vectors x tile_x pixels of accumulators, the reduction around them, `outer` outside.
// With one channel vector every FMA needs its own broadcast; unrolling the kx taps inside the
// pixel tile (`share_kx`) lets tile_x + k - 1 broadcasts of a row serve all tile_x * k FMAs.
// With several, a block of them stays inside the reduction and the other blocks go outside
// (outside `outer` too, and parallel, with `blocks_outer`; the caller then leaves `outer` serial).
// Returns the loop over channel blocks (split from c whenever there are several channel vectors).
Var register_tiled(Halide::Stage update, const Var& c, const Var& x, const Halide::RDom& r,
                   const std::vector<Halide::VarOrRVar>& outer, int channel_vectors, bool share_kx,
                   const ScheduleParameters& p, int vector_width) {
    Var xo("xo"), xi("xi"), co("co"), ci("ci"), coo("coo"), coi("coi");
    update.split(x, xo, xi, p.at("tile_x"), TailStrategy::RoundUp)
        .split(c, co, ci, vector_width, TailStrategy::RoundUp);
    std::vector<Halide::VarOrRVar> order;
    const bool blocks_outer = p.at("blocks_outer") != 0;
    if (channel_vectors == 1 && share_kx && p.at("unroll_kx")) {
        order = {ci, xi, r.y, co, r.x, r.z, xo};
        order.insert(order.end(), outer.begin(), outer.end());
        update.unroll(r.y);
    } else {
        update.split(co, coo, coi, p.at("channel_block"), TailStrategy::RoundUp).unroll(coi);
        order = {ci, xi, coi, r.x, r.y, r.z, xo};
        if (!blocks_outer) order.push_back(coo);
        order.insert(order.end(), outer.begin(), outer.end());
        if (blocks_outer) order.push_back(coo);
    }
    update.reorder(order).vectorize(ci).unroll(xi);
    if (blocks_outer) update.parallel(coo);
    return coo;
}

// `x_vectors` > 0: a conv-shaped stage (a forward conv over its outputs, an input gradient over
// its inputs) vectorised along x instead of along its `channels`, that many vectors per register
// tile, and every channel an accumulator of its own. Fewer channels than half a vector (LeNet-5's
// conv1 writes 6, its conv2 reads 6, in 16 lanes) waste most of a channel vector. Stride 1, no
// dilation and no groups: a vector of x then reads one contiguous run of a copy stored x innermost.
void x_vectors_choice(const Context& context, const ConvGeometry& g, int64_t channels, int64_t width,
                      ScheduleParameters& defaults, ParameterSpace& space) {
    const int vw = context.vector_width();
    const int max_x_vectors =
        std::min(vectors_for(width, vw), (registers(context) - 3) / static_cast<int>(std::max<int64_t>(channels, 1)));
    space["x_vectors"] = {0};
    defaults["x_vectors"] = 0;
    if (g.stride == 1 && g.dilation == 1 && g.groups == 1 && channels < vw && max_x_vectors >= 1) {
        for (int k = 1; k <= max_x_vectors; k++) space["x_vectors"].push_back(k);
        if (2 * channels <= vw && 2 * width >= vw) defaults["x_vectors"] = max_x_vectors;
    }
}

// A zero-extended copy read by a stage vectorised along x: stored x innermost, in vectors along x.
void stored_along_x(Func copy, int vector_width) {
    const std::vector<Var> v = copy.args();
    copy.reorder(v[1], v[0], v[2], v[3])
        .reorder_storage(v[1], v[0], v[2], v[3])
        .vectorize(v[1], vector_width, TailStrategy::RoundUp);
}

// The register tile of a conv-shaped update vectorised along x: x_vectors vectors of x by every
// one of `channels` channels (by `parts`, if any: a split sum's parts, output rows) inside the
// `reduction`, then the tiles along x and the channels, `outer` outside.
void x_vector_tiled(Halide::Stage update, const Var& c, const Var& x, int64_t channels, int x_vectors,
                    const std::vector<Halide::VarOrRVar>& parts, const std::vector<Halide::VarOrRVar>& reduction,
                    const std::vector<Halide::VarOrRVar>& outer, int vector_width) {
    Var xo("xo"), xt("xt"), xm("xm"), xi("xi"), co("co"), ci("ci");
    std::vector<Halide::VarOrRVar> order = {xi, ci};
    order.insert(order.end(), parts.begin(), parts.end());
    order.push_back(xm);
    order.insert(order.end(), reduction.begin(), reduction.end());
    order.insert(order.end(), {xo, co});
    order.insert(order.end(), outer.begin(), outer.end());
    update.split(x, xo, xt, vector_width * x_vectors, TailStrategy::RoundUp)
        .split(xt, xm, xi, vector_width)
        .split(c, co, ci, static_cast<int>(channels), TailStrategy::RoundUp)
        .reorder(order)
        .vectorize(xi)
        .unroll(ci)
        .unroll(xm);
    for (const Halide::VarOrRVar& part : parts) update.unroll(part);
}

TailStrategy channel_tail(int64_t channels, int vector_width) {
    return channels % vector_width == 0 ? TailStrategy::RoundUp : TailStrategy::GuardWithIf;
}

// f(c) = 0; f(c) += e(c, r): a per-channel sum over the batch, r = (x, y, n) for images or (n)
// for features. Images are summed a row at a time in parallel, then the row sums are added up:
// parallel, and more accurate than one long serial sum. `tail`: RoundUp where e is defined past
// the last channel. Returns the row sums' Func (undefined for features), whose update loops over
// `channel_sum_row()` inside the parallel images.
Var channel_sum_row() {
    return Var("rows_y");
}

Func channel_sum(Func f, TailStrategy tail, const Context& context) {
    const int vw = context.vector_width();
    const Var c = f.args()[0];
    f.compute_root().vectorize(c, vw, tail);
    const std::vector<RVar> r = f.rvars();
    if (r.size() != 3) {
        f.update().vectorize(c, vw, tail);
        return Func();
    }
    Var rows_y = channel_sum_row(), rows_n("rows_n"), ci("ci"), co("co");
    Func rows = f.update().rfactor({{r[1], rows_y}, {r[2], rows_n}});
    rows.compute_root().vectorize(c, vw, tail).parallel(rows_n);
    rows.update().split(c, co, ci, vw, tail).reorder(ci, r[0], co, rows_y, rows_n).vectorize(ci).parallel(rows_n);
    f.update().vectorize(c, vw, tail);
    return rows;
}

// A conv fused into its max pool: the pool owns the loop nest and the conv rows one pool row needs
// are computed inside it. A consumer that takes the pool a row at a time (`inside_consumer`: its
// ReLU, a residual add) computes it inside its own row loop, so no pooled tensor is stored and
// read back; otherwise the pool is stored, parallel over its rows.
// `row_chunks` > 0 (stored pools only): the pool's rows of each image in that many parallel chunks,
// the conv stored per chunk and computed a pool row at a time inside it, so that the conv rows
// neighbouring windows share (a 3x3 window of stride 2 shares one with the next) are computed once
// (Halide's sliding window), not once per window: only each chunk's first row is computed twice.
// `along_x`: the conv is vectorised along x, and the pool too, stored x innermost.
void compute_in_pool(Func conv, const PoolForwardStages& pool, bool inside_consumer, bool along_x, int vector_width,
                     int row_chunks) {
    Func p_out = pool.output;
    const std::vector<Var> pv = p_out.args();
    if (along_x) {
        p_out.reorder(pv[1], pv[0], pv[2], pv[3]).reorder_storage(pv[1], pv[0], pv[2], pv[3]);
        p_out.vectorize(pv[1], vector_width, TailStrategy::RoundUp);
    } else {
        p_out.vectorize(pv[0], vector_width, TailStrategy::RoundUp);
    }
    if (inside_consumer) {
        conv.compute_at(p_out, pv[2]);
        return;
    }
    p_out.compute_root();
    Var rows("rows");
    if (row_chunks > 0) {
        Var chunk("chunk"), row("row");
        const int chunk_rows = static_cast<int>((pool.geometry.out_height + row_chunks - 1) / row_chunks);
        p_out.split(pv[2], chunk, row, chunk_rows, TailStrategy::GuardWithIf).fuse(chunk, pv[3], rows).parallel(rows);
        conv.store_at(p_out, rows).compute_at(p_out, row);
    } else {
        p_out.fuse(pv[2], pv[3], rows).parallel(rows);
        conv.compute_at(p_out, rows);
    }
}

// Whether a conv may run as Winograd's F(m x m, 3x3) (`winograd`), with which tile
// (`winograd_outputs`, m = 2 or 4), whether it does by default, and the product's own register
// tile (`winograd_tile_x` tiles of m pixels by `winograd_channel_block` vectors) and loop order
// (`winograd_whole`: the product stored whole, its elements and channel blocks the outer parallel
// loop). Keys of their own, so that a stored direct schedule keeps its meaning. The transforms add
// work per element that only a product over enough channels repays, and U is 16/9 of the weights:
// where those outgrow the L2 cache (ResNet-18's 512-channel convs) the direct sum, which reads
// them once per channel block, stays the default. F(4x4) is the tuner's to choose where it
// measures faster: 2.25x fewer multiplies again, but its transforms' weights (4, 5, 1/6, 1/24)
// make its rounding errors several times F(2x2)'s (7x in a float32 simulation on 64-256
// channels), and its 36 transformed elements a tile cost more per multiply saved. It is offered
// only where the conv is stored whole (not under a fused pool, whose rows would start mid-tile),
// its output rounded up to whole tiles.
bool winograd_offered(const ConvGeometry& g) {
    return g.kernel == 3 && g.stride == 1 && g.dilation == 1 && g.groups == 1 && g.padding >= 0 &&
           g.out_width % 2 == 0 && g.out_height % 2 == 0;
}

void winograd_choice(const Context& context, const ConvGeometry& g, bool fused_pool, ScheduleParameters& defaults,
                     ParameterSpace& space) {
    const bool offered = winograd_offered(g);
    space["winograd"] = offered ? std::vector<int>{0, 1} : std::vector<int>{0};
    // In training every step transforms the weights afresh: worth it while they are small. A
    // prediction reads them transformed once per change of the parameters (prepared weights), and
    // F(2x2) then saves 5 of 9 multiplies per output for 16/9 as many weight bytes read: at this
    // host's ~400 GFLOP/s against ~20 GB/s that pays from about 60 outputs a map (ResNet-18's
    // 256-channel convs on 14x14 maps: 0.70 -> 0.55 ms at batch 1; not VGG's 512 channels on 4x4).
    const int64_t transformed_weight_bytes = 16 * g.out_channels * g.in_channels * 4;
    const bool transform_paid = transformed_weight_bytes <= (int64_t(2) << 20) ||
                                (!context.training && g.out_width * g.out_height >= 100);
    const bool repaid = g.in_channels >= 16 && g.out_channels >= 16 && transform_paid;
    defaults["winograd"] = offered && repaid ? 1 : 0;
    if (!offered) return;
    space["winograd_outputs"] = fused_pool || g.out_width < 4 || g.out_height < 4 ? std::vector<int>{2}
                                                                                 : std::vector<int>{2, 4};
    defaults["winograd_outputs"] = 2;
    const int64_t tiles = g.out_width / 2;
    const int channel_vectors = vectors_for(g.out_channels, context.vector_width());
    const RegisterTile tile = choose_winograd_tile(channel_vectors, tiles);
    std::vector<int> tile_widths;
    for (int t = 1; t <= std::min<int64_t>(tiles, registers(context) - 2); t++) tile_widths.push_back(t);
    space["winograd_tile_x"] = tile_widths;
    space["winograd_channel_block"] = divisors(channel_vectors, (registers(context) - 1) / 2);
    space["winograd_whole"] = {0, 1};
    // `winograd_input_per_row` (rows of tiles only): the zero-extended input copied for each row
    // of tiles, just before its transform reads it from the L1 cache, rather than whole at root
    // and read back from memory (m + 2 rows copied for m).
    space["winograd_input_per_row"] = {0, 1};
    defaults["winograd_input_per_row"] = 1;
    defaults["winograd_tile_x"] = tile.tile_x;
    defaults["winograd_channel_block"] = tile.channel_block;
    // Measured at batch 1 (ResNet-18): whole on 14x14 maps (256 channels), rows on 28x28 and up.
    defaults["winograd_whole"] = !context.training && g.out_width <= 16 ? 1 : 0;
}

// m of the Winograd tiles a stage's parameters choose, 0 for the direct sum.
int winograd_tile(const ScheduleParameters& p) {
    return p.at("winograd") != 0 ? p.at("winograd_outputs") : 0;
}

// The algorithm stored under `signature` (the parameters `choose_winograd` offers, only), else the
// heuristics'; its reduction reads its weights in blocks of `weight_block` output channels.
template <typename WinogradChoice>
ConvAlgorithm stored_algorithm(const Context& context, const std::string& signature, int weight_block,
                               WinogradChoice choose_winograd) {
    if (context.unscheduled) return {};
    ScheduleParameters defaults;
    ParameterSpace space;
    choose_winograd(defaults, space);
    return {weight_block, winograd_tile(stored_or_default(context, signature, std::move(defaults), space))};
}

// Where a schedule's parameters disagree with the algorithm its stages were defined with.
void check_winograd_tile(const char* stage, int defined, const ScheduleParameters& p) {
    if (winograd_tile(p) != defined) {
        throw std::logic_error(fmt::format("{}: defined with Winograd tiles of {}, scheduled with {} (0: the direct "
                                           "sum; the algorithm's choice and the schedule disagree)",
                                           stage, defined, winograd_tile(p)));
    }
}

// Whether a conv's weight gradient may run as Winograd's F(2x2, 3x3) transposed (`winograd`,
// WinogradWeightGradStages), whether it does by default, and its product's register tile
// (`winograd_o_block` output-channel vectors by `winograd_i_block` input channels) and batch chunks
// (`winograd_batch_chunk`), keys of their own beside the direct sum's. Only F(2x2): F(4x4)'s
// transforms (A's 8s and G's 1/24) would scale sums over a whole batch's tiles. Each tile's two
// transforms are adds only, and the product saves 20 of 36 multiplies per tile and channel pair:
// worth it from 32 channels each way. Measured alone at batch 128 (ms, direct -> Winograd):
// ResNet-20's layer2 (32 channels, 16x16) 2.67 -> 1.21, layer3 (64, 8x8) 1.60 -> 1.31-1.70, but
// layer1 (16, 32x32) 2.16 -> 2.5-2.9, its transforms as costly as its product.
void weight_grad_winograd_choice(const Context& context, const ConvGeometry& g, ScheduleParameters& defaults,
                                 ParameterSpace& space) {
    const bool offered = winograd_offered(g);
    space["winograd"] = offered ? std::vector<int>{0, 1} : std::vector<int>{0};
    defaults["winograd"] = offered && g.in_channels >= 32 && g.out_channels >= 32 ? 1 : 0;
    if (!offered) return;
    space["winograd_outputs"] = {2};
    defaults["winograd_outputs"] = 2;
    // Accumulators o_block * i_block, with o_block vectors loaded and one input broadcast a step.
    const std::vector<int> o_blocks = divisors(vectors_for(g.out_channels, context.vector_width()), 4);
    const int o_block = o_blocks.back();
    const std::vector<int> i_blocks = divisors(g.in_channels, registers(context) - 2);
    int i_block = 1;
    for (int b : i_blocks) {
        if (o_block * b <= registers(context) - o_block - 2) i_block = b;
    }
    space["winograd_o_block"] = o_blocks;
    space["winograd_i_block"] = i_blocks;
    space["winograd_batch_chunk"] = {2, 4, 8, 16};
    space["winograd_layout"] = {0, 1, 2};
    defaults["winograd_o_block"] = o_block;
    defaults["winograd_i_block"] = i_block;
    defaults["winograd_batch_chunk"] = 8;
    defaults["winograd_layout"] = 2;
}

}  // namespace

ConvAlgorithm conv2d_algorithm(const Context& context, const ConvGeometry& g, bool fused_pool) {
    return stored_algorithm(context, conv_forward_signature(context, g, fused_pool), context.vector_width(),
                            [&](ScheduleParameters& defaults, ParameterSpace& space) {
                                winograd_choice(context, g, fused_pool, defaults, space);
                            });
}

// The input gradient as Winograd's conv of the output gradient (input_grad_as_conv) where
// winograd_choice offers that conv, under the input gradient's own key.
ConvAlgorithm conv2d_input_grad_algorithm(const Context& context, const ConvGeometry& g) {
    return stored_algorithm(context, conv_signature("conv2d_input_grad", g, false), context.vector_width(),
                            [&](ScheduleParameters& defaults, ParameterSpace& space) {
                                winograd_choice(context, input_grad_as_conv(g), false, defaults, space);
                            });
}

ConvAlgorithm conv2d_weight_grad_algorithm(const Context& context, const ConvGeometry& g) {
    return stored_algorithm(context, conv_signature("conv2d_weight_grad", g, false), 0,
                            [&](ScheduleParameters& defaults, ParameterSpace& space) {
                                weight_grad_winograd_choice(context, g, defaults, space);
                            });
}

namespace {

// Winograd's U (lane, ci, ex, ey, block) stored whole: all of a filter's transformed elements at
// once, from its 9 taps read once.
void schedule_winograd_weight(Func weight, int block_width, int elements) {
    const std::vector<Var> u = weight.args();
    weight.compute_root().bound(u[0], 0, block_width).bound(u[2], 0, elements).bound(u[3], 0, elements);
    weight.reorder(u[0], u[2], u[3], u[1], u[4]).vectorize(u[0]).unroll(u[2]).unroll(u[3]).parallel(u[4]);
}

// Winograd's stages (conv2d_forward's WinogradStages): U once per call (unless prepared); V and the product M a row
// of tiles at a time (m rows of outputs), inside the output's rows, or with `winograd_whole` both
// whole at root, the product parallel over its (m + 2)^2 elements and channel blocks with every tile
// inside (U's block for one element stays in the L1 cache for all of them: small maps, many
// channels). The product is a 1x1 conv per element: the same register tile as the direct sum,
// channel vectors x tiles along x, the input channels inside it.
bool schedule_winograd_forward(const Conv2dForwardStages& s, const Context& context, const PoolForwardStages* pool,
                               bool row_consumer, const ScheduleParameters& p) {
    const ConvGeometry& g = s.geometry;
    const int vw = context.vector_width();
    const WinogradStages& w = s.winograd;
    const bool whole = p.at("winograd_whole") != 0;
    const int side = w.tile, elements = side + 2;

    if (!s.weights_prepared) schedule_winograd_weight(w.weight, vw, elements);

    Func out = s.output;
    const std::vector<Var> v = out.args();
    const Var &c = v[0], &x = v[1], &y = v[2], &n = v[3];
    // Each m x m block of outputs is one tile's: x % m and y % m are constants in the unrolled
    // loops. The output rounded up to whole tiles (F(4x4) on 14x14 maps computes 16x16).
    Var co("co"), ci("ci"), xo("xo"), xi("xi"), yo("yo"), yi("yi"), rows("rows");
    out.align_bounds(x, side).align_bounds(y, side);
    out.split(c, co, ci, vw, TailStrategy::RoundUp)
        .split(x, xo, xi, side)
        .split(y, yo, yi, side)
        .reorder(ci, xi, yi, co, xo, yo, n)
        .vectorize(ci)
        .unroll(xi)
        .unroll(yi);
    bool inside_consumer = false;
    Halide::LoopLevel tile_row;
    if (pool) {
        inside_consumer = row_consumer;
        compute_in_pool(out, *pool, inside_consumer, false, vw, 0);
        tile_row = Halide::LoopLevel(out, yo);
    } else {
        out.compute_root();
        out.fuse(yo, n, rows).parallel(rows);
        tile_row = Halide::LoopLevel(out, rows);
    }

    Func input = w.input, product = w.product;
    const std::vector<Var> vi = input.args();  // (ci, ex, ey, tx, ty, n)
    // A vector of channels at a time through all of a tile's elements, so that the unrolled
    // elements share their loads and their pass along x.
    Var vco("vco"), vci("vci");
    input.bound(vi[1], 0, elements).bound(vi[2], 0, elements);
    input.split(vi[0], vco, vci, vw, TailStrategy::RoundUp)
        .reorder(vci, vi[1], vi[2], vco)
        .vectorize(vci)
        .unroll(vi[1])
        .unroll(vi[2]);
    // The product's register tile is a Func of its own (the sum, computed per tile of the stored
    // copy the output transform reads), so that its accumulators start at zero in registers rather
    // than from a zeroed buffer in memory.
    Func stored = product.in();
    const std::vector<Var> m = stored.args();  // (co, ex, ey, tx, ty, n)
    const Var &mc = m[0], &ex = m[1], &ey = m[2], &tx = m[3], &ty = m[4], &mn = m[5];
    Var txo("txo"), txi("txi"), mco("mco"), mci("mci"), coo("coo"), coi("coi"), e("e"), task("task");
    stored.split(tx, txo, txi, p.at("winograd_tile_x"), TailStrategy::RoundUp)
        .split(mc, mco, mci, vw, TailStrategy::RoundUp)
        .split(mco, coo, coi, p.at("winograd_channel_block"), TailStrategy::RoundUp)
        .vectorize(mci)
        .unroll(txi)
        .unroll(coi);
    if (whole) {
        copy_at_root(s.padded_input, vw, g.in_channels);
        input.compute_root().fuse(vi[4], vi[5], rows).parallel(rows);
        stored.compute_root()
            .reorder(mci, txi, coi, txo, ty, mn, coo, ex, ey)
            .fuse(ex, ey, e)
            .fuse(coo, e, task)
            .parallel(task);
    } else {
        input.compute_at(tile_row);
        stored.compute_at(tile_row).reorder(mci, txi, coi, txo, coo, ex, ey, ty, mn);
        if (p.at("winograd_input_per_row")) {
            Func padded = s.padded_input;
            padded.compute_at(tile_row);
            vectorize_copy(padded, vw, g.in_channels);
        } else {
            copy_at_root(s.padded_input, vw, g.in_channels);
        }
        // A row's V and M on the stack up to 512 KB (README: Threads): from the heap, each row's
        // two blocks went through the library's allocator (the conv3x3 layer: 4,096 a call; 1.1x
        // slower when it took one lock for every thread).
        const int64_t tiles = (g.out_width + side - 1) / side, tile_x = p.at("winograd_tile_x");
        const int64_t row_bytes = elements * elements * 4 * ((tiles + tile_x - 1) / tile_x * tile_x) *
                                  (vectors_for(g.in_channels, vw) + vectors_for(g.out_channels, vw)) * vw;
        if (row_bytes <= (int64_t(512) << 10)) {
            input.store_in(Halide::MemoryType::Stack);
            stored.store_in(Halide::MemoryType::Stack);
        }
    }
    product.compute_at(stored, txo);
    const std::vector<Var> t = product.args();
    product.vectorize(t[0], vw).unroll(t[0]).unroll(t[3]);
    product.update().reorder(t[0], t[3], w.reduction).vectorize(t[0], vw).unroll(t[0]).unroll(t[3]);
    return inside_consumer;
}

// A weight gradient's sum over the batch (`sum`'s update, its last RVar `batch`) split into chunks of
// `chunk` images whose partial sums (the returned Func, its last Var the chunk) are computed in
// parallel, then added; both vectorised over the output channels.
Func summed_over_batch_chunks(Func sum, const RVar& batch, int chunk, const RVar& within, int vw) {
    const Var o = sum.args()[0];
    sum.compute_root().vectorize(o, vw, TailStrategy::RoundUp);
    RVar chunks("chunks");
    Var u("u");
    Func partial = sum.update().split(batch, chunks, within, chunk, TailStrategy::GuardWithIf).rfactor(chunks, u);
    partial.compute_root();
    partial.vectorize(partial.args()[0], vw, TailStrategy::RoundUp).parallel(u);
    sum.update().vectorize(o, vw, TailStrategy::RoundUp);
    return partial;
}

// The direct sum's weight gradient dW(o, i, kx, ky) (`batch_chunk`, `o_block`, `i_block`,
// `ky_unrolled`) and Winograd's (weight_grad_winograd_choice).
void weight_grad_choice(const Context& context, const ConvGeometry& g, ScheduleParameters& defaults,
                        ParameterSpace& space) {
    // A register tile of accumulators, (output-channel vectors) x (input channels) x (kx taps),
    // around the reduction over pixels: each step loads o_block vectors of d_output and
    // broadcasts i_block * k inputs for o_block * i_block * k FMAs. Both blocks divide their
    // extents, so they never reach past the last channel (a depthwise conv reads its input at
    // the output channel).
    const int o_vectors = vectors_for(g.out_channels, context.vector_width());
    const int k = static_cast<int>(g.kernel);
    const int group_inputs = static_cast<int>(g.in_channels / g.groups);
    const std::vector<int> o_blocks = divisors(o_vectors, 4), i_blocks = divisors(group_inputs, registers(context));
    int i_block = std::max(1, (registers(context) - 4) / (o_blocks.back() * k));
    while (group_inputs % i_block != 0) i_block--;
    // `ky_unrolled`: the ky taps in the tile too, where it fits the registers, so that a conv
    // with few channels (LeNet-5's conv1: one input, one vector of outputs, 5 accumulators
    // for 5 kx taps) has enough independent accumulators to hide the FMA's latency.
    const bool ky_fits = o_blocks.back() * i_block * k * k <= registers(context) - 4;
    defaults = {{"batch_chunk", 8}, {"o_block", o_blocks.back()}, {"i_block", i_block}, {"ky_unrolled", ky_fits}};
    space = {{"batch_chunk", {1, 2, 4, 8, 16, 32}},
             {"o_block", o_blocks},
             {"i_block", i_blocks},
             {"ky_unrolled", ky_fits ? std::vector<int>{0, 1} : std::vector<int>{0}}};
    weight_grad_winograd_choice(context, g, defaults, space);
}

// dW(o, i, kx, ky) as the direct sum: vectors over o, the kx (and maybe ky) taps unrolled so one
// d_output vector feeds k (k * k) FMAs; the batch is split into chunks reduced in parallel, then
// summed. Returns the loop over the chunks.
Halide::LoopLevel schedule_direct_weight_grad(const Conv2dBackwardStages& s, const Context& context,
                                              const ScheduleParameters& p) {
    const int vw = context.vector_width();
    const auto& r = s.weight_grad_reduction;
    RVar within("within");
    Func partial = summed_over_batch_chunks(s.weight_grad, r.z, p.at("batch_chunk"), within, vw);
    const std::vector<Var> pv = partial.args();  // (o, i, kx, ky, u)
    const Var& u = pv[4];
    Var oo("oo"), oi("oi"), ooo("ooo"), ooi("ooi"), io("io"), ii("ii");
    const bool ky_unrolled = p.at("ky_unrolled") != 0;
    std::vector<Halide::VarOrRVar> order = {oi, pv[2], ii, ooi, r.x, r.y, within, ooo, io, u};
    order.insert(ky_unrolled ? order.begin() + 2 : order.end() - 1, pv[3]);
    Halide::Stage update = partial.update();
    update.split(pv[0], oo, oi, vw, TailStrategy::RoundUp)
        .split(oo, ooo, ooi, p.at("o_block"), TailStrategy::RoundUp)
        .split(pv[1], io, ii, p.at("i_block"), TailStrategy::RoundUp)
        .reorder(order)
        .vectorize(oi)
        .unroll(pv[2])
        .unroll(ii)
        .unroll(ooi)
        .parallel(u);
    if (ky_unrolled) update.unroll(pv[3]);
    return Halide::LoopLevel(partial, u);
}

// Winograd's weight gradient (WinogradWeightGradStages): the product over the batch's tiles split
// into chunks of images summed in parallel, then added; each chunk's V and transformed output
// gradient computed just before its sums read them, each element's values contiguous, so that
// the product per element streams through them with a register tile of output-channel vectors by
// broadcast input channels. The outer transform G^T M G per channel pair at the end. Returns the
// loop over the chunks.
Halide::LoopLevel schedule_winograd_weight_grad(const Conv2dBackwardStages& s, const Context& context,
                                                const ScheduleParameters& p) {
    const int vw = context.vector_width();
    const WinogradWeightGradStages& w = s.weight_grad_winograd;
    const int elements = w.tile + 2;
    const auto& r = w.reduction;

    Func dw = s.weight_grad;
    const std::vector<Var> v = dw.args();  // (o, i, kx, ky)
    const int k = static_cast<int>(s.geometry.kernel);
    dw.compute_root()
        .bound(v[2], 0, k)
        .bound(v[3], 0, k)
        .reorder(v[0], v[2], v[3], v[1])
        .vectorize(v[0], vw, TailStrategy::RoundUp)
        .unroll(v[2])
        .unroll(v[3])
        .parallel(v[1]);

    Func product = w.product;
    const std::vector<Var> m = product.args();  // (o, i, ex, ey)
    product.bound(m[2], 0, elements).bound(m[3], 0, elements);
    RVar within("within");
    Func partial = summed_over_batch_chunks(product, r.z, p.at("winograd_batch_chunk"), within, vw);
    const std::vector<Var> pv = partial.args();  // (o, i, ex, ey, u)
    Var oo("oo"), oi("oi"), ooo("ooo"), ooi("ooi"), io("io"), ii("ii");
    partial.update()
        .split(pv[0], oo, oi, vw, TailStrategy::RoundUp)
        .split(oo, ooo, ooi, p.at("winograd_o_block"), TailStrategy::RoundUp)
        .split(pv[1], io, ii, p.at("winograd_i_block"), TailStrategy::RoundUp)
        .reorder(oi, ii, ooi, r.x, r.y, within, io, ooo, pv[2], pv[3], pv[4])
        .vectorize(oi)
        .unroll(ii)
        .unroll(ooi)
        .parallel(pv[4]);

    // (c, ex, ey, tx, ty, n), a vector of channels through all of a tile's elements, which share
    // their loads and their pass along x. Stored (`winograd_layout`) 0: each element's values
    // contiguous; 1: as defined, a tile's elements together; 2: a row of tiles per element. On
    // power-of-two maps the first puts the 16 elements' streams 2^k bytes apart in the cache's
    // sets (ResNet-20's layer3, 64 channels on 8x8: 1.70 ms against 1.52 and 1.70 for 0 and 1 at 8
    // images a chunk; layer2, 32 on 16x16: 1.21 against 1.70 and 1.27).
    const int layout = p.at("winograd_layout");
    for (Func transform : {w.input, w.output_grad}) {
        const std::vector<Var> t = transform.args();
        Var tco("tco"), tci("tci");
        if (layout == 0) transform.reorder_storage(t[0], t[3], t[4], t[5], t[1], t[2]);
        if (layout == 2) transform.reorder_storage(t[0], t[3], t[1], t[2], t[4], t[5]);
        transform.compute_at(partial, pv[4])
            .bound(t[1], 0, elements)
            .bound(t[2], 0, elements)
            .split(t[0], tco, tci, vw, TailStrategy::RoundUp)
            .reorder(tci, t[1], t[2], tco, t[3], t[4], t[5])
            .vectorize(tci)
            .unroll(t[1])
            .unroll(t[2]);
    }
    return Halide::LoopLevel(partial, pv[4]);
}

}  // namespace

bool schedule_conv2d_forward(Conv2dForwardStages s, const Context& context, const PoolForwardStages* pool,
                             bool row_consumer) {
    if (context.unscheduled) return false;
    const ConvGeometry& g = s.geometry;
    const int vw = context.vector_width();
    const int channel_vectors = vectors_for(g.out_channels, vw);
    ScheduleParameters defaults = register_tile_defaults(context, g.out_channels, g.out_width, g.kernel);
    ParameterSpace space = register_tile_space(context, g.out_channels, g.out_width, pool == nullptr);
    // Weights larger than a core's L2 cache are read once per channel block, with every row
    // inside it, instead of once per row (ResNet-18's 512-channel convs on 7x7 maps: 9.4 MB).
    const int64_t weight_bytes = g.out_channels * (g.in_channels / g.groups) * g.kernel * g.kernel * 4;
    if (space["blocks_outer"].size() > 1 && weight_bytes >= (int64_t(4) << 20)) defaults["blocks_outer"] = 1;
    // `input_per_row`, where the conv is computed a row at a time inside its consumer: the
    // zero-extended input is copied for each such row too (the rows under its window), in the
    // cache, rather than whole at root and read back from memory. A depthwise conv does so few
    // FMAs per input read that the rows copied again under overlapping windows may cost more.
    const bool may_be_inside = pool != nullptr || row_consumer;
    defaults["input_per_row"] = may_be_inside && !g.depthwise() ? 1 : 0;
    space["input_per_row"] = may_be_inside ? std::vector<int>{0, 1} : std::vector<int>{0};
    winograd_choice(context, g, pool != nullptr, defaults, space);
    x_vectors_choice(context, g, g.out_channels, g.out_width, defaults, space);
    // `x_rows`: along x, two output rows in the register tile, so that each weight broadcast
    // feeds both (LeNet-5's conv1: 6 broadcasts and 2 loads fed 12 FMAs, now 4 loads 24). The
    // default where the rows come in pairs: a 2x2 pool's window, or the whole output.
    space["x_rows"] = space["x_vectors"].size() > 1 ? std::vector<int>{1, 2} : std::vector<int>{1};
    const bool rows_in_pairs = pool != nullptr ? pool->geometry.kernel == 2 && pool->geometry.stride == 2
                                               : !row_consumer && g.out_height % 2 == 0;
    defaults["x_rows"] = defaults["x_vectors"] > 0 && rows_in_pairs &&
                                 2 * defaults["x_vectors"] * g.out_channels <= registers(context) - 3
                             ? 2
                             : 1;
    // `pool_row_chunks` (compute_in_pool; the direct sum's, Winograd's rows of tiles stay inside the
    // pool's rows), where the pool's windows overlap: 8 chunks by default (ResNet-18's stem, 56
    // pool rows: 7 a chunk, 15 conv rows computed for its 14 instead of 21).
    const bool windows_overlap = pool != nullptr && pool->geometry.kernel > pool->geometry.stride;
    space["pool_row_chunks"] = windows_overlap ? std::vector<int>{0, 2, 4, 8, 16} : std::vector<int>{0};
    defaults["pool_row_chunks"] = windows_overlap ? 8 : 0;
    const ScheduleParameters p =
        choose(context, conv_forward_signature(context, g, pool != nullptr), std::move(defaults), space);
    check_winograd_tile("conv2d forward", s.winograd.tile, p);
    if (s.is_winograd()) return schedule_winograd_forward(s, context, pool, row_consumer, p);
    // Channel blocks outermost need the whole output stored; otherwise a consumer that can take
    // the conv (or its pool) a row at a time does.
    const bool inside_consumer = row_consumer && (pool != nullptr ? !p.at("pool_row_chunks") : !p.at("blocks_outer"));
    const bool stored_whole = pool == nullptr && !inside_consumer;

    if (!s.weight_blocks.defined()) {
        copy_at_root(s.weight, vw, g.out_channels);
        // Every lane the vectorised conv reads is written: output channels padded with zeros up to
        // whole vectors.
        s.weight.bound(s.weight.args()[0], 0, static_cast<int>(channel_vectors * vw));
    }
    // Vectors along x (`x_vectors`, few output channels) or along the channels.
    const int x_vectors = p.at("x_vectors");
    const bool along_x = x_vectors > 0;
    Func padded = s.padded_input;
    if (along_x) {
        stored_along_x(padded, vw);
    } else {
        vectorize_copy(padded, vw, g.in_channels);
    }
    if (!stored_whole && p.at("input_per_row")) {
        // Copied afresh each time the conv is computed (a row at a time inside its consumer), in
        // its outermost loop: the rows it reads are written just before, into the L1 cache,
        // instead of a whole copy going out to memory and back.
        padded.compute_at(s.output, s.output.args().back());
    } else {
        padded.compute_root().parallel(padded.args().back());
    }

    Func out = s.output;
    const std::vector<Var> v = out.args();
    const Var &c = v[0], &x = v[1], &y = v[2], &n = v[3];
    if (along_x) {
        out.reorder_storage(x, c, y, n);
    } else if (s.weight_blocks.defined()) {
        // The channels computed start on a whole vector, so that a vector of them reads one
        // block's lanes in order (c % B and c / B simplify) rather than gathering.
        out.align_bounds(c, vw);
    }
    if (pool) {
        compute_in_pool(out, *pool, inside_consumer, along_x, vw, p.at("pool_row_chunks"));
    } else if (stored_whole) {
        out.compute_root();
        Var rows("rows");
        out.fuse(y, n, rows).parallel(rows);
    }
    out.vectorize(along_x ? x : c, vw, TailStrategy::RoundUp);
    Halide::Stage update = out.update();
    const std::vector<Halide::VarOrRVar> outer =
        stored_whole ? std::vector<Halide::VarOrRVar>{y, n} : std::vector<Halide::VarOrRVar>{};
    Var channel_blocks;
    Var rows_var = y;
    if (along_x) {
        std::vector<Halide::VarOrRVar> rows_in_tile, outer_loops = outer;
        if (p.at("x_rows") > 1) {
            Var yo("yo"), yi("yi");
            update.split(y, yo, yi, p.at("x_rows"), TailStrategy::RoundUp);
            rows_in_tile = {yi};
            rows_var = yo;
            if (stored_whole) outer_loops = {yo, n};
        }
        x_vector_tiled(update, c, x, g.out_channels, x_vectors, rows_in_tile,
                       {s.reduction.x, s.reduction.y, s.reduction.z}, outer_loops, vw);
        if (p.at("unroll_kx")) update.unroll(s.reduction.y);
    } else {
        // Strided or dilated taps do not share broadcasts.
        channel_blocks =
            register_tiled(update, c, x, s.reduction, outer, channel_vectors, g.stride == 1 && g.dilation == 1, p, vw);
    }
    if (s.weight_blocks.defined() && !s.weights_prepared) {
        Func blocks = s.weight_blocks;
        const std::vector<Var> b = blocks.args();
        blocks.bound(b[0], 0, vw).vectorize(b[0]);
        if (!along_x && p.at("blocks_outer")) {
            // Each parallel channel block copies its own weights just before its rows read them,
            // into the cache, instead of the whole tensor going out to memory and back. Its vectors
            // innermost: each (input channel, tap) gives one contiguous read of all of them, not one
            // pass over the tensor per vector (ResNet-18's 512-channel convs: 1.08 -> 0.95 ms).
            blocks.compute_at(out, channel_blocks).reorder(b[0], b[4], b[1], b[2], b[3]).unroll(b[4]);
        } else {
            blocks.compute_root().parallel(b.back());
        }
    }
    if (stored_whole && !p.at("blocks_outer")) {
        Var rows("rows");
        update.fuse(rows_var, n, rows).parallel(rows);
    }
    return inside_consumer;
}

void schedule_conv2d_preparation(Conv2dPreparationStages s, const Context& context) {
    if (context.unscheduled) return;
    // Winograd's U stored as the forward pass would compute it; blocks of taps read straight from
    // the weights (a vector of output channels per run of lanes).
    if (s.winograd > 0) schedule_winograd_weight(s.layout, s.weight_block, s.winograd + 2);
    Func flat = s.flat;
    const Var j = flat.args()[0];
    Var lanes("lanes"), runs("runs"), task("task");
    flat.split(j, runs, lanes, s.weight_block, TailStrategy::GuardWithIf)
        .vectorize(lanes)
        .split(runs, task, runs, 256, TailStrategy::GuardWithIf)
        .parallel(task);
}

bool schedule_conv2d_backward(Conv2dBackwardStages s, const Context& context, bool row_consumer) {
    if (context.unscheduled) return false;
    const ConvGeometry& g = s.geometry;
    const int vw = context.vector_width();

    // (A frozen layer has no weight gradient.)
    if (s.weight_grad.defined()) {
        copy_at_root(s.padded_input, vw, g.in_channels);
        ScheduleParameters defaults;
        ParameterSpace space;
        weight_grad_choice(context, g, defaults, space);
        const ScheduleParameters p =
            choose(context, conv_signature("conv2d_weight_grad", g, false), std::move(defaults), space);
        check_winograd_tile("conv2d weight gradient", s.weight_grad_winograd.tile, p);
        const Halide::LoopLevel chunk = s.weight_grad_winograd.product.defined()
                                            ? schedule_winograd_weight_grad(s, context, p)
                                            : schedule_direct_weight_grad(s, context, p);
        // A d_output computed here that only this sum reads (a fused pool's backward pass, with no
        // input gradient: a network's first conv) is computed a chunk at a time just before the
        // chunk's sum reads it, from the cache rather than memory: LeNet-5's conv1 wrote 3.2 MB of
        // it a step and read it back.
        if (s.output_grad_stage.defined() && !s.input_grad.defined()) {
            s.output_grad_stage.compute_at(chunk).store_at(chunk);
        }
    }
    // Summed a row at a time in parallel: one serial chain of adds over every pixel of the batch
    // took conv1 of LeNet-5 70 us a step.
    if (s.bias_grad.defined()) channel_sum(s.bias_grad, TailStrategy::RoundUp, context);
    if (s.input_grad.defined()) {
        Func din = s.input_grad;
        const std::vector<Var> v = din.args();
        const Var &c = v[0], &x = v[1], &y = v[2], &n = v[3];
        const auto& r = s.input_grad_reduction;
        const int channel_vectors = vectors_for(g.in_channels, vw);
        ScheduleParameters defaults = register_tile_defaults(context, g.in_channels, g.in_width, g.kernel);
        ParameterSpace space = register_tile_space(context, g.in_channels, g.in_width, true);
        x_vectors_choice(context, g, g.in_channels, g.in_width, defaults, space);
        // `output_parts` (vectors along x only): the sum over output channels split into that many
        // interleaved parts, each with its own accumulators, added at the end. One x vector of 6
        // channels is 6 accumulators, fewer than the 8 FMAs in flight (4 cycles' latency, 2 a cycle)
        // that keep the core busy. Two parts: LeNet-5's conv2 backward 0.68 -> 0.56 ms by default;
        // four were 0.59 in one run, yet the tuner kept them (tuned.json): the two are close.
        const int outputs = static_cast<int>(g.out_channels / g.groups);
        space["output_parts"] = {1};
        defaults["output_parts"] = 1;
        for (int parts = 2; parts <= 4; parts *= 2) {
            if (outputs % parts == 0 && parts * g.in_channels <= registers(context) - 4) {
                space["output_parts"].push_back(parts);
            }
        }
        if (defaults["x_vectors"] > 0 && space["output_parts"].size() > 1 &&
            2 * defaults["x_vectors"] * g.in_channels <= registers(context) - 4) {
            defaults["output_parts"] = 2;
        }
        winograd_choice(context, input_grad_as_conv(g), false, defaults, space);
        const ScheduleParameters p =
            choose(context, conv_signature("conv2d_input_grad", g, false), std::move(defaults), space);
        check_winograd_tile("conv2d input gradient", s.input_grad_winograd.winograd.tile, p);
        if (s.input_grad_winograd.is_winograd()) return schedule_winograd_forward(s.input_grad_winograd, context, nullptr, row_consumer, p);
        const int x_vectors = p.at("x_vectors");
        // A row at a time inside the kernel's output where the caller allows it, as a forward conv
        // inside its epilogue: the rows go from the cache to the output instead of a whole
        // rounded-up copy to memory and back. Channel blocks outermost need it stored whole.
        const bool blocks_outer = x_vectors == 0 && p.at("blocks_outer");
        const bool inside_consumer = row_consumer && !blocks_outer;
        Var rows("rows");
        if (!inside_consumer) din.compute_root().fuse(y, n, rows).parallel(rows);
        Halide::Stage update = din.update();
        Func reads_weights = din;
        if (x_vectors > 0) {
            Func padded = s.padded_output_grad;
            stored_along_x(padded, vw);
            padded.compute_root().parallel(padded.args().back());
            din.reorder_storage(x, c, y, n).vectorize(x, vw, TailStrategy::RoundUp);
            const int parts = p.at("output_parts");
            Halide::Stage sum = update;
            Var part("part");
            RVar ro("ro"), ri("ri");
            if (parts > 1) {
                // The parts a row at a time where din's rows are computed, then added into din.
                Func partial = update.split(r.x, ro, ri, parts).rfactor(ri, part);
                reads_weights = partial;
                partial.compute_at(din, inside_consumer ? Var::outermost() : rows)
                    .reorder_storage(x, c, part, y, n)
                    .vectorize(x, vw, TailStrategy::RoundUp);
                sum = partial.update();
                din.update().vectorize(x, vw, TailStrategy::RoundUp).unroll(ri);
            }
            const Halide::VarOrRVar output_channels = parts > 1 ? Halide::VarOrRVar(ro) : Halide::VarOrRVar(r.x);
            x_vector_tiled(sum, c, x, g.in_channels, x_vectors,
                           parts > 1 ? std::vector<Halide::VarOrRVar>{part} : std::vector<Halide::VarOrRVar>{},
                           {output_channels, r.y, r.z},
                           !inside_consumer && parts == 1 ? std::vector<Halide::VarOrRVar>{y, n}
                                                          : std::vector<Halide::VarOrRVar>{},
                           vw);
        } else {
            copy_at_root(s.padded_output_grad, vw, g.out_channels);
            din.vectorize(c, vw, TailStrategy::RoundUp);
            register_tiled(update, c, x, r,
                           inside_consumer ? std::vector<Halide::VarOrRVar>{} : std::vector<Halide::VarOrRVar>{y, n},
                           channel_vectors, g.dilation == 1, p, vw);
        }
        if (!inside_consumer && !blocks_outer) update.fuse(y, n, rows).parallel(rows);
        // The weights transposed once per call, input channels innermost, so the vector over
        // input channels is one contiguous load (and the broadcasts of a tile along x adjacent).
        // (A depthwise conv's weights are read along their output channels, already innermost.)
        if (g.groups == 1) {
            transposed_copy(s.weight, reads_weights, x_vectors > 0 ? 0 : vectors_for(g.in_channels, vw) * vw);
        }
        return inside_consumer;
    }
    return false;
}

void schedule_pool_forward(PoolForwardStages s, const Context& context) {
    if (context.unscheduled) return;
    copy_at_root(s.padded_input, context.vector_width(), s.geometry.channels);
    stored_elementwise(s.output, context.vector_width());
}

void schedule_pool_backward(PoolBackwardStages s, const Context& context) {
    if (context.unscheduled) return;
    const PoolGeometry& g = s.geometry;
    if (g.stride != g.kernel || g.padding != 0 || g.kernel > 4) {
        stored_elementwise(s.input_grad, context.vector_width());
        return;
    }
    // Non-overlapping windows: loops over whole windows, each position of a window unrolled, so
    // the window index and the offset within it are loop variables, not divisions.
    Func din = s.input_grad;
    const std::vector<Var> v = din.args();  // (c, x, y, n)
    const int k = static_cast<int>(g.kernel);
    Var xo("xo"), xi("xi"), yo("yo"), yi("yi"), rows("rows");
    din.compute_root()
        .align_bounds(v[1], k)
        .align_bounds(v[2], k)
        .split(v[1], xo, xi, k)
        .split(v[2], yo, yi, k)
        .reorder(v[0], xi, yi, xo, yo, v[3])
        .vectorize(v[0], context.vector_width(), TailStrategy::RoundUp)
        .unroll(xi)
        .unroll(yi)
        .fuse(yo, v[3], rows)
        .parallel(rows);
}

namespace {

// Samples sharing each loaded weight vector in the input gradient, each an accumulator: 8, as
// many as FMAs in flight (with 4, LeNet-5's dense1 and dense2 backward took 1.1-1.2x as long).
constexpr int dense_block = 8;

std::vector<Halide::VarOrRVar> reduction_vars(const Halide::RDom& r) {
    std::vector<Halide::VarOrRVar> vars;
    for (int d = 0; d < r.dimensions(); d++) vars.emplace_back(r[d]);
    return vars;
}

}  // namespace

// Dense layers are matrix products; each loaded weight vector feeds several FMAs, one per sample
// of a block of the batch (or per input feature for the weight gradient). Tails of the
// runtime batch are guarded, never rounded up: rounding would read images past the batch.
//
// The forward reads the weights in place (a copy padded to whole vectors, made per call, cost
// more than the product itself at batch 1). Its register tile is up to 4 vectors of outputs by as
// many samples as the registers leave room for, each weight vector loaded once for all of them;
// the tiles are computed in a stored copy of the sum whose last tile is shifted inwards over the
// one before, so no loop reaches past the last output. The zero-extended output is stored too,
// rounded up to whole vectors, so that its consumers read a plain buffer.
void schedule_dense_forward(DenseForwardStages s, const Context& context) {
    if (context.unscheduled) return;
    int width = context.vector_width();
    while (width > s.out_features) width /= 2;  // fewer outputs than a vector: a narrower one
    const int vectors = static_cast<int>(std::clamp<int64_t>(s.out_features / width, 1, 4));
    const int samples = std::clamp((registers(context) - vectors - 1) / vectors, 1, 6);
    Func tiles = s.sum.in();
    const std::vector<Var> v = tiles.args();  // (f, n)
    Var fo("fo"), fi("fi"), no("no"), ni("ni");
    tiles.compute_root()
        .split(v[0], fo, fi, width * vectors, TailStrategy::ShiftInwards)
        .split(v[1], no, ni, samples, TailStrategy::GuardWithIf)
        .reorder(fi, ni, fo, no)
        .vectorize(fi, width)
        .parallel(no);
    const std::vector<Var> sv = s.sum.args();
    Var vo("vo"), vi("vi");
    std::vector<Halide::VarOrRVar> order = {vi, vo, sv[1]};
    for (const auto& r : reduction_vars(s.reduction)) order.push_back(r);
    // On the stack: a tile's extent over the samples is min(samples, those left), which would
    // otherwise put it on the heap, and LLVM keeps only a stack tile's accumulators in registers.
    s.sum.compute_at(tiles, fo).store_in(Halide::MemoryType::Stack).vectorize(sv[0], width).unroll(sv[1]);
    s.sum.update().split(sv[0], vo, vi, width).reorder(order).vectorize(vi).unroll(vo).unroll(sv[1]);
    Func out = s.output;
    out.compute_root().vectorize(out.args()[0], context.vector_width(), TailStrategy::RoundUp).parallel(out.args()[1]);
}

void schedule_dense_backward(DenseBackwardStages s, const Context& context) {
    if (context.unscheduled) return;
    const int vw = context.vector_width();
    // The gradients over the outputs are stored here, rounded up to whole vectors: the output
    // gradient reads zeros past the last output, as every Value does. (Guarded, LeNet-5's dense1,
    // 120 outputs, did 8 of them a lane at a time; dense3's 10 all of them.)
    const TailStrategy out_tail = TailStrategy::RoundUp;
    if (s.weight_grad.defined()) {
        // Each loaded d_output vector feeds `weight_grad_inputs` FMAs into as many accumulators:
        // enough chains to hide the FMA latency. The parallel loop runs over the input dims past
        // the first, fused (LeNet-5's dense1 reads 16x5x5 features: 25 tasks rather than 5), or
        // over blocks of the inputs where there is one input dim.
        constexpr int weight_grad_inputs = 8;
        Func w = s.weight_grad;
        const std::vector<Var> v = w.args();  // (o, input dims...)
        w.compute_root().vectorize(v[0], vw, out_tail).parallel(v.back());
        Var oo("oo"), oi("oi"), io("io"), ii("ii");
        Halide::Stage update = w.update();
        update.split(v[0], oo, oi, vw, out_tail)
            .split(v[1], io, ii, weight_grad_inputs, TailStrategy::GuardWithIf)
            .reorder({oi, ii, s.weight_grad_reduction.x, oo, io})
            .vectorize(oi)
            .unroll(ii);
        if (v.size() > 2) {
            update.parallel(fused_dims(update, v, 2));
        } else {
            update.parallel(io);
        }
    }
    if (s.bias_grad.defined()) {
        s.bias_grad.compute_root().vectorize(s.bias_grad.args()[0], vw, out_tail);
        s.bias_grad.update().vectorize(s.bias_grad.args()[0], vw, out_tail);
    }
    if (s.input_grad.defined()) {
        Func din = s.input_grad;
        const std::vector<Var> v = din.args();  // (input dims..., n)
        TailStrategy tail = s.input_innermost_extent % vw == 0 ? TailStrategy::RoundUp : TailStrategy::GuardWithIf;
        transposed_copy(s.weight, din);
        din.compute_root().vectorize(v[0], vw, tail).parallel(v.back());
        Var io("io"), ii("ii"), no("no"), ni("ni");
        std::vector<Halide::VarOrRVar> order = {ii, ni, s.input_grad_reduction.x, io};
        for (size_t d = 1; d + 1 < v.size(); d++) order.push_back(v[d]);
        order.push_back(no);
        din.update()
            .split(v[0], io, ii, vw, tail)
            .split(v.back(), no, ni, dense_block, TailStrategy::GuardWithIf)
            .reorder(order)
            .vectorize(ii)
            .unroll(ni)
            .parallel(no);
    }
}

void schedule_elementwise(ElementwiseStage stage, const Context& context) {
    if (context.unscheduled) return;
    stored_elementwise(stage.func, context.vector_width());
}

void schedule_gradient_copy(Func copy, int64_t innermost_extent, const Context& context) {
    if (context.unscheduled) return;
    const int vw = context.vector_width();
    if (innermost_extent >= vw) copy.vectorize(copy.args()[0], vw, TailStrategy::GuardWithIf);
}

void schedule_sums_of_squares(const std::vector<Func>& sums, const Context& context) {
    if (context.unscheduled) return;
    // Serial sums, once per step: small next to the backward pass that produced the gradients.
    for (Func sum : sums) sum.compute_root();
}


void schedule_batch_norm(BatchNormStages s, const Context& context) {
    if (context.unscheduled) return;
    const TailStrategy tail = channel_tail(s.channels, context.vector_width());
    channel_sum(s.mean, tail, context);
    channel_sum(s.variance, tail, context);
    s.mean_of_batch.compute_root();
    s.variance_of_batch.compute_root();
    s.scale.compute_root();
    s.shift.compute_root();
}

void schedule_batch_norm_backward(BatchNormBackwardStages s, const Context& context) {
    if (context.unscheduled) return;
    s.rstd.compute_root();
    const TailStrategy tail = channel_tail(s.channels, context.vector_width());
    Func sum_rows = channel_sum(s.grad_sum, tail, context);
    Func dot_rows = channel_sum(s.grad_dot_normalised, tail, context);
    // Both sums of a row in one loop, while the row (and the output gradient it recomputes) is in
    // L1: one pass over the batch instead of two.
    if (sum_rows.defined()) dot_rows.update().compute_with(sum_rows.update(), channel_sum_row());
    // The input gradient is pointwise once the sums are known: it is computed inside the
    // kernel's output copy rather than stored and copied.
}

void schedule_global_pool(GlobalPoolStages s, const Context& context) {
    if (context.unscheduled) return;
    const int vw = context.vector_width();
    const TailStrategy tail = channel_tail(s.channels, vw);
    const std::vector<Var> v = s.sum.args();  // (c, n)
    const std::vector<RVar> r = s.sum.rvars();
    Var ci("ci"), co("co");
    s.sum.compute_root().vectorize(v[0], vw, tail).parallel(v[1]);
    s.sum.update().split(v[0], co, ci, vw, tail).reorder(ci, r[0], r[1], co, v[1]).vectorize(ci).parallel(v[1]);
}

namespace {

// The loop of a kernel output's rows; a stage computed at it is computed a row at a time.
Var output_rows() {
    return Var("output_rows");
}

}  // namespace

void schedule_kernel_output(Func output, int64_t innermost_extent, const Context& context) {
    if (context.unscheduled) return;
    const int vw = context.vector_width();
    const std::vector<Var> v = output.args();
    if (innermost_extent >= vw) output.vectorize(v[0], vw, channel_tail(innermost_extent, vw));
    if (v.size() == 4) {
        output.fuse(v[2], v[3], output_rows()).parallel(output_rows());
    } else {
        output.parallel(v.back());
    }
}

void compute_per_output_row(Func stage, Func output, const Context& context) {
    (void)context;
    stage.compute_at(output, output_rows());
}

void schedule_per_channel(Func func, const Context& context) {
    if (context.unscheduled) return;
    func.compute_root();
}

void schedule_state_update(Func func, const Context& context) {
    // A few values per channel: the default (computed where it is stored) is right.
    (void)func;
    (void)context;
}

void schedule_augmentation(AugmentationStages stages, const Context& context) {
    if (context.unscheduled) return;
    for (Func& f : stages.per_image) f.compute_root();
    // Whole images, since a rotation reads anywhere in its source and a contrast change reduces it.
    for (Func& f : stages.resampled) {
        const std::vector<Var> v = f.args();
        // Guarded, not shifted inwards: an image narrower than a vector must not be read before x = 0.
        f.compute_root().parallel(v[3]).vectorize(v[1], context.vector_width(), TailStrategy::GuardWithIf);
    }
}

void schedule_loss(LossStages s, const Context& context) {
    if (context.unscheduled) return;
    s.row_max.compute_root();
    s.row_sum.compute_root();
    if (s.logits_grad.defined()) s.logits_grad.compute_root();
}

void schedule_parameter_update(ParameterUpdateStages s, const Context& context) {
    if (context.unscheduled) return;
    const int vw = context.vector_width();
    // A large tensor runs in parallel over its outer dims rather than alone between the kernel's
    // parallel loops (LeNet-5's dense1: 48K weights, 2% of a training step on one thread). (Halide
    // refuses compute_with for the two: the value reads the velocity.)
    constexpr int64_t parallel_elements = 16384;
    const int64_t elements =
        std::accumulate(s.extents.begin(), s.extents.end(), int64_t{1}, std::multiplies<int64_t>());
    for (Func f : {s.new_velocity, s.new_value}) {
        const std::vector<Var> v = f.args();
        if (s.extents[0] >= vw) f.vectorize(v[0], vw, TailStrategy::GuardWithIf);
        if (v.size() < 2) continue;
        const Var rows = fused_dims(f, v, 1);
        if (elements >= parallel_elements) f.parallel(rows);
    }
}

}  // namespace convgen::schedules::cpu
