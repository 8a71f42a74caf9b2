// conv2d with G groups of I = in_channels / G inputs and O = out_channels / G outputs each,
// stride s, padding p and dilation d:
//   out(o, x, y, n) = bias(o) + sum_{i < I, kx, ky} w(o, i, kx, ky) * in(g(o) * I + i, x*s + kx*d - p, y*s + ky*d - p,
//   n)
// with g(o) = o / O the group of output channel o. Without groups (G = 1) the input channel is i.
#include "../layers.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;

namespace {

int group_inputs(const ConvGeometry& g) {
    return static_cast<int>(g.in_channels / g.groups);
}
int group_outputs(const ConvGeometry& g) {
    return static_cast<int>(g.out_channels / g.groups);
}

// The weights zero-extended: a schedule may round the output channel loop up.
Func extended_weight(const std::string& name, const Func& weight, const ConvGeometry& g) {
    return zero_extended(weight, {g.out_channels, group_inputs(g), g.kernel, g.kernel}, 0, name + "_weight");
}

// Winograd's F(m x m, 3x3) computes 3x3 convs of stride 1, undilated, ungrouped.
bool computes_winograd(const ConvGeometry& g) {
    return g.kernel == 3 && g.stride == 1 && g.dilation == 1 && g.groups == 1;
}

// The input channel that weight input i of output channel o reads.
Expr input_channel(const ConvGeometry& g, const Expr& o, const Expr& i) {
    if (g.groups == 1) return i;
    if (g.depthwise()) return o;
    return (o / group_outputs(g)) * group_inputs(g) + i;
}

// Winograd's F(m x m, 3x3) transforms (Lavin and Gray 2016), for output tiles of side m = 2 or 4:
// V = B^T d B of the (m + 2)-square input patch d, U = G w G^T of a 3x3 filter, and the m x m
// outputs A^T M A. F(4x4) takes 36 multiplies per 16 outputs where F(2x2) takes 16 per 4, at
// larger rounding errors (its transforms hold 4, 5, 1/6 and 1/24).
using Matrix = std::vector<std::vector<float>>;
struct WinogradTransforms {
    Matrix input;   // B^T, (m + 2) x (m + 2)
    Matrix filter;  // G, (m + 2) x 3
    Matrix output;  // A^T, m x (m + 2)
};

const WinogradTransforms& winograd_transforms(int m) {
    static const WinogradTransforms two{
        {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
        {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}},
        {{1, 1, 1, 0}, {0, 1, -1, -1}}};
    static const WinogradTransforms four{
        {{4, 0, -5, 0, 1, 0},
         {0, -4, -4, 1, 1, 0},
         {0, 4, -4, -1, 1, 0},
         {0, -2, -1, 2, 1, 0},
         {0, 2, -1, -2, 1, 0},
         {0, 4, 0, -5, 0, 1}},
        {{1 / 4.0f, 0, 0},
         {-1 / 6.0f, -1 / 6.0f, -1 / 6.0f},
         {-1 / 6.0f, 1 / 6.0f, -1 / 6.0f},
         {1 / 24.0f, 1 / 12.0f, 1 / 6.0f},
         {1 / 24.0f, -1 / 12.0f, 1 / 6.0f},
         {0, 0, 1}},
        {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}};
    if (m != 2 && m != 4) throw std::logic_error(fmt::format("Winograd F({0}x{0}, 3x3) is not implemented", m));
    return m == 2 ? two : four;
}

Expr scaled(float k, const Expr& e) {
    return k == 1 ? e : k == -1 ? -e : k * e;
}

// sum over b of left[column][b] * (sum over a of left[row][a] * term(a, b)), as one Expr per
// (row, column) selected by mux: a schedule that unrolls `row` and `column` leaves only the
// constant case, whose inner sums are the same Exprs for every column (one pass along x, then
// one along y, once the unrolled cases share them).
Expr transformed(const Matrix& left, const Expr& row, const Expr& column, const std::function<Expr(int, int)>& term) {
    const size_t taps = left[0].size();
    std::vector<Expr> rows;
    for (const std::vector<float>& along_x : left) {
        std::vector<Expr> inner(taps);
        for (size_t b = 0; b < taps; b++) {
            for (size_t a = 0; a < taps; a++) {
                if (along_x[a] == 0) continue;
                const Expr t = scaled(along_x[a], term(int(a), int(b)));
                inner[b] = inner[b].defined() ? inner[b] + t : t;
            }
        }
        std::vector<Expr> columns;
        for (const std::vector<float>& along_y : left) {
            Expr sum;
            for (size_t b = 0; b < taps; b++) {
                if (along_y[b] == 0 || !inner[b].defined()) continue;
                const Expr t = scaled(along_y[b], inner[b]);
                sum = sum.defined() ? sum + t : t;
            }
            columns.push_back(sum.defined() ? sum : Expr(0.0f));
        }
        rows.push_back(Halide::mux(column, columns));
    }
    return Halide::mux(row, rows);
}

// U = G w G^T of each filter, over (lane, ci, ex, ey, block) for output channel block * B + lane.
Func winograd_weight(const std::string& name, const Func& weight, int weight_block, const WinogradTransforms& t) {
    Halide::Var lane("lane"), block("block"), ex("ex"), ey("ey");
    Func u(name + "_winograd_weight");
    u(lane, Dims::i, ex, ey, block) = transformed(t.filter, ex, ey, [&](int kx, int ky) {
        return weight(block * weight_block + lane, Dims::i, kx, ky);
    });
    return u;
}

// Blocks of B output channels: block b holds channels [b * B, (b + 1) * B) for every (i, kx, ky),
// so that a run of B output channels reads one contiguous stretch through the whole reduction.
Func weight_blocks(const std::string& name, const Func& weight, int weight_block) {
    Halide::Var lane("lane"), block("block");
    const auto& [i, kx, ky] = std::tie(Dims::i, Dims::kx, Dims::ky);
    Func blocks(name + "_weight_blocks");
    blocks(lane, i, kx, ky, block) = weight(block * weight_block + lane, i, kx, ky);
    return blocks;
}

// The prepared weights' flat layout: j = lane + B * (ci + I * (e1 + E * (e2 + E * block))), for
// output channel block * B + lane, input ci < I of its group, and (e1, e2) a tap (E = the kernel's
// side) or one of Winograd's elements (E = m + 2).
struct PreparedLayout {
    int block_width = 0, inputs = 0, side = 0;

