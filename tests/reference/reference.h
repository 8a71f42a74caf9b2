// Reference layers in double precision, written as plain loops in PyTorch's semantics and layouts
// (activations NCHW, conv weights OIHW, dense weights (out, in)), so that each can be checked by
// eye against PyTorch's documentation. Gradients are taken from these by central differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace convgen::reference {

// A dense 4-D array of doubles in row-major (n, c, h, w) order: activations NCHW, conv weights
// OIHW, dense weights (out, in, 1, 1), feature vectors (n, f, 1, 1). A sample's elements are
// contiguous in PyTorch's flatten order, c * H * W + y * W + x.
struct Tensor {
    int n = 0, c = 0, h = 0, w = 0;
    std::vector<double> data;

    Tensor() = default;
    Tensor(int n_, int c_, int h_, int w_)
        : n(n_), c(c_), h(h_), w(w_), data(static_cast<size_t>(n_) * c_ * h_ * w_, 0.0) {}

    double& operator()(int in, int ic, int iy, int ix) { return data[index(in, ic, iy, ix)]; }
    double operator()(int in, int ic, int iy, int ix) const { return data[index(in, ic, iy, ix)]; }
    size_t index(int in, int ic, int iy, int ix) const {
        return ((static_cast<size_t>(in) * c + ic) * h + iy) * w + ix;
    }
    size_t size() const { return data.size(); }
    int sample_size() const { return c * h * w; }
};

// PyTorch's output size: rounded down, or with ceil_mode up, less a last window that would
// start past the input and its left padding.
inline int pooled_size(int size, int kernel, int stride, int padding, bool ceil_mode = false) {
    if (!ceil_mode) return (size + 2 * padding - kernel) / stride + 1;
    int out = (size + 2 * padding - kernel + stride - 1) / stride + 1;
    if ((out - 1) * stride >= size + padding) out--;
    return out;
}

// out[n][o][y][x] = bias[o] + sum_{i, ky, kx} weight[o][i][ky][kx] * in[n][i][y*s + ky - p][x*s + kx - p],
// zero outside the input. An empty `bias` means none.
inline Tensor conv2d(const Tensor& in, const Tensor& weight, const std::vector<double>& bias, int stride, int padding) {
    const int kernel = weight.h;
    Tensor out(in.n, weight.n, pooled_size(in.h, kernel, stride, padding), pooled_size(in.w, kernel, stride, padding));
    for (int n = 0; n < out.n; n++)
        for (int o = 0; o < out.c; o++)
            for (int y = 0; y < out.h; y++)
                for (int x = 0; x < out.w; x++) {
                    double sum = bias.empty() ? 0.0 : bias[static_cast<size_t>(o)];
                    for (int i = 0; i < in.c; i++)
                        for (int ky = 0; ky < kernel; ky++)
                            for (int kx = 0; kx < kernel; kx++) {
                                const int iy = y * stride + ky - padding, ix = x * stride + kx - padding;
                                if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                                sum += weight(o, i, ky, kx) * in(n, i, iy, ix);
                            }
                    out(n, o, y, x) = sum;
                }
    return out;
}

// out = max over the k x k window, padding reads -inf. When `argmax` is given it receives the
// index ky * k + kx of the first maximum in row-major window order, as PyTorch's indices do.
inline Tensor max_pool(const Tensor& in, int kernel, int stride, int padding, Tensor* argmax = nullptr,
                       bool ceil_mode = false) {
    Tensor out(in.n, in.c, pooled_size(in.h, kernel, stride, padding, ceil_mode),
               pooled_size(in.w, kernel, stride, padding, ceil_mode));
    if (argmax) *argmax = Tensor(out.n, out.c, out.h, out.w);
    for (int n = 0; n < out.n; n++)
        for (int c = 0; c < out.c; c++)
            for (int y = 0; y < out.h; y++)
                for (int x = 0; x < out.w; x++) {
                    double best = -std::numeric_limits<double>::infinity();
                    int best_index = 0;
                    for (int ky = 0; ky < kernel; ky++)
                        for (int kx = 0; kx < kernel; kx++) {
                            const int iy = y * stride + ky - padding, ix = x * stride + kx - padding;
                            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                            if (in(n, c, iy, ix) > best) {
                                best = in(n, c, iy, ix);
                                best_index = ky * kernel + kx;
                            }
                        }
                    out(n, c, y, x) = best;
                    if (argmax) (*argmax)(n, c, y, x) = best_index;
                }
    return out;
}

// max_pool's adjoint: each output's gradient goes to the input its argmax names, as PyTorch's
// max_pool2d_backward does; ties are broken by the argmax alone. `argmax` comes from max_pool.
inline Tensor max_pool_backward(const Tensor& in, const Tensor& argmax, const Tensor& output_grad, int kernel,
                                int stride, int padding) {
    Tensor grad(in.n, in.c, in.h, in.w);
    for (int n = 0; n < argmax.n; n++)
        for (int c = 0; c < argmax.c; c++)
            for (int y = 0; y < argmax.h; y++)
                for (int x = 0; x < argmax.w; x++) {
                    const int index = static_cast<int>(argmax(n, c, y, x));
                    const int iy = y * stride + index / kernel - padding, ix = x * stride + index % kernel - padding;
                    grad(n, c, iy, ix) += output_grad(n, c, y, x);
                }
    return grad;
}

