// Generated libraries under threads and under memory pressure: models used concurrently from
// several threads (supported: one thread per model), one model called from two threads at once
// (rejected with CONVGEN_ERROR_IN_USE), batches too large for 32-bit indexing, and an allocation
// that fails. scripts/test-sanitized runs this file under ThreadSanitizer as well.
#include "lenet5.hpp"
#include "small_cnn.hpp"

#include <doctest/doctest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

template <typename Model>
std::vector<float> random_images(int count, uint32_t seed) {
    std::mt19937 random(seed);
    std::normal_distribution<float> pixel(0.0f, 1.0f);
    std::vector<float> images(static_cast<size_t>(count) * Model::input_size);
    for (float& v : images) v = pixel(random);
    return images;
}

template <typename Model>
std::vector<int32_t> random_labels(int count, uint32_t seed) {
    std::mt19937 random(seed);
    std::uniform_int_distribution<int32_t> label(0, Model::classes - 1);
    std::vector<int32_t> labels(static_cast<size_t>(count));
    for (int32_t& l : labels) l = label(random);
    return labels;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return true;
#endif
#endif
    return false;
}

}  // namespace

TEST_SUITE("generated library under threads") {
    TEST_CASE("models of two libraries train at the same time on two threads as they do one after the other") {
        const std::vector<float> lenet_images = random_images<lenet5::Model>(32, 5);
        const std::vector<int32_t> lenet_labels = random_labels<lenet5::Model>(32, 5);
        const std::vector<float> small_images = random_images<small_cnn::Model>(16, 6);
        const std::vector<int32_t> small_labels = random_labels<small_cnn::Model>(16, 6);
        auto train_lenet = [&](std::vector<float>& losses) {
            lenet5::Model model(3);
            for (int step = 0; step < 20; step++) losses.push_back(model.train_step(lenet_images.data(), lenet_labels.data(), 32).loss);
        };
        auto train_small = [&](std::vector<float>& losses) {
            small_cnn::Model model(4);
            for (int step = 0; step < 20; step++) losses.push_back(model.train_step(small_images.data(), small_labels.data(), 16).loss);
        };
        std::vector<float> lenet_alone, small_alone, lenet_together, small_together;
        train_lenet(lenet_alone);
        train_small(small_alone);
        std::thread first([&] { train_lenet(lenet_together); });
        std::thread second([&] { train_small(small_together); });
        first.join();
        second.join();
        CHECK(same_bits(lenet_together, lenet_alone));
        CHECK(same_bits(small_together, small_alone));
    }

    TEST_CASE("four threads predict on four models of one library at once, each as it would alone") {
        constexpr int threads = 4, batch = 8, rounds = 10;
        std::vector<std::vector<float>> images, alone(threads), together(threads);
        for (int t = 0; t < threads; t++) images.push_back(random_images<lenet5::Model>(batch, 100 + t));
        for (int t = 0; t < threads; t++) {
            lenet5::Model model(static_cast<uint64_t>(t + 1));
            alone[static_cast<size_t>(t)] = model.predict(images[static_cast<size_t>(t)].data(), batch);
        }
        std::vector<std::thread> workers;
        std::atomic<int> mismatches{0};
        for (int t = 0; t < threads; t++) {
            workers.emplace_back([&, t] {
                lenet5::Model model(static_cast<uint64_t>(t + 1));
                for (int round = 0; round < rounds; round++) {
                    together[static_cast<size_t>(t)] = model.predict(images[static_cast<size_t>(t)].data(), batch);
                    if (!same_bits(together[static_cast<size_t>(t)], alone[static_cast<size_t>(t)])) mismatches++;
                }
            });
        }
        for (std::thread& worker : workers) worker.join();
        CHECK(mismatches == 0);
    }

    TEST_CASE("a call on a model another thread is inside is rejected with CONVGEN_ERROR_IN_USE, changing nothing") {
        constexpr int batch = 256;
        lenet5::Model model(1);
        const std::vector<float> images = random_images<lenet5::Model>(batch, 9);
        const std::vector<float> expected = model.predict(images.data(), batch);
        std::atomic<bool> seen_in_use{false}, stop{false};
        std::atomic<int> wrong{0}, other_status{0};
        // Both threads predict again and again until one has been turned away at least once
        // (or 20 s have passed, which would fail the check below).
        std::thread busy([&] {
            std::vector<float> probabilities(static_cast<size_t>(batch) * lenet5::Model::classes);
            const auto started = std::chrono::steady_clock::now();
            while (!seen_in_use && std::chrono::steady_clock::now() - started < std::chrono::seconds(20)) {
                const int status = lenet5_predict(model.handle(), images.data(), batch, probabilities.data());
                if (status == CONVGEN_OK && !same_bits(probabilities, expected)) wrong++;
                // Either thread may be the one turned away: whichever calls second while the other is inside.
                if (status == CONVGEN_ERROR_IN_USE) seen_in_use = true;
                else if (status != CONVGEN_OK) other_status = status;
            }
            stop = true;
        });
        std::vector<float> probabilities(lenet5::Model::classes);
        const std::vector<float> one = random_images<lenet5::Model>(1, 10);
        while (!stop) {
            const int status = lenet5_predict(model.handle(), one.data(), 1, probabilities.data());
            if (status == CONVGEN_ERROR_IN_USE) seen_in_use = true;
            else if (status != CONVGEN_OK) other_status = status;
        }
        busy.join();
        CHECK(seen_in_use);
        CHECK(wrong == 0);
        CHECK(other_status == 0);
        // The C++ API says what happened, and the model is usable afterwards.
        CHECK(same_bits(model.predict(images.data(), batch), expected));
        CHECK(std::string(lenet5_last_error(model.handle())).empty());
    }
}

