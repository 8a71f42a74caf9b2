// A training process for the checkpoint tests (test_checkpoints.cpp), which kill it or starve it:
//   checkpoint_writer loop PATH SEED   train small_cnn and save after every step, until killed
//   checkpoint_writer limited PATH     save under a 4 KiB file-size limit (a disk that fills up):
//                                      exits 0 when the save returned CONVGEN_ERROR_IO
#include "checkpoint_batches.h"
#include "small_cnn.hpp"

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    using checkpoint_tests::batch_for;
    using checkpoint_tests::batch_size;
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "loop" && argc == 4) {
        small_cnn::Model model(std::strtoull(argv[3], nullptr, 10));
        for (uint64_t step = 0;; step++) {
            const auto b = batch_for(step, batch_size, small_cnn::Model::input_size, small_cnn::Model::classes);
            model.train_step(b.images.data(), b.labels.data(), batch_size);
            model.save(argv[2]);
        }
    }
    if (mode == "limited" && argc == 3) {
        small_cnn::Model model(5);
        // Writing past the limit fails with EFBIG instead of raising SIGXFSZ.
        std::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) {
            std::perror("checkpoint_writer: setrlimit");
            return 2;
        }
        const int status = small_cnn_save(model.handle(), argv[2]);
        std::printf("%d %s\n", status, small_cnn_last_error(model.handle()));
        return status == CONVGEN_ERROR_IO ? 0 : 1;
    }
    std::fprintf(stderr, "usage: checkpoint_writer loop PATH SEED | limited PATH\n");
    return 2;
}
