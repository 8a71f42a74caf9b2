#include "convgen/runtime/batches.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace convgen::runtime;

// `count` 1x1 grey images whose pixel is the sample index (mod 256) and whose label is index % 7.
ImageSet numbered_images(int64_t count) {
    ImageSet set;
    set.count = count;
    set.height = 1;
    set.width = 1;
    set.channels = 1;
    for (int64_t i = 0; i < count; i++) {
        set.pixels.push_back(static_cast<uint8_t>(i % 256));
        set.labels.push_back(static_cast<int32_t>(i % 7));
    }
    set.class_names = numbered_class_names(7);
    return set;
}

BatchOptions options_with(int batch, uint64_t seed, bool prefetch, bool drop_last = true) {
    BatchOptions options;
    options.batch = batch;
    options.seed = seed;
    options.prefetch = prefetch;
    options.drop_last = drop_last;
    return options;
}

// The samples of one whole epoch, in the order the stream hands them out.
std::vector<int64_t> next_epoch_samples(BatchStream& stream) {
    std::vector<int64_t> samples;
    for (int64_t step = 0; step < stream.batches_per_epoch(); step++) {
        const Batch& batch = stream.next();
        samples.insert(samples.end(), batch.samples.begin(), batch.samples.end());
    }
    return samples;
}

// A source over numbered_images that fails on one sample and can be slowed down.
class TestSource final : public SampleSource {
  public:
    TestSource(int64_t count, int64_t failing_sample, std::chrono::milliseconds delay = {})
        : set_(numbered_images(count)), in_memory_(set_), failing_sample_(failing_sample), delay_(delay) {}
    int64_t count() const override { return set_.count; }
    int64_t height() const override { return 1; }
    int64_t width() const override { return 1; }
    int64_t channels() const override { return 1; }
    const std::vector<std::string>& class_names() const override { return set_.class_names; }
    int32_t label(int64_t sample) const override { return in_memory_.label(sample); }
    void read(int64_t sample, uint8_t* pixels) const override {
        std::this_thread::sleep_for(delay_);
        if (sample == failing_sample_) throw DataError("broken.png: cannot decode: corrupt JPEG data");
        in_memory_.read(sample, pixels);
    }

  private:
    ImageSet set_;
    ImageSetSource in_memory_;
    int64_t failing_sample_;
    std::chrono::milliseconds delay_;
};

}  // namespace

TEST_CASE("epoch_order is a permutation fixed by seed and epoch, the same on every platform") {
    CHECK(epoch_order(10, 1, 0) == std::vector<int64_t>{9, 2, 8, 3, 5, 6, 4, 1, 7, 0});
    CHECK(epoch_order(10, 1, 0) == epoch_order(10, 1, 0));
    CHECK(epoch_order(10, 1, 1) != epoch_order(10, 1, 0));
    CHECK(epoch_order(10, 2, 0) != epoch_order(10, 1, 0));
    CHECK(epoch_order(5, 1, 0, false) == std::vector<int64_t>{0, 1, 2, 3, 4});
    auto sorted = epoch_order(1000, 7, 3);
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == epoch_order(1000, 7, 3, false));
}

TEST_CASE("every sample appears exactly once per epoch, with its own pixels and label") {
    const auto set = numbered_images(103);
    BatchStream stream(set, options_with(10, 5, true, false));
    REQUIRE(stream.batches_per_epoch() == 11);

    for (int epoch = 0; epoch < 2; epoch++) {
        std::vector<int64_t> seen;
        for (int64_t step = 0; step < stream.batches_per_epoch(); step++) {
            const Batch& batch = stream.next();
            CHECK(batch.epoch == epoch);
            CHECK(batch.index == step);
            CHECK(batch.count == (step < 10 ? 10 : 3));
            REQUIRE(batch.images.size() == static_cast<size_t>(batch.count));
            for (int i = 0; i < batch.count; i++) {
                const int64_t sample = batch.samples[static_cast<size_t>(i)];
                CHECK(batch.images[static_cast<size_t>(i)] == static_cast<float>(sample % 256) / 255.0f);
                CHECK(batch.labels[static_cast<size_t>(i)] == sample % 7);
                seen.push_back(sample);
            }
        }
        std::sort(seen.begin(), seen.end());
        CHECK(seen == epoch_order(103, 0, 0, false));
    }
}

TEST_CASE("drop_last leaves out an epoch's last partial batch") {
    const auto set = numbered_images(10);
    BatchStream stream(set, options_with(4, 1, false));

    CHECK(stream.batches_per_epoch() == 2);
    CHECK(stream.next().count == 4);
    CHECK(stream.next().count == 4);
    const Batch& next_epoch = stream.next();
    CHECK(next_epoch.epoch == 1);
    CHECK(next_epoch.index == 0);
}