    PreparedLayout(const ConvGeometry& g, const schedules::ConvAlgorithm& algorithm)
        : block_width(algorithm.weight_block),
          inputs(group_inputs(g)),
          side(algorithm.winograd > 0 ? algorithm.winograd + 2 : static_cast<int>(g.kernel)) {}
    Expr index(const Expr& lane, const Expr& ci, const Expr& e1, const Expr& e2, const Expr& block) const {
        return lane + block_width * (ci + inputs * (e1 + side * (e2 + side * block)));
    }
};

// The prepared layout (lane, ci, e1, e2, block) read from its flat array.
Func prepared_layout(const std::string& name, const Func& flat, const PreparedLayout& layout) {
    Halide::Var lane("lane"), block("block"), e1("e1"), e2("e2");
    Func prepared(name + "_prepared");
    prepared(lane, Dims::i, e1, e2, block) = flat(layout.index(lane, Dims::i, e1, e2, block));
    return prepared;
}

Matrix transposed_matrix(const Matrix& m) {
    Matrix t(m[0].size(), std::vector<float>(m.size()));
    for (size_t r = 0; r < m.size(); r++) {
        for (size_t c = 0; c < m[r].size(); c++) t[c][r] = m[r][c];
    }
    return t;
}

// V = B^T d B of the (m + 2)-square patch of the zero-extended input under each m x m tile of
// outputs: (ci, ex, ey, tx, ty, n).
Func winograd_input(const std::string& name, const Func& padded_input, int padding, const WinogradTransforms& t) {
    const int m = static_cast<int>(t.output.size());
    Halide::Var ex("ex"), ey("ey"), tx("tx"), ty("ty");
    const auto& [i, n] = std::tie(Dims::i, Dims::n);
    Func v(name + "_winograd_input");
    v(i, ex, ey, tx, ty, n) = transformed(t.input, ex, ey, [&](int a, int b) {
        return padded_input(i, m * tx + a - padding, m * ty + b - padding, n);
    });
    return v;
}

schedules::WinogradStages winograd_stages(const std::string& name, const schedules::Conv2dForwardStages& conv,
                                          int weight_block, const WinogradTransforms& t, const Func& prepared) {
    const ConvGeometry& g = conv.geometry;
    Halide::Var ex("ex"), ey("ey"), tx("tx"), ty("ty");
    const auto& [c, n] = std::tie(Dims::c, Dims::n);
    schedules::WinogradStages w;
    w.tile = static_cast<int>(t.output.size());
    w.weight = prepared.defined() ? prepared : winograd_weight(name, conv.weight, weight_block, t);
    w.input = winograd_input(name, conv.padded_input, static_cast<int>(g.padding), t);
    w.reduction = RDom(0, static_cast<int>(g.in_channels), name + "_winograd_r");
    w.product = Func(name + "_winograd_product");
    w.product(c, ex, ey, tx, ty, n) = 0.0f;
    w.product(c, ex, ey, tx, ty, n) +=
        w.weight(c % weight_block, w.reduction, ex, ey, c / weight_block) * w.input(w.reduction, ex, ey, tx, ty, n);
    return w;
}

// dW = G^T [sum over the tiles of (A dY A^T) (.) V] G (WinogradWeightGradStages), dY read at
// the tiles' m x m blocks: they cover the output exactly (even sides, m = 2), and its channels
// as far as the schedule rounds them up, as the direct sum reads them.
void winograd_weight_grad(const std::string& name, const schedules::Conv2dForwardStages& forward,
                          const Value& output_grad, const Expr& batch, int m, schedules::Conv2dBackwardStages& stages) {
    const ConvGeometry& g = forward.geometry;
    if (!computes_winograd(g) || m != 2 || g.out_width % m != 0 || g.out_height % m != 0) {
        throw std::logic_error(fmt::format("{0}: a weight gradient by Winograd's F({1}x{1}, 3x3) asked of a conv it "
                                           "does not compute (3x3, stride 1, even output sides, m = 2)",
                                           name, m));
    }
    const WinogradTransforms& t = winograd_transforms(m);
    Halide::Var ex("ex"), ey("ey"), tx("tx"), ty("ty");
    const auto& [c, i, n] = std::tie(Dims::c, Dims::i, Dims::n);
    const auto& [o, kx, ky] = std::tie(Dims::o, Dims::kx, Dims::ky);
    schedules::WinogradWeightGradStages& w = stages.weight_grad_winograd;
    w.tile = m;
    w.input = winograd_input(name + "_weight_grad", forward.padded_input, static_cast<int>(g.padding), t);
    w.output_grad = Func(name + "_winograd_output_grad");
    w.output_grad(c, ex, ey, tx, ty, n) = transformed(transposed_matrix(t.output), ex, ey, [&](int a, int b) {
        return output_grad.func(c, m * tx + a, m * ty + b, n);
    });
    w.reduction = RDom(0, static_cast<int>(g.out_width / m), 0, static_cast<int>(g.out_height / m), 0, batch,
                       name + "_winograd_weight_grad_r");
    const RDom& r = w.reduction;
    w.product = Func(name + "_winograd_weight_grad_product");
    w.product(o, i, ex, ey) = 0.0f;
    w.product(o, i, ex, ey) += w.output_grad(o, ex, ey, r.x, r.y, r.z) * w.input(i, ex, ey, r.x, r.y, r.z);
    stages.weight_grad = Func(name + "_weight_grad");
    stages.weight_grad(o, i, kx, ky) = transformed(transposed_matrix(t.filter), kx, ky, [&](int a, int b) {
        return w.product(o, i, a, b);
    });
}

}  // namespace

