// The augmentation compiled into a training library: augment() shows exactly what the next
// training step feeds the network, it is reproducible from the seed and the step count, it
// changes from step to step, and switched off it passes the images unchanged.
#include "augment_net.hpp"
#include "lenet5.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

namespace {

std::vector<float> random_images(int batch, int size) {
    std::mt19937 random(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> images(static_cast<size_t>(batch) * size);
    for (float& v : images) v = normal(random);
    return images;
}

}  // namespace

TEST_CASE("a training step sees the images augment() shows, and the next step sees others") {
    constexpr int batch = 8;
    augment_net::Model model(1);
    CHECK(augment_net::Model::augmented);
    const std::vector<float> images = random_images(batch, augment_net::Model::input_size);
    std::vector<int32_t> labels(batch);
    for (int i = 0; i < batch; i++) labels[i] = i % augment_net::Model::classes;

    std::vector<float> seen(images.size()), again(images.size());
    model.augment(images.data(), batch, seen.data());
    model.augment(images.data(), batch, again.data());
    CHECK(seen == again);
    CHECK(seen != images);

    // With the weights held (learning rate 0), the step's loss is the loss of predicting on what
    // augment() showed: the network had exactly those images as input.
    const std::vector<float> probabilities = model.predict(seen.data(), batch);
    double expected_loss = 0;
    for (int i = 0; i < batch; i++) {
        expected_loss -= std::log(probabilities[static_cast<size_t>(i * augment_net::Model::classes + labels[i])]);
    }
    expected_loss /= batch;
    model.set_sgd(0.0f, 0.0f, 0.0f);
    const auto step = model.train_step(images.data(), labels.data(), batch);
    CHECK(step.loss == doctest::Approx(expected_loss).epsilon(1e-5));

    std::vector<float> next(images.size());
    model.augment(images.data(), batch, next.data());
    CHECK(next != seen);

    // The same seed and step count give the same images in another model.
    augment_net::Model twin(1);
    twin.augment(images.data(), batch, again.data());
    CHECK(again == seen);
}

TEST_CASE("augmentation switched off, or not declared, passes the images unchanged") {
    constexpr int batch = 4;
    augment_net::Model model(2);
    model.set_augmentation(false);
    const std::vector<float> images = random_images(batch, augment_net::Model::input_size);
    std::vector<float> out(images.size());
    model.augment(images.data(), batch, out.data());
    CHECK(out == images);

    lenet5::Model plain(2);
    CHECK_FALSE(lenet5::Model::augmented);
    const std::vector<float> digits = random_images(batch, lenet5::Model::input_size);
    std::vector<float> copy(digits.size());
    plain.augment(digits.data(), batch, copy.data());
    CHECK(copy == digits);
}

TEST_CASE("augment() rejects what train_step rejects") {
    augment_net::Model model(3);
    std::vector<float> images(augment_net::Model::input_size, 0.0f), out(images.size());
    CHECK(augment_net_augment(model.handle(), nullptr, 1, out.data()) == CONVGEN_ERROR_INVALID_ARGUMENT);
    CHECK(augment_net_augment(model.handle(), images.data(), 0, out.data()) == CONVGEN_ERROR_INVALID_ARGUMENT);
    CHECK(augment_net_augment(model.handle(), images.data(), 1, nullptr) == CONVGEN_ERROR_INVALID_ARGUMENT);
    images[3] = std::nanf("");
    CHECK(augment_net_augment(model.handle(), images.data(), 1, out.data()) == CONVGEN_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(augment_net_last_error(model.handle())).find("non-finite") != std::string::npos);
}
