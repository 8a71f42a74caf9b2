// The generated libraries, exercised only through their public C and C++ APIs: small_cnn (the
// paths LeNet does not take: odd non-square input, strided and padded convolution, no bias,
// overlapping average pooling, padded max pooling) and lenet5. A plain-loop reference in double
// precision checks the forward pass and, through directional derivatives, the gradients.
#include "lenet5.hpp"
#include "small_cnn.hpp"

// The reader every generated library embeds, here only to inspect the files the libraries write.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ once the reader's
// helpers are inlined here (GCC bug 105329).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
namespace checkpoint_reader {
#include "../../codegen/library/safetensors.inc"
}
#pragma GCC diagnostic pop

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// The two models behind one interface, so that each behaviour is written once.

struct SmallCnn {
    using Model = small_cnn::Model;
    using Error = small_cnn::Error;
    static constexpr const char* name = "small_cnn";
    static int load(small_cnn_model* model, const char* path) { return small_cnn_load(model, path); }
    static const char* last_error(const small_cnn_model* model) { return small_cnn_last_error(model); }
};

struct Lenet5 {
    using Model = lenet5::Model;
    using Error = lenet5::Error;
    static constexpr const char* name = "lenet5";
    static int load(lenet5_model* model, const char* path) { return lenet5_load(model, path); }
    static const char* last_error(const lenet5_model* model) { return lenet5_last_error(model); }
};

// ---------------------------------------------------------------------------------------------
// Data, snapshots and files.

struct Data {
    std::vector<float> images;  // [n][height][width][channels]
    std::vector<int32_t> labels;
    int count = 0;
    const float* image(int i, int input_size) const { return images.data() + static_cast<size_t>(i) * input_size; }
};

template <typename Api>
Data random_set(int count, uint32_t seed) {
    std::mt19937 random(seed);
    std::normal_distribution<float> pixel(0.0f, 1.0f);
    std::uniform_int_distribution<int32_t> label(0, Api::Model::classes - 1);
    Data data;
    data.count = count;
    data.images.resize(static_cast<size_t>(count) * Api::Model::input_size);
    for (float& v : data.images) v = pixel(random);
    for (int i = 0; i < count; i++) data.labels.push_back(label(random));
    return data;
}

std::vector<uint32_t> bits_of(const std::vector<float>& values) {
    std::vector<uint32_t> bits(values.size());
    std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
    return bits;
}

// Every parameter's bit pattern: comparing two snapshots is a bit-exact comparison.
using Snapshot = std::map<std::string, std::vector<uint32_t>>;

template <typename Model>
Snapshot snapshot(Model& model) {
    Snapshot result;
    for (const auto& info : Model::parameters()) result[info.name] = bits_of(model.get_parameter(info.name));
    return result;
}

template <typename Model>
std::vector<uint32_t> prediction_bits(Model& model, const Data& data) {
    return bits_of(model.predict(data.images.data(), data.count));
}

// Mean cross-entropy of the model's predictions on the whole set.
template <typename Model>
double cross_entropy(Model& model, const Data& data) {
    const std::vector<float> probabilities = model.predict(data.images.data(), data.count);
    double sum = 0;
    for (int i = 0; i < data.count; i++) {
        sum -= std::log(static_cast<double>(probabilities[static_cast<size_t>(i) * Model::classes + data.labels[i]]));
    }
    return sum / data.count;
}

// A fresh directory under the system temp directory, removed with everything in it.
struct TemporaryDirectory {
    fs::path path;
    TemporaryDirectory() {
        std::string pattern = (fs::temp_directory_path() / "convgen_library_XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out);
}

// A safetensors file written by hand: 8-byte little-endian header length, the JSON header, data.
std::vector<uint8_t> safetensors_file(const std::string& header, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> bytes;
    const uint64_t length = header.size();
    for (int i = 0; i < 8; i++) bytes.push_back(static_cast<uint8_t>(length >> (8 * i)));
    bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
    return bytes;
}

struct FileTensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

std::vector<uint8_t> to_bytes(const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(float));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

template <typename T>
std::vector<uint8_t> converted_bytes(const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(T));
    for (size_t i = 0; i < values.size(); i++) {
        const T v = static_cast<T>(values[i]);
        std::memcpy(bytes.data() + i * sizeof(T), &v, sizeof(T));
    }
    return bytes;
}

// Tensors back to back in the given order, offsets as the format requires.
std::vector<uint8_t> safetensors_file(const std::vector<FileTensor>& tensors,
                                      const std::map<std::string, std::string>& metadata = {}) {
    std::string header = "{";
    if (!metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [key, value] : metadata) {
            header += first ? "\"" : ",\"";
            header += key;
            header += "\":\"";
            header += value;
            header += "\"";
            first = false;
        }
        header += "}";
    }
    std::vector<uint8_t> data;
    for (const FileTensor& t : tensors) {
        if (header.size() > 1) header += ",";
        header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
        for (size_t d = 0; d < t.shape.size(); d++) {
            if (d > 0) header += ",";
            header += std::to_string(t.shape[d]);
        }
        header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
                  std::to_string(data.size() + t.bytes.size()) + "]}";
        data.insert(data.end(), t.bytes.begin(), t.bytes.end());
    }
    header += "}";
    return safetensors_file(header, data);
}

// The model's parameters as a PyTorch state dict would hold them: names, OIHW / [out][in], F32.
template <typename Model>
std::vector<FileTensor> state_dict(Model& model) {
    std::vector<FileTensor> tensors;
    for (const auto& info : Model::parameters()) {
        tensors.push_back({info.name, "F32", info.shape, to_bytes(model.get_parameter(info.name))});
    }
    return tensors;
}

uint64_t header_length(const std::vector<uint8_t>& file) {
    uint64_t length = 0;
    for (int i = 7; i >= 0; i--) length = (length << 8) | file.at(static_cast<size_t>(i));
    return length;
}