schedules::Conv2dForwardStages conv2d_forward(const std::string& name, const Value& input, const ConvGeometry& g,
                                              const Func& weight, const Func& bias,
                                              const schedules::ConvAlgorithm& algorithm, const Func& prepared) {
    const int weight_block = algorithm.weight_block;
    if (prepared.defined() && prepared_weight_elements(g, algorithm) == 0) {
        throw std::logic_error(fmt::format("{}: prepared weights for an algorithm that reads them as they are", name));
    }
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const int stride = static_cast<int>(g.stride), padding = static_cast<int>(g.padding),
              dilation = static_cast<int>(g.dilation);
    schedules::Conv2dForwardStages stages;
    stages.geometry = g;
    stages.padded_input = zero_extended(input, name + "_padded_input");
    stages.weights_prepared = prepared.defined();
    const Func prepared_weights =
        prepared.defined() ? prepared_layout(name, prepared, PreparedLayout(g, algorithm)) : Func();
    if (!prepared.defined()) {
        stages.weight = extended_weight(name, weight, g);
    }
    Func out(name);
    // Bias and weights are zero-extended like the input: a schedule may round the channel loop up.
    const Expr bias_term =
        bias.defined() ? zero_extended(bias, {g.out_channels}, 0, name + "_bias")(c) : Expr(0.0f);
    if (algorithm.winograd > 0) {
        const int m = algorithm.winograd;
        if (!computes_winograd(g) || weight_block <= 0) {
            throw std::logic_error(fmt::format("{0}: Winograd F({1}x{1}, 3x3) asked of a conv it does not compute", name, m));
        }
        const WinogradTransforms& transforms = winograd_transforms(m);
        stages.winograd = winograd_stages(name, stages, weight_block, transforms, prepared_weights);
        const Func& product = stages.winograd.product;
        out(c, x, y, n) = bias_term + transformed(transforms.output, x % m, y % m, [&](int a, int b) {
                              return product(c, a, b, x / m, y / m, n);
                          });
        stages.output = out;
        return stages;
    }

    stages.reduction =
        RDom(0, group_inputs(g), 0, static_cast<int>(g.kernel), 0, static_cast<int>(g.kernel), name + "_r");
    const auto& r = stages.reduction;
    Expr tap;
    if (weight_block > 0) {
        stages.weight_blocks =
            prepared.defined() ? prepared_weights : weight_blocks(name, stages.weight, weight_block);
        tap = stages.weight_blocks(c % weight_block, r.x, r.y, r.z, c / weight_block);
    } else {
        tap = stages.weight(c, r.x, r.y, r.z);
    }
    out(c, x, y, n) = bias_term;
    out(c, x, y, n) += tap * stages.padded_input(input_channel(g, c, r.x), x * stride + r.y * dilation - padding,
                                                 y * stride + r.z * dilation - padding, n);
    stages.output = out;
    return stages;
}

