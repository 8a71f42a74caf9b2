// The math of every layer kind, forward and backward, run as codegen builds it and as the CPU
// schedules lay it out (loops rounded up to whole vectors, fused stages, rfactored reductions),
// against the double-precision loops of tests/reference/. Gradients are checked against central
// differences of the reference's L = sum(out * g) for a random upstream gradient g.
#include "layers.h"
#include "reference/reference.h"
#include "cpu/heuristics.h"

#include <convgen/codegen/lower.h>
#include <convgen/model.h>
#include <convgen/schedules/cpu.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace convgen::codegen;
namespace ref = convgen::reference;
namespace schedules = convgen::schedules;
namespace cpu = convgen::schedules::cpu;
using convgen::schedules::Context;
using Halide::Buffer;
using Halide::Func;

Context cpu_context(bool training) {
    return Context{Halide::get_jit_target_from_environment(), training, nullptr};
}

class Random {
  public:
    explicit Random(unsigned seed) : engine_(seed) {}

    // Rounded to float, so that the reference and the pipeline read the same numbers.
    double uniform(double low, double high) {
        return static_cast<float>(std::uniform_real_distribution<double>(low, high)(engine_));
    }
    int integer(int low, int high) { return std::uniform_int_distribution<int>(low, high)(engine_); }

    std::vector<double> values(int count, double low = -1.0, double high = 1.0) {
        std::vector<double> v(static_cast<size_t>(count));
        for (double& e : v) e = uniform(low, high);
        return v;
    }
    ref::Tensor tensor(int n, int c, int h, int w, double low = -1.0, double high = 1.0) {
        ref::Tensor t(n, c, h, w);
        t.data = values(static_cast<int>(t.size()), low, high);
        return t;
    }
    // Values in (-1, 1) at least 2/size apart, so that no pooling window has a tie, even after a
    // finite-difference step.
    ref::Tensor distinct_tensor(int n, int c, int h, int w) {
        ref::Tensor t(n, c, h, w);
        std::vector<int> order(t.size());
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), engine_);
        for (size_t i = 0; i < t.size(); i++) {
            t.data[i] = static_cast<float>((order[i] + 0.5) / static_cast<double>(t.size()) * 2.0 - 1.0);
        }
        return t;
    }
    // Magnitudes in [0.05, 1] with random signs: no value lies where a finite difference would
    // cross the kink of a ReLU.
    ref::Tensor away_from_zero(int n, int c, int h, int w) {
        ref::Tensor t = tensor(n, c, h, w, 0.05, 1.0);
        for (double& v : t.data) v = integer(0, 1) ? v : -v;
        return t;
    }
    // Every index of a small tensor; 30 random ones and both ends of a larger one.
    std::vector<size_t> sample(size_t size) {
        std::vector<size_t> indices(size);
        std::iota(indices.begin(), indices.end(), size_t{0});
        if (size <= 300) return indices;
        std::shuffle(indices.begin() + 1, indices.end() - 1, engine_);
        indices.resize(30);
        indices.push_back(size - 1);
        return indices;
    }

  private:
    std::mt19937 engine_;
};

// Layout conversions between reference tensors and Halide buffers.
// Images: NCHW <-> (c, x, y, n).
Buffer<float> image_buffer(const ref::Tensor& t) {
    Buffer<float> b(t.c, t.w, t.h, t.n);
    for (int n = 0; n < t.n; n++)
        for (int c = 0; c < t.c; c++)
            for (int y = 0; y < t.h; y++)
                for (int x = 0; x < t.w; x++) b(c, x, y, n) = static_cast<float>(t(n, c, y, x));
    return b;
}
ref::Tensor from_image_buffer(const Buffer<float>& b) {
    ref::Tensor t(b.dim(3).extent(), b.dim(0).extent(), b.dim(2).extent(), b.dim(1).extent());
    for (int n = 0; n < t.n; n++)
        for (int c = 0; c < t.c; c++)
            for (int y = 0; y < t.h; y++)
                for (int x = 0; x < t.w; x++) t(n, c, y, x) = b(c, x, y, n);
    return t;
}
// Conv weights: OIHW weight[o][i][ky][kx] <-> (o, i, kx, ky).
Buffer<float> conv_weight_buffer(const ref::Tensor& w) {
    Buffer<float> b(w.n, w.c, w.w, w.h);
    for (int o = 0; o < w.n; o++)
        for (int i = 0; i < w.c; i++)
            for (int ky = 0; ky < w.h; ky++)
                for (int kx = 0; kx < w.w; kx++) b(o, i, kx, ky) = static_cast<float>(w(o, i, ky, kx));
    return b;
}
ref::Tensor from_conv_weight_buffer(const Buffer<float>& b) {
    ref::Tensor w(b.dim(0).extent(), b.dim(1).extent(), b.dim(3).extent(), b.dim(2).extent());
    for (int o = 0; o < w.n; o++)
        for (int i = 0; i < w.c; i++)
            for (int ky = 0; ky < w.h; ky++)
                for (int kx = 0; kx < w.w; kx++) w(o, i, ky, kx) = b(o, i, kx, ky);
    return w;
}
// Any buffer whose dims are already in the reference's flat order, innermost first (feature
// vectors (f, n) <-> (n, f, 1, 1), biases, parameters of the SGD update).
Buffer<float> flat_buffer(const std::vector<double>& values, const std::vector<int>& extents) {
    Buffer<float> b(extents);
    for (size_t i = 0; i < values.size(); i++) b.data()[i] = static_cast<float>(values[i]);
    return b;
}
std::vector<double> from_flat_buffer(const Buffer<float>& b) {
    return std::vector<double>(b.data(), b.data() + b.number_of_elements());
}

// An activation as a pipeline's internal Func presents it to the next layer: defined everywhere
// (zero outside the tensor), so that a schedule may compute lanes past its edge.
Value activation(Buffer<float>& buffer, const std::vector<int64_t>& extents, const std::string& name) {
    return Value{zero_extended(Func(buffer), extents, 1, name), extents};
}

// A pure copy of `stage`, realized in its place: the stage becomes an internal Func whose
// schedule may round its loops past the output's extents (TailStrategy::RoundUp), as it does
// inside a generated pipeline.
Func exact_output(const Func& stage) {
    Func out(stage.name() + "_exact");
    const std::vector<Halide::Var> args = stage.args();
    out(args) = stage(args);
    return out;
}

// The value of a max pool's (max, argmax) Tuple, as the lowering reads it.
Func first_of_tuple(const Func& tuple, const std::string& name) {
    Func value(name);
    value(Dims::c, Dims::x, Dims::y, Dims::n) = tuple(Dims::c, Dims::x, Dims::y, Dims::n)[0];
    return value;
}

// Compiles `outputs` as one pipeline for the host and realizes them into `buffers`. Each output's
// extents are fixed at compile time, as the lowering fixes its outputs' shapes (constrain_dense):
// schedules unroll loops whose extents follow from them. A failure (a bounds error, say) fails
// the test with Halide's message instead of ending the run.
bool realize(const std::vector<Func>& outputs, std::vector<Buffer<>> buffers) {
    try {
        size_t next = 0;
        for (const Func& output : outputs) {
            // A Tuple's other buffers share the bounds of its first.
            REQUIRE(next < buffers.size());
            const Buffer<>& buffer = buffers[next];
            Halide::OutputImageParam param = output.output_buffers()[0];
            for (int d = 0; d < buffer.dimensions(); d++) param.dim(d).set_bounds(0, buffer.dim(d).extent());
            next += output.outputs();
        }
        Halide::Pipeline pipeline(outputs);
        Halide::Realization realization(buffers);
        pipeline.realize(realization, Halide::get_jit_target_from_environment());
        return true;
    } catch (const Halide::Error& error) {
        FAIL_CHECK("Halide failed: " << std::string(error.what()));
        return false;
    }
}

// Every element within `tolerance` of the expected value, relative to max(|expected|, 1). A
// failure names the worst element by its flat index in the reference's layout: `indices[i]` when
// the elements are a sample of a larger tensor.
void check_close(const std::vector<double>& actual, const std::vector<double>& expected, double tolerance,
                 const std::string& what, const std::vector<size_t>& indices = {}) {
    REQUIRE(actual.size() == expected.size());
    if (actual.empty()) return;
    size_t mismatches = 0, worst = 0;
    double worst_error = 0.0;
    for (size_t i = 0; i < actual.size(); i++) {
        const double error = std::abs(actual[i] - expected[i]) / std::max(std::abs(expected[i]), 1.0);
        if (!(error <= tolerance)) mismatches++;
        if (!(error <= worst_error)) {
            worst_error = error;
            worst = i;
        }
    }
    CHECK_MESSAGE(mismatches == 0,
                  fmt::format("{}: {} of {} elements off by more than {}; the worst, at flat index "
                              "{}: {} where {} was expected",
                              what, mismatches, actual.size(), tolerance, indices.empty() ? worst : indices[worst],
                              actual[worst], expected[worst]));
}

