// What every convgen measuring binary shares: the workload record, the steps that time a generated
// model, the measuring scheme and the command line. The CLI and the scheme match
// bench/pytorch_peer.py so that bench/run can alternate the two and compare like with like:
//   <program> --workload NAME [--warmup-seconds S] [--seconds T] [--repeats R]
//   <program> --list
// A binary is its table of workloads and a main that calls bench::run_command_line.
#ifndef CONVGEN_BENCH_MEASURE_H
#define CONVGEN_BENCH_MEASURE_H

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace bench {

struct Workload {
    const char* metric;
    const char* unit;  // "images/s" or "ms"
    int batch;
    std::function<std::function<void()>()> make_step;  // builds the state, returns one iteration
};

using Workloads = std::map<std::string, Workload>;

inline std::vector<float> random_images(size_t count) {
    std::vector<float> images(count);
    std::mt19937 random(7);
    std::normal_distribution<float> normal;
    for (float& v : images) v = normal(random);
    return images;
}

template <typename Model>
std::function<void()> train_step(int batch) {
    auto model = std::make_shared<Model>(1);
    model->set_sgd(0.01f, 0.9f, 5e-4f);
    auto images = std::make_shared<std::vector<float>>(random_images(static_cast<size_t>(batch) * Model::input_size));
    auto labels = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(batch));
    for (size_t i = 0; i < labels->size(); i++) (*labels)[i] = static_cast<int32_t>(i % Model::classes);
    return [=] { model->train_step(images->data(), labels->data(), batch); };
}

template <typename Model>
std::function<void()> infer_step(int batch) {
    auto model = std::make_shared<Model>(1);
    auto images = std::make_shared<std::vector<float>>(random_images(static_cast<size_t>(batch) * Model::input_size));
    auto probabilities = std::make_shared<std::vector<float>>(static_cast<size_t>(batch) * Model::classes);
    return [=] { model->predict(images->data(), batch, probabilities->data()); };
}

inline double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Warm-up, calibration on its second half, then `repeats` timed runs of n iterations each.
inline std::vector<double> measure(const std::function<void()>& step, double warmup, double seconds, int repeats,
                                   long* iterations_per_run) {
    const double start = now();
    double calibration_start = start, t = start;
    long iterations = 0, calibration_iterations = 0;
    for (;;) {
        step();
        iterations++;
        t = now();
        if (t - start >= warmup / 2 && calibration_iterations == 0 && iterations > 1) {
            calibration_start = t;
            calibration_iterations = iterations;
        }
        if (t - start >= warmup && iterations >= 3) break;
    }
    const double per_iteration = (t - calibration_start) / std::max(1L, iterations - calibration_iterations);
    const long n = std::max(1L, static_cast<long>(std::ceil(seconds / repeats / std::max(per_iteration, 1e-9))));
    std::vector<double> per_run;
    for (int r = 0; r < repeats; r++) {
        const double t0 = now();
        for (long i = 0; i < n; i++) step();
        per_run.push_back((now() - t0) / static_cast<double>(n));
    }
    *iterations_per_run = n;
    return per_run;
}

// Parses the command line, lists or times one workload of `workloads`, and prints its JSON line.
// Returns main's exit status: 0, 1 when the workload failed, 2 for a bad command line.
// The process's resident memory now and at its peak, in MiB (Linux).
inline double resident_mib(const char* field) {
    std::FILE* status = std::fopen("/proc/self/status", "r");
    if (!status) return -1;
    char line[256];
    double kib = -1;
    const size_t length = std::strlen(field);
    while (std::fgets(line, sizeof line, status)) {
        if (std::strncmp(line, field, length) == 0) kib = std::atof(line + length);
    }
    std::fclose(status);
    return kib / 1024;
}

// --peak-memory: the state built, then two iterations (the first allocates what later ones reuse);
// the process's peak resident memory, and what it held before the first iteration.
inline int report_peak_memory(const std::string& name, const Workload& w) {
    const std::function<void()> step = w.make_step();
    const double before = resident_mib("VmRSS:");
    step();
    step();
    std::printf(
        "{\"workload\": \"%s\", \"metric\": \"peak_memory\", \"unit\": \"MiB\", \"value\": %.1f, "
        "\"before_first_step\": %.1f, \"batch\": %d}\n",
        name.c_str(), resident_mib("VmHWM:"), before, w.batch);
    return 0;
}

inline int run_command_line(int argc, char** argv, const char* program, const Workloads& workloads) {
    std::string name;
    double warmup = 2, seconds = 10;
    int repeats = 5;
    bool peak_memory = false;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (arg == "--list") {
            for (const auto& [workload, unused] : workloads) std::printf("%s\n", workload.c_str());
            return 0;
        }
        if (arg == "--peak-memory") {
            peak_memory = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s: %s needs a value\n", program, arg.c_str());
            return 2;
        }
        const std::string value = argv[++i];
        if (arg == "--workload") {
            name = value;
        } else if (arg == "--warmup-seconds") {
            warmup = std::stod(value);
        } else if (arg == "--seconds") {
            seconds = std::stod(value);
        } else if (arg == "--repeats") {
            repeats = std::stoi(value);
        } else {
            std::fprintf(stderr,
                         "usage: %s --workload NAME [--warmup-seconds S] [--seconds T] [--repeats R] | "
                         "--workload NAME --peak-memory | --list\n",
                         program);
            return 2;
        }
    }
    const auto found = workloads.find(name);
    if (found == workloads.end() || repeats < 1 || seconds <= 0) {
        std::fprintf(stderr, "%s: unknown workload '%s' (see --list) or bad timing options\n", program, name.c_str());
        return 2;
    }
    const Workload& w = found->second;
    if (peak_memory) {
        try {
            return report_peak_memory(name, w);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: %s: %s\n", program, name.c_str(), e.what());
            return 1;
        }
    }
    long n = 0;
    std::vector<double> samples;
    try {
        for (double t : measure(w.make_step(), warmup, seconds, repeats, &n)) {
            samples.push_back(std::string(w.unit) == "ms" ? t * 1e3 : w.batch / t);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s: %s\n", program, name.c_str(), e.what());
        return 1;
    }
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    const size_t m = sorted.size();
    const double median = m % 2 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
    std::string list;
    for (size_t i = 0; i < samples.size(); i++) list += (i ? ", " : "") + std::to_string(samples[i]);
    std::printf(
        "{\"workload\": \"%s\", \"metric\": \"%s\", \"unit\": \"%s\", \"value\": %.6g, \"samples\": [%s], "
        "\"iterations_per_sample\": %ld, \"batch\": %d}\n",
        name.c_str(), w.metric, w.unit, median, list.c_str(), n, w.batch);
    return 0;
}

}  // namespace bench

#endif