int64_t prepared_weight_elements(const ConvGeometry& g, const schedules::ConvAlgorithm& algorithm) {
    if (algorithm.weight_block <= 0) return 0;
    const PreparedLayout layout(g, algorithm);
    const int64_t blocks = (g.out_channels + layout.block_width - 1) / layout.block_width;
    return blocks * layout.block_width * layout.inputs * layout.side * layout.side;
}

int64_t prepared_weight_bound(const ConvGeometry& g, int vector_width) {
    int64_t bound = prepared_weight_elements(g, {vector_width, 0});
    if (computes_winograd(g)) bound = std::max(bound, prepared_weight_elements(g, {vector_width, 4}));
    return bound;
}

schedules::Conv2dPreparationStages conv2d_prepare_weights(const std::string& name, const ConvGeometry& g,
                                                          const Func& weight,
                                                          const schedules::ConvAlgorithm& algorithm) {
    if (prepared_weight_elements(g, algorithm) == 0) {
        throw std::logic_error(fmt::format("{}: no weights to prepare for an algorithm that reads them as they are", name));
    }
    const Func extended = extended_weight(name, weight, g);
    schedules::Conv2dPreparationStages stages;
    stages.geometry = g;
    stages.weight_block = algorithm.weight_block;
    stages.winograd = algorithm.winograd;
    stages.layout = stages.winograd > 0
                        ? winograd_weight(name, extended, algorithm.weight_block, winograd_transforms(algorithm.winograd))
                        : weight_blocks(name, extended, algorithm.weight_block);
    // Each j of the array from its (lane, ci, e1, e2, block); blocks past the last output channel
    // (the caller's array may be larger) hold zeros.
    const PreparedLayout layout(g, algorithm);
    Halide::Var j("j");
    Expr rest = j;
    std::vector<Expr> coordinates;
    for (int extent : {layout.block_width, layout.inputs, layout.side, layout.side}) {
        coordinates.push_back(rest % extent);
        rest = rest / extent;
    }
    coordinates.push_back(rest);
    stages.flat = Func(name + "_prepared_weights");
    stages.flat(j) = stages.layout(coordinates);
    return stages;
}

