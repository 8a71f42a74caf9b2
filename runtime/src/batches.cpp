#include "convgen/runtime/batches.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace convgen::runtime {
namespace {

// splitmix64's output function: a bijection that spreads every input bit over the output.
uint64_t mix(uint64_t value) {
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
    return value ^ (value >> 31);
}

// A small generator written out here rather than std::mt19937 with std::shuffle, whose
// distributions differ between standard libraries: the orders must be the same everywhere.
class SplitMix64 {
  public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next() { return mix(state_ += 0x9E3779B97F4A7C15ull); }
    // Uniform in [0, bound) without modulo bias (Lemire's multiply and reject).
    uint64_t below(uint64_t bound) {
        unsigned __int128 product = static_cast<unsigned __int128>(next()) * bound;
        if (static_cast<uint64_t>(product) < bound) {
            const uint64_t threshold = (0 - bound) % bound;
            while (static_cast<uint64_t>(product) < threshold) product = static_cast<unsigned __int128>(next()) * bound;
        }
        return static_cast<uint64_t>(product >> 64);
    }

  private:
    uint64_t state_;
};

void check_options(const SampleSource& source, const BatchOptions& options) {
    if (options.batch < 1)
        throw std::invalid_argument(fmt::format("batch must be at least 1 but is {}", options.batch));
    if (options.prefetch_batches < 1) {
        throw std::invalid_argument(
            fmt::format("prefetch_batches must be at least 1 but is {}", options.prefetch_batches));
    }
    check_normalisation(options.normalisation, source.channels());
    if (source.count() < 1 || (options.drop_last && source.count() < options.batch)) {
        throw std::invalid_argument(fmt::format("the set has {} samples, fewer than one batch of {}{}", source.count(),
                                                options.batch, options.drop_last ? " (drop_last is on)" : ""));
    }
}

}  // namespace

std::vector<int64_t> epoch_order(int64_t count, uint64_t seed, int64_t epoch, bool shuffle) {
    std::vector<int64_t> order(static_cast<size_t>(count));
    std::iota(order.begin(), order.end(), 0);
    if (!shuffle) return order;
    SplitMix64 random(mix(seed) ^ mix(static_cast<uint64_t>(epoch) + 0x632BE59BD9B4E019ull));
    for (int64_t i = count - 1; i > 0; i--) {
        std::swap(order[static_cast<size_t>(i)], order[random.below(static_cast<uint64_t>(i) + 1)]);
    }
    return order;
}

BatchStream::BatchStream(const ImageSet& set, BatchOptions options, int64_t first_epoch)
    : owned_source_(std::make_unique<ImageSetSource>(set)),
      set_(&set),
      source_(*owned_source_),
      options_(std::move(options)) {
    if (set.pixels.size() != static_cast<size_t>(set.count * set.image_size()) ||
        set.labels.size() != static_cast<size_t>(set.count)) {
        throw std::invalid_argument(fmt::format("the set says {} images of {}x{}x{} but holds {} pixels and {} labels",
                                                set.count, set.height, set.width, set.channels, set.pixels.size(),
                                                set.labels.size()));
    }
    start(first_epoch);
}

BatchStream::BatchStream(const SampleSource& source, BatchOptions options, int64_t first_epoch)
    : source_(source), options_(std::move(options)) {
    start(first_epoch);
}

void BatchStream::start(int64_t first_epoch) {
    check_options(source_, options_);
    batches_per_epoch_ =
        options_.drop_last ? source_.count() / options_.batch : (source_.count() + options_.batch - 1) / options_.batch;
    next_position_ = first_epoch * batches_per_epoch_;
    if (options_.prefetch) worker_ = std::thread(&BatchStream::prefetch_loop, this);
}

BatchStream::~BatchStream() {
    if (!worker_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    worker_.join();
}

void BatchStream::prepare(int64_t position, Batch& batch) {
    batch.epoch = position / batches_per_epoch_;
    batch.index = position % batches_per_epoch_;
    if (order_epoch_ != batch.epoch) {
        order_ = epoch_order(source_.count(), options_.seed, batch.epoch, options_.shuffle);
        order_epoch_ = batch.epoch;
    }
    const int64_t first = batch.index * options_.batch;
    batch.count = static_cast<int>(std::min<int64_t>(options_.batch, source_.count() - first));
    batch.samples.assign(order_.begin() + first, order_.begin() + first + batch.count);
    batch.images.resize(static_cast<size_t>(batch.count * source_.image_size()));
    batch.labels.resize(static_cast<size_t>(batch.count));
    if (set_) {
        to_network_input(*set_, batch.samples.data(), batch.samples.size(), options_.normalisation, batch.images.data(),
                         batch.labels.data());
    } else {
        to_network_input(source_, batch.samples.data(), batch.samples.size(), options_.normalisation,
                         batch.images.data(), batch.labels.data());
    }
}

void BatchStream::prefetch_loop() {
    for (;;) {
        Batch batch;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            changed_.wait(lock,
                          [&] { return stopping_ || static_cast<int>(ready_.size()) < options_.prefetch_batches; });
            if (stopping_) return;
            if (!spare_.empty()) {
                batch = std::move(spare_.back());
                spare_.pop_back();
            }
        }
        try {
            prepare(next_position_++, batch);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            error_ = std::current_exception();
            changed_.notify_all();
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ready_.push_back(std::move(batch));
        }
        changed_.notify_all();
    }
}

const Batch& BatchStream::next() {
    const auto started = std::chrono::steady_clock::now();
    if (!options_.prefetch) {
        prepare(next_position_++, current_);
    } else {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!current_.images.empty()) spare_.push_back(std::move(current_));
        changed_.wait(lock, [&] { return !ready_.empty() || error_; });
        if (ready_.empty()) std::rethrow_exception(error_);
        current_ = std::move(ready_.front());
        ready_.pop_front();
        lock.unlock();
        changed_.notify_all();
    }
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return current_;
}

}  // namespace convgen::runtime
