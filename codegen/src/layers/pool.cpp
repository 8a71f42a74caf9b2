// Pooling over k x k windows with stride s and padding p:
//   max: out(c, x, y, n) = max_{kx, ky} in(c, x*s + kx - p, y*s + ky - p, n), padding reads -inf
//   avg: out(c, x, y, n) = sum_{kx, ky} in(...) / count(x) * count(y), padding reads 0, where
//        count is k, less what lies past the padding (a ceil_mode window) and, without
//        count_include_pad, less the padding: PyTorch's divisor.
// Windows are small, so they are written out term by term rather than as an RDom maximum.
#include "../layers.h"

#include <limits>

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;

namespace {

Expr window_read(const schedules::PoolForwardStages& stages, int kx, int ky) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const PoolGeometry& g = stages.geometry;
    const int s = static_cast<int>(g.stride), p = static_cast<int>(g.padding);
    return stages.padded_input(c, x * s + kx - p, y * s + ky - p, n);
}

// Calls `each(window_x, window_y, kx, ky)` for every output window covering input (x, y): the
// windows whose offset kx = x + p - window_x * s lies in [0, k). There are ceil(k/s) per axis.
template <typename Each>
void for_each_covering_window(const PoolGeometry& g, const Each& each) {
    const auto& [x, y] = std::tie(Dims::x, Dims::y);
    const int s = static_cast<int>(g.stride), p = static_cast<int>(g.padding), k = static_cast<int>(g.kernel);
    const int candidates = (k + s - 1) / s;
    for (int jy = 0; jy < candidates; jy++) {
        for (int jx = 0; jx < candidates; jx++) {
            Expr window_x = (x + p) / s - jx, window_y = (y + p) / s - jy;
            Expr kx = x + p - window_x * s, ky = y + p - window_y * s;
            Expr valid = kx < k && ky < k && window_x >= 0 && window_x < int(g.out_width) && window_y >= 0 &&
                         window_y < int(g.out_height);
            each(Halide::clamp(window_x, 0, int(g.out_width) - 1), Halide::clamp(window_y, 0, int(g.out_height) - 1),
                 kx, ky, valid);
        }
    }
}

// 1 / the divisor of the average over the window at output (x, y): a constant where every window
// is whole, else an expression.
Expr reciprocal_window_size(const PoolGeometry& g, const Expr& x, const Expr& y) {
    const int s = static_cast<int>(g.stride), p = static_cast<int>(g.padding), k = static_cast<int>(g.kernel);
    const bool whole_windows = (g.out_width - 1) * s + k <= g.in_width + 2 * p &&
                               (g.out_height - 1) * s + k <= g.in_height + 2 * p;
    if (g.count_include_pad && whole_windows) return Expr(1.0f / static_cast<float>(k * k));
    auto count = [&](const Expr& out, int64_t size) {
        const Expr start = out * s - p, end = Halide::min(start + k, static_cast<int>(size) + p);
        if (g.count_include_pad) return end - start;
        return Halide::min(end, static_cast<int>(size)) - Halide::max(start, 0);
    };
    return 1.0f / Halide::cast<float>(count(x, g.in_width) * count(y, g.in_height));
}

// The input as the windows read it: extended with `fill` where a window reaches past an edge
// (padding, a ceil_mode window), else the input itself, unguarded: a fused conv's pool vectorised
// along x reads a vector of windows, rounded up past the last, from the conv computed there
// (clamped x and a select would make each such read a gather).
Func window_input(const Value& input, const PoolGeometry& g, const std::string& name, const Expr& fill) {
    const int64_t s = g.stride, k = g.kernel;
    const bool within =
        g.padding == 0 && (g.out_width - 1) * s + k <= g.in_width && (g.out_height - 1) * s + k <= g.in_height;
    if (!within) return spatially_extended(input, name, fill);
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    Func read(name);
    read(c, x, y, n) = input.func(c, x, y, n);
    return read;
}

Halide::Type argmax_type(const PoolGeometry& g) {
    return g.kernel * g.kernel <= 256 ? Halide::UInt(8) : Halide::Int(32);
}

}  // namespace