// Central differences of `loss` with respect to the elements of `values` that `random` samples:
// what a pipeline's gradient is checked against. They depend on the data alone, not on how the
// pipeline runs, so a test of many schedules of one layer computes them once.
struct SampledGradient {
    size_t size = 0;  // of the whole tensor
    std::vector<size_t> indices;
    std::vector<double> expected;
};

SampledGradient central_differences(std::vector<double>& values, const std::function<double()>& loss, Random& random,
                                    double step = 1e-6) {
    SampledGradient sampled{values.size(), random.sample(values.size()), {}};
    for (size_t i : sampled.indices) sampled.expected.push_back(ref::central_difference(values[i], loss, step));
    return sampled;
}

// `computed` (the pipeline's gradient, in the reference's layout) at the sampled elements.
void check_gradient(const std::vector<double>& computed, const SampledGradient& sampled, const std::string& what,
                    double tolerance = 1e-3) {
    REQUIRE(computed.size() == sampled.size);
    std::vector<double> actual;
    for (size_t i : sampled.indices) actual.push_back(computed[i]);
    check_close(actual, sampled.expected, tolerance, what + " against central differences", sampled.indices);
}

void check_gradient(std::vector<double>& values, const std::vector<double>& computed,
                    const std::function<double()>& loss, Random& random, const std::string& what, double step = 1e-6,
                    double tolerance = 1e-3) {
    check_gradient(computed, central_differences(values, loss, random, step), what, tolerance);
}

// ---------------------------------------------------------------------------------------------
// conv2d

struct ConvCase {
    int batch, in_channels, height, width, out_channels, kernel, stride, padding;
    bool bias = true;
};

std::string describe(const ConvCase& t) {
    return fmt::format("conv2d: batch {}, input {}x{}x{} (CxHxW), {} outputs, kernel {}, stride {}, padding {}{}",
                       t.batch, t.in_channels, t.height, t.width, t.out_channels, t.kernel, t.stride, t.padding,
                       t.bias ? "" : ", no bias");
}

schedules::ConvGeometry conv_geometry(const ConvCase& t) {
    return {t.in_channels,
            t.out_channels,
            t.width,
            t.height,
            ref::pooled_size(t.width, t.kernel, t.stride, t.padding),
            ref::pooled_size(t.height, t.kernel, t.stride, t.padding),
            t.kernel,
            t.stride,
            t.padding};
}

// A conv case's data, its reference output and the central differences its gradients are
// checked against.
struct ConvReference {
    ConvCase t;
    ref::Tensor input, weight;
    std::vector<double> bias;
    ref::Tensor expected, output_grad;
    SampledGradient input_grad, weight_grad, bias_grad;
};

ConvReference conv_reference(const ConvCase& t, unsigned seed) {
    Random random(seed);
    ConvReference r;
    r.t = t;
    r.input = random.tensor(t.batch, t.in_channels, t.height, t.width);
    r.weight = random.tensor(t.out_channels, t.in_channels, t.kernel, t.kernel);
    if (t.bias) r.bias = random.values(t.out_channels);
    r.expected = ref::conv2d(r.input, r.weight, r.bias, t.stride, t.padding);
    r.output_grad = random.tensor(r.expected.n, r.expected.c, r.expected.h, r.expected.w);
    auto loss = [&] {
        return ref::sum_of_products(ref::conv2d(r.input, r.weight, r.bias, t.stride, t.padding), r.output_grad);
    };
    r.input_grad = central_differences(r.input.data, loss, random);
    r.weight_grad = central_differences(r.weight.data, loss, random);
    if (t.bias) r.bias_grad = central_differences(r.bias, loss, random);
    return r;
}

// With `context`'s database (the autotuner's parameters) when it has one; records the conv's
// parameterised stages where context.tunable_stages is set.
void check_conv2d(const ConvReference& r, const Context& context = cpu_context(true)) {
    const ConvCase& t = r.t;
    INFO(describe(t));
    const ref::Tensor& expected = r.expected;
    const ConvGeometry g = conv_geometry(t);
    Buffer<float> input_buffer = image_buffer(r.input), weight_buffer = conv_weight_buffer(r.weight),
                  bias_buffer = flat_buffer(r.bias, {std::max(t.out_channels, 1)}),
                  grad_buffer = image_buffer(r.output_grad);
    // The input read directly, as a network's first layer reads the images.
    const Value in{Func(input_buffer), {t.in_channels, t.width, t.height}};
    const schedules::Conv2dForwardStages forward =
        conv2d_forward("conv", in, g, Func(weight_buffer), t.bias ? Func(bias_buffer) : Func(),
                       cpu::conv2d_algorithm(context, g, false));
    const Value output_grad_value = activation(grad_buffer, {t.out_channels, expected.w, expected.h}, "dout");
    const schedules::Conv2dBackwardStages backward =
        conv2d_backward("conv", forward, output_grad_value, true, t.bias ? output_grad_value : Value{}, true, t.batch,
                        cpu::conv2d_input_grad_algorithm(context, g), cpu::conv2d_weight_grad_algorithm(context, g));
    cpu::schedule_conv2d_forward(forward, context, nullptr);
    // As a training step's kernel has it: the input gradient a row at a time inside the kernel's
    // output where the schedule takes that.
    Func input_grad_output = exact_output(backward.input_grad);
    if (cpu::schedule_conv2d_backward(backward, context, true)) {
        cpu::schedule_kernel_output(input_grad_output, t.in_channels, context);
        cpu::compute_per_output_row(backward.input_grad, input_grad_output, context);
    }

    Buffer<float> out(t.out_channels, expected.w, expected.h, t.batch),
        input_grad(t.in_channels, t.width, t.height, t.batch),
        weight_grad(t.out_channels, t.in_channels, t.kernel, t.kernel), bias_grad(t.out_channels);
    std::vector<Func> outputs = {exact_output(forward.output), input_grad_output, exact_output(backward.weight_grad)};
    std::vector<Buffer<>> buffers = {out, input_grad, weight_grad};
    if (t.bias) {
        outputs.push_back(exact_output(backward.bias_grad));
        buffers.push_back(bias_grad);
    }
    if (!realize(outputs, buffers)) return;

    check_close(from_image_buffer(out).data, expected.data, 1e-4, "forward output");
    check_gradient(from_image_buffer(input_grad).data, r.input_grad, "input_grad");
    check_gradient(from_conv_weight_buffer(weight_grad).data, r.weight_grad, "weight_grad");
    if (t.bias) check_gradient(from_flat_buffer(bias_grad), r.bias_grad, "bias_grad");
}

// The forward pass reading its weights from conv2d_prepare_weights' array, as a prediction reads
// them (computed once per change of the parameters): the reference's numbers.
void check_prepared_forward(const ConvReference& r, const Context& context) {
    const ConvCase& t = r.t;
    INFO(describe(t) << ", weights prepared");
    const ConvGeometry g = conv_geometry(t);
    const schedules::ConvAlgorithm algorithm = cpu::conv2d_algorithm(context, g, false);
    const int64_t elements = prepared_weight_elements(g, algorithm);
    REQUIRE(elements > 0);
    Buffer<float> input_buffer = image_buffer(r.input), weight_buffer = conv_weight_buffer(r.weight),
                  bias_buffer = flat_buffer(r.bias, {std::max(t.out_channels, 1)});
    // Larger than the layout needs, as a library's array sized for several targets' layouts is.
    Buffer<float> prepared(static_cast<int>(elements + 3 * algorithm.weight_block));
    schedules::Conv2dPreparationStages preparation =
        conv2d_prepare_weights("conv", g, Func(weight_buffer), algorithm);
    cpu::schedule_conv2d_preparation(preparation, context);
    preparation.flat.realize(prepared, Halide::get_jit_target_from_environment());
    const Value in{Func(input_buffer), {t.in_channels, t.width, t.height}};
    const schedules::Conv2dForwardStages forward =
        conv2d_forward("conv", in, g, Func(), t.bias ? Func(bias_buffer) : Func(), algorithm, Func(prepared));
    cpu::schedule_conv2d_forward(forward, context, nullptr);
    Buffer<float> out(t.out_channels, r.expected.w, r.expected.h, t.batch);
    if (!realize({exact_output(forward.output)}, {out})) return;
    check_close(from_image_buffer(out).data, r.expected.data, 1e-4, "forward output from prepared weights");
}

void check_conv2d(const ConvCase& t, unsigned seed, const Context& context = cpu_context(true)) {
    check_conv2d(conv_reference(t, seed), context);
}

TEST_CASE("conv2d forward and its input, weight and bias gradients match PyTorch's conv2d under the CPU schedule") {
    // Channels below, at and above the AVX2 vector width, odd sizes, every stride/padding mix.
    const ConvCase cases[] = {
        {1, 1, 7, 9, 6, 5, 1, 2},   // LeNet's first layer, smaller
        {3, 3, 9, 8, 8, 3, 2, 1},   // stride 2 over an even width, odd height
        {3, 6, 6, 7, 16, 3, 1, 0},  // two output channel vectors, no padding
        {2, 8, 5, 5, 3, 1, 1, 0},   // 1x1 kernel, 3 outputs rounded up to a vector
        {1, 16, 9, 7, 6, 5, 2, 2},  // kernel 5, stride 2, padding 2
        {3, 3, 5, 6, 8, 3, 1, 1, false},
        {2, 40, 7, 9, 48, 3, 1, 1},  // many channel vectors: register tiles of several, blocks outside
        {2, 16, 6, 8, 24, 3, 1, 1},  // even outputs, 16 inputs: Winograd's F(2x2, 3x3) by default
    };
    unsigned seed = 1;
    for (const ConvCase& t : cases) {
        const ConvReference reference = conv_reference(t, seed++);
        check_conv2d(reference);
        check_prepared_forward(reference, cpu_context(false));
    }
}

