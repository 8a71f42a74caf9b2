// The Halide stages each layer kind's algorithm produces, handed to the schedules. The algorithm
// (codegen/) fills these; the schedules (this folder) decide how they run. Nothing here says what
// a stage computes.
//
// Dimension order, everywhere: images are Funcs over (c, x, y, n), channels innermost in memory;
// feature vectors over (f, n). Weights are stored with output channels innermost.
#pragma once

#include <Halide.h>

#include <cstdint>
#include <string>
#include <vector>

namespace convgen::schedules {

// Shapes a schedule may look at, free of the DSL's types.
struct ConvGeometry {
    int64_t in_channels = 0, out_channels = 0;
    int64_t in_width = 0, in_height = 0;
    int64_t out_width = 0, out_height = 0;
    int64_t kernel = 0, stride = 1, padding = 0;
    int64_t dilation = 1, groups = 1;

    bool depthwise() const { return groups > 1 && groups == in_channels && groups == out_channels; }
};

struct PoolGeometry {
    int64_t channels = 0;
    int64_t in_width = 0, in_height = 0;
    int64_t out_width = 0, out_height = 0;
    int64_t kernel = 0, stride = 1, padding = 0;
    bool count_include_pad = true;  // average pooling: padded positions count in the divisor
};

struct AugmentationStages {
    Halide::Func output;                  // (c, x, y, n)
    std::vector<Halide::Func> per_image;  // random amounts and statistics, over (n) or (c, n)
    std::vector<Halide::Func> resampled;  // images a later step reads at other positions or reduces
};

// How a conv's forward pass is computed, chosen before its Funcs are defined (conv2d_algorithm).
struct ConvAlgorithm {
    // > 0: the reduction reads its weights through a copy in blocks of this many output channels
    // (Conv2dForwardStages::weight_blocks); 0: as they are, output channels innermost.
    int weight_block = 0;
    // > 0: Winograd's F(m x m, 3x3) instead of the direct sum, m = 2 or 4, for a 3x3 conv of
    // stride 1 over even-sized outputs: for each m x m block of outputs (m + 2)^2 multiplies per
    // input channel, not 9 m^2 (16 not 36, 36 not 144).
    int winograd = 0;
};

// Winograd F(m x m, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): the output's m x m block at tile (tx, ty) is A^T [U (.) V] A summed over the input
// channels, U = G w G^T the (m + 2)-square transform of each 3x3 filter and V = B^T d B that of the
// (m + 2)-square input patch d under the tile. The sum over input channels is a matrix product per
// element (ex, ey).
struct WinogradStages {
    int tile = 0;          // m, the side of a tile's block of outputs
    Halide::Func weight;   // U: (lane, ci, ex, ey, block), output channel block * B + lane
    Halide::Func input;    // V: (ci, ex, ey, tx, ty, n)
    Halide::Func product;  // M: (co, ex, ey, tx, ty, n) = sum over ci of U * V
    Halide::RDom reduction;  // over ci
};

struct Conv2dForwardStages {
    ConvGeometry geometry;
    Halide::Func padded_input;  // zero-extended input, (c, x, y, n)
    Halide::Func weight;        // zero-extended weights, (co, ci, kx, ky)
    // Undefined, or the weights as the reduction reads them, in blocks of B output channels:
    // (lane, ci, kx, ky, block) holds output channel block * B + lane (ConvAlgorithm::weight_block).
    Halide::Func weight_blocks;
    // Direct: bias, then the reduction over (ci, kx, ky). Winograd: bias plus the output transform
    // of winograd.product, a pure Func (the reduction is in the product).
    Halide::Func output;
    Halide::RDom reduction;  // direct only
    WinogradStages winograd;  // defined with ConvAlgorithm::winograd only
    // weight_blocks (direct) or winograd.weight read a buffer of prepared weights
    // (Conv2dPreparationStages), computed once per change of the parameters: not stages to
    // schedule, and `weight` is undefined.
    bool weights_prepared = false;