// out = sum over the k x k window / its size, padding reads 0. The size counts the padding with
// count_include_pad, never what a ceil_mode window reaches past the padding (PyTorch's avg_pool2d).
inline Tensor avg_pool(const Tensor& in, int kernel, int stride, int padding, bool ceil_mode = false,
                       bool count_include_pad = true) {
    Tensor out(in.n, in.c, pooled_size(in.h, kernel, stride, padding, ceil_mode),
               pooled_size(in.w, kernel, stride, padding, ceil_mode));
    for (int n = 0; n < out.n; n++)
        for (int c = 0; c < out.c; c++)
            for (int y = 0; y < out.h; y++)
                for (int x = 0; x < out.w; x++) {
                    double sum = 0.0;
                    for (int ky = 0; ky < kernel; ky++)
                        for (int kx = 0; kx < kernel; kx++) {
                            const int iy = y * stride + ky - padding, ix = x * stride + kx - padding;
                            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                            sum += in(n, c, iy, ix);
                        }
                    const int y0 = y * stride - padding, x0 = x * stride - padding;
                    const int y1 = std::min(y0 + kernel, in.h + padding), x1 = std::min(x0 + kernel, in.w + padding);
                    const int size = count_include_pad ? (y1 - y0) * (x1 - x0)
                                                       : (std::min(y1, in.h) - std::max(y0, 0)) *
                                                             (std::min(x1, in.w) - std::max(x0, 0));
                    out(n, c, y, x) = sum / size;
                }
    return out;
}

// out[n][o] = bias[o] + sum_i weight[o][i] * flatten(in)[n][i]; `weight` is (out, in, 1, 1), the
// result (n, out, 1, 1). An empty `bias` means none.
inline Tensor dense(const Tensor& in, const Tensor& weight, const std::vector<double>& bias) {
    const int features = in.sample_size();
    Tensor out(in.n, weight.n, 1, 1);
    for (int n = 0; n < in.n; n++)
        for (int o = 0; o < weight.n; o++) {
            double sum = bias.empty() ? 0.0 : bias[static_cast<size_t>(o)];
            for (int i = 0; i < features; i++) {
                sum +=
                    weight.data[static_cast<size_t>(o) * features + i] * in.data[static_cast<size_t>(n) * features + i];
            }
            out(n, o, 0, 0) = sum;
        }
    return out;
}

inline Tensor relu(Tensor t) {
    for (double& v : t.data) v = std::max(v, 0.0);
    return t;
}

// x * sigmoid(x)
inline Tensor silu(Tensor t) {
    for (double& v : t.data) v = v / (1.0 + std::exp(-v));
    return t;
}

// x * relu6(x + 3) / 6
inline Tensor hard_swish(Tensor t) {
    for (double& v : t.data) v = v * std::clamp(v + 3.0, 0.0, 6.0) / 6.0;
    return t;
}

// Softmax over the features of each sample of (n, k, 1, 1) logits.
inline Tensor softmax(const Tensor& logits) {
    Tensor p(logits.n, logits.c, 1, 1);
    for (int n = 0; n < logits.n; n++) {
        double max = -std::numeric_limits<double>::infinity(), sum = 0.0;
        for (int k = 0; k < logits.c; k++) max = std::max(max, logits(n, k, 0, 0));
        for (int k = 0; k < logits.c; k++) sum += std::exp(logits(n, k, 0, 0) - max);
        for (int k = 0; k < logits.c; k++) p(n, k, 0, 0) = std::exp(logits(n, k, 0, 0) - max) / sum;
    }
    return p;
}

// Mean over the batch of -log softmax(logits)[label].
inline double softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels) {
    const Tensor p = softmax(logits);
    double loss = 0.0;
    for (int n = 0; n < logits.n; n++) loss -= std::log(p(n, labels[static_cast<size_t>(n)], 0, 0));
    return loss / logits.n;
}

// How many samples have label == the first index of their largest logit (torch.argmax).
inline int correct_predictions(const Tensor& logits, const std::vector<int>& labels) {
    int correct = 0;
    for (int n = 0; n < logits.n; n++) {
        int best = 0;
        for (int k = 1; k < logits.c; k++) {
            if (logits(n, k, 0, 0) > logits(n, best, 0, 0)) best = k;
        }
        correct += best == labels[static_cast<size_t>(n)] ? 1 : 0;
    }
    return correct;
}

// sum(a * b) over all elements: with b an upstream gradient g, the loss L = sum(out * g) whose
// gradient with respect to anything is what a layer's backward pass computes for g.
inline double sum_of_products(const Tensor& a, const Tensor& b) {
    double sum = 0.0;
    for (size_t i = 0; i < a.size(); i++) sum += a.data[i] * b.data[i];
    return sum;
}

// (f(v + h) - f(v - h)) / 2h, with `value` a reference to the element that `f` reads.
inline double central_difference(double& value, const std::function<double()>& f, double step) {
    const double saved = value;
    value = saved + step;
    const double above = f();
    value = saved - step;
    const double below = f();
    value = saved;
    return (above - below) / (2.0 * step);
}

// PyTorch's SGD step (dampening 0, no Nesterov), element by element:
// v' = momentum * v + (g + weight_decay * w);  w' = w - learning_rate * v'.
inline void sgd_momentum(std::vector<double>& value, std::vector<double>& velocity, const std::vector<double>& grad,
                         double learning_rate, double momentum, double weight_decay) {
    for (size_t i = 0; i < value.size(); i++) {
        velocity[i] = momentum * velocity[i] + (grad[i] + weight_decay * value[i]);
        value[i] -= learning_rate * velocity[i];
    }
}

}  // namespace convgen::reference