TEST_CASE("every conv schedule in the autotuner's parameter space computes the same numbers") {
    // Random points of each stage's space (register tiles, channel blocks, blocks outermost,
    // batch chunks, ky taps in the tile, vectors and rows along x, Winograd or the direct sum), written
    // into a database as the tuner writes them.
    const ConvCase cases[] = {
        {2, 40, 7, 9, 48, 3, 1, 1},   // six channel vectors: blocks of 1, 2 or 3, outermost or not
        {3, 6, 6, 7, 16, 3, 2, 1},    // strided, two output vectors
        {2, 16, 5, 6, 40, 1, 1, 0},   // 1x1, five output vectors
        {1, 24, 5, 5, 72, 3, 1, 1},   // at least four vectors at either width, the last one partly
        {2, 3, 6, 20, 8, 3, 1, 1},    // three inputs, eight outputs: the forward and the input gradient
                                      // vectorised along x, two vectors per row, the gradient's sum over
                                      // outputs in parts; the weight gradient's 27 accumulators with the ky taps
        {2, 16, 8, 6, 72, 3, 1, 1},   // even outputs: Winograd or the direct sum, five output vectors
        {1, 2, 7, 18, 6, 3, 1, 1},    // along x with two rows a tile over an odd height
        {2, 24, 6, 10, 16, 3, 1, 1},  // Winograd's 4x4 tiles over a 10x6 output, rounded up to 12x8
    };
    std::mt19937 random(11);
    unsigned seed = 100;
    for (const ConvCase& t : cases) {
        const ConvReference reference = conv_reference(t, seed);
        std::vector<schedules::TunableStage> stages;
        Context probe = cpu_context(true);
        probe.tunable_stages = &stages;
        check_conv2d(reference, probe);
        REQUIRE(stages.size() == 3);  // forward, weight gradient, input gradient
        for (const schedules::TunableStage& stage : stages) {
            for (const auto& [name, value] : stage.defaults) {
                INFO(stage.signature << ": the heuristics' " << name << " = " << value << " lies in the space");
                const std::vector<int>& allowed = stage.space.at(name);
                CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end());
            }
        }
        for (int draw = 0; draw < 3; draw++) {
            schedules::ScheduleDatabase database;
            std::string chosen;
            for (const schedules::TunableStage& stage : stages) {
                schedules::ScheduleParameters parameters;
                for (const auto& [name, values] : stage.space) {
                    parameters[name] = values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(random)];
                    // Both loop orders, whatever the draw: channel blocks outermost in the first only.
                    if (name == "blocks_outer" && values.size() > 1) parameters[name] = draw == 0 ? 1 : 0;
                    // Vectors along x: the most in the first draw, one in the third; its sum over
                    // the output channels in the most parts, then in two.
                    if (name == "x_vectors" && values.size() > 1) {
                        parameters[name] = draw == 0 ? values.back() : draw == 2 ? values[1] : 0;
                    }
                    if (name == "x_rows" && values.size() > 1) parameters[name] = draw == 1 ? 1 : 2;
                    if (name == "output_parts" && values.size() > 1) {
                        parameters[name] = draw == 0 ? values.back() : values[1];
                    }
                    if (name == "ky_unrolled" && values.size() > 1) parameters[name] = draw == 0 ? 1 : 0;
                    // Winograd's (product whole, then a row of tiles at a time) and the direct sum, for
                    // the forward pass and for the input gradient (a conv of the output gradient).
                    if (name == "winograd" && values.size() > 1) parameters[name] = draw == 1 ? 0 : 1;
                    if (name == "winograd_whole") parameters[name] = draw == 0 ? 1 : 0;
                    // Both tiles of Winograd's, whole and a row at a time: F(4x4) in the first and third.
                    if (name == "winograd_outputs") parameters[name] = values.back() == 4 && draw != 1 ? 4 : 2;
                    // The weight gradient's transforms stored each way, by case.
                    if (name == "winograd_layout") parameters[name] = values[(seed + draw) % values.size()];
                    chosen += fmt::format(" {}={}", name, parameters[name]);
                }
                database.insert(cpu::target_key(probe.target), stage.signature, parameters);
            }
            INFO("parameters:" << chosen);
            Context tuned = cpu_context(true);
            tuned.database = &database;
            check_conv2d(reference, tuned);
            // Blocks outermost and Winograd's whole product in the first draw, the direct sum in the
            // second: each as a prediction reads its prepared weights.
            if (draw < 2) check_prepared_forward(reference, tuned);
        }
        seed++;
    }
}

TEST_CASE("conv2d weight and bias gradients sum every sample when the batch spans several parallel chunks") {
    // batch_chunk is 8 by default: 19 samples make two full chunks and a partial one.
    check_conv2d({19, 2, 5, 4, 3, 3, 1, 1}, 100);
    // Winograd's weight gradient by default (32 channels each way, even outputs), its chunks of 8
    // images likewise: one full, one of a single image.
    const ConvCase winograd{9, 32, 4, 6, 32, 3, 1, 1};
    CHECK(cpu::conv2d_weight_grad_algorithm(cpu_context(true), conv_geometry(winograd)).winograd == 2);
    check_conv2d(winograd, 101);
}

// ---------------------------------------------------------------------------------------------
// Pooling

struct PoolCase {
    int batch, channels, height, width, kernel, stride, padding;
    bool ceil_mode = false, count_include_pad = true;
};

std::string describe(const PoolCase& t) {
    return fmt::format("pool: batch {}, input {}x{}x{} (CxHxW), kernel {}, stride {}, padding {}{}{}", t.batch,
                       t.channels, t.height, t.width, t.kernel, t.stride, t.padding, t.ceil_mode ? ", ceil_mode" : "",
                       t.count_include_pad ? "" : ", padding not counted");
}

schedules::PoolGeometry pool_geometry(const PoolCase& t) {
    return {t.channels,
            t.width,
            t.height,
            ref::pooled_size(t.width, t.kernel, t.stride, t.padding, t.ceil_mode),
            ref::pooled_size(t.height, t.kernel, t.stride, t.padding, t.ceil_mode),
            t.kernel,
            t.stride,
            t.padding,
            t.count_include_pad};
}

const PoolCase pool_cases[] = {
    {1, 1, 8, 8, 2, 2, 0},    // the classic 2x2
    {2, 3, 5, 7, 2, 2, 0},    // odd sizes: the last row and column belong to no window
    {3, 6, 9, 7, 3, 2, 1},    // overlapping windows with padding
    {3, 8, 7, 7, 3, 1, 1},    // stride 1: every input is in up to 9 windows
    {1, 16, 11, 9, 5, 2, 2},  // kernel 5, padding 2
    // ceil_mode: a last partial window (GoogLeNet's 3/2 pools), with and without padding
    {2, 5, 10, 8, 3, 2, 0, true},
    {1, 8, 9, 6, 3, 2, 1, true},
    {2, 3, 7, 7, 2, 2, 0, true},
    // padding left out of the average, and with ceil_mode
    {2, 6, 9, 7, 3, 2, 1, false, false},
    {1, 9, 8, 10, 3, 2, 1, true, false},
};

