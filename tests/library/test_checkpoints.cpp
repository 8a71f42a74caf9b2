// Training state that survives a crash: a process killed at random moments (many of them while
// it writes a checkpoint) always leaves a checkpoint that is exactly one of its saved states; a
// run resumed from a checkpoint continues bit for bit as the uninterrupted run; a save that
// cannot be written returns an error and leaves the previous checkpoint as it was.
#include "augment_net.hpp"
#include "library/checkpoint_batches.h"
#include "small_cnn.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using checkpoint_tests::batch_for;
using checkpoint_tests::batch_size;

// Every parameter's bits, by name.
using State = std::map<std::string, std::vector<uint32_t>>;

template <typename M>
State state_of(M& model) {
    State state;
    for (const auto& info : M::parameters()) {
        const std::vector<float> values = model.get_parameter(info.name);
        std::vector<uint32_t>& bits = state[info.name];
        bits.resize(values.size());
        std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
    }
    return state;
}

template <typename M>
void train_steps(M& model, uint64_t from, uint64_t to, std::vector<float>* losses = nullptr) {
    for (uint64_t step = from; step < to; step++) {
        const auto b = batch_for(step, batch_size, M::input_size, M::classes);
        const float loss = model.train_step(b.images.data(), b.labels.data(), batch_size).loss;
        if (losses) losses->push_back(loss);
    }
}

struct ScratchDirectory {
    fs::path path = fs::temp_directory_path() / ("convgen_checkpoints_" + std::to_string(::getpid()));
    ScratchDirectory() {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~ScratchDirectory() { fs::remove_all(path); }
    int leftover_temporaries() const {
        int count = 0;
        for (const auto& entry : fs::directory_iterator(path)) {
            count += entry.path().filename().string().find(".tmp.") != std::string::npos ? 1 : 0;
        }
        return count;
    }
};

pid_t spawn_writer(const std::vector<std::string>& arguments) {
    std::vector<std::string> all = {CONVGEN_CHECKPOINT_WRITER};
    all.insert(all.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
    return pid;
}

int wait_for(pid_t pid) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

std::string file_bytes(const fs::path& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("a training process killed 200 times at random moments always leaves one of its saved states") {
    ScratchDirectory directory;
    const fs::path checkpoint = directory.path / "small_cnn.safetensors";
    constexpr uint64_t seed = 17;
    // The states an uninterrupted run passes through, step by step, computed as far as needed.
    small_cnn::Model reference(seed);
    std::vector<State> states = {state_of(reference)};
    std::mt19937 random(2026);
    std::uniform_int_distribution<int> delay_ms(5, 120);
    int with_checkpoint = 0, mid_write = 0;
    for (int kill = 0; kill < 200; kill++) {
        fs::remove(checkpoint);
        for (const auto& entry : fs::directory_iterator(directory.path)) fs::remove(entry.path());
        const pid_t pid = spawn_writer({"loop", checkpoint.string(), std::to_string(seed)});
        // Every other kill waits for the first save, however slowly the writer starts (a
        // sanitized build beside other tests): at least half the kills find a checkpoint.
        if (kill % 2 == 1) {
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
            while (!fs::exists(checkpoint) && std::chrono::steady_clock::now() < give_up) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
        REQUIRE(::kill(pid, SIGKILL) == 0);
        const int status = wait_for(pid);
        REQUIRE(WIFSIGNALED(status));
        mid_write += directory.leftover_temporaries() > 0 ? 1 : 0;
        if (!fs::exists(checkpoint)) continue;  // killed before its first save
        with_checkpoint++;
        small_cnn::Model loaded(seed + 1);
        REQUIRE_NOTHROW(loaded.load(checkpoint.string()));
        const uint64_t step = loaded.step_count();
        REQUIRE(step >= 1);
        while (states.size() <= step) {
            train_steps(reference, states.size() - 1, states.size());
            states.push_back(state_of(reference));
        }
        CAPTURE(kill);
        CAPTURE(step);
        CHECK(state_of(loaded) == states[step]);
    }
    MESSAGE(with_checkpoint << " of 200 kills left a checkpoint; " << mid_write
                            << " came while a checkpoint was being written; the longest run reached step "
                            << states.size() - 1);
    CHECK(with_checkpoint >= 100);
    CHECK(mid_write > 0);
}

TEST_CASE("a run resumed from a checkpoint continues bit for bit as the uninterrupted run") {
    ScratchDirectory directory;
    const std::string checkpoint = (directory.path / "augment_net.safetensors").string();
    // augment_net draws random augmentations every step: its seed and step count must come back too.
    augment_net::Model whole(21), first_half(21);
    std::vector<float> whole_losses, resumed_losses;
    train_steps(whole, 0, 6, &whole_losses);
    train_steps(first_half, 0, 3);
    first_half.save(checkpoint);
    augment_net::Model resumed(777);  // another seed: the checkpoint brings its own
    resumed.load(checkpoint);
    CHECK(resumed.step_count() == 3);
    train_steps(resumed, 3, 6, &resumed_losses);
    CHECK(state_of(resumed) == state_of(whole));
    CHECK(std::vector<float>(whole_losses.begin() + 3, whole_losses.end()) == resumed_losses);
}

TEST_CASE("a save that cannot be written returns an I/O error and leaves the previous checkpoint intact") {
    ScratchDirectory directory;
    const fs::path checkpoint = directory.path / "small_cnn.safetensors";
    small_cnn::Model model(3);
    train_steps(model, 0, 2);
    model.save(checkpoint.string());
    const std::string before = file_bytes(checkpoint);
    REQUIRE(before.size() > 4096);
    // The writer saves another model under a 4 KiB file-size limit: the write fails part way.
    const int status = wait_for(spawn_writer({"limited", checkpoint.string()}));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // it got CONVGEN_ERROR_IO
    CHECK(file_bytes(checkpoint) == before);
    CHECK(directory.leftover_temporaries() == 0);
    small_cnn::Model reloaded(4);
    reloaded.load(checkpoint.string());
    CHECK(state_of(reloaded) == state_of(model));
}