// Replaces the first occurrence of `from` by `to` (same length) inside the file's bytes.
std::vector<uint8_t> replaced(std::vector<uint8_t> bytes, const std::string& from, const std::string& to) {
    REQUIRE(from.size() == to.size());
    auto at = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
    REQUIRE(at != bytes.end());
    std::copy(to.begin(), to.end(), at);
    return bytes;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// A plain-loop reference of both networks in double precision, on PyTorch-layout parameters.

struct Layer {
    enum Kind { conv2d, relu, max_pool, avg_pool, flatten, dense } kind;
    std::string name;  // for conv2d and dense
    int out = 0, kernel = 0, stride = 1, padding = 0;
    bool bias = true;
};

const std::vector<Layer>& small_cnn_layers() {
    static const std::vector<Layer> layers = {
        {Layer::conv2d, "conv1", 8, 3, 2, 1, true}, {Layer::relu, "", 0, 0, 1, 0, false},
        {Layer::avg_pool, "", 0, 2, 1, 0, false},   {Layer::conv2d, "conv2", 6, 3, 1, 1, false},
        {Layer::relu, "", 0, 0, 1, 0, false},       {Layer::max_pool, "", 0, 3, 2, 1, false},
        {Layer::flatten, "", 0, 0, 1, 0, false},    {Layer::dense, "dense1", 12, 0, 1, 0, true},
        {Layer::relu, "", 0, 0, 1, 0, false},       {Layer::dense, "dense2", 5, 0, 1, 0, true},
    };
    return layers;
}

const std::vector<Layer>& lenet5_layers() {
    static const std::vector<Layer> layers = {
        {Layer::conv2d, "conv1", 6, 5, 1, 2, true}, {Layer::relu, "", 0, 0, 1, 0, false},
        {Layer::max_pool, "", 0, 2, 2, 0, false},   {Layer::conv2d, "conv2", 16, 5, 1, 0, true},
        {Layer::relu, "", 0, 0, 1, 0, false},       {Layer::max_pool, "", 0, 2, 2, 0, false},
        {Layer::flatten, "", 0, 0, 1, 0, false},    {Layer::dense, "dense1", 120, 0, 1, 0, true},
        {Layer::relu, "", 0, 0, 1, 0, false},       {Layer::dense, "dense2", 84, 0, 1, 0, true},
        {Layer::relu, "", 0, 0, 1, 0, false},       {Layer::dense, "dense3", 10, 0, 1, 0, true},
    };
    return layers;
}

template <typename Api>
const std::vector<Layer>& layers_of() {
    if constexpr (std::is_same_v<Api, SmallCnn>) {
        return small_cnn_layers();
    } else {
        return lenet5_layers();
    }
}

using Parameters = std::map<std::string, std::vector<double>>;

template <typename Model>
Parameters parameters_of(Model& model) {
    Parameters result;
    for (const auto& info : Model::parameters()) {
        const std::vector<float> values = model.get_parameter(info.name);
        result[info.name] = std::vector<double>(values.begin(), values.end());
    }
    return result;
}

// [channels][height][width]; features are [features][1][1].
struct Activation {
    int c = 0, h = 0, w = 0;
    std::vector<double> v;
    Activation(int channels, int height, int width, double fill = 0)
        : c(channels), h(height), w(width), v(static_cast<size_t>(channels) * height * width, fill) {}
    double& at(int ci, int y, int x) { return v[(static_cast<size_t>(ci) * h + y) * w + x]; }
    double at(int ci, int y, int x) const { return v[(static_cast<size_t>(ci) * h + y) * w + x]; }
};

std::vector<double> reference_logits(const std::vector<Layer>& layers, const Parameters& p, const float* image,
                                     int channels, int height, int width) {
    Activation a(channels, height, width);
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            for (int ci = 0; ci < channels; ci++) a.at(ci, y, x) = image[(y * width + x) * channels + ci];
        }
    }
    for (const Layer& layer : layers) {
        if (layer.kind == Layer::conv2d) {
            const std::vector<double>& weight = p.at(layer.name + ".weight");
            const int k = layer.kernel, s = layer.stride, pad = layer.padding;
            Activation out(layer.out, (a.h + 2 * pad - k) / s + 1, (a.w + 2 * pad - k) / s + 1);
            for (int o = 0; o < out.c; o++) {
                for (int y = 0; y < out.h; y++) {
                    for (int x = 0; x < out.w; x++) {
                        double sum = layer.bias ? p.at(layer.name + ".bias")[static_cast<size_t>(o)] : 0.0;
                        for (int ci = 0; ci < a.c; ci++) {
                            for (int ky = 0; ky < k; ky++) {
                                for (int kx = 0; kx < k; kx++) {
                                    const int iy = y * s + ky - pad, ix = x * s + kx - pad;
                                    if (iy < 0 || iy >= a.h || ix < 0 || ix >= a.w) continue;
                                    sum += weight[((static_cast<size_t>(o) * a.c + ci) * k + ky) * k + kx] *
                                           a.at(ci, iy, ix);
                                }
                            }
                        }
                        out.at(o, y, x) = sum;
                    }
                }
            }
            a = std::move(out);
        } else if (layer.kind == Layer::relu) {
            for (double& v : a.v) v = std::max(v, 0.0);
        } else if (layer.kind == Layer::max_pool || layer.kind == Layer::avg_pool) {
            const int k = layer.kernel, s = layer.stride, pad = layer.padding;
            Activation out(a.c, (a.h + 2 * pad - k) / s + 1, (a.w + 2 * pad - k) / s + 1);
            for (int ci = 0; ci < a.c; ci++) {
                for (int y = 0; y < out.h; y++) {
                    for (int x = 0; x < out.w; x++) {
                        double best = -std::numeric_limits<double>::infinity(), sum = 0;
                        for (int ky = 0; ky < k; ky++) {
                            for (int kx = 0; kx < k; kx++) {
                                const int iy = y * s + ky - pad, ix = x * s + kx - pad;
                                if (iy < 0 || iy >= a.h || ix < 0 || ix >= a.w) continue;  // max: -inf, avg: 0
                                best = std::max(best, a.at(ci, iy, ix));
                                sum += a.at(ci, iy, ix);
                            }
                        }
                        // Average pooling divides by the whole window, padding included (PyTorch's default).
                        out.at(ci, y, x) = layer.kind == Layer::max_pool ? best : sum / (k * k);
                    }
                }
            }
            a = std::move(out);
        } else if (layer.kind == Layer::flatten) {
            Activation out(a.c * a.h * a.w, 1, 1);
            out.v = a.v;  // [c][h][w] order, as torch.flatten
            a = std::move(out);
        } else {
            const std::vector<double>& weight = p.at(layer.name + ".weight");
            const size_t in = a.v.size();
            Activation out(layer.out, 1, 1);
            for (int o = 0; o < layer.out; o++) {
                double sum = layer.bias ? p.at(layer.name + ".bias")[static_cast<size_t>(o)] : 0.0;
                for (size_t i = 0; i < in; i++) sum += weight[static_cast<size_t>(o) * in + i] * a.v[i];
                out.v[static_cast<size_t>(o)] = sum;
            }
            a = std::move(out);
        }
    }
    return a.v;
}

std::vector<double> softmax(const std::vector<double>& logits) {
    const double top = *std::max_element(logits.begin(), logits.end());
    std::vector<double> result;
    double sum = 0;
    for (double l : logits) sum += std::exp(l - top);
    for (double l : logits) result.push_back(std::exp(l - top) / sum);
    return result;
}

template <typename Api>
double reference_loss(const Parameters& p, const Data& data, int count) {
    using Model = typename Api::Model;
    double sum = 0;
    for (int i = 0; i < count; i++) {
        const std::vector<double> probabilities =
            softmax(reference_logits(layers_of<Api>(), p, data.image(i, Model::input_size), Model::input_channels,
                                     Model::input_height, Model::input_width));
        sum -= std::log(probabilities[static_cast<size_t>(data.labels[static_cast<size_t>(i)])]);
    }
    return sum / count;
}

// ---------------------------------------------------------------------------------------------
// Error capture through the C++ API.

struct Failure {
    int code = CONVGEN_OK;
    std::string message;
};