// With `ties`, the input holds only -1, 0 and 1, so most windows have several maxima: the first
// one in row-major order must be chosen, and the gradient must go to it alone.
void check_max_pool(const PoolCase& t, unsigned seed, bool ties = false) {
    INFO(describe(t) << (ties ? ", with ties" : ""));
    Random random(seed);
    ref::Tensor input = random.distinct_tensor(t.batch, t.channels, t.height, t.width);
    if (ties) {
        for (double& v : input.data) v = random.integer(-1, 1);
    }
    ref::Tensor expected_argmax;
    const ref::Tensor expected =
        ref::max_pool(input, t.kernel, t.stride, t.padding, &expected_argmax, t.ceil_mode);
    const ref::Tensor output_grad = random.tensor(expected.n, expected.c, expected.h, expected.w);

    Buffer<float> input_buffer = image_buffer(input), grad_buffer = image_buffer(output_grad);
    const Value in{Func(input_buffer), {t.channels, t.width, t.height}};
    const schedules::PoolForwardStages forward = max_pool_forward("pool", in, pool_geometry(t), true);
    const schedules::PoolBackwardStages backward =
        max_pool_backward("pool", forward, activation(grad_buffer, {t.channels, expected.w, expected.h}, "dout"));
    const Context context = cpu_context(true);
    cpu::schedule_pool_forward(forward, context);
    cpu::schedule_pool_backward(backward, context);

    Buffer<float> out(t.channels, expected.w, expected.h, t.batch), input_grad(t.channels, t.width, t.height, t.batch);
    Buffer<uint8_t> argmax(t.channels, expected.w, expected.h, t.batch);
    if (!realize({exact_output(forward.output), exact_output(backward.input_grad)}, {out, argmax, input_grad})) {
        return;
    }

    check_close(from_image_buffer(out).data, expected.data, 1e-6, "forward output");
    size_t wrong_indices = 0;
    argmax.for_each_element([&](int c, int x, int y, int n) {
        if (argmax(c, x, y, n) != expected_argmax(n, c, y, x)) wrong_indices++;
    });
    CHECK_MESSAGE(wrong_indices == 0, wrong_indices << " argmax indices differ from the first maximum in the window");
    if (ties) {
        check_close(from_image_buffer(input_grad).data,
                    ref::max_pool_backward(input, expected_argmax, output_grad, t.kernel, t.stride, t.padding).data,
                    1e-5, "input_grad");
        return;
    }
    auto loss = [&] {
        return ref::sum_of_products(ref::max_pool(input, t.kernel, t.stride, t.padding, nullptr, t.ceil_mode),
                                    output_grad);
    };
    check_gradient(input.data, from_image_buffer(input_grad).data, loss, random, "input_grad");
}

void check_avg_pool(const PoolCase& t, unsigned seed) {
    INFO(describe(t));
    Random random(seed);
    ref::Tensor input = random.tensor(t.batch, t.channels, t.height, t.width);
    const ref::Tensor expected = ref::avg_pool(input, t.kernel, t.stride, t.padding, t.ceil_mode, t.count_include_pad);
    const ref::Tensor output_grad = random.tensor(expected.n, expected.c, expected.h, expected.w);

    Buffer<float> input_buffer = image_buffer(input), grad_buffer = image_buffer(output_grad);
    const Value in{Func(input_buffer), {t.channels, t.width, t.height}};
    const schedules::PoolForwardStages forward = avg_pool_forward("pool", in, pool_geometry(t));
    const schedules::PoolBackwardStages backward = avg_pool_backward(
        "pool", pool_geometry(t), activation(grad_buffer, {t.channels, expected.w, expected.h}, "dout"));
    const Context context = cpu_context(true);
    cpu::schedule_pool_forward(forward, context);
    cpu::schedule_pool_backward(backward, context);

    Buffer<float> out(t.channels, expected.w, expected.h, t.batch), input_grad(t.channels, t.width, t.height, t.batch);
    if (!realize({exact_output(forward.output), exact_output(backward.input_grad)}, {out, input_grad})) return;

    check_close(from_image_buffer(out).data, expected.data, 1e-4, "forward output");
    auto loss = [&] {
        return ref::sum_of_products(
            ref::avg_pool(input, t.kernel, t.stride, t.padding, t.ceil_mode, t.count_include_pad), output_grad);
    };
    check_gradient(input.data, from_image_buffer(input_grad).data, loss, random, "input_grad");
}

TEST_CASE("max_pool returns PyTorch's maxima and first-maximum indices, and routes each gradient to its argmax") {
    unsigned seed = 200;
    for (const PoolCase& t : pool_cases) {
        if (t.count_include_pad) check_max_pool(t, seed++);
    }
}

TEST_CASE("max_pool picks the first of tied maxima in row-major window order and gives it the whole gradient") {
    check_max_pool(pool_cases[2], 250, true);
    check_max_pool(pool_cases[3], 251, true);
}

TEST_CASE("avg_pool divides by PyTorch's window size (padding counted or not, ceil_mode windows) and spreads each "
          "gradient over the window") {
    unsigned seed = 300;
    for (const PoolCase& t : pool_cases) {
        if (t.padding > 0 || t.ceil_mode || t.height % t.kernel != 0) check_avg_pool(t, seed++);
    }
}

// ---------------------------------------------------------------------------------------------
// dense

struct DenseCase {
    int batch, channels, height, width;  // an image input when height * width > 1, else {channels} features
    int out_features;
    bool bias = true;
};

std::string describe(const DenseCase& t) {
    return fmt::format("dense: batch {}, input {}x{}x{}, {} outputs{}", t.batch, t.channels, t.height, t.width,
                       t.out_features, t.bias ? "" : ", no bias");
}

void check_dense(const DenseCase& t, unsigned seed) {
    INFO(describe(t));
    Random random(seed);
    const bool image = t.height * t.width > 1;
    const int features = t.channels * t.height * t.width;
    ref::Tensor input = random.tensor(t.batch, t.channels, t.height, t.width);
    ref::Tensor weight = random.tensor(t.out_features, features, 1, 1);
    std::vector<double> bias = t.bias ? random.values(t.out_features) : std::vector<double>{};
    const ref::Tensor expected = ref::dense(input, weight, bias);
    const ref::Tensor output_grad = random.tensor(t.batch, t.out_features, 1, 1);

    // The weight as codegen holds it: (o, input dims...), where PyTorch's column for input element
    // (c, y, x) of a flattened image is c * H * W + y * W + x.
    const std::vector<int64_t> in_extents =
        image ? std::vector<int64_t>{t.channels, t.width, t.height} : std::vector<int64_t>{features};
    Buffer<float> input_buffer = image ? image_buffer(input) : flat_buffer(input.data, {features, t.batch});
    Buffer<float> weight_buffer =
        image ? Buffer<float>(t.out_features, t.channels, t.width, t.height) : Buffer<float>(t.out_features, features);
    if (image) {
        weight_buffer.for_each_element([&](int o, int c, int x, int y) {
            weight_buffer(o, c, x, y) = static_cast<float>(weight(o, (c * t.height + y) * t.width + x, 0, 0));
        });
    } else {
        weight_buffer.for_each_element(
            [&](int o, int f) { weight_buffer(o, f) = static_cast<float>(weight(o, f, 0, 0)); });
    }
    Buffer<float> bias_buffer = flat_buffer(bias, {std::max(t.out_features, 1)});
    Buffer<float> grad_buffer = flat_buffer(output_grad.data, {t.out_features, t.batch});

    const Value in{Func(input_buffer), in_extents};
    const schedules::DenseForwardStages forward =
        dense_forward("dense", in, t.out_features, Func(weight_buffer), t.bias ? Func(bias_buffer) : Func());
    const schedules::DenseBackwardStages backward =
        dense_backward("dense", in, t.out_features, Func(weight_buffer),
                       activation(grad_buffer, {t.out_features}, "dout"), true, t.bias, true, t.batch);
    const Context context = cpu_context(true);
    cpu::schedule_dense_forward(forward, context);
    cpu::schedule_dense_backward(backward, context);

    Buffer<float> out(t.out_features, t.batch);
    Buffer<float> input_grad =
        image ? Buffer<float>(t.channels, t.width, t.height, t.batch) : Buffer<float>(features, t.batch);
    Buffer<float> weight_grad =
        image ? Buffer<float>(t.out_features, t.channels, t.width, t.height) : Buffer<float>(t.out_features, features);
    Buffer<float> bias_grad(t.out_features);
    std::vector<Func> outputs = {exact_output(forward.output), exact_output(backward.input_grad),
                                 exact_output(backward.weight_grad)};
    std::vector<Buffer<>> buffers = {out, input_grad, weight_grad};
    if (t.bias) {
        outputs.push_back(exact_output(backward.bias_grad));
        buffers.push_back(bias_grad);
    }
    if (!realize(outputs, buffers)) return;

    check_close(from_flat_buffer(out), expected.data, 1e-4, "forward output");
    // Back to the reference's layouts: the image gradient NCHW, the weight gradient (o, flat).
    const std::vector<double> input_grad_values =
        image ? from_image_buffer(input_grad).data : from_flat_buffer(input_grad);
    std::vector<double> weight_grad_values(weight.size());
    if (image) {
        weight_grad.for_each_element([&](int o, int c, int x, int y) {
            weight_grad_values[weight.index(o, (c * t.height + y) * t.width + x, 0, 0)] = weight_grad(o, c, x, y);
        });
    } else {
        weight_grad.for_each_element(
            [&](int o, int f) { weight_grad_values[weight.index(o, f, 0, 0)] = weight_grad(o, f); });
    }
    auto loss = [&] { return ref::sum_of_products(ref::dense(input, weight, bias), output_grad); };
    check_gradient(input.data, input_grad_values, loss, random, "input_grad");
    check_gradient(weight.data, weight_grad_values, loss, random, "weight_grad");
    if (t.bias) check_gradient(bias, from_flat_buffer(bias_grad), loss, random, "bias_grad");
}

TEST_CASE("dense forward and its gradients match PyTorch's linear layer, over features and flattened images") {
    const DenseCase cases[] = {
        {3, 7, 1, 1, 10},         // outputs not a multiple of the vector width
        {1, 16, 1, 1, 8},         // exactly one vector of outputs
        {3, 3, 4, 5, 6},          // a flattened 3x4x5 image read in place
        {2, 8, 3, 3, 16, false},  // no bias
        {11, 5, 1, 1, 21},        // a whole block of 8 samples and a tail; outputs into a third vector
    };
    unsigned seed = 400;
    for (const DenseCase& t : cases) check_dense(t, seed++);
}