    bool is_winograd() const { return winograd.product.defined(); }
};

// A conv's weights as its inference kernel reads them (ConvAlgorithm's blocks of output channels,
// or Winograd's U, with any folded batch norm applied), computed by a kernel of their own once per
// change of the parameters instead of by every prediction.
struct Conv2dPreparationStages {
    ConvGeometry geometry;
    int weight_block = 0;
    // (lane, ci, e1, e2, block): the taps (kx, ky), or Winograd's elements (ex, ey).
    Halide::Func layout;
    int winograd = 0;  // m of Winograd's F(m x m, 3x3), or 0: blocks of the taps
    Halide::Func flat;  // (j): `layout` flattened, lane innermost: the kernel's output
};

// The input gradient of a conv of stride 1, undilated and ungrouped, is itself such a conv: of the
// output gradient, zero-extended by kernel - 1 - padding, with the weights flipped and transposed
// (input channels become its outputs). Its geometry:
inline ConvGeometry input_grad_as_conv(const ConvGeometry& g) {
    ConvGeometry t = g;
    t.in_channels = g.out_channels;
    t.out_channels = g.in_channels;
    t.in_width = g.out_width;
    t.in_height = g.out_height;
    t.out_width = g.in_width;
    t.out_height = g.in_height;
    t.padding = g.kernel - 1 - g.padding;
    return t;
}

// The weight gradient of a 3x3 conv of stride 1 by Winograd's F(m x m, 3x3) transposed: the
// forward pass's output block is A^T [U (.) V] A with U = G w G^T, so per tile the gradient of
// the weights is G^T [(A dY A^T) (.) V] G, dY the tile's m x m block of the output gradient. Summed
// over the batch's tiles before the outer transform, it is a matrix product per element (ex, ey)
// of the transformed output gradient and input: (m + 2)^2 multiplies per tile, input and output
// channel, not 9 m^2.
struct WinogradWeightGradStages {
    int tile = 0;               // m
    Halide::Func input;         // V: (ci, ex, ey, tx, ty, n), the forward pass's
    Halide::Func output_grad;   // A dY A^T: (co, ex, ey, tx, ty, n)
    Halide::Func product;       // (co, ci, ex, ey): the sum over `reduction` of output_grad * input
    Halide::RDom reduction;     // over (tx, ty, n)
};

struct Conv2dBackwardStages {
    ConvGeometry geometry;
    Halide::Func padded_input;        // the forward pass's zero-extended input, (c, x, y, n)
    Halide::Func weight;              // the forward pass's zero-extended weights, (o, i, kx, ky)
    Halide::Func padded_output_grad;  // zero-extended d_output, (co, x, y, n)
    // Where d_output is computed in this kernel (a fused max pool's backward pass), its Func: a
    // schedule may compute it a chunk of the batch at a time where the weight gradient reads it.
    Halide::Func output_grad_stage;
    Halide::Func input_grad;          // undefined when no gradient flows to the input
    Halide::RDom input_grad_reduction;  // the direct sum's
    // Where the input gradient is computed as Winograd's conv (conv2d_input_grad_algorithm), that
    // conv's stages (input_grad_as_conv's geometry; `input_grad` is its output); else undefined.
    Conv2dForwardStages input_grad_winograd;
    Halide::Func weight_grad;  // (co, ci, kx, ky)
    Halide::RDom weight_grad_reduction;  // the direct sum's
    // Where the weight gradient is Winograd's (conv2d_weight_grad_algorithm), its stages; then
    // `weight_grad` is the outer transform of their product, a pure Func.
    WinogradWeightGradStages weight_grad_winograd;
    Halide::Func bias_grad;  // undefined without bias
    Halide::RDom bias_grad_reduction;
};

struct PoolForwardStages {
    PoolGeometry geometry;
    Halide::Func padded_input;
    Halide::Func output;  // (c, x, y, n); for max pooling in training a Tuple (max, argmax)
};

struct PoolBackwardStages {
    PoolGeometry geometry;
    Halide::Func input_grad;
};

struct DenseForwardStages {
    int64_t in_features = 0, out_features = 0;
    // bias(f) + sum of weight(f, i...) * input(i..., n), (f, n): it reads the weights in place, so
    // a schedule must compute it for f in [0, out_features) only, never rounded up past them.
    Halide::Func sum;
    Halide::Func output;  // the sum, zero past the last output feature
    Halide::RDom reduction;
};

struct DenseBackwardStages {
    int64_t in_features = 0, out_features = 0;
    int input_dimensions = 1;  // 1 for (f, n), 3 for (c, x, y, n) inputs read through flatten
    int64_t input_innermost_extent = 0;
    Halide::Func weight;      // (o, input dims...)
    Halide::Func input_grad;  // undefined when not needed
    Halide::RDom input_grad_reduction;
    Halide::Func weight_grad;  // (o, input dims...)
    Halide::RDom weight_grad_reduction;
    Halide::Func bias_grad;
    Halide::RDom bias_grad_reduction;
};

// Batch normalisation in training: per-channel statistics over (x, y, n), or over n for features.
struct BatchNormStages {
    int64_t channels = 0;
    Halide::Func mean, variance;                     // (c): sums over the batch
    Halide::Func mean_of_batch, variance_of_batch;   // (c): the statistics
    Halide::Func scale, shift;                       // (c): gamma * rstd, beta - mean * scale
    Halide::Func output;                             // normalised, scaled and shifted input
    Halide::Func new_running_mean, new_running_var;  // (c): pipeline outputs
};

struct BatchNormBackwardStages {
    int64_t channels = 0;
    Halide::Func rstd;                           // (c): 1 / sqrt(variance + epsilon)
    Halide::Func grad_sum, grad_dot_normalised;  // (c): reductions over the batch; the bias and scale gradients
    Halide::Func input_grad;
};

// Global average pooling: out(c, 0, 0, n) = mean over (x, y).
struct GlobalPoolStages {
    int64_t channels = 0;
    Halide::Func sum;     // (c, n)
    Halide::Func output;  // (c, x, y, n), defined for every x and y
};

struct ElementwiseStage {
    Halide::Func func;
    int dimensions = 4;  // including the batch
    int64_t innermost_extent = 0;
};

struct LossStages {
    int64_t classes = 0;
    Halide::Func row_max, row_sum;  // per sample (n)
    Halide::Func loss;              // 0-D output
    Halide::RDom batch;
    Halide::Func correct;        // 0-D output: how many argmax == label
    Halide::Func logits_grad;    // (k, n), undefined in inference
    Halide::Func probabilities;  // (k, n), inference output
};

struct ParameterUpdateStages {
    int dimensions = 1;
    std::vector<int64_t> extents;  // the parameter's internal layout, innermost first
    Halide::Func new_value, new_velocity;
};

}  // namespace convgen::schedules
