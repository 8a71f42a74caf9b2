// Minibatches for training and evaluation: each epoch visits the samples in an order that
// depends only on (seed, epoch), so a run resumed at epoch e sees exactly the batches it would
// have seen. With prefetch, a background thread gathers, decodes and normalises the next batches
// while the caller trains on the current one.
//
//   BatchStream stream(train_set, {.batch = 64, .seed = 1, .normalisation = statistics});
//   for (int64_t step = 0; step < stream.batches_per_epoch(); step++) {
//       const Batch& batch = stream.next();
//       model.train_step(batch.images.data(), batch.labels.data(), batch.count);
//   }
#pragma once

#include <convgen/runtime/dataset.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace convgen::runtime {

struct BatchOptions {
    int batch = 64;
    uint64_t seed = 1;
    bool shuffle = true;       // false: every epoch in sample order
    bool drop_last = true;     // true: an epoch's last, smaller batch is left out, so every step has `batch` samples
    bool prefetch = true;      // prepare batches on a background thread
    int prefetch_batches = 2;  // how far the background thread may run ahead
    Normalisation normalisation;
};

struct Batch {
    std::vector<float> images;     // count * height * width * channels floats, NHWC, normalised
    std::vector<int32_t> labels;   // count labels
    std::vector<int64_t> samples;  // which samples of the source, in batch order
    int count = 0;
    int64_t epoch = 0;
    int64_t index = 0;  // the batch's place in its epoch
};

// The order in which epoch `epoch` visits `count` samples: a permutation that depends only on
// seed and epoch (the same with every compiler and standard library), or 0, 1, ... unshuffled.
std::vector<int64_t> epoch_order(int64_t count, uint64_t seed, int64_t epoch, bool shuffle = true);

class BatchStream {
  public:
    // Streams batches from epoch first_epoch on. The set or source must outlive the stream.
    // Throws std::invalid_argument for a batch below 1, a normalisation that does not fit the
    // images or, with drop_last, fewer samples than one batch.
    BatchStream(const ImageSet& set, BatchOptions options, int64_t first_epoch = 0);
    BatchStream(const SampleSource& source, BatchOptions options, int64_t first_epoch = 0);
    ~BatchStream();
    BatchStream(const BatchStream&) = delete;
    BatchStream& operator=(const BatchStream&) = delete;

    int64_t batches_per_epoch() const { return batches_per_epoch_; }
    const SampleSource& source() const { return source_; }

    // The next batch: batch 0 of the next epoch follows an epoch's last. The reference stays
    // valid until the next call. An exception raised while preparing it (a file that cannot be
    // decoded ...) is rethrown here, on the caller's thread, after the batches made before it.
    const Batch& next();

    // Seconds next() has spent waiting for a batch to be ready (without prefetch: preparing it).
    double wait_seconds() const { return wait_seconds_; }

  private:
    void start(int64_t first_epoch);
    void prepare(int64_t position, Batch& batch);
    void prefetch_loop();

    std::unique_ptr<ImageSetSource> owned_source_;
    const ImageSet* set_ = nullptr;  // the faster path when the samples are in memory
    const SampleSource& source_;
    BatchOptions options_;
    int64_t batches_per_epoch_ = 0;
    // Used only by the thread that prepares batches (the worker, or the caller without prefetch).
    int64_t next_position_ = 0;  // epoch * batches_per_epoch + index of the next batch to prepare
    std::vector<int64_t> order_;
    int64_t order_epoch_ = -1;
    Batch current_;
    double wait_seconds_ = 0;

    // Shared with the background thread, under mutex_.
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<Batch> ready_;
    std::vector<Batch> spare_;  // buffers to reuse
    std::exception_ptr error_;
    bool stopping_ = false;
    std::thread worker_;
};

}  // namespace convgen::runtime