TEST_CASE("a dense layer whose outputs are not a multiple of the vector width can feed a stored relu") {
    // As lower.cpp builds `dense(10) | relu`: the relu is stored with its channel loop rounded up
    // to whole vectors, so the dense layer is asked for lanes past its last output.
    Random random(450);
    const int batch = 2, features = 5, out_features = 10;
    const ref::Tensor input = random.tensor(batch, features, 1, 1),
                      weight = random.tensor(out_features, features, 1, 1);
    const std::vector<double> bias = random.values(out_features);
    Buffer<float> input_buffer = flat_buffer(input.data, {features, batch}),
                  bias_buffer = flat_buffer(bias, {out_features});
    Buffer<float> weight_buffer(out_features, features);
    weight_buffer.for_each_element([&](int o, int f) { weight_buffer(o, f) = static_cast<float>(weight(o, f, 0, 0)); });

    const schedules::DenseForwardStages forward = dense_forward("dense", Value{Func(input_buffer), {features}},
                                                                out_features, Func(weight_buffer), Func(bias_buffer));
    const Context context = cpu_context(false);
    cpu::schedule_dense_forward(forward, context);
    const Func activated =
        activation_forward("relu", Value{forward.output, {out_features}}, convgen::ActivationAttributes{});
    cpu::schedule_elementwise({activated, 2, out_features}, context);

    Buffer<float> out(out_features, batch);
    if (!realize({exact_output(activated)}, {out})) return;
    check_close(from_flat_buffer(out), ref::relu(ref::dense(input, weight, bias)).data, 1e-4, "relu(dense)");
}

// ---------------------------------------------------------------------------------------------
// Activations

// `input` avoids the kinks (relu's 0, hard_swish's -3 and 3) by more than a finite-difference step.
void check_activation(convgen::Activation function, const std::function<ref::Tensor(ref::Tensor)>& reference,
                      int batch, int channels, int height, int width, unsigned seed) {
    INFO(fmt::format("{}: batch {}, input {}x{}x{}", convgen::to_string(function), batch, channels, height, width));
    Random random(seed);
    const bool image = height * width > 1;
    ref::Tensor input = random.away_from_zero(batch, channels, height, width);
    for (double& v : input.data) v *= 5.0;
    for (double& v : input.data) {
        if (std::abs(std::abs(v) - 3.0) < 0.05) v += 0.1;
    }
    const convgen::ActivationAttributes attributes{function};
    const ref::Tensor output_grad = random.tensor(batch, channels, height, width);
    const std::vector<int64_t> extents =
        image ? std::vector<int64_t>{channels, width, height} : std::vector<int64_t>{channels};
    Buffer<float> input_buffer = image ? image_buffer(input) : flat_buffer(input.data, {channels, batch});
    Buffer<float> grad_buffer = image ? image_buffer(output_grad) : flat_buffer(output_grad.data, {channels, batch});

    const Value in = activation(input_buffer, extents, "activation_input");
    const Func out = activation_forward("activation", in, attributes);
    cpu::schedule_elementwise({out, in.dimensions(), extents[0]}, cpu_context(true));
    // The adjoint is inlined into its consumer, as the lowering leaves it.
    const Func input_grad =
        activation_backward("activation", attributes, in, Value{out, extents}, activation(grad_buffer, extents, "dout"));

    Buffer<float> out_buffer = image ? Buffer<float>(channels, width, height, batch) : Buffer<float>(channels, batch);
    Buffer<float> grad_out = image ? Buffer<float>(channels, width, height, batch) : Buffer<float>(channels, batch);
    if (!realize({exact_output(out), exact_output(input_grad)}, {out_buffer, grad_out})) return;

    const auto nchw = [&](const Buffer<float>& b) { return image ? from_image_buffer(b).data : from_flat_buffer(b); };
    check_close(nchw(out_buffer), reference(input).data, 1e-6, "forward output");
    auto loss = [&] { return ref::sum_of_products(reference(input), output_grad); };
    check_gradient(input.data, nchw(grad_out), loss, random, "input_grad");
}

TEST_CASE("relu passes positive values and their gradients and zeroes the rest") {
    check_activation(convgen::Activation::relu, ref::relu, 3, 6, 5, 3, 500);   // channels short of a vector
    check_activation(convgen::Activation::relu, ref::relu, 2, 13, 1, 1, 501);  // a feature vector
}

TEST_CASE("silu and hard_swish, whose adjoints read their input, match their definitions and finite differences") {
    check_activation(convgen::Activation::silu, ref::silu, 3, 6, 5, 3, 502);
    check_activation(convgen::Activation::silu, ref::silu, 2, 13, 1, 1, 503);
    check_activation(convgen::Activation::hard_swish, ref::hard_swish, 3, 10, 4, 3, 504);
    check_activation(convgen::Activation::hard_swish, ref::hard_swish, 2, 13, 1, 1, 505);
}

Func drop_path_factor(const Value& image, bool enabled) {
    return dropout_factor("path", image, convgen::DropoutAttributes{0.3, true},
                          DropoutControl{Halide::Expr(uint32_t(777)), Halide::Expr(enabled)});
}

TEST_CASE(
    "dropout zeroes about its rate of the elements, scales the rest by 1 / (1 - rate), and is off when disabled") {
    const Value image{Func("unused"), {16, 32, 32}};
    for (double rate : {0.2, 0.5}) {
        for (bool enabled : {true, false}) {
            Func factor = dropout_factor("drop", image, convgen::DropoutAttributes{rate},
                                         DropoutControl{Halide::Expr(uint32_t(12345)), Halide::Expr(enabled)});
            Buffer<float> values = factor.realize({16, 32, 32, 8});
            int64_t dropped = 0, kept = 0;
            values.for_each_value([&](float v) {
                if (v == 0.0f) {
                    dropped++;
                } else {
                    kept++;
                    CHECK(v == doctest::Approx(enabled ? 1.0 / (1.0 - rate) : 1.0));
                }
            });
            const double fraction = static_cast<double>(dropped) / static_cast<double>(dropped + kept);
            INFO("rate " << rate << ", enabled " << enabled << ": dropped " << fraction);
            CHECK(fraction == doctest::Approx(enabled ? rate : 0.0).epsilon(0).scale(1).epsilon(0.01));
        }
    }
    // Another seed, another mask; the same seed, the same.
    auto mask = [&](uint32_t seed) {
        return dropout_factor("drop", image, convgen::DropoutAttributes{0.5},
                              DropoutControl{Halide::Expr(seed), Halide::Expr(true)})
            .realize({16, 32, 32, 1});
    };
    Buffer<float> a = mask(1), b = mask(1), c = mask(2);
    int same = 0, differ = 0;
    a.for_each_element([&](const int* at) {
        CHECK(a(at) == b(at));
        (a(at) == c(at) ? same : differ)++;
    });
    CHECK(differ > same / 2);
}