schedules::Conv2dBackwardStages conv2d_backward(const std::string& name, const schedules::Conv2dForwardStages& forward,
                                                const Value& output_grad, bool need_weight_grad,
                                                const Value& bias_grad_source, bool need_input_grad, const Expr& batch,
                                                const schedules::ConvAlgorithm& input_grad_algorithm,
                                                const schedules::ConvAlgorithm& weight_grad_algorithm) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const auto& [o, i, kx, ky] = std::tie(Dims::o, Dims::i, Dims::kx, Dims::ky);
    const ConvGeometry& g = forward.geometry;
    const int stride = static_cast<int>(g.stride), padding = static_cast<int>(g.padding),
              dilation = static_cast<int>(g.dilation);
    schedules::Conv2dBackwardStages stages;
    stages.geometry = g;
    stages.weight = forward.weight;
    stages.padded_input = forward.padded_input;

    if (need_weight_grad && weight_grad_algorithm.winograd > 0) {
        winograd_weight_grad(name, forward, output_grad, batch, weight_grad_algorithm.winograd, stages);
    } else if (need_weight_grad) {
        // dW(o, i, kx, ky) = sum_{x, y, n} dout(o, x, y, n) * in(g(o) * I + i, x*s + kx*d - p, y*s + ky*d - p, n)
        stages.weight_grad_reduction =
            RDom(0, static_cast<int>(g.out_width), 0, static_cast<int>(g.out_height), 0, batch, name + "_weight_grad_r");
        const auto& rw = stages.weight_grad_reduction;
        stages.weight_grad = Func(name + "_weight_grad");
        stages.weight_grad(o, i, kx, ky) = 0.0f;
        stages.weight_grad(o, i, kx, ky) +=
            output_grad.func(o, rw.x, rw.y, rw.z) * forward.padded_input(input_channel(g, o, i),
                                                                         rw.x * stride + kx * dilation - padding,
                                                                         rw.y * stride + ky * dilation - padding, rw.z);
    }
    if (need_weight_grad && bias_grad_source.func.defined()) {
        const Value& source = bias_grad_source;
        stages.bias_grad_reduction = RDom(0, static_cast<int>(source.extents[1]), 0,
                                          static_cast<int>(source.extents[2]), 0, batch, name + "_bias_grad_r");
        const auto& rb = stages.bias_grad_reduction;
        stages.bias_grad = Func(name + "_bias_grad");
        stages.bias_grad(o) = 0.0f;
        stages.bias_grad(o) += source.func(o, rb.x, rb.y, rb.z);
    }

    if (need_input_grad && input_grad_algorithm.winograd > 0) {
        // Winograd's conv of the output gradient with the weights flipped, input channels as its
        // outputs: din(c, x, y, n) = sum_{o, kx, ky} w(o, c, k-1-kx, k-1-ky) * dout(o, x + kx - (k-1-p), ...).
        // (conv2d_forward refuses the geometry where Winograd does not compute it.)
        const int last_tap = static_cast<int>(g.kernel) - 1;
        Func flipped(name + "_flipped_weight");
        flipped(o, i, kx, ky) = forward.weight(i, o, last_tap - kx, last_tap - ky);
        stages.input_grad_winograd = conv2d_forward(name + "_input_grad", output_grad, schedules::input_grad_as_conv(g),
                                                    flipped, Func(), input_grad_algorithm);
        stages.input_grad = stages.input_grad_winograd.output;
    } else if (need_input_grad) {
        // din(c, x, y, n) = sum_{j < O, kx, ky} w(o, c mod I, kx, ky) * dout(o, (x + p - kx*d)/s, (y + p - ky*d)/s, n)
        // with o = g(c) * O + j the outputs of c's group, over the output positions whose window
        // covers (x, y).
        stages.padded_output_grad = zero_extended(output_grad, name + "_padded_output_grad");
        stages.input_grad_reduction = RDom(0, group_outputs(g), 0, static_cast<int>(g.kernel), 0,
                                           static_cast<int>(g.kernel), name + "_input_grad_r");
        auto& r = stages.input_grad_reduction;
        // Only the ky taps that read a row of the output gradient (it is zero-extended past them):
        // Halide trims the ky loop of each row to them. LeNet-5's conv2 (14 input rows, 10 output
        // rows, 5 taps) then does 50 of its 70 row-taps; conv2's backward 0.51 -> 0.45 ms.
        const Expr source_row = y + padding - r.z * dilation;
        r.where(source_row >= 0 && source_row <= static_cast<int>((g.out_height - 1) * stride));
        Expr out_channel = r.x, weight_input = c;
        if (g.depthwise()) {
            out_channel = c;
            weight_input = 0;
        } else if (g.groups > 1) {
            out_channel = (c / group_inputs(g)) * group_outputs(g) + r.x;
            weight_input = c % group_inputs(g);
        }
        Expr source_x = x + padding - r.y * dilation, source_y = y + padding - r.z * dilation;
        Expr term = forward.weight(out_channel, weight_input, r.y, r.z) *
                    stages.padded_output_grad(out_channel, source_x / stride, source_y / stride, n);
        if (stride > 1) term = select(source_x % stride == 0 && source_y % stride == 0, term, 0.0f);
        stages.input_grad = Func(name + "_input_grad");
        stages.input_grad(c, x, y, n) = 0.0f;
        stages.input_grad(c, x, y, n) += term;
    }
    return stages;
}

}  // namespace convgen::codegen