TEST_SUITE("generated library under memory pressure") {
    TEST_CASE("a batch whose tensors outgrow 32-bit indexing is rejected naming the tensor; the model goes on") {
        lenet5::Model model(1);
        const std::vector<float> images = random_images<lenet5::Model>(2, 3);
        std::vector<float> probabilities(2 * lenet5::Model::classes);
        // 2 * 10^6 images of 28x28 fit 32-bit indexing; the first conv's pooled 6x14x14 outputs do
        // not. The size is refused before the images are read, so a small buffer stands in for them.
        const int huge = 2000000;
        CHECK(lenet5_predict(model.handle(), images.data(), huge, probabilities.data()) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);
        const std::string predict_error = lenet5_last_error(model.handle());
        CHECK(predict_error.find("batch 2000000 is too large: the tensor '") != std::string::npos);
        CHECK(predict_error.find("32-bit indexing") != std::string::npos);
        const std::vector<int32_t> labels(2, 0);
        CHECK(lenet5_train_step(model.handle(), images.data(), labels.data(), huge, nullptr, nullptr) ==
              CONVGEN_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(lenet5_last_error(model.handle())).find("too large") != std::string::npos);
        CHECK(model.step_count() == 0);
        CHECK_NOTHROW(model.predict(images.data(), 2, probabilities.data()));
        CHECK_NOTHROW(model.train_step(images.data(), labels.data(), 2));
    }

    TEST_CASE("an allocation that fails is CONVGEN_ERROR_OUT_OF_MEMORY, and the next call allocates again") {
        if (sanitized()) {
            // The sanitizers' allocators reserve their own address space and abort on failure.
            MESSAGE("skipped under a sanitizer");
            return;
        }
        // In a process of its own (out_of_memory_probe.cpp says why not a forked child), whose
        // address space is capped 256 MiB above what it uses.
        char* const arguments[] = {const_cast<char*>(CONVGEN_OUT_OF_MEMORY_PROBE), nullptr};
        pid_t child = -1;
        REQUIRE(posix_spawn(&child, CONVGEN_OUT_OF_MEMORY_PROBE, nullptr, nullptr, arguments, environ) == 0);
        int status = 0;
        REQUIRE(waitpid(child, &status, 0) == child);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
}