TEST_CASE("drop_path keeps or drops each sample whole, about its rate of them, and is off when disabled") {
    const Value image{Func("unused"), {4, 3, 3}};
    const int samples = 2000;
    for (bool enabled : {true, false}) {
        Func factor = drop_path_factor(image, enabled);
        Buffer<float> values = factor.realize({4, 3, 3, samples});
        int dropped = 0;
        for (int n = 0; n < samples; n++) {
            const float first = values(0, 0, 0, n);
            CHECK(((first == 0.0f && enabled) || first == doctest::Approx(enabled ? 1.0 / 0.7 : 1.0)));
            bool whole = true;
            values.sliced(3, n).for_each_value([&](float v) { whole = whole && v == first; });
            CHECK_MESSAGE(whole, "sample " << n << " is partly dropped");
            if (first == 0.0f) dropped++;
        }
        INFO("enabled " << enabled << ": dropped " << dropped << " of " << samples);
        CHECK(static_cast<double>(dropped) / samples == doctest::Approx(enabled ? 0.3 : 0.0).epsilon(0).scale(1).epsilon(0.04));
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy

void check_softmax_cross_entropy(int batch, int classes, unsigned seed) {
    INFO(fmt::format("softmax cross-entropy: batch {}, {} classes", batch, classes));
    Random random(seed);
    ref::Tensor logits = random.tensor(batch, classes, 1, 1, -3.0, 3.0);
    std::vector<int> labels(static_cast<size_t>(batch));
    for (int& label : labels) label = random.integer(0, classes - 1);
    // Sample 0 predicted right, so that the count of correct predictions is not trivially 0.
    labels[0] =
        static_cast<int>(std::max_element(logits.data.begin(), logits.data.begin() + classes) - logits.data.begin());

    Buffer<float> logits_buffer = flat_buffer(logits.data, {classes, batch});
    Buffer<int32_t> labels_buffer(batch);
    for (int n = 0; n < batch; n++) labels_buffer(n) = labels[static_cast<size_t>(n)];
    const schedules::LossStages stages =
        softmax_cross_entropy("loss", Value{Func(logits_buffer), {classes}}, Func(labels_buffer), batch, true);
    cpu::schedule_loss(stages, cpu_context(true));

    Buffer<float> loss = Buffer<float>::make_scalar(), probabilities(classes, batch), logits_grad(classes, batch);
    Buffer<int32_t> correct = Buffer<int32_t>::make_scalar();
    if (!realize({stages.loss, stages.correct, exact_output(stages.probabilities), exact_output(stages.logits_grad)},
                 {loss, correct, probabilities, logits_grad})) {
        return;
    }

    check_close({loss()}, {ref::softmax_cross_entropy(logits, labels)}, 1e-5, "loss");
    CHECK(correct() == ref::correct_predictions(logits, labels));
    check_close(from_flat_buffer(probabilities), ref::softmax(logits).data, 1e-5, "probabilities");
    auto reference_loss = [&] { return ref::softmax_cross_entropy(logits, labels); };
    check_gradient(logits.data, from_flat_buffer(logits_grad), reference_loss, random, "logits_grad", 1e-5);
}

TEST_CASE("softmax cross-entropy gives PyTorch's mean loss, the correct count, the probabilities and their gradient") {
    check_softmax_cross_entropy(3, 10, 600);
    check_softmax_cross_entropy(1, 3, 601);
}

// ---------------------------------------------------------------------------------------------
// SGD

void check_sgd(const std::vector<int>& extents, unsigned seed) {
    INFO(fmt::format("sgd: parameter of extents {}", fmt::join(extents, "x")));
    Random random(seed);
    int elements = 1;
    for (int e : extents) elements *= e;
    std::vector<double> value = random.values(elements), velocity = random.values(elements),
                        gradient = random.values(elements);
    Buffer<float> value_buffer = flat_buffer(value, extents), velocity_buffer = flat_buffer(velocity, extents),
                  gradient_buffer = flat_buffer(gradient, extents);
    Halide::Param<float> learning_rate("learning_rate"), momentum("momentum"), weight_decay("weight_decay");
    learning_rate.set(0.05f);
    momentum.set(0.9f);
    weight_decay.set(5e-4f);

    schedules::ParameterUpdateStages stages =
        sgd_momentum_update("weight", Func(value_buffer), Func(velocity_buffer), Func(gradient_buffer),
                            static_cast<int>(extents.size()), learning_rate, momentum, weight_decay);
    stages.extents.assign(extents.begin(), extents.end());
    cpu::schedule_parameter_update(stages, cpu_context(true));
    Buffer<float> new_value(extents), new_velocity(extents);
    if (!realize({stages.new_value, stages.new_velocity}, {new_value, new_velocity})) return;

    ref::sgd_momentum(value, velocity, gradient, static_cast<float>(0.05f), static_cast<float>(0.9f),
                      static_cast<float>(5e-4f));
    check_close(from_flat_buffer(new_velocity), velocity, 1e-6, "new velocity");
    check_close(from_flat_buffer(new_value), value, 1e-6, "new value");
}

TEST_CASE("the SGD update is PyTorch's: v' = momentum * v + g + weight_decay * w, w' = w - lr * v'") {
    check_sgd({13}, 700);          // a bias longer than a vector, with a tail
    check_sgd({6, 3, 5, 5}, 701);  // a conv weight (o, i, kx, ky)
    check_sgd({120, 16, 5, 5}, 702);  // LeNet-5's dense1 as laid out: large enough to run in parallel
}

// ---------------------------------------------------------------------------------------------
// conv -> relu -> max_pool, fused as the lowering schedules it

struct ConvPoolCase {
    ConvCase conv;
    int pool_kernel, pool_stride, pool_padding;
};

struct ConvPoolTensors {
    ref::Tensor input, weight, output_grad;
    std::vector<double> bias;
};

struct ConvPoolResult {
    ref::Tensor output, argmax, input_grad, weight_grad;
    std::vector<double> bias_grad;
    bool realized = false;
};

ref::Tensor reference_conv_relu_pool(const ConvPoolCase& t, const ConvPoolTensors& x) {
    const ref::Tensor conv = ref::conv2d(x.input, x.weight, x.bias, t.conv.stride, t.conv.padding);
    return ref::max_pool(ref::relu(conv), t.pool_kernel, t.pool_stride, t.pool_padding);
}

// `fused`: as the lowering does after canonical_graph, conv -> max_pool scheduled together, then
// relu; otherwise the source order, each stage scheduled alone: conv, relu, max_pool.
// `training` adds the argmax and the backward pass of the whole chain for `x.output_grad`; with
// `first_layer`, as a network's first conv, without the input gradient.
ConvPoolResult run_conv_relu_pool(const ConvPoolCase& t, ConvPoolTensors& x, bool fused, bool training,
                                  bool first_layer = false, const schedules::ScheduleDatabase* database = nullptr) {
    const ConvCase& cc = t.conv;
    const schedules::ConvGeometry geometry = conv_geometry(cc);
    const int conv_width = static_cast<int>(geometry.out_width), conv_height = static_cast<int>(geometry.out_height);
    const schedules::PoolGeometry pool_geometry{
        cc.out_channels,
        conv_width,
        conv_height,
        ref::pooled_size(conv_width, t.pool_kernel, t.pool_stride, t.pool_padding),
        ref::pooled_size(conv_height, t.pool_kernel, t.pool_stride, t.pool_padding),
        t.pool_kernel,
        t.pool_stride,
        t.pool_padding};
    const std::vector<int64_t> conv_extents{cc.out_channels, conv_width, conv_height},
        pooled_extents{cc.out_channels, pool_geometry.out_width, pool_geometry.out_height};

    Buffer<float> input_buffer = image_buffer(x.input), weight_buffer = conv_weight_buffer(x.weight),
                  bias_buffer = flat_buffer(x.bias, {cc.out_channels});
    Context context = cpu_context(training);
    context.database = database;
    const schedules::Conv2dForwardStages conv =
        conv2d_forward("conv", Value{Func(input_buffer), {cc.in_channels, cc.width, cc.height}}, geometry,
                       Func(weight_buffer), Func(bias_buffer), cpu::conv2d_algorithm(context, geometry, fused));
    schedules::PoolForwardStages pool;
    Func output, activated;
    if (fused) {
        pool = max_pool_forward("pool", Value{conv.output, conv_extents}, pool_geometry, training);
        cpu::schedule_conv2d_forward(conv, context, &pool);
        activated = activation_forward(
            "relu", Value{training ? first_of_tuple(pool.output, "pool_value") : pool.output, pooled_extents},
            convgen::ActivationAttributes{});
        cpu::schedule_elementwise({activated, 4, cc.out_channels}, context);
        output = activated;
    } else {
        cpu::schedule_conv2d_forward(conv, context, nullptr);
        activated = activation_forward("relu", Value{conv.output, conv_extents}, convgen::ActivationAttributes{});
        cpu::schedule_elementwise({activated, 4, cc.out_channels}, context);
        pool = max_pool_forward("pool", Value{activated, conv_extents}, pool_geometry, training);
        cpu::schedule_pool_forward(pool, context);
        output = training ? first_of_tuple(pool.output, "pool_value") : pool.output;
    }

    ConvPoolResult result;
    Buffer<float> out(cc.out_channels, pool_geometry.out_width, pool_geometry.out_height, cc.batch);
    std::vector<Func> outputs = {exact_output(output)};
    std::vector<Buffer<>> buffers = {out};
    Buffer<uint8_t> argmax(cc.out_channels, pool_geometry.out_width, pool_geometry.out_height, cc.batch);
    Buffer<float> input_grad(cc.in_channels, cc.width, cc.height, cc.batch),
        weight_grad(cc.out_channels, cc.in_channels, cc.kernel, cc.kernel), bias_grad(cc.out_channels);
    Buffer<float> grad_buffer;
    if (training) {
        Func index("pool_argmax");
        index(Dims::c, Dims::x, Dims::y, Dims::n) = pool.output(Dims::c, Dims::x, Dims::y, Dims::n)[1];
        outputs.push_back(index);
        buffers.push_back(argmax);
        // Backward in the order the forward ran, as lower_backward walks the graph.
        grad_buffer = image_buffer(x.output_grad);
        const Value output_grad = activation(grad_buffer, pooled_extents, "dout");
        Value conv_grad, bias_grad_source;
        if (fused) {
            // As lower.cpp has it: the bias gradient summed over the pool's gradient.
            const Func relu_grad = activation_backward("relu", convgen::ActivationAttributes{}, Value{},
                                                       Value{activated, pooled_extents}, output_grad);
            const schedules::PoolBackwardStages pool_back =
                max_pool_backward("pool", pool, {relu_grad, pooled_extents});
            cpu::schedule_pool_backward(pool_back, context);
            conv_grad = Value{pool_back.input_grad, conv_extents};
            bias_grad_source = Value{relu_grad, pooled_extents};
        } else {
            const schedules::PoolBackwardStages pool_back = max_pool_backward("pool", pool, output_grad);
            cpu::schedule_pool_backward(pool_back, context);
            conv_grad = Value{activation_backward("relu", convgen::ActivationAttributes{}, Value{},
                                                  Value{activated, conv_extents}, {pool_back.input_grad, conv_extents}),
                              conv_extents};
            bias_grad_source = conv_grad;
        }
        schedules::Conv2dBackwardStages conv_back =
            conv2d_backward("conv", conv, conv_grad, true, bias_grad_source, !first_layer, cc.batch,
                            cpu::conv2d_input_grad_algorithm(context, conv.geometry),
                            cpu::conv2d_weight_grad_algorithm(context, conv.geometry));
        if (fused) conv_back.output_grad_stage = conv_grad.func;
        cpu::schedule_conv2d_backward(conv_back, context);
        if (!first_layer) {
            outputs.push_back(exact_output(conv_back.input_grad));
            buffers.push_back(input_grad);
        }
        outputs.push_back(exact_output(conv_back.weight_grad));
        outputs.push_back(exact_output(conv_back.bias_grad));
        buffers.push_back(weight_grad);
        buffers.push_back(bias_grad);
    }
    if (!realize(outputs, buffers)) return result;

    result.realized = true;
    result.output = from_image_buffer(out);
    if (training) {
        result.argmax = ref::Tensor(cc.batch, cc.out_channels, pool_geometry.out_height, pool_geometry.out_width);
        argmax.for_each_element(
            [&](int c, int px, int py, int n) { result.argmax(n, c, py, px) = argmax(c, px, py, n); });
        result.input_grad = from_image_buffer(input_grad);
        result.weight_grad = from_conv_weight_buffer(weight_grad);
        result.bias_grad = from_flat_buffer(bias_grad);
    }
    return result;
}

ConvPoolTensors conv_pool_tensors(const ConvPoolCase& t, Random& random) {
    const ConvCase& cc = t.conv;
    ConvPoolTensors x;
    x.input = random.tensor(cc.batch, cc.in_channels, cc.height, cc.width);
    x.weight = random.tensor(cc.out_channels, cc.in_channels, cc.kernel, cc.kernel);
    x.bias = random.values(cc.out_channels, -0.5, 0.5);
    const ref::Tensor out = reference_conv_relu_pool(t, x);
    x.output_grad = random.tensor(out.n, out.c, out.h, out.w);
    return x;
}

const ConvPoolCase conv_pool_cases[] = {
    {{1, 1, 12, 12, 6, 5, 1, 2}, 2, 2, 0},  // LeNet's first block, smaller: conv and pool vectorised along x
    {{3, 3, 11, 9, 8, 3, 1, 1}, 3, 2, 1},   // overlapping pool windows with padding, odd sizes, along x
    {{2, 6, 9, 10, 16, 3, 2, 0}, 2, 2, 0},  // strided conv, two channel vectors, odd pooled input
    {{2, 16, 8, 10, 32, 3, 1, 1}, 2, 2, 0},  // Winograd's 2x2 output tiles under 2x2 pool windows
    {{1, 16, 6, 6, 16, 3, 1, 1}, 3, 2, 1},   // Winograd's tiles under overlapping, padded windows
    {{2, 8, 13, 7, 24, 3, 1, 1}, 3, 2, 1},   // overlapping windows over 7 pool rows, channel vectors
};

TEST_CASE("conv fused into its max pool, then relu, equals conv, relu, max pool scheduled apart, and PyTorch") {
    unsigned seed = 800;
    for (const ConvPoolCase& t : conv_pool_cases) {
        INFO(describe(t.conv) << ", then max_pool kernel " << t.pool_kernel << " stride " << t.pool_stride
                              << " padding " << t.pool_padding);
        Random random(seed++);
        ConvPoolTensors x = conv_pool_tensors(t, random);
        const ConvPoolResult fused = run_conv_relu_pool(t, x, true, false);
        const ConvPoolResult apart = run_conv_relu_pool(t, x, false, false);
        if (!fused.realized || !apart.realized) continue;
        check_close(fused.output.data, apart.output.data, 1e-5, "fused against unfused");
        check_close(fused.output.data, reference_conv_relu_pool(t, x).data, 1e-5, "fused against the reference");
        if (t.pool_kernel <= t.pool_stride) continue;
        // Overlapping windows: the pool's rows in 2 or 4 chunks (7 rows: a shorter last chunk),
        // the conv rows they share computed once per chunk; 0: a pool row at a time.
        for (int chunks : {2, 4, 0}) {
            INFO("pool_row_chunks " << chunks);
            schedules::ScheduleDatabase database;
            database.insert(cpu::target_key(cpu_context(false).target),
                            cpu::conv_forward_signature(cpu_context(false), conv_geometry(t.conv), true),
                            {{"pool_row_chunks", chunks}});
            const ConvPoolResult chunked = run_conv_relu_pool(t, x, true, false, false, &database);
            if (!chunked.realized) continue;
            check_close(chunked.output.data, fused.output.data, 1e-6, "pool rows in chunks against the default");
        }
    }
}

TEST_CASE("training through conv fused into max pool, then relu, gives PyTorch's conv-relu-pool gradients") {
    // The relu moved after the pool (canonical_graph) must not change any gradient: where a whole
    // window is negative, PyTorch's gradient is zero either way.
    const ConvPoolCase& t = conv_pool_cases[1];
    INFO(describe(t.conv));
    Random random(850);
    ConvPoolTensors x = conv_pool_tensors(t, random);
    const ConvPoolResult fused = run_conv_relu_pool(t, x, true, true);
    if (!fused.realized) return;

    check_close(fused.output.data, reference_conv_relu_pool(t, x).data, 1e-5, "forward output");
    ref::Tensor expected_argmax;
    ref::max_pool(ref::conv2d(x.input, x.weight, x.bias, t.conv.stride, t.conv.padding), t.pool_kernel, t.pool_stride,
                  t.pool_padding, &expected_argmax);
    check_close(fused.argmax.data, expected_argmax.data, 0.0, "argmax of the conv output");
    auto loss = [&] { return ref::sum_of_products(reference_conv_relu_pool(t, x), x.output_grad); };
    check_gradient(x.input.data, fused.input_grad.data, loss, random, "input_grad");
    check_gradient(x.weight.data, fused.weight_grad.data, loss, random, "weight_grad");
    check_gradient(x.bias, fused.bias_grad, loss, random, "bias_grad");

    // As a network's first conv: the pool's gradient computed a batch chunk at a time inside the
    // weight gradient's sum, which alone reads it.
    const ConvPoolResult first = run_conv_relu_pool(t, x, true, true, true);
    REQUIRE(first.realized);
    check_close(first.weight_grad.data, fused.weight_grad.data, 1e-5, "weight_grad of a first layer");
    check_close(first.bias_grad, fused.bias_grad, 1e-5, "bias_grad of a first layer");
}

// ---------------------------------------------------------------------------------------------
// canonical_graph

TEST_CASE("canonical_graph moves a relu that feeds only a max pool after the pool and keeps every layer's name") {
    using namespace convgen;
    Tensor x = input("image", Shape{1, 12, 12});
    x = conv2d(x, 4, 3, {.name = "conv"});
    x = relu(x, "act");
    x = max_pool(x, 2, {.name = "pool"});
    x = flatten(x, "flat");
    x = dense(x, 10, {.name = "fc"});
    const Model model("tiny", x, softmax_cross_entropy());

    const codegen::CanonicalGraph canonical = codegen::canonical_graph(model, true);
    const Graph& graph = canonical.graph;
    const int output = canonical.output_node;
    std::vector<std::string> names;
    std::vector<LayerKind> kinds;
    for (const Node& node : graph.nodes()) {
        names.push_back(node.name);
        kinds.push_back(node.kind);
        for (int input_id : node.inputs) CHECK(input_id < node.id);  // still topologically ordered
    }
    CHECK(names == std::vector<std::string>{"image", "conv", "pool", "act", "flat", "fc"});
    CHECK(kinds == std::vector<LayerKind>{LayerKind::input, LayerKind::conv2d, LayerKind::max_pool,
                                          LayerKind::activation, LayerKind::flatten, LayerKind::dense});
    REQUIRE(graph.nodes().size() == 6);
    CHECK(graph.node(2).inputs == std::vector<int>{1});  // pool reads conv
    CHECK(graph.node(3).inputs == std::vector<int>{2});  // act reads pool
    CHECK(graph.node(4).inputs == std::vector<int>{3});  // flat reads act
    CHECK(graph.node(3).shape == Shape{4, 5, 5});
    CHECK(graph.node(2).shape == Shape{4, 5, 5});
    CHECK(output == 5);
    CHECK(graph.node(output).name == "fc");
}

TEST_CASE("canonical_graph leaves silu and hard_swish, which are not monotone, before a max pool") {
    using namespace convgen;
    for (const ActivationLayer& activation : {silu, hard_swish}) {
        Tensor image = input("image", Shape{1, 8, 8});
        Tensor pooled = max_pool(activation(conv2d(image, 2, 3, {.name = "conv"}), "act"), 2, {.name = "pool"});
        const Model model("m", dense(flatten(pooled), 3, {.name = "fc"}), softmax_cross_entropy());
        const Graph& graph = codegen::canonical_graph(model, true).graph;
        REQUIRE(graph.nodes().size() == model.graph().nodes().size());
        for (size_t i = 0; i < graph.nodes().size(); i++) {
            CHECK(graph.nodes()[i].name == model.graph().nodes()[i].name);
        }
    }
}

TEST_CASE("canonical_graph leaves a relu before a max pool when the relu has another consumer") {
    using namespace convgen;
    Tensor image = input("image", Shape{1, 8, 8});
    Tensor activated = relu(conv2d(image, 2, 3, {.name = "conv"}), "act");
    max_pool(activated, 2, {.name = "pool"});  // a branch the model's output does not use
    Tensor logits = dense(flatten(activated), 3, {.name = "fc"});
    const Model model("branch", logits, softmax_cross_entropy());

    const codegen::CanonicalGraph canonical = codegen::canonical_graph(model, true);
    const Graph& graph = canonical.graph;
    const int output = canonical.output_node;
    REQUIRE(graph.nodes().size() == model.graph().nodes().size());
    for (size_t i = 0; i < graph.nodes().size(); i++) {
        CHECK(graph.nodes()[i].name == model.graph().nodes()[i].name);
        CHECK(graph.nodes()[i].inputs == model.graph().nodes()[i].inputs);
    }
    CHECK(graph.node(output).name == "fc");
}

}  // namespace

TEST_CASE("layers the kernels cannot lay out are refused with the layer's name") {
    using namespace convgen;
    auto image = input("image", Shape{2, 4, 4});
    auto normalised = batch_norm(flatten(image), {.name = "bn_features"}) | dense(3);
    try {
        codegen::plan_inference(Model("bad", normalised, softmax_cross_entropy()));
        FAIL("planned a batch norm over a flattened image");
    } catch (const ModelError& e) {
        CHECK(std::string(e.what()) ==
              "layer 'bn_features' (batch_norm): input shape [2, 4, 4]: batch norm over the features of a flattened "
              "image is not supported; put it before flatten");
    }
    // A [C, 1, 1] image flattened is its channels: batch norm over them is fine.
    auto pooled = input("image", Shape{2, 4, 4}) | global_avg_pool | flatten | batch_norm() | dense(3);
    CHECK_NOTHROW(codegen::plan_training_step(Model("fine", pooled, softmax_cross_entropy())));
}

namespace {

// The forward calls of a program whose description names a layer, and the tensor each writes.
std::vector<std::string> forward_calls(const convgen::codegen::Program& program) {
    std::vector<std::string> found;
    for (const auto& call : program.calls) {
        if (call.what.rfind("forward ", 0) == 0) found.push_back(call.what.substr(8));
    }
    return found;
}

int tensor_named(const convgen::codegen::Program& program, const std::string& name) {
    for (size_t t = 0; t < program.tensors.size(); t++) {
        if (program.tensors[t].name == name) return static_cast<int>(t);
    }
    FAIL("no tensor named ", name);
    return -1;
}

}  // namespace

TEST_CASE("a chain of concatenations is assembled in place: each layer writes its slice of the last one's tensor") {
    using namespace convgen;
    // DenseNet's pattern: features = concat(features, new maps), three times.
    Tensor features = input("image", Shape{3, 8, 8}) | conv2d(4, 3, {.padding = 1, .name = "stem"});
    for (int i = 1; i <= 3; i++) {
        const Tensor grown = features | relu | conv2d(2, 3, {.padding = 1, .name = "grow" + std::to_string(i)});
        features = concat({features, grown}, "join" + std::to_string(i));
    }
    const Model model("chain", features | global_avg_pool | flatten | dense(5), softmax_cross_entropy());
    for (const bool training : {false, true}) {
        CAPTURE(training);
        const codegen::Program program = training ? codegen::plan_training_step(model) : codegen::plan_inference(model);
        for (const std::string& call : forward_calls(program)) CHECK(call.find("join") == std::string::npos);
        const int whole = tensor_named(program, "join3");
        CHECK(program.tensors[static_cast<size_t>(whole)].storage == -1);
        const std::vector<std::pair<std::string, int64_t>> slices = {{"stem", 0},  {"grow1", 4}, {"grow2", 6},
                                                                     {"grow3", 8}, {"join1", 0}, {"join2", 0}};
        for (const auto& [name, offset] : slices) {
            CAPTURE(name);
            const codegen::ProgramTensor& t = program.tensors[static_cast<size_t>(tensor_named(program, name))];
            CHECK(t.storage == whole);
            CHECK(t.channel_offset == offset);
        }
        // And turned off (a GPU library), every concatenation is a copy again.
        codegen::LoweringOptions copies;
        copies.concat_in_place = false;
        const codegen::Program copied =
            training ? codegen::plan_training_step(model, copies) : codegen::plan_inference(model, copies);
        const std::vector<std::string> calls = forward_calls(copied);
        CHECK(std::count_if(calls.begin(), calls.end(), [](const std::string& c) { return c.find("join") == 0; }) == 3);
        for (const auto& t : copied.tensors) CHECK(t.storage == -1);
    }
}

TEST_CASE("a concatenation of the images, or of one tensor twice, stays a copy") {
    using namespace convgen;
    const Tensor image = input("image", Shape{3, 8, 8});
    const Tensor maps = image | conv2d(4, 3, {.padding = 1, .name = "maps"});
    const Tensor with_image = concat({image, maps}, "with_image");
    const Tensor twice = concat({maps, maps}, "twice");
    const Model model("copies", concat({with_image, twice}, "both") | global_avg_pool | flatten | dense(5),
                      softmax_cross_entropy());
    const codegen::Program program = codegen::plan_inference(model);
    const std::vector<std::string> calls = forward_calls(program);
    // "both" joins two tensors of their own, in place; the two below it copy.
    CHECK(std::find(calls.begin(), calls.end(), "with_image") != calls.end());
    CHECK(std::find(calls.begin(), calls.end(), "twice") != calls.end());
    CHECK(std::find(calls.begin(), calls.end(), "both") == calls.end());
    CHECK(program.tensors[static_cast<size_t>(tensor_named(program, "twice"))].channel_offset == 7);
    CHECK(program.tensors[static_cast<size_t>(tensor_named(program, "maps"))].storage == -1);
}

TEST_CASE("at inference a squeeze-and-excitation gate read by one conv is computed inside the conv's kernel") {
    using namespace convgen;
    const Tensor maps = input("image", Shape{3, 8, 8}) | conv2d(8, 3, {.padding = 1, .name = "maps"});
    const Tensor gate =
        global_avg_pool(maps) | conv2d(2, 1, {.name = "fc1"}) | relu | conv2d(8, 1, {.name = "fc2"}) | sigmoid;
    const Tensor projected = scale_channels(maps, gate, "gated") | conv2d(4, 1, {.name = "project"});
    const Model model("se", projected | global_avg_pool | flatten | dense(5), softmax_cross_entropy());
    const codegen::Program inference = codegen::plan_inference(model);
    std::vector<std::string> calls = forward_calls(inference);
    CHECK(std::find(calls.begin(), calls.end(), "gated") == calls.end());
    CHECK(std::find(calls.begin(), calls.end(), "project") != calls.end());
    for (const auto& t : inference.tensors) CHECK(t.name != "gated");
    // A training step keeps it: its gradients need its own kernel.
    calls = forward_calls(codegen::plan_training_step(model));
    CHECK(std::find(calls.begin(), calls.end(), "gated") != calls.end());
}

TEST_CASE("each kernel call's multiply-add estimate counts a conv's windows and a dense layer's rows") {
    using namespace convgen;
    // LeNet-5's first layers: conv 1 -> 6, 5x5, padding 2 on 28x28, its pool and ReLU fused after it.
    const Tensor features = input("image", Shape{1, 28, 28}) | conv2d(6, 5, {.padding = 2, .name = "conv1"}) | relu |
                            max_pool(2, {.name = "pool1"}) | flatten | dense(10, {.name = "fc"});
    const Model model("estimate", features, softmax_cross_entropy());
    auto work_of = [](const codegen::Program& program, const std::string& what) {
        for (const auto& call : program.calls) {
            if (call.what.rfind(what, 0) == 0) return std::pair{call.work_per_sample, call.work_per_call};
        }
        FAIL("no call '", what, "'");
        return std::pair<int64_t, int64_t>{};
    };
    const int64_t conv = 6 * 28 * 28 * 25, pool = 6 * 14 * 14, relu_out = 6 * 14 * 14, fc = 10 * 6 * 14 * 14;
    const codegen::Program inference = codegen::plan_inference(model);
    // The call's layers are conv1, pool1 and the ReLU (moved after the pool), whatever it is named.
    CHECK(work_of(inference, "forward conv1+pool1+").first == conv + pool + relu_out);
    CHECK(work_of(inference, "forward fc") == std::pair<int64_t, int64_t>{fc, 0});
    const codegen::Program training = codegen::plan_training_step(model);
    CHECK(work_of(training, "backward fc").first == 2 * fc);
}