template <typename Api, typename Call>
Failure failure_of(const Call& call) {
    try {
        call();
    } catch (const typename Api::Error& error) {
        return {error.code(), error.what()};
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// The behaviours, each written once for a model type.

template <typename Api>
void check_overfits(int count, int steps, int batch, float learning_rate) {
    using Model = typename Api::Model;
    const Data data = random_set<Api>(count, 1234);
    Model model(42);
    model.set_sgd(learning_rate, 0.9f, 0.0f);
    const double initial = cross_entropy(model, data);
    float last_loss = 0;
    for (int step = 0; step < steps; step++) {
        const int first = (step * batch) % count;
        const auto result = model.train_step(data.image(first, Model::input_size), data.labels.data() + first, batch);
        REQUIRE(std::isfinite(result.loss));
        last_loss = result.loss;
    }
    const double final = cross_entropy(model, data);
    INFO(std::string(Api::name) << ": cross-entropy " << initial << " -> " << final << " (last step's loss "
                                << last_loss << ")");
    CHECK(final * 10 <= initial);
    CHECK(model.step_count() == static_cast<uint64_t>(steps));
    // Memorised: every training label is the most probable class.
    const std::vector<float> probabilities = model.predict(data.images.data(), count);
    int right = 0;
    for (int i = 0; i < count; i++) {
        const float* p = probabilities.data() + static_cast<size_t>(i) * Model::classes;
        right += std::max_element(p, p + Model::classes) - p == data.labels[static_cast<size_t>(i)];
    }
    CHECK(right == count);
}

template <typename Api>
void check_predict_batches() {
    using Model = typename Api::Model;
    const Data data = random_set<Api>(64, 99);
    Model model(3);
    const std::vector<float> all = model.predict(data.images.data(), 64);
    for (int batch : {1, 3, 7, 64}) {
        CAPTURE(batch);
        // A batch taken from the middle of the set, so that no sample keeps its position.
        const int first = batch == 64 ? 0 : 5;
        const std::vector<float> part = model.predict(data.image(first, Model::input_size), batch);
        REQUIRE(part.size() == static_cast<size_t>(batch) * Model::classes);
        for (int i = 0; i < batch; i++) {
            CAPTURE(i);
            const std::vector<float> alone = model.predict(data.image(first + i, Model::input_size), 1);
            double sum = 0;
            for (int k = 0; k < Model::classes; k++) {
                const float p = part[static_cast<size_t>(i) * Model::classes + k];
                REQUIRE(std::isfinite(p));
                CHECK(p >= 0.0f);
                CHECK(p <= 1.0f);
                sum += p;
                CHECK(std::fabs(p - alone[static_cast<size_t>(k)]) <= 1e-5f);
                CHECK(std::fabs(p - all[static_cast<size_t>(first + i) * Model::classes + k]) <= 1e-5f);
            }
            CHECK(std::fabs(sum - 1.0) <= 1e-5);
        }
    }
}

template <typename Api>
void check_forward_matches_reference() {
    using Model = typename Api::Model;
    const Data data = random_set<Api>(8, 17);
    Model model(11);
    for (int step = 0; step < 3; step++) model.train_step(data.images.data(), data.labels.data(), data.count);
    const Parameters p = parameters_of(model);
    const std::vector<float> probabilities = model.predict(data.images.data(), data.count);
    double worst = 0;
    for (int i = 0; i < data.count; i++) {
        const std::vector<double> expected =
            softmax(reference_logits(layers_of<Api>(), p, data.image(i, Model::input_size), Model::input_channels,
                                     Model::input_height, Model::input_width));
        for (int k = 0; k < Model::classes; k++) {
            worst = std::max(worst, std::fabs(expected[static_cast<size_t>(k)] -
                                              probabilities[static_cast<size_t>(i) * Model::classes + k]));
        }
    }
    INFO(std::string(Api::name) << ": largest probability difference from the reference " << worst);
    CHECK(worst <= 1e-5);
}

// With learning rate 1, no momentum and no weight decay, a step moves every parameter by minus
// its gradient; its dot product with a random direction must match the reference loss's
// central difference along that direction.
template <typename Api>
void check_gradients_match_reference(int directions_per_tensor) {
    using Model = typename Api::Model;
    const int batch = 4;
    const Data data = random_set<Api>(batch, 23);
    Model model(5);
    model.set_sgd(1.0f, 0.0f, 0.0f);
    const Parameters before = parameters_of(model);
    const auto result = model.train_step(data.images.data(), data.labels.data(), batch);
    const Parameters after = parameters_of(model);

    const double loss = reference_loss<Api>(before, data, batch);
    CHECK(std::fabs(result.loss - loss) <= 1e-5 * std::max(1.0, std::fabs(loss)));
    int correct = 0;
    for (int i = 0; i < batch; i++) {
        const std::vector<double> logits =
            reference_logits(layers_of<Api>(), before, data.image(i, Model::input_size), Model::input_channels,
                             Model::input_height, Model::input_width);
        correct +=
            std::max_element(logits.begin(), logits.end()) - logits.begin() == data.labels[static_cast<size_t>(i)];
    }
    CHECK(result.correct == correct);

    std::mt19937 random(77);
    std::normal_distribution<double> normal(0.0, 1.0);
    const double h = 1e-6;
    for (const auto& [name, values] : before) {
        for (int j = 0; j < directions_per_tensor; j++) {
            std::vector<double> direction(values.size());
            for (double& d : direction) d = normal(random);
            double library = 0;
            for (size_t i = 0; i < values.size(); i++) library += (values[i] - after.at(name)[i]) * direction[i];
            Parameters plus = before, minus = before;
            for (size_t i = 0; i < values.size(); i++) {
                plus[name][i] += h * direction[i];
                minus[name][i] -= h * direction[i];
            }
            const double reference =
                (reference_loss<Api>(plus, data, batch) - reference_loss<Api>(minus, data, batch)) / (2 * h);
            INFO(std::string(Api::name) << " " << name << " direction " << j << ": library " << library
                                        << ", reference " << reference);
            CHECK(std::fabs(library - reference) <=
                  2e-3 * std::fabs(reference) + 1e-5 + 1e-7 * std::sqrt(static_cast<double>(values.size())));
        }
    }
}

template <typename Api>
void check_seeds() {
    using Model = typename Api::Model;
    Model a(7), b(7), c(8);
    const Snapshot sa = snapshot(a), sb = snapshot(b), sc = snapshot(c);
    CHECK(sa == sb);
    for (const auto& info : Model::parameters()) {
        CAPTURE(info.name);
        if (contains(info.name, ".bias")) {
            // Biases start at zero whatever the seed.
            CHECK(sa.at(info.name) == sc.at(info.name));
            CHECK(std::all_of(sa.at(info.name).begin(), sa.at(info.name).end(), [](uint32_t v) { return v == 0; }));
        } else {
            CHECK(sa.at(info.name) != sc.at(info.name));
        }
    }
    // Same seed, same predictions too.
    const Data data = random_set<Api>(4, 1);
    CHECK(prediction_bits(a, data) == prediction_bits(b, data));
}

template <typename Api>
void check_checkpoint_round_trip() {
    using Model = typename Api::Model;
    TemporaryDirectory directory;
    const std::string path = directory / "model.safetensors";
    const Data data = random_set<Api>(16, 5);
    Model trained(1);
    for (int step = 0; step < 5; step++) trained.train_step(data.images.data(), data.labels.data(), data.count);
    trained.save(path);

    Model restored(2);
    REQUIRE(snapshot(restored) != snapshot(trained));
    restored.load(path);
    CHECK(snapshot(restored) == snapshot(trained));
    CHECK(prediction_bits(restored, data) == prediction_bits(trained, data));
    CHECK(restored.step_count() == 5);

    // The momentum buffers travel with the file: both continue with the same losses, bit for bit.
    std::vector<float> continued, reloaded;
    for (int step = 0; step < 5; step++) {
        const int first = (step * 4) % data.count;
        continued.push_back(
            trained.train_step(data.image(first, Model::input_size), data.labels.data() + first, 4).loss);
        reloaded.push_back(
            restored.train_step(data.image(first, Model::input_size), data.labels.data() + first, 4).loss);
    }
    CHECK(bits_of(continued) == bits_of(reloaded));
    CHECK(snapshot(restored) == snapshot(trained));
    CHECK(restored.step_count() == 10);
    CHECK(trained.step_count() == 10);
}

// Runs `load` of a bad file on a model with history, and checks the call failed with `code` and
// a message containing every part, and that the model is exactly as it was: parameters,
// predictions, step count, and (through a twin that never saw the bad file) momentum.
template <typename Api>
struct Victim {
    using Model = typename Api::Model;
    Data data = random_set<Api>(8, 31);
    Model model{9}, twin{9};
    Victim() {
        for (int step = 0; step < 3; step++) {
            model.train_step(data.images.data(), data.labels.data(), data.count);
            twin.train_step(data.images.data(), data.labels.data(), data.count);
        }
    }
    void rejects(const std::string& path, int code, const std::vector<std::string>& parts) {
        const Snapshot before = snapshot(model);
        const std::vector<uint32_t> predictions = prediction_bits(model, data);
        const int status = Api::load(model.handle(), path.c_str());
        const std::string message = Api::last_error(model.handle());
        INFO("load " << path << ": status " << status << ", message: " << message);
        CHECK(status == code);
        CHECK(contains(message, path));
        for (const std::string& part : parts) CHECK(contains(message, part));
        CHECK(snapshot(model) == before);
        CHECK(prediction_bits(model, data) == predictions);
        CHECK(model.step_count() == 3);
    }
    // After every rejected file, training goes on exactly as it does for the twin.
    void check_untouched_momentum() {
        for (int step = 0; step < 2; step++) {
            const float loss = model.train_step(data.images.data(), data.labels.data(), data.count).loss;
            const float twin_loss = twin.train_step(data.images.data(), data.labels.data(), data.count).loss;
            CHECK(bits_of({loss}) == bits_of({twin_loss}));
        }
        CHECK(snapshot(model) == snapshot(twin));
    }
};

// A prediction lays the weights out for its kernels once per change of the parameters (the
// library's prepared weights): after each way of changing them it must predict as a model that
// was given the same parameters afresh does, bit for bit.
template <typename Api>
void check_predictions_follow_parameters() {
    using Model = typename Api::Model;
    const Data data = random_set<Api>(4, 11);
    Model model(1);
    auto fresh_prediction = [&](Model& source) {
        Model fresh(99);
        for (const auto& info : Model::parameters()) fresh.set_parameter(info.name, source.get_parameter(info.name));
        return prediction_bits(fresh, data);
    };
    const std::vector<uint32_t> initial = prediction_bits(model, data);
    CHECK(initial == fresh_prediction(model));

    for (const auto& info : Model::parameters()) {
        std::vector<float> values = model.get_parameter(info.name);
        for (float& v : values) v *= 0.5f;
        model.set_parameter(info.name, values);
    }
    const std::vector<uint32_t> halved = prediction_bits(model, data);
    CHECK(halved != initial);
    CHECK(halved == fresh_prediction(model));

    model.train_step(data.images.data(), data.labels.data(), data.count);
    const std::vector<uint32_t> trained = prediction_bits(model, data);
    CHECK(trained != halved);
    CHECK(trained == fresh_prediction(model));

    TemporaryDirectory directory;
    Model other(7);
    other.save(directory / "other.safetensors");
    model.load(directory / "other.safetensors");
    CHECK(prediction_bits(model, data) == prediction_bits(other, data));
    other.train_step(data.images.data(), data.labels.data(), data.count);
    other.save(directory / "trained.safetensors");
    model.load_pretrained(directory / "trained.safetensors");
    CHECK(prediction_bits(model, data) == prediction_bits(other, data));
}

}  // namespace

TEST_SUITE("generated library") {
    TEST_CASE("predictions follow the parameters through set_parameter, a training step, load and load_pretrained") {
        SUBCASE("small_cnn") {
            check_predictions_follow_parameters<SmallCnn>();
        }
        SUBCASE("lenet5") {
            check_predictions_follow_parameters<Lenet5>();
        }
    }

    TEST_CASE("small_cnn overfits 32 random images: the loss drops at least tenfold in 200 steps") {
        check_overfits<SmallCnn>(32, 200, 32, 0.05f);
    }

    TEST_CASE("lenet5 overfits 64 random images: the loss drops at least tenfold in 200 steps") {
        check_overfits<Lenet5>(64, 200, 32, 0.02f);
    }

    TEST_CASE("predict takes batches of 1, 3, 7 and 64 and a sample's probabilities do not depend on its batch") {
        SUBCASE("small_cnn") {
            check_predict_batches<SmallCnn>();
        }
        SUBCASE("lenet5") {
            check_predict_batches<Lenet5>();
        }
    }

    TEST_CASE("predict matches a plain-loop reference of the same network") {
        SUBCASE("small_cnn") {
            check_forward_matches_reference<SmallCnn>();
        }
        SUBCASE("lenet5") {
            check_forward_matches_reference<Lenet5>();
        }
    }

    TEST_CASE("a training step's loss, correct count and gradients match the reference") {
        SUBCASE("small_cnn") {
            check_gradients_match_reference<SmallCnn>(3);
        }
        SUBCASE("lenet5") {
            check_gradients_match_reference<Lenet5>(2);
        }
    }

    TEST_CASE("the same seed gives bit-identical parameters; another seed different weights") {
        SUBCASE("small_cnn") {
            check_seeds<SmallCnn>();
        }
        SUBCASE("lenet5") {
            check_seeds<Lenet5>();
        }
    }

    TEST_CASE("initial weights have the spread of their initialiser") {
        small_cnn::Model model(123);
        auto deviation = [](const std::vector<float>& values) {
            double sum = 0, squares = 0;
            for (float v : values) {
                sum += v;
                squares += static_cast<double>(v) * v;
            }
            const double mean = sum / static_cast<double>(values.size());
            return std::sqrt(squares / static_cast<double>(values.size()) - mean * mean);
        };
        // conv1 asks for He normal: standard deviation sqrt(2 / fan_in).
        CHECK(deviation(model.get_parameter("conv1.weight")) == doctest::Approx(std::sqrt(2.0 / 27)).epsilon(0.15));
        // The rest are Glorot uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
        const std::vector<std::pair<std::string, double>> glorot = {
            {"conv2.weight", std::sqrt(6.0 / (72 + 54))},
            {"dense1.weight", std::sqrt(6.0 / (36 + 12))},
            {"dense2.weight", std::sqrt(6.0 / (12 + 5))},
        };
        for (const auto& [name, limit] : glorot) {
            CAPTURE(name);
            const std::vector<float> values = model.get_parameter(name);
            CHECK(std::all_of(values.begin(), values.end(), [&](float v) { return std::fabs(v) <= limit; }));
            CHECK(deviation(values) == doctest::Approx(limit / std::sqrt(3.0)).epsilon(0.2));
        }
    }

    TEST_CASE("parameters are described in PyTorch's names and layouts") {
        const std::vector<small_cnn::ParameterInfo> parameters = small_cnn::Model::parameters();
        REQUIRE(parameters.size() == SMALL_CNN_PARAMETER_COUNT);
        const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
            {"conv1.weight", {8, 3, 3, 3}}, {"conv1.bias", {8}},   {"conv2.weight", {6, 8, 3, 3}},
            {"dense1.weight", {12, 36}},    {"dense1.bias", {12}}, {"dense2.weight", {5, 12}},
            {"dense2.bias", {5}},
        };
        REQUIRE(parameters.size() == expected.size());
        for (size_t i = 0; i < expected.size(); i++) {
            CHECK(parameters[i].name == expected[i].first);
            CHECK(parameters[i].shape == expected[i].second);
            int64_t size = 1;
            for (int64_t d : expected[i].second) size *= d;
            CHECK(parameters[i].size == size);
        }
        CHECK(small_cnn::Model::input_channels == 3);
        CHECK(small_cnn::Model::input_height == 9);
        CHECK(small_cnn::Model::input_width == 11);
        CHECK(small_cnn::Model::classes == 5);
        CHECK(small_cnn_parameter_name(-1) == nullptr);
        CHECK(small_cnn_parameter_name(SMALL_CNN_PARAMETER_COUNT) == nullptr);
        CHECK(small_cnn_parameter_rank(SMALL_CNN_PARAMETER_COUNT) == -1);
        CHECK(small_cnn_parameter_dim(0, 4) == -1);
        CHECK(small_cnn_parameter_dim(0, -1) == -1);
        CHECK(small_cnn_parameter_size(-1) == -1);
    }

    TEST_CASE("set_parameter then get_parameter gives back exactly the values set, in PyTorch layout") {
        small_cnn::Model model(1);
        for (const auto& info : small_cnn::Model::parameters()) {
            CAPTURE(info.name);
            std::vector<float> values(static_cast<size_t>(info.size));
            // Distinct values, so any permutation of the layout shows.
            for (size_t i = 0; i < values.size(); i++) values[i] = static_cast<float>(i) * 0.001f - 0.25f;
            model.set_parameter(info.name, values);
            CHECK(bits_of(model.get_parameter(info.name)) == bits_of(values));
        }
        // Special values pass through untouched as well.
        std::vector<float> special(5, 0.0f);
        special[0] = -0.0f;
        special[1] = std::numeric_limits<float>::denorm_min();
        special[2] = std::numeric_limits<float>::max();
        special[3] = -1e-30f;
        model.set_parameter("dense2.bias", special);
        CHECK(bits_of(model.get_parameter("dense2.bias")) == bits_of(special));
    }

    TEST_CASE("a parameter set by name takes effect in predict: dense2.bias[2] alone makes class 2 certain") {
        // The full layouts (OIHW, [out][in], flatten as [c][h][w]) are checked against the reference above.
        small_cnn::Model model(1);
        for (const auto& info : small_cnn::Model::parameters()) {
            model.set_parameter(info.name, std::vector<float>(static_cast<size_t>(info.size), 0.0f));
        }
        std::vector<float> bias(5, 0.0f);
        bias[2] = 20.0f;
        model.set_parameter("dense2.bias", bias);
        const Data data = random_set<SmallCnn>(3, 3);
        const std::vector<float> p = model.predict(data.images.data(), 3);
        for (int i = 0; i < 3; i++) {
            CAPTURE(i);
            CHECK(p[static_cast<size_t>(i) * 5 + 2] > 0.999f);
        }
    }

    TEST_CASE("get_parameter and set_parameter reject a wrong count, an unknown name and NULL, naming the parameter") {
        small_cnn::Model model(1);
        small_cnn_model* handle = model.handle();
        const Snapshot before = snapshot(model);
        std::vector<float> values(216, 0.5f);

        CHECK(small_cnn_set_parameter(handle, "conv1.weight", values.data(), 215) == CONVGEN_ERROR_INVALID_ARGUMENT);
        std::string message = small_cnn_last_error(handle);
        CHECK(contains(message, "'conv1.weight'"));
        CHECK(contains(message, "216"));
        CHECK(contains(message, "215"));

        CHECK(small_cnn_get_parameter(handle, "conv1.weight", values.data(), 217) == CONVGEN_ERROR_INVALID_ARGUMENT);
        message = small_cnn_last_error(handle);
        CHECK(contains(message, "'conv1.weight'"));
        CHECK(contains(message, "217"));

        CHECK(small_cnn_set_parameter(handle, "conv3.weight", values.data(), 216) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "'conv3.weight'"));
        CHECK(small_cnn_get_parameter(handle, "conv1.Weight", values.data(), 216) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "'conv1.Weight'"));
        CHECK(small_cnn_set_parameter(handle, "conv1.weight.momentum_buffer", values.data(), 216) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);

        CHECK(small_cnn_set_parameter(handle, nullptr, values.data(), 216) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(!std::string(small_cnn_last_error(handle)).empty());
        CHECK(small_cnn_get_parameter(handle, nullptr, values.data(), 216) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(!std::string(small_cnn_last_error(handle)).empty());

        CHECK(small_cnn_set_parameter(handle, "dense1.bias", nullptr, 12) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "'dense1.bias'"));
        CHECK(contains(small_cnn_last_error(handle), "NULL"));
        CHECK(small_cnn_get_parameter(handle, "dense1.bias", nullptr, 12) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "'dense1.bias'"));
        CHECK(contains(small_cnn_last_error(handle), "NULL"));

        CHECK(small_cnn_set_parameter(nullptr, "dense1.bias", values.data(), 12) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_get_parameter(nullptr, "dense1.bias", values.data(), 12) == CONVGEN_ERROR_INVALID_ARGUMENT);

        CHECK(snapshot(model) == before);

        // The C++ class throws the same code and message.
        const Failure failure =
            failure_of<SmallCnn>([&] { model.set_parameter("dense1.bias", std::vector<float>(11)); });
        CHECK(failure.code == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(failure.message, "'dense1.bias'"));
        const Failure unknown = failure_of<SmallCnn>([&] { model.get_parameter("nothing"); });
        CHECK(unknown.code == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(unknown.message, "'nothing'"));
    }

    TEST_CASE("a checkpoint loads bit-exactly into a model made with another seed, momentum and step count included") {
        SUBCASE("small_cnn") {
            check_checkpoint_round_trip<SmallCnn>();
        }
        SUBCASE("lenet5") {
            check_checkpoint_round_trip<Lenet5>();
        }
    }

    TEST_CASE("a checkpoint is a safetensors file in PyTorch's names, layouts and dtype") {
        TemporaryDirectory directory;
        const std::string path = directory / "small.safetensors";
        const Data data = random_set<SmallCnn>(8, 2);
        small_cnn::Model model(4);
        model.train_step(data.images.data(), data.labels.data(), data.count);
        model.train_step(data.images.data(), data.labels.data(), data.count);
        model.save(path);

        checkpoint_reader::SafetensorsFile file;
        std::string error;
        REQUIRE_MESSAGE(checkpoint_reader::safetensors_read(path, file, error), error);
        CHECK(file.metadata.at("step") == "2");
        CHECK(file.metadata.at("model") == "small_cnn");
        CHECK(file.tensors.size() == 2 * SMALL_CNN_PARAMETER_COUNT);
        for (const auto& info : small_cnn::Model::parameters()) {
            CAPTURE(info.name);
            for (const std::string& name : {info.name, info.name + ".momentum_buffer"}) {
                REQUIRE(file.tensors.count(name) == 1);
                const checkpoint_reader::SafetensorsEntry& entry = file.tensors.at(name);
                CHECK(entry.dtype == "F32");
                CHECK(entry.shape == info.shape);
                CHECK(entry.end - entry.begin == static_cast<uint64_t>(info.size) * 4);
            }
            const checkpoint_reader::SafetensorsEntry& entry = file.tensors.at(info.name);
            std::vector<float> stored(static_cast<size_t>(info.size));
            std::memcpy(stored.data(), file.data.data() + entry.begin, stored.size() * sizeof(float));
            CHECK(bits_of(stored) == bits_of(model.get_parameter(info.name)));
        }
        // A failed save leaves no file and says why.
        const std::string nowhere = directory / "missing/dir/model.safetensors";
        CHECK(small_cnn_save(model.handle(), nowhere.c_str()) == CONVGEN_ERROR_IO);
        CHECK(contains(small_cnn_last_error(model.handle()), nowhere));
        CHECK(!fs::exists(nowhere));
        CHECK(small_cnn_save(model.handle(), nullptr) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_load(model.handle(), nullptr) == CONVGEN_ERROR_INVALID_ARGUMENT);
    }

    TEST_CASE("a PyTorch state dict without momentum buffers or metadata loads with zero momentum") {
        TemporaryDirectory directory;
        const std::string path = directory / "state_dict.safetensors";
        const Data data = random_set<SmallCnn>(8, 8);
        small_cnn::Model source(21);
        write_bytes(path, safetensors_file(state_dict(source)));

        // The target has momentum of its own from training; loading the state dict must clear it.
        small_cnn::Model target(22);
        for (int step = 0; step < 3; step++) target.train_step(data.images.data(), data.labels.data(), data.count);
        target.load(path);
        CHECK(snapshot(target) == snapshot(source));
        CHECK(target.step_count() == 0);
        // source is fresh (zero momentum): one step on each must agree bit for bit.
        const float a = target.train_step(data.images.data(), data.labels.data(), data.count).loss;
        const float b = source.train_step(data.images.data(), data.labels.data(), data.count).loss;
        CHECK(bits_of({a}) == bits_of({b}));
        CHECK(snapshot(target) == snapshot(source));

        // Tensor order in the file does not matter.
        std::vector<FileTensor> reversed = state_dict(source);
        std::reverse(reversed.begin(), reversed.end());
        write_bytes(path, safetensors_file(reversed, {{"format", "pt"}}));
        small_cnn::Model third(23);
        third.load(path);
        CHECK(snapshot(third) == snapshot(source));
    }

    TEST_CASE("a truncated checkpoint is rejected and the model is left untouched") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string good = directory / "good.safetensors";
        victim.twin.save(good);
        const std::vector<uint8_t> bytes = read_bytes(good);
        const size_t header_end = 8 + static_cast<size_t>(header_length(bytes));
        REQUIRE(header_end < bytes.size());
        const size_t sizes[] = {0,
                                1,
                                7,
                                8,
                                9,
                                header_end / 2,
                                header_end - 1,
                                header_end,
                                header_end + 1,
                                (header_end + bytes.size()) / 2,
                                bytes.size() - 4,
                                bytes.size() - 1};
        for (size_t size : sizes) {
            CAPTURE(size);
            const std::string path = directory / ("truncated_" + std::to_string(size) + ".safetensors");
            write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size)));
            if (size < 8) {
                victim.rejects(path, CONVGEN_ERROR_FORMAT, {"fewer than the 8-byte header length prefix"});
            } else if (size < header_end) {
                victim.rejects(path, CONVGEN_ERROR_FORMAT, {"header length"});
            } else {
                victim.rejects(path, CONVGEN_ERROR_FORMAT, {"data_offsets"});
            }
        }
        // A byte too many is malformed too: the tensors must cover the data exactly.
        std::vector<uint8_t> longer = bytes;
        longer.push_back(0);
        write_bytes(directory / "longer.safetensors", longer);
        victim.rejects(directory / "longer.safetensors", CONVGEN_ERROR_FORMAT, {});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a checkpoint with a broken header is rejected and the model is left untouched") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::vector<uint8_t> data(4 * 1165, 0);
        const std::vector<std::pair<std::string, std::string>> headers = {
            {"garbage", "this is not JSON at all"},
            {"unterminated",
             "{\"conv1.weight\": {\"dtype\": \"F32\", \"shape\": [8, 3, 3, 3], \"data_offsets\": [0, 864]"},
            {"array", "[1, 2, 3]"},
            {"empty", ""},
            {"binary", std::string("\x01\xff\xfe{}", 5)},
            {"trailing", "{} {}"},
            {"string offsets",
             "{\"conv1.weight\": {\"dtype\": \"F32\", \"shape\": [8, 3, 3, 3], \"data_offsets\": [\"0\", \"864\"]}}"},
            {"negative shape",
             "{\"conv1.weight\": {\"dtype\": \"F32\", \"shape\": [-8, 3, 3, 3], \"data_offsets\": [0, 864]}}"},
        };
        for (const auto& [what, header] : headers) {
            CAPTURE(what);
            const std::string path = directory / "broken.safetensors";
            write_bytes(path, safetensors_file(header, data));
            victim.rejects(path, CONVGEN_ERROR_FORMAT, {});
            CHECK(std::string(SmallCnn::last_error(victim.model.handle())).size() > path.size() + 5);
        }
        // A header length larger than the file.
        std::vector<uint8_t> huge = safetensors_file("{}", {});
        huge[5] = 0x7f;
        write_bytes(directory / "huge.safetensors", huge);
        victim.rejects(directory / "huge.safetensors", CONVGEN_ERROR_FORMAT, {"header length"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a checkpoint with a wrong tensor name is rejected, naming the tensor, and the model is left untouched") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string good = directory / "good.safetensors";
        victim.twin.save(good);

        // One key renamed in place, by editing the file's bytes.
        const std::string renamed = directory / "renamed.safetensors";
        write_bytes(renamed, replaced(read_bytes(good), "\"conv2.weight\"", "\"conv2.wEight\""));
        victim.rejects(renamed, CONVGEN_ERROR_FORMAT, {"conv2.weight"});

        // A state dict written by hand with one name misspelt.
        std::vector<FileTensor> tensors = state_dict(victim.twin);
        tensors[3].name = "dense1.weights";
        const std::string misspelt = directory / "misspelt.safetensors";
        write_bytes(misspelt, safetensors_file(tensors));
        victim.rejects(misspelt, CONVGEN_ERROR_FORMAT, {"dense1.weight"});

        // Every parameter present, plus one the model does not have.
        tensors = state_dict(victim.twin);
        tensors.push_back({"conv3.weight", "F32", {2, 2}, std::vector<uint8_t>(16, 0)});
        const std::string extra = directory / "extra.safetensors";
        write_bytes(extra, safetensors_file(tensors));
        victim.rejects(extra, CONVGEN_ERROR_FORMAT, {"conv3.weight"});

        // A parameter missing altogether.
        tensors = state_dict(victim.twin);
        tensors.erase(tensors.begin() + 1);
        const std::string missing = directory / "missing.safetensors";
        write_bytes(missing, safetensors_file(tensors));
        victim.rejects(missing, CONVGEN_ERROR_FORMAT, {"conv1.bias", "missing"});

        // Momentum buffers for some parameters only.
        tensors = state_dict(victim.twin);
        tensors.push_back({"conv1.bias.momentum_buffer", "F32", {8}, std::vector<uint8_t>(32, 0)});
        const std::string partial = directory / "partial_momentum.safetensors";
        write_bytes(partial, safetensors_file(tensors));
        victim.rejects(partial, CONVGEN_ERROR_FORMAT, {"momentum"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a checkpoint with a wrong shape is rejected, naming the tensor and both shapes") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string path = directory / "shape.safetensors";

        std::vector<FileTensor> tensors = state_dict(victim.twin);
        tensors[0].shape = {8, 3, 9};  // conv1.weight: same number of values, wrong shape
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'conv1.weight'", "[8, 3, 9]", "[8, 3, 3, 3]"});

        tensors = state_dict(victim.twin);
        tensors[3].shape = {36, 12};  // dense1.weight transposed
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'dense1.weight'", "[36, 12]", "[12, 36]"});

        tensors = state_dict(victim.twin);
        tensors[6].shape = {6};  // dense2.bias one value too many
        tensors[6].bytes.resize(24, 0);
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'dense2.bias'", "[6]", "[5]"});

        // A momentum buffer of the wrong shape.
        tensors = state_dict(victim.twin);
        for (const auto& info : small_cnn::Model::parameters()) {
            tensors.push_back({info.name + ".momentum_buffer", "F32", info.shape,
                               std::vector<uint8_t>(static_cast<size_t>(info.size) * 4, 0)});
        }
        tensors.back().shape = {1, 5};
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'dense2.bias.momentum_buffer'", "[1, 5]"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a checkpoint with a weight in F64 or I32 is rejected, naming the tensor and the dtype") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string path = directory / "dtype.safetensors";
        const std::vector<float> weight = victim.twin.get_parameter("conv2.weight");

        std::vector<FileTensor> tensors = state_dict(victim.twin);
        tensors[2].dtype = "F64";
        tensors[2].bytes = converted_bytes<double>(weight);
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'conv2.weight'", "F64", "F32"});

        tensors = state_dict(victim.twin);
        tensors[2].dtype = "I32";
        tensors[2].bytes = converted_bytes<int32_t>(weight);
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'conv2.weight'", "I32"});

        tensors = state_dict(victim.twin);
        tensors[1].dtype = "F16";  // conv1.bias, half the bytes
        tensors[1].bytes.resize(16);
        write_bytes(path, safetensors_file(tensors));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"'conv1.bias'", "F16"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a missing checkpoint is an I/O error naming the path") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        victim.rejects(directory / "does_not_exist.safetensors", CONVGEN_ERROR_IO, {"does_not_exist.safetensors"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a directory given as a checkpoint is an I/O error, not a malformed file") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        errno = 0;
        victim.rejects(directory.path.string(), CONVGEN_ERROR_IO, {"not a regular file"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("a malformed checkpoint is a format error even when errno is left over from an earlier call") {
        // The status must describe this load, not whatever the C library last set errno to.
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string path = directory / "short.safetensors";
        write_bytes(path, {1, 2, 3});
        errno = ENOENT;
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"fewer than the 8-byte header length prefix"});
        write_bytes(path, safetensors_file("not json", {}));
        errno = EACCES;
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {});
    }

    TEST_CASE("a checkpoint of another model is rejected: lenet5 into small_cnn and back") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string lenet_path = directory / "lenet5.safetensors";
        lenet5::Model lenet(1);
        lenet.save(lenet_path);
        victim.rejects(lenet_path, CONVGEN_ERROR_FORMAT, {"conv1.weight", "[6, 1, 5, 5]", "[8, 3, 3, 3]"});
        victim.check_untouched_momentum();

        const std::string small_path = directory / "small_cnn.safetensors";
        victim.twin.save(small_path);
        const Snapshot before = snapshot(lenet);
        CHECK(lenet5_load(lenet.handle(), small_path.c_str()) == CONVGEN_ERROR_FORMAT);
        CHECK(contains(lenet5_last_error(lenet.handle()), small_path));
        CHECK(snapshot(lenet) == before);
    }

    TEST_CASE("a step count in the metadata that is not a number is rejected") {
        TemporaryDirectory directory;
        Victim<SmallCnn> victim;
        const std::string path = directory / "step.safetensors";
        write_bytes(path, safetensors_file(state_dict(victim.twin), {{"step", "twelve"}}));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"step", "twelve"});
        write_bytes(path, safetensors_file(state_dict(victim.twin), {{"step", "-1"}}));
        victim.rejects(path, CONVGEN_ERROR_FORMAT, {"step"});
        victim.check_untouched_momentum();
    }

    TEST_CASE("train_step and predict reject batch 0, NULL buffers and a NULL model") {
        small_cnn::Model model(1);
        small_cnn_model* handle = model.handle();
        const Data data = random_set<SmallCnn>(4, 4);
        const Snapshot before = snapshot(model);
        float loss = -1;
        int correct = -1;
        std::vector<float> probabilities(4 * 5, -1.0f);

        for (int batch : {0, -1, -1000}) {
            CAPTURE(batch);
            CHECK(small_cnn_train_step(handle, data.images.data(), data.labels.data(), batch, &loss, &correct) ==
                  CONVGEN_ERROR_INVALID_ARGUMENT);
            CHECK(contains(small_cnn_last_error(handle), "batch must be at least 1, got " + std::to_string(batch)));
            CHECK(small_cnn_predict(handle, data.images.data(), batch, probabilities.data()) ==
                  CONVGEN_ERROR_INVALID_ARGUMENT);
            CHECK(contains(small_cnn_last_error(handle), "batch must be at least 1, got " + std::to_string(batch)));
        }
        CHECK(small_cnn_train_step(handle, nullptr, data.labels.data(), 4, &loss, &correct) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "images is NULL"));
        CHECK(small_cnn_train_step(handle, data.images.data(), nullptr, 4, &loss, &correct) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "labels is NULL"));
        CHECK(small_cnn_predict(handle, nullptr, 4, probabilities.data()) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "images is NULL"));
        CHECK(small_cnn_predict(handle, data.images.data(), 4, nullptr) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(small_cnn_last_error(handle), "probabilities is NULL"));
        CHECK(loss == -1);
        CHECK(correct == -1);
        CHECK(probabilities == std::vector<float>(4 * 5, -1.0f));

        CHECK(small_cnn_train_step(nullptr, data.images.data(), data.labels.data(), 4, &loss, &correct) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_predict(nullptr, data.images.data(), 4, probabilities.data()) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_set_sgd(nullptr, 0.1f, 0.9f, 0.0f) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_save(nullptr, "x") == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_load(nullptr, "x") == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(small_cnn_step_count(nullptr) == 0);
        small_cnn_destroy(nullptr);

        CHECK(snapshot(model) == before);
        CHECK(model.step_count() == 0);
        // loss and correct may be NULL on success.
        CHECK(small_cnn_train_step(handle, data.images.data(), data.labels.data(), 4, nullptr, nullptr) == CONVGEN_OK);
        CHECK(model.step_count() == 1);
    }

    TEST_CASE("a label out of range is rejected naming the sample and the label; the step is not taken") {
        small_cnn::Model model(1);
        Data data = random_set<SmallCnn>(6, 6);
        const Snapshot before = snapshot(model);
        data.labels[3] = 5;
        Failure failure = failure_of<SmallCnn>([&] { model.train_step(data.images.data(), data.labels.data(), 6); });
        CHECK(failure.code == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(failure.message, "label 5 of sample 3"));
        CHECK(contains(failure.message, "[0, 5)"));
        data.labels[3] = 0;
        data.labels[5] = -1;
        failure = failure_of<SmallCnn>([&] { model.train_step(data.images.data(), data.labels.data(), 6); });
        CHECK(failure.code == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(failure.message, "label -1 of sample 5"));
        CHECK(snapshot(model) == before);
        CHECK(model.step_count() == 0);
        // A label past the batch is not read.
        data.labels[5] = 1000;
        CHECK_NOTHROW(model.train_step(data.images.data(), data.labels.data(), 5));
    }

    TEST_CASE("NaN or infinite images are rejected, naming the image, and leave the parameters unchanged") {
        small_cnn::Model model(1), twin(1);
        const Data clean = random_set<SmallCnn>(4, 12);
        model.train_step(clean.images.data(), clean.labels.data(), 4);
        twin.train_step(clean.images.data(), clean.labels.data(), 4);
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
            CAPTURE(bad);
            Data data = clean;
            data.images[SmallCnn::Model::input_size + 17] = bad;
            const Snapshot before = snapshot(model);
            float loss = 0;
            int status = small_cnn_train_step(model.handle(), data.images.data(), data.labels.data(), 4, &loss, nullptr);
            CHECK(status == CONVGEN_ERROR_INVALID_ARGUMENT);
            CHECK(contains(small_cnn_last_error(model.handle()), "image 1 has a non-finite value"));
            CHECK(contains(small_cnn_last_error(model.handle()), "at index 17"));
            std::vector<float> probabilities(4 * SmallCnn::Model::classes);
            status = small_cnn_predict(model.handle(), data.images.data(), 4, probabilities.data());
            CHECK(status == CONVGEN_ERROR_INVALID_ARGUMENT);
            CHECK(snapshot(model) == before);
            CHECK(model.step_count() == 1);
        }
        // An update that overflows is not applied either: it is reported with the parameter's name.
        {
            const Snapshot before = snapshot(model);
            REQUIRE(small_cnn_set_sgd(model.handle(), 3e38f, 0.0f, 3e38f) == CONVGEN_OK);
            const int status =
                small_cnn_train_step(model.handle(), clean.images.data(), clean.labels.data(), 4, nullptr, nullptr);
            CHECK(status == CONVGEN_ERROR_NON_FINITE);
            CHECK(contains(small_cnn_last_error(model.handle()), "is not finite at step 2"));
            CHECK(snapshot(model) == before);
            REQUIRE(small_cnn_set_sgd(model.handle(), 0.01f, 0.9f, 0.0f) == CONVGEN_OK);
        }
        // Weights so large that the first layer overflows: the message names the step and the
        // first call whose output went non-finite.
        {
            const Snapshot before = snapshot(model);
            const std::vector<float> original = model.get_parameter("conv1.weight");
            const std::vector<float> huge(original.size(), 1e38f);
            REQUIRE(std::string(small_cnn_parameter_name(0)) == "conv1.weight");
            model.set_parameter("conv1.weight", huge);
            const int status =
                small_cnn_train_step(model.handle(), clean.images.data(), clean.labels.data(), 4, nullptr, nullptr);
            CHECK(status == CONVGEN_ERROR_NON_FINITE);
            CHECK(contains(small_cnn_last_error(model.handle()), "at step 2"));
            CHECK(contains(small_cnn_last_error(model.handle()),
                           "the first non-finite value is in the output of 'forward conv1+relu1' (tensor 'relu1')"));
            model.set_parameter("conv1.weight", original);
            CHECK(snapshot(model) == before);
        }
        // Momentum untouched as well: the next clean step matches the twin's.
        const float a = model.train_step(clean.images.data(), clean.labels.data(), 4).loss;
        const float b = twin.train_step(clean.images.data(), clean.labels.data(), 4).loss;
        CHECK(bits_of({a}) == bits_of({b}));
        CHECK(snapshot(model) == snapshot(twin));
    }

    TEST_CASE("set_sgd rejects negative, NaN and infinite settings and keeps the old ones") {
        small_cnn::Model model(1), twin(1);
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        const float bad_settings[][3] = {{-0.01f, 0.9f, 0.0f}, {nan, 0.9f, 0.0f},  {inf, 0.9f, 0.0f},
                                         {0.01f, -0.5f, 0.0f}, {0.01f, nan, 0.0f}, {0.01f, 0.9f, -1e-4f},
                                         {0.01f, 0.9f, nan},   {0.01f, 0.9f, inf}};
        for (const auto& s : bad_settings) {
            CAPTURE(s[0]);
            CAPTURE(s[1]);
            CAPTURE(s[2]);
            const Failure failure = failure_of<SmallCnn>([&] { model.set_sgd(s[0], s[1], s[2]); });
            CHECK(failure.code == CONVGEN_ERROR_INVALID_ARGUMENT);
            CHECK(contains(failure.message, "learning_rate"));
        }
        const Data data = random_set<SmallCnn>(4, 13);
        for (int step = 0; step < 2; step++) {
            const float a = model.train_step(data.images.data(), data.labels.data(), 4).loss;
            const float b = twin.train_step(data.images.data(), data.labels.data(), 4).loss;
            CHECK(bits_of({a}) == bits_of({b}));
        }
        CHECK(snapshot(model) == snapshot(twin));
        // Learning rate 0 is legal and freezes the parameters.
        model.set_sgd(0.0f, 0.0f, 0.0f);
        const Snapshot frozen = snapshot(model);
        model.train_step(data.images.data(), data.labels.data(), 4);
        CHECK(snapshot(model) == frozen);
    }

    TEST_CASE("create with a NULL pointer fails and last_error(NULL) says why") {
        CHECK(small_cnn_create(nullptr, 1) == CONVGEN_ERROR_INVALID_ARGUMENT);
        const std::string message = small_cnn_last_error(nullptr);
        CHECK(contains(message, "small_cnn_create"));
        CHECK(contains(message, "NULL"));
        CHECK(lenet5_create(nullptr, 1) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(contains(lenet5_last_error(nullptr), "lenet5_create"));

        small_cnn_model* model = nullptr;
        REQUIRE(small_cnn_create(&model, 1) == CONVGEN_OK);
        REQUIRE(model != nullptr);
        CHECK(std::string(small_cnn_last_error(model)).empty());
        small_cnn_destroy(model);
    }

    TEST_CASE("two models of one library and of two libraries do not share state") {
        small_cnn::Model a(1), b(1);
        lenet5::Model c(1);
        const Data data = random_set<SmallCnn>(4, 14);
        const Snapshot b_before = snapshot(b), c_before = snapshot(c);
        a.train_step(data.images.data(), data.labels.data(), 4);
        CHECK(snapshot(a) != b_before);
        CHECK(snapshot(b) == b_before);
        CHECK(snapshot(c) == c_before);
        // One model's error is not another's.
        CHECK(small_cnn_predict(a.handle(), nullptr, 1, nullptr) == CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(small_cnn_last_error(b.handle())).empty());
        // A moved-from C++ model releases nothing twice.
        small_cnn::Model moved = std::move(a);
        CHECK(moved.step_count() == 1);
    }

}  // TEST_SUITE