TEST_CASE("the same seed gives the same epochs; another epoch or seed gives another order") {
    const auto set = numbered_images(64);
    BatchStream first(set, options_with(8, 11, true));
    BatchStream second(set, options_with(8, 11, true));
    BatchStream other_seed(set, options_with(8, 12, true));

    const auto epoch0 = next_epoch_samples(first);
    const auto epoch1 = next_epoch_samples(first);
    CHECK(next_epoch_samples(second) == epoch0);
    CHECK(next_epoch_samples(second) == epoch1);
    CHECK(epoch1 != epoch0);
    CHECK(next_epoch_samples(other_seed) != epoch0);
    CHECK(epoch0 == epoch_order(64, 11, 0));
}

TEST_CASE("a stream started at epoch 2 reproduces epoch 2 of a stream started at 0, as a resumed run needs") {
    const auto set = numbered_images(50);
    BatchStream from_start(set, options_with(5, 3, true));
    BatchStream resumed(set, options_with(5, 3, true), 2);

    next_epoch_samples(from_start);
    next_epoch_samples(from_start);

    CHECK(resumed.next().epoch == 2);
    BatchStream resumed_again(set, options_with(5, 3, true), 2);
    CHECK(next_epoch_samples(resumed_again) == next_epoch_samples(from_start));
}

TEST_CASE("with and without prefetch the batches are identical") {
    auto set = numbered_images(300);
    set.channels = 3;
    set.width = 2;
    set.pixels.resize(300 * 6);
    for (size_t i = 0; i < set.pixels.size(); i++) set.pixels[i] = static_cast<uint8_t>(i * 7);
    BatchOptions prefetched = options_with(32, 9, true, false);
    prefetched.normalisation = {{0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f}};
    BatchOptions direct = prefetched;
    direct.prefetch = false;
    BatchStream with(set, prefetched);
    BatchStream without(set, direct);

    for (int64_t step = 0; step < 3 * with.batches_per_epoch(); step++) {
        const Batch& a = with.next();
        const Batch& b = without.next();
        CHECK(a.samples == b.samples);
        CHECK(a.images == b.images);
        CHECK(a.labels == b.labels);
    }
}

TEST_CASE("an error on the background thread surfaces on the caller's thread with its message") {
    // Sample 37 fails; with batches of 10 unshuffled it is in batch 3, so batches 0 to 2 arrive first.
    const TestSource source(100, 37);
    for (const bool prefetch : {true, false}) {
        CAPTURE(prefetch);
        BatchOptions options = options_with(10, 1, prefetch);
        options.shuffle = false;
        BatchStream stream(source, options);
        for (int step = 0; step < 3; step++) CHECK(stream.next().index == step);
        CHECK_THROWS_WITH_AS(stream.next(), "broken.png: cannot decode: corrupt JPEG data", DataError);
    }
}

TEST_CASE("a stream destroyed while its background thread waits on a full queue shuts down cleanly") {
    const auto set = numbered_images(1000);
    for (int repeat = 0; repeat < 20; repeat++) {
        BatchStream stream(set, options_with(10, static_cast<uint64_t>(repeat), true));
        if (repeat % 2) stream.next();
    }
}

TEST_CASE("the time spent waiting for data is recorded, and prefetch hides a slow source behind the consumer") {
    const TestSource slow(40, -1, std::chrono::milliseconds(2));
    BatchOptions options = options_with(4, 1, false);
    BatchStream direct(slow, options);
    options.prefetch = true;
    BatchStream prefetched(slow, options);

    for (int step = 0; step < 10; step++) {
        direct.next();
        prefetched.next();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the training step
    }
    // Without prefetch every batch is read while the caller waits: 40 reads of at least 2 ms.
    CHECK(direct.wait_seconds() >= 0.08);
    CHECK(prefetched.wait_seconds() < direct.wait_seconds() / 2);
}

TEST_CASE("a batch below 1, a normalisation for other channels or too few samples for one batch is refused") {
    const auto set = numbered_images(10);
    BatchOptions wrong_channels = options_with(4, 1, true);
    wrong_channels.normalisation = {{0.5f, 0.5f, 0.5f}, {0.2f, 0.2f, 0.2f}};

    CHECK_THROWS_AS(BatchStream(set, options_with(0, 1, true)), std::invalid_argument);
    CHECK_THROWS_AS(BatchStream(set, wrong_channels), std::invalid_argument);
    CHECK_THROWS_WITH_AS(BatchStream(set, options_with(11, 1, true)),
                         "the set has 10 samples, fewer than one batch of 11 (drop_last is on)", std::invalid_argument);
    CHECK(BatchStream(set, options_with(11, 1, true, false)).batches_per_epoch() == 1);
}