schedules::PoolForwardStages max_pool_forward(const std::string& name, const Value& input, const PoolGeometry& g,
                                              bool with_argmax) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    schedules::PoolForwardStages stages;
    stages.geometry = g;
    stages.padded_input = window_input(input, g, name + "_padded_input", Expr(-std::numeric_limits<float>::infinity()));
    const int k = static_cast<int>(g.kernel);
    // Strictly greater keeps the first maximum in row-major order, as PyTorch does.
    Expr best = window_read(stages, 0, 0);
    Expr best_index = Halide::cast(argmax_type(g), 0);
    for (int ky = 0; ky < k; ky++) {
        for (int kx = 0; kx < k; kx++) {
            if (kx == 0 && ky == 0) continue;
            Expr candidate = window_read(stages, kx, ky);
            if (with_argmax) {
                best_index = select(candidate > best, Halide::cast(argmax_type(g), ky * k + kx), best_index);
            }
            best = Halide::max(best, candidate);
        }
    }
    stages.output = Func(name);
    if (with_argmax) {
        stages.output(c, x, y, n) = Halide::Tuple(best, best_index);
    } else {
        stages.output(c, x, y, n) = best;
    }
    return stages;
}

schedules::PoolBackwardStages max_pool_backward(const std::string& name, const schedules::PoolForwardStages& forward,
                                                const Value& output_grad) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const PoolGeometry& g = forward.geometry;
    const int k = static_cast<int>(g.kernel);
    Expr sum = 0.0f;
    for_each_covering_window(g, [&](Expr wx, Expr wy, Expr kx, Expr ky, Expr valid) {
        Expr is_argmax = Halide::cast<int>(forward.output(c, wx, wy, n)[1]) == ky * k + kx;
        sum += select(valid && is_argmax, output_grad.func(c, wx, wy, n), 0.0f);
    });
    schedules::PoolBackwardStages stages;
    stages.geometry = g;
    stages.input_grad = Func(name + "_input_grad");
    stages.input_grad(c, x, y, n) = sum;
    return stages;
}

schedules::PoolForwardStages avg_pool_forward(const std::string& name, const Value& input, const PoolGeometry& g) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    schedules::PoolForwardStages stages;
    stages.geometry = g;
    stages.padded_input = window_input(input, g, name + "_padded_input", 0.0f);
    const int k = static_cast<int>(g.kernel);
    Expr sum = 0.0f;
    for (int ky = 0; ky < k; ky++) {
        for (int kx = 0; kx < k; kx++) sum += window_read(stages, kx, ky);
    }
    stages.output = Func(name);
    stages.output(c, x, y, n) = sum * reciprocal_window_size(g, x, y);
    return stages;
}

schedules::PoolBackwardStages avg_pool_backward(const std::string& name, const PoolGeometry& g,
                                                const Value& output_grad) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    Expr sum = 0.0f;
    for_each_covering_window(g, [&](Expr wx, Expr wy, Expr, Expr, Expr valid) {
        sum += select(valid, output_grad.func(c, wx, wy, n) * reciprocal_window_size(g, wx, wy), 0.0f);
    });
    schedules::PoolBackwardStages stages;
    stages.geometry = g;
    stages.input_grad = Func(name + "_input_grad");
    stages.input_grad(c, x, y, n) = sum;
    return stages;
}

}  // namespace convgen::codegen

namespace convgen::codegen {

// Global average pooling: out(c, 0, 0, n) = sum_{x, y} in(c, x, y, n) / (W * H); each input
// position receives dout(c, 0, 0, n) / (W * H).
schedules::GlobalPoolStages global_avg_pool_forward(const std::string& name, const Value& input) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const int width = static_cast<int>(input.extents[1]), height = static_cast<int>(input.extents[2]);
    Halide::RDom r(0, width, 0, height, name + "_r");
    schedules::GlobalPoolStages stages;
    stages.channels = input.extents[0];
    Func sum(name + "_sum");
    sum(c, n) = 0.0f;
    sum(c, n) += input.func(c, r.x, r.y, n);
    stages.sum = sum;
    stages.output = Func(name);
    stages.output(c, x, y, n) = sum(c, n) * (1.0f / static_cast<float>(width * height));
    return stages;
}

Func global_avg_pool_backward(const std::string& name, const Value& input, const Value& output_grad) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const float area = static_cast<float>(input.extents[1] * input.extents[2]);
    Func grad(name + "_input_grad");
    grad(c, x, y, n) = output_grad.func(c, 0, 0, n) * (1.0f / area);
    return grad;
}

}  // namespace convgen::codegen
